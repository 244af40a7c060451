//! The `#[wasm_bindgen]` surface. Every method parses its JS input, calls the core, and converts
//! the result; conversion lives in [`convert`]. Rows cross the boundary as JSON text: one
//! `JSON.parse` on the JS side is much cheaper than a reflection call per field.
//!
//! The npm wrapper (`pkg-template/index.js`) is the public API; this class is internal to it.

mod convert;
mod storage;

use crate::core::db::Db;
use crate::core::schema::{ModelDef, RelationDef};
use convert::{from_json, opt_json, to_js_error, to_json, JsValidator};
use js_sys::Promise;
use std::collections::BTreeMap;
use std::rc::Rc;
use storage::AnyStorage;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

type CoreDb = Db<AnyStorage, JsValidator>;

/// In-memory storage shared by every engine created on it.
#[wasm_bindgen(js_name = MemoryStore)]
#[derive(Default)]
pub struct MemoryStore {
    inner: crate::storage::MemoryStorage,
}

#[wasm_bindgen(js_class = MemoryStore)]
impl MemoryStore {
    #[wasm_bindgen(constructor)]
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }
}

#[wasm_bindgen(js_name = Engine)]
pub struct Engine {
    storage: AnyStorage,
    models: Vec<ModelDef>,
    validate: js_sys::Function,
    db: Rc<std::cell::RefCell<Option<Rc<CoreDb>>>>,
}

fn run<F>(fut: F) -> Promise
where
    F: std::future::Future<Output = crate::Result<JsValue>> + 'static,
{
    future_to_promise(async move { fut.await.map_err(to_js_error) })
}

#[wasm_bindgen(js_class = Engine)]
impl Engine {
    /// An engine over memory storage. `models_json` is the wrapper's model description list;
    /// `validate(model, rowsJson)` returns (a promise of) `{"ok": rows}` or `{"issues": [...]}` JSON.
    #[wasm_bindgen(js_name = withMemory)]
    pub fn with_memory(
        models_json: &str,
        store: &MemoryStore,
        validate: js_sys::Function,
    ) -> Result<Engine, JsValue> {
        Self::create(
            models_json,
            AnyStorage::Memory(store.inner.clone()),
            validate,
        )
    }

    #[wasm_bindgen(js_name = withIndexedDb)]
    pub fn with_indexed_db(
        models_json: &str,
        name: &str,
        validate: js_sys::Function,
    ) -> Result<Engine, JsValue> {
        Self::create(
            models_json,
            AnyStorage::IndexedDb(crate::storage::indexeddb::IdbStorage::new(name)),
            validate,
        )
    }

    fn create(
        models_json: &str,
        storage: AnyStorage,
        validate: js_sys::Function,
    ) -> Result<Engine, JsValue> {
        let models: Vec<ModelDef> = from_json(models_json).map_err(to_js_error)?;
        Ok(Engine {
            storage,
            models,
            validate,
            db: Rc::default(),
        })
    }

    /// Opens (and if needed upgrades) the storage. Must resolve before any other call.
    pub fn open(&self) -> Promise {
        let (storage, models, slot) = (self.storage.clone(), self.models.clone(), self.db.clone());
        let validator = JsValidator::new(self.validate.clone());
        run(async move {
            let db = Db::open(storage, validator, models, js_sys::Date::now).await?;
            *slot.borrow_mut() = Some(Rc::new(db));
            Ok(JsValue::UNDEFINED)
        })
    }

    fn db(&self) -> crate::Result<Rc<CoreDb>> {
        self.db.borrow().clone().ok_or(crate::Error::Closed)
    }

    fn with_db<F, Fut>(&self, f: F) -> Promise
    where
        F: FnOnce(Rc<CoreDb>) -> Fut + 'static,
        Fut: std::future::Future<Output = crate::Result<JsValue>> + 'static,
    {
        let db = self.db();
        run(async move { f(db?).await })
    }

    /// Resolves to the JSON text of the selected rows.
    pub fn select(&self, model: String, query: String) -> Promise {
        self.with_db(move |db| async move {
            let q = opt_json(&query)?;
            to_json(&db.select(&model, q.as_ref()).await?)
        })
    }

    pub fn count(&self, model: String, where_: String) -> Promise {
        self.with_db(move |db| async move {
            let w = opt_json(&where_)?;
            Ok(JsValue::from_f64(
                db.count(&model, w.as_ref()).await? as f64,
            ))
        })
    }

    pub fn get(&self, model: String, key: String) -> Promise {
        self.with_db(move |db| async move {
            let k = from_json(&key)?;
            to_json(&db.get(&model, &k).await?)
        })
    }

    pub fn insert(&self, model: String, values: String, returning: String) -> Promise {
        self.with_db(move |db| async move {
            let (v, r) = (from_json(&values)?, opt_json(&returning)?);
            to_json(&db.insert(&model, &v, r.as_ref()).await?)
        })
    }

    pub fn update(
        &self,
        model: String,
        where_: String,
        values: String,
        returning: String,
    ) -> Promise {
        self.with_db(move |db| async move {
            let (w, v, r) = (
                opt_json(&where_)?,
                from_json(&values)?,
                opt_json(&returning)?,
            );
            to_json(&db.update(&model, w.as_ref(), &v, r.as_ref()).await?)
        })
    }

    pub fn delete(&self, model: String, where_: String, returning: String) -> Promise {
        self.with_db(move |db| async move {
            let (w, r) = (opt_json(&where_)?, opt_json(&returning)?);
            to_json(&db.delete(&model, w.as_ref(), r.as_ref()).await?)
        })
    }

    /// Replaces a model's relations (they may be assigned after `defineModel`).
    #[wasm_bindgen(js_name = setRelations)]
    pub fn set_relations(&self, model: &str, relations_json: &str) -> Result<(), JsValue> {
        let run = || -> crate::Result<()> {
            let rels: BTreeMap<String, RelationDef> = from_json(relations_json)?;
            self.db()?.set_relations(model, rels)
        };
        run().map_err(to_js_error)
    }

    /// Outbox entries, oldest first, as JSON text.
    pub fn pending(&self) -> Promise {
        self.with_db(move |db| async move { to_json(&db.pending().await?) })
    }

    pub fn close(&self) {
        if let Some(db) = self.db.borrow_mut().take() {
            db.close();
        }
    }
}
