//! All conversion between JS and Rust values, and crate errors into JS `Error`s.

use crate::core::db::Validator;
use crate::error::{Error, Issue, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

pub fn from_json<T: DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::query(format!("invalid input: {e}")))
}

/// Empty text means "not given".
pub fn opt_json(text: &str) -> Result<Option<Value>> {
    if text.is_empty() {
        Ok(None)
    } else {
        from_json(text).map(Some)
    }
}

pub fn to_json<T: Serialize>(v: &T) -> Result<JsValue> {
    serde_json::to_string(v)
        .map(|s| JsValue::from_str(&s))
        .map_err(|e| Error::storage(e.to_string()))
}

/// A JS `Error` whose `name` is the crate error's stable name, with `issues` (validation) or
/// `domName` (storage) attached.
pub fn to_js_error(e: Error) -> JsValue {
    let err = js_sys::Error::new(&e.to_string());
    err.set_name(e.name());
    let set = |k: &str, v: &JsValue| {
        let _ = js_sys::Reflect::set(&err, &JsValue::from_str(k), v);
    };
    match &e {
        Error::Validation { issues, model } => {
            if let Ok(text) = serde_json::to_string(issues) {
                if let Ok(v) = js_sys::JSON::parse(&text) {
                    set("issues", &v);
                }
            }
            set("model", &JsValue::from_str(model));
        }
        Error::Storage {
            dom_name: Some(n), ..
        } => set("domName", &JsValue::from_str(n)),
        Error::Rejected { mutation_id, .. } => set("mutationId", &JsValue::from_str(mutation_id)),
        _ => {}
    }
    err.into()
}

fn message_of(v: &JsValue) -> String {
    v.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| v.as_string())
        .unwrap_or_else(|| format!("{v:?}"))
}

/// Calls the wrapper's `validate(model, rowsJson)`; it may return a promise.
pub struct JsValidator {
    f: js_sys::Function,
}

impl JsValidator {
    pub fn new(f: js_sys::Function) -> Self {
        JsValidator { f }
    }
}

/// One row's (or, for a whole write, all rows') validation outcome as the wrapper reports it.
#[derive(serde::Deserialize)]
struct Outcome {
    ok: Option<Value>,
    issues: Option<Vec<Issue>>,
}

impl Outcome {
    fn into_result(self, model: &str) -> Result<Value> {
        match (self.ok, self.issues) {
            (Some(v), _) => Ok(v),
            (None, Some(issues)) => Err(Error::Validation {
                model: model.to_string(),
                issues,
            }),
            (None, None) => Err(invalid(model, "validator returned neither rows nor issues")),
        }
    }
}

fn invalid(model: &str, message: &str) -> Error {
    Error::Validation {
        model: model.to_string(),
        issues: vec![Issue {
            path: vec![],
            message: message.to_string(),
        }],
    }
}

impl JsValidator {
    /// Calls `validate(model, rowsJson, each)` and reads its JSON answer.
    async fn call<T: DeserializeOwned>(
        &self,
        model: &str,
        rows: &[Value],
        each: bool,
    ) -> Result<T> {
        let text = serde_json::to_string(rows).map_err(|e| Error::storage(e.to_string()))?;
        let mut out = self
            .f
            .call3(
                &JsValue::NULL,
                &JsValue::from_str(model),
                &JsValue::from_str(&text),
                &JsValue::from_bool(each),
            )
            .map_err(|e| invalid(model, &message_of(&e)))?;
        if let Some(p) = out.dyn_ref::<js_sys::Promise>() {
            out = wasm_bindgen_futures::JsFuture::from(p.clone())
                .await
                .map_err(|e| invalid(model, &message_of(&e)))?;
        }
        let text = out
            .as_string()
            .ok_or_else(|| invalid(model, "validator returned no result"))?;
        from_json(&text)
    }
}

impl Validator for JsValidator {
    async fn validate(&self, model: &str, rows: Vec<Value>) -> Result<Vec<Value>> {
        let outcome: Outcome = self.call(model, &rows, false).await?;
        match outcome.into_result(model)? {
            Value::Array(rows) => Ok(rows),
            _ => Err(invalid(model, "validator returned no rows")),
        }
    }

    /// One call for the whole list, one outcome per row.
    async fn validate_each(&self, model: &str, rows: Vec<Value>) -> Vec<Result<Value>> {
        let n = rows.len();
        match self.call::<Vec<Outcome>>(model, &rows, true).await {
            Ok(outcomes) if outcomes.len() == n => {
                outcomes.into_iter().map(|o| o.into_result(model)).collect()
            }
            Ok(_) => (0..n)
                .map(|_| {
                    Err(invalid(
                        model,
                        "validator returned the wrong number of results",
                    ))
                })
                .collect(),
            Err(e) => (0..n).map(|_| Err(e.clone())).collect(),
        }
    }
}
