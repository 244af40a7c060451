//! The outbox lock across tabs: a Web Lock (`navigator.locks.request`) held until released. Where
//! the API is missing (old browsers, Node), the lock is granted at once: there is only one tab.

use js_sys::{Function, Object, Promise, Reflect};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

#[wasm_bindgen]
extern "C" {
    /// `navigator.locks` (web-sys has it only behind its unstable-API flag).
    type LockManager;
    #[wasm_bindgen(method, catch)]
    fn query(this: &LockManager) -> Result<Promise, JsValue>;
    #[wasm_bindgen(method, catch)]
    fn request(
        this: &LockManager,
        name: &str,
        options: &JsValue,
        callback: &Function,
    ) -> Result<Promise, JsValue>;
}

fn lock_manager() -> Option<LockManager> {
    let navigator = Reflect::get(&js_sys::global(), &JsValue::from_str("navigator")).ok()?;
    let locks = Reflect::get(&navigator, &JsValue::from_str("locks")).ok()?;
    locks.is_object().then(|| locks.unchecked_into())
}

/// One request for the lock, from asking to letting go. Dropping it aborts a request still
/// waiting and lets a held lock go.
pub struct LockRequest {
    abort: Option<web_sys::AbortController>,
    release: Rc<RefCell<Option<Function>>>,
    _granted: Option<Closure<dyn FnMut(JsValue) -> Promise>>,
}

/// How a lock is held: by one request at a time, or by any number of shared ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMode {
    Exclusive,
    Shared,
}

/// How many requests hold lock `name` and how many wait for it, in every tab of this origin
/// (`None` without Web Locks, or if the browser will not say).
pub async fn count(name: &str) -> Option<(u32, u32)> {
    let snapshot = wasm_bindgen_futures::JsFuture::from(lock_manager()?.query().ok()?)
        .await
        .ok()?;
    let tally = |list: &str| -> Option<u32> {
        let list: js_sys::Array = Reflect::get(&snapshot, &JsValue::from_str(list))
            .ok()?
            .dyn_into()
            .ok()?;
        let named = |l: &JsValue| {
            Reflect::get(l, &JsValue::from_str("name"))
                .is_ok_and(|n| n.as_string().as_deref() == Some(name))
        };
        Some(list.iter().filter(named).count() as u32)
    };
    Some((tally("held")?, tally("pending")?))
}

/// Whether Web Locks exist here (without them every request is granted at once).
pub fn locks_available() -> bool {
    lock_manager().is_some()
}

impl LockRequest {
    /// Asks for lock `name` exclusively; calls `granted()` once it is held, or `lost()` if it
    /// cannot be had. Without the Web Locks API, `granted()` runs on the next microtask.
    pub fn ask(name: &str, granted: Rc<dyn Fn()>, lost: Rc<dyn Fn()>) -> LockRequest {
        let on_answer: Rc<dyn Fn(bool)> = Rc::new(move |_| granted());
        Self::ask_with(name, LockMode::Exclusive, false, on_answer, lost)
    }

    /// Asks for lock `name` in `mode`. `answer(true)` runs once it is held. With `if_available`
    /// the request does not wait: `answer(false)` runs at once when the lock is not free (nothing
    /// is held then). `lost()` runs if the request fails (aborted while waiting, or refused).
    pub fn ask_with(
        name: &str,
        mode: LockMode,
        if_available: bool,
        answer: Rc<dyn Fn(bool)>,
        lost: Rc<dyn Fn()>,
    ) -> LockRequest {
        let release: Rc<RefCell<Option<Function>>> = Rc::default();
        let Some(locks) = lock_manager() else {
            return Self::granted_at_once(Rc::new(move || answer(true)));
        };
        // A signal cannot go with `ifAvailable` (the request never waits then anyway).
        let abort = (!if_available)
            .then(|| web_sys::AbortController::new().ok())
            .flatten();
        let options = Object::new();
        if let Some(a) = &abort {
            let _ = Reflect::set(&options, &JsValue::from_str("signal"), &a.signal());
        }
        if mode == LockMode::Shared {
            let _ = Reflect::set(&options, &"mode".into(), &"shared".into());
        }
        if if_available {
            let _ = Reflect::set(&options, &"ifAvailable".into(), &JsValue::TRUE);
        }
        let slot = release.clone();
        let callback = Closure::<dyn FnMut(JsValue) -> Promise>::new(move |lock: JsValue| {
            if lock.is_null() {
                // `ifAvailable` and someone else holds it.
                answer(false);
                return Promise::resolve(&JsValue::UNDEFINED);
            }
            // The lock is held until this promise settles: its resolve function is the release.
            let held = Promise::new(&mut |resolve, _reject| *slot.borrow_mut() = Some(resolve));
            answer(true);
            held
        });
        match locks.request(name, &options, callback.as_ref().unchecked_ref()) {
            Ok(p) => wasm_bindgen_futures::spawn_local(async move {
                // Rejected: aborted while waiting (closing), or the lock manager refused.
                if wasm_bindgen_futures::JsFuture::from(p).await.is_err() {
                    lost();
                }
            }),
            Err(_) => wasm_bindgen_futures::spawn_local(async move { lost() }),
        }
        LockRequest {
            abort,
            release,
            _granted: Some(callback),
        }
    }

    /// A lock nobody else can want (memory storage): granted on the next microtask.
    pub fn granted_at_once(granted: Rc<dyn Fn()>) -> LockRequest {
        wasm_bindgen_futures::spawn_local(async move { granted() });
        LockRequest {
            abort: None,
            release: Rc::default(),
            _granted: None,
        }
    }

    /// Lets the lock go (or stops waiting for it).
    pub fn release(&self) {
        if let Some(f) = self.release.borrow_mut().take() {
            let _ = f.call0(&JsValue::NULL);
        }
        if let Some(a) = &self.abort {
            a.abort();
        }
    }
}

impl Drop for LockRequest {
    fn drop(&mut self) {
        self.release();
    }
}
