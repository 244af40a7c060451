//! The [`Remote`] port over each model's `sync` hooks.

use super::hooks::{self, message_of};
use crate::core::db::{Pulled, PushOutcome, Remote};
use crate::core::outbox::{Action, OutboxEntry};
use crate::core::value::Obj;
use crate::error::Issue;
use js_sys::{Function, Reflect};
use serde::Serialize;
use serde_json::Value;
use wasm_bindgen::{JsCast, JsValue};

/// How long a hook call may stay pending when the model sets no `sync.timeoutMs`.
const HOOK_TIMEOUT_MS: f64 = 30_000.0;

pub struct JsRemote {
    /// `{ [model]: model.sync }` for models with hooks.
    syncs: JsValue,
    /// Models with a `sync.mutation` hook.
    pushing: Vec<String>,
    /// The wrapper's `checkPulled(rows)`: JSON text `{ rows, issues }`, rows JSON cannot carry
    /// faithfully replaced by `null` with their issues.
    check_pulled: Function,
}

/// The argument of `sync.mutation`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MutationArg<'a> {
    action: Action,
    query: &'a Value,
    mutation_id: &'a str,
    model: &'a str,
}

impl JsRemote {
    pub fn new(syncs: JsValue, pushing: Vec<String>, check_pulled: Function) -> Self {
        JsRemote {
            syncs,
            pushing,
            check_pulled,
        }
    }

    fn sync_of(&self, model: &str) -> JsValue {
        Reflect::get(&self.syncs, &JsValue::from_str(model)).unwrap_or(JsValue::UNDEFINED)
    }

    fn timeout_of(sync: &JsValue) -> f64 {
        Reflect::get(sync, &JsValue::from_str("timeoutMs"))
            .ok()
            .and_then(|v| v.as_f64())
            .unwrap_or(HOOK_TIMEOUT_MS)
    }
}

/// Plain objects for JS (maps as objects, `None` as `null`).
pub fn to_js<T: Serialize + ?Sized>(v: &T) -> Result<JsValue, String> {
    v.serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| e.to_string())
}

/// How many entries `sync.mutations` receives at most when the model sets no `batchSize`.
const BATCH_SIZE: usize = 100;

/// One answer of `sync.mutations`: `"done"`, `"retry"`, `"reject"`, or `{ status, error }`.
fn batch_answer(v: &JsValue) -> PushOutcome {
    let (status, error) = match v.as_string() {
        Some(s) => (s, None),
        None if v.is_object() => {
            let get =
                |k: &str| Reflect::get(v, &JsValue::from_str(k)).unwrap_or(JsValue::UNDEFINED);
            let error = get("error");
            let error = (!error.is_undefined() && !error.is_null()).then(|| message_of(&error));
            (get("status").as_string().unwrap_or_default(), error)
        }
        None if v.is_undefined() || v.is_null() => ("done".into(), None),
        None => (String::new(), None),
    };
    match status.as_str() {
        "done" => PushOutcome::Done,
        "reject" | "rejected" => PushOutcome::Reject(error.unwrap_or_else(|| "rejected by the backend".into())),
        "retry" => PushOutcome::Retry(error.unwrap_or_else(|| "the backend asked to retry".into())),
        other => PushOutcome::Retry(format!(
            "sync.mutations answered {other:?} for an entry; answer \"done\", \"retry\" or \"reject\" (or {{ status, error }})"
        )),
    }
}

impl Remote for JsRemote {
    fn can_push(&self, model: &str) -> bool {
        self.pushing.iter().any(|m| m == model)
    }

    fn batch_of(&self, model: &str) -> Option<(String, usize)> {
        if !has_hook(&self.syncs, model, "mutations") {
            return None;
        }
        let sync = self.sync_of(model);
        let size = Reflect::get(&sync, &JsValue::from_str("batchSize"))
            .ok()
            .and_then(|v| v.as_f64())
            .filter(|n| *n >= 1.0)
            .map_or(BATCH_SIZE, |n| n as usize);
        // Models on the ORM's hook (`createSyncOrm({ sync: { mutations } })`) share batches.
        let orm_wide = Reflect::get(&sync, &JsValue::from_str("ormWide")) == Ok(JsValue::TRUE);
        let hook = if orm_wide {
            "*".into()
        } else {
            model.to_string()
        };
        Some((hook, size))
    }

    async fn push_batch(&self, entries: &[OutboxEntry]) -> Vec<PushOutcome> {
        let Some(first) = entries.first() else {
            return Vec::new();
        };
        let args: Vec<MutationArg> = entries
            .iter()
            .map(|e| MutationArg {
                action: e.action,
                query: &e.query,
                mutation_id: &e.mutation_id,
                model: &e.model,
            })
            .collect();
        let arg = match to_js(&args) {
            Ok(a) => a,
            Err(e) => return vec![PushOutcome::Retry(e)],
        };
        let sync = self.sync_of(&first.model);
        let timeout = Self::timeout_of(&sync);
        match hooks::call(&sync, "mutations", &first.model, &arg, timeout).await {
            // Nothing (or nothing to say per entry): every entry is done.
            Ok(v) if v.is_undefined() || v.is_null() => vec![PushOutcome::Done; entries.len()],
            Ok(v) if js_sys::Array::is_array(&v) => js_sys::Array::from(&v)
                .iter()
                .take(entries.len())
                .map(|a| batch_answer(&a))
                .collect(),
            Ok(_) => vec![PushOutcome::Retry(
                "sync.mutations must resolve to an array with one answer per entry (or nothing when all are done)".into(),
            )],
            // The whole call failed: the first entry takes the failure, the rest wait behind it.
            Err(e) if hooks::needs_auth(&e) => vec![PushOutcome::NeedsAuth(message_of(&e))],
            Err(e) if hooks::is_permanent(&e) => vec![PushOutcome::Reject(message_of(&e))],
            Err(e) => vec![PushOutcome::Retry(message_of(&e))],
        }
    }

    async fn push(&self, entry: &OutboxEntry) -> PushOutcome {
        let arg = match to_js(&MutationArg {
            action: entry.action,
            query: &entry.query,
            mutation_id: &entry.mutation_id,
            model: &entry.model,
        }) {
            Ok(a) => a,
            Err(e) => return PushOutcome::Retry(e),
        };
        let sync = self.sync_of(&entry.model);
        let timeout = Self::timeout_of(&sync);
        match hooks::call(&sync, "mutation", &entry.model, &arg, timeout).await {
            Ok(_) => PushOutcome::Done,
            Err(e) if hooks::needs_auth(&e) => PushOutcome::NeedsAuth(message_of(&e)),
            Err(e) if hooks::is_permanent(&e) => PushOutcome::Reject(message_of(&e)),
            Err(e) => PushOutcome::Retry(message_of(&e)),
        }
    }

    fn resolve(
        &self,
        model: &str,
        local: Option<&Obj>,
        remote: &Obj,
        base: Option<&Obj>,
    ) -> Result<Obj, String> {
        let f: Function = Reflect::get(&self.sync_of(model), &JsValue::from_str("conflict"))
            .ok()
            .and_then(|f| f.dyn_into().ok())
            .ok_or_else(|| format!("model \"{model}\" has no conflict function"))?;
        let answer = f
            .call3(
                &JsValue::NULL,
                &to_js(&local)?,
                &to_js(remote)?,
                &to_js(&base)?,
            )
            .map_err(|e| {
                format!(
                    "the conflict function of \"{model}\" threw: {}",
                    message_of(&e)
                )
            })?;
        let text = js_sys::JSON::stringify(&answer)
            .ok()
            .and_then(|t| t.as_string())
            .unwrap_or_default();
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(row))
                if answer.is_object() && !answer.is_instance_of::<js_sys::Promise>() =>
            {
                Ok(row)
            }
            _ => Err(format!(
                "the conflict function of \"{model}\" must return a row object (synchronously)"
            )),
        }
    }

    async fn pull(
        &self,
        model: &str,
        query: Option<&Value>,
    ) -> std::result::Result<Pulled, String> {
        #[derive(serde::Deserialize)]
        struct Checked {
            rows: Vec<Value>,
            #[serde(default)]
            issues: Vec<Issue>,
        }
        let empty = Value::Object(Default::default());
        let arg = to_js(query.unwrap_or(&empty))?;
        let sync = self.sync_of(model);
        let rows = hooks::call(&sync, "query", model, &arg, Self::timeout_of(&sync))
            .await
            .map_err(|e| message_of(&e))?;
        if !js_sys::Array::is_array(&rows) {
            return Err(format!(
                "sync.query of \"{model}\" must resolve to an array of rows"
            ));
        }
        let text = self
            .check_pulled
            .call1(&JsValue::NULL, &rows)
            .map_err(|e| message_of(&e))?
            .as_string()
            .ok_or("the rows could not be checked")?;
        let checked: Checked = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        Ok(Pulled {
            rows: checked.rows,
            issues: checked.issues,
        })
    }
}

/// Whether `syncs[model]` has a function named `hook`.
pub fn has_hook(syncs: &JsValue, model: &str, hook: &str) -> bool {
    Reflect::get(syncs, &JsValue::from_str(model))
        .and_then(|s| Reflect::get(&s, &JsValue::from_str(hook)))
        .is_ok_and(|f| f.is_function())
}
