//! The app's listeners: status subscribers per model (`subscribeSyncStatus`) and change listeners
//! (`onChange`). Snapshots are built here, frozen, and kept while unchanged, so a framework can
//! compare them by reference. Listeners run on a microtask after the change that caused them, never
//! in the middle of one; one that throws is reported (`reportError`) and the others still run.

use super::remote::to_js;
use crate::core::status::SyncStatus;
use crate::core::vec_map::{VecMap, VecSet};
use js_sys::{Function, Reflect};
use std::cell::{Cell, RefCell};
use wasm_bindgen::{JsCast, JsValue};

#[derive(Default)]
pub struct Listeners {
    next_id: Cell<u32>,
    status: RefCell<Vec<(u32, String, Function)>>,
    change: RefCell<Vec<(u32, Function)>>,
    /// Live queries: `(id, onRows(json), onError(error))`.
    live: RefCell<Vec<(u32, Function, Function)>>,
    /// The last snapshot built per model, and the one last sent to its subscribers.
    built: RefCell<VecMap<String, (SyncStatus, JsValue)>>,
    sent: RefCell<VecMap<String, JsValue>>,
    /// Models whose rows changed since listeners last ran.
    changed: RefCell<VecSet<String>>,
}

impl Listeners {
    fn id(&self) -> u32 {
        let id = self.next_id.get() + 1;
        self.next_id.set(id);
        id
    }

    /// `current` is the snapshot the subscriber starts from: it is called when it changes.
    pub fn subscribe(&self, model: &str, f: Function, current: JsValue) -> u32 {
        let id = self.id();
        self.sent
            .borrow_mut()
            .get_or_insert_with(model.to_string(), || current);
        self.status.borrow_mut().push((id, model.to_string(), f));
        id
    }

    pub fn on_change(&self, f: Function) -> u32 {
        let id = self.id();
        self.change.borrow_mut().push((id, f));
        id
    }

    /// A live query's callbacks; the id is the live query's in the database too.
    pub fn on_live(&self, on_rows: Function, on_error: Function) -> u32 {
        let id = self.id();
        self.live.borrow_mut().push((id, on_rows, on_error));
        id
    }

    /// Delivers a live query's new answer (JSON text) or error, if it is still open.
    pub fn live_answer(&self, id: u32, answer: Result<String, JsValue>) {
        let found = self
            .live
            .borrow()
            .iter()
            .find(|(i, ..)| *i == id)
            .map(|(_, rows, error)| (rows.clone(), error.clone()));
        if let Some((rows, error)) = found {
            match answer {
                Ok(json) => call(&rows, &JsValue::from_str(&json)),
                Err(e) => call(&error, &e),
            }
        }
    }

    pub fn remove(&self, id: u32) {
        self.status.borrow_mut().retain(|(i, ..)| *i != id);
        self.change.borrow_mut().retain(|(i, _)| *i != id);
        self.live.borrow_mut().retain(|(i, ..)| *i != id);
    }

    pub fn clear(&self) {
        self.status.borrow_mut().clear();
        self.change.borrow_mut().clear();
        self.live.borrow_mut().clear();
        self.changed.borrow_mut().clear();
    }

    pub fn note_changed(&self, models: &[String]) {
        self.changed.borrow_mut().extend(models.iter().cloned());
    }

    /// The frozen snapshot object for `status`, the same object while it is unchanged.
    pub fn snapshot(&self, model: &str, status: SyncStatus) -> JsValue {
        if let Some((s, v)) = self.built.borrow().get(model) {
            if *s == status {
                return v.clone();
            }
        }
        let v = to_js(&status).unwrap_or(JsValue::NULL);
        if v.is_object() {
            js_sys::Object::freeze(v.unchecked_ref::<js_sys::Object>());
        }
        self.built
            .borrow_mut()
            .insert(model.to_string(), (status, v.clone()));
        v
    }

    /// Models someone subscribed to.
    pub fn subscribed(&self) -> VecSet<String> {
        self.status
            .borrow()
            .iter()
            .map(|(_, m, _)| m.clone())
            .collect()
    }

    /// Calls change listeners for the models that changed, then status subscribers whose model's
    /// snapshot is not the one they last got. `status(model)` builds the current snapshot.
    pub fn deliver(&self, status: impl Fn(&str) -> Option<JsValue>) {
        let changed = std::mem::take(&mut *self.changed.borrow_mut());
        if !changed.is_empty() {
            let fns: Vec<Function> = self
                .change
                .borrow()
                .iter()
                .map(|(_, f)| f.clone())
                .collect();
            for model in &changed {
                for f in &fns {
                    call(f, &JsValue::from_str(model));
                }
            }
        }
        for model in self.subscribed() {
            let Some(snapshot) = status(&model) else {
                continue;
            };
            let fresh = self.sent.borrow().get(&model) != Some(&snapshot);
            if !fresh {
                continue;
            }
            self.sent
                .borrow_mut()
                .insert(model.clone(), snapshot.clone());
            let fns: Vec<Function> = self
                .status
                .borrow()
                .iter()
                .filter(|(_, m, _)| *m == model)
                .map(|(.., f)| f.clone())
                .collect();
            for f in &fns {
                call(f, &snapshot);
            }
        }
    }
}

/// Calls an app listener; what it throws is reported as an uncaught error would be, without
/// stopping the other listeners or reaching the engine.
fn call(f: &Function, arg: &JsValue) {
    if let Err(e) = f.call1(&JsValue::NULL, arg) {
        report_error(&e);
    }
}

pub fn report_error(e: &JsValue) {
    let global = js_sys::global();
    if let Ok(report) = Reflect::get(&global, &JsValue::from_str("reportError")) {
        if let Some(f) = report.dyn_ref::<Function>() {
            let _ = f.call1(&JsValue::NULL, e);
        }
    }
}
