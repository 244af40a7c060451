//! Calling the app's sync hooks (`sync.mutation`, `sync.query`): with an `AbortSignal` in the
//! second argument, and a time limit after which the call counts as failed and its signal is
//! aborted, so a request that never answers cannot hold the outbox queue.

use futures::future::{select, Either};
use gloo_timers::future::TimeoutFuture;
use js_sys::{Function, Object, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// Timers take at most this many milliseconds; a longer limit means none.
pub const MAX_TIMER_MS: f64 = 2_147_483_647.0;

/// Calls `target[hook](arg, { signal })` and waits for it, at most `timeout_ms`.
/// `Err` holds what the hook threw or rejected with, or a `TimeoutError`.
pub async fn call(
    target: &JsValue,
    hook: &str,
    model: &str,
    arg: &JsValue,
    timeout_ms: f64,
) -> Result<JsValue, JsValue> {
    let f: Function = Reflect::get(target, &JsValue::from_str(hook))?
        .dyn_into()
        .map_err(|_| {
            js_sys::Error::new(&format!("sync.{hook} of \"{model}\" is not a function"))
        })?;
    let controller = web_sys::AbortController::new().ok();
    let ctx = Object::new();
    if let Some(c) = &controller {
        Reflect::set(&ctx, &JsValue::from_str("signal"), &c.signal())?;
    }
    let answer = JsFuture::from(Promise::resolve(&f.call2(target, arg, &ctx)?));
    if !(timeout_ms > 0.0 && timeout_ms <= MAX_TIMER_MS) {
        return answer.await;
    }
    match select(answer, TimeoutFuture::new(timeout_ms as u32)).await {
        Either::Left((result, _)) => result,
        Either::Right(((), _)) => {
            let e = js_sys::Error::new(&format!(
                "sync.{hook} of \"{model}\" did not settle within {timeout_ms} ms"
            ));
            e.set_name("TimeoutError");
            if let Some(c) = controller {
                c.abort_with_reason(&e);
            }
            Err(e.into())
        }
    }
}

/// What a thrown value says: an Error's message (or name), a string, or its JSON.
pub fn message_of(e: &JsValue) -> String {
    if let Some(err) = e.dyn_ref::<js_sys::Error>() {
        let m = String::from(err.message());
        return if m.is_empty() { err.name().into() } else { m };
    }
    if let Some(s) = e.as_string() {
        return s;
    }
    js_sys::JSON::stringify(e)
        .ok()
        .and_then(|s| s.as_string())
        .unwrap_or_else(|| "unknown error".into())
}

/// A hook error says the backend needs credentials first (`needsAuth: true`).
pub fn needs_auth(e: &JsValue) -> bool {
    e.is_object()
        && Reflect::get(e, &JsValue::from_str("needsAuth")).is_ok_and(|v| v == JsValue::TRUE)
}

/// A hook error is a rejection when it says it will never succeed (`retryable: false` or
/// `permanent: true`).
pub fn is_permanent(e: &JsValue) -> bool {
    if !e.is_object() {
        return false;
    }
    let get = |k: &str| Reflect::get(e, &JsValue::from_str(k)).unwrap_or(JsValue::UNDEFINED);
    get("retryable") == JsValue::FALSE || get("permanent") == JsValue::TRUE
}
