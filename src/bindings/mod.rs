//! The `#[wasm_bindgen]` surface. Every method parses its JS input, calls the core, and converts
//! the result; conversion lives in [`convert`]. Rows cross the boundary as JSON text: one
//! `JSON.parse` on the JS side is much cheaper than a reflection call per field.
//!
//! The npm wrapper (`pkg-template/index.js`) is the public API; this class is internal to it.

mod convert;
mod storage;

use crate::core::db::{Db, Env};
use crate::core::schema::{ModelDef, RelationDef};
use convert::{from_json, opt_json, to_js_error, to_json, JsRemote, JsValidator};
use js_sys::Promise;
use std::collections::BTreeMap;
use std::rc::Rc;
use storage::AnyStorage;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::future_to_promise;

type CoreDb = Db<AnyStorage, JsValidator, JsRemote>;

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

/// After a read that storage answered without loading the model (a filter naming keys or indexed
/// values, on a model not yet in memory), loads the model in the background so the next reads run
/// from memory. A failure here is not the read's: the next read that needs the model reports it.
fn load_later(db: &Rc<CoreDb>, model: String) {
    if !db.is_loaded(&model) {
        let db = db.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let _ = db.load(&model).await;
        });
    }
}

/// What another tab announced (see [`Engine::reload`]).
#[derive(serde::Deserialize)]
struct Changes {
    models: Vec<String>,
    keys: Option<std::collections::HashMap<String, Vec<serde_json::Value>>>,
}

#[wasm_bindgen(js_name = Engine)]
pub struct Engine {
    storage: AnyStorage,
    models: Vec<ModelDef>,
    hooks: Hooks,
    db: Rc<std::cell::RefCell<Option<Rc<CoreDb>>>>,
}

/// The wrapper's JS callbacks: `validate(model, rowsJson)`, `push(model, entryJson)`,
/// `pull(model, queryJson)` and `changed()` (status or data changed).
#[derive(Clone)]
struct Hooks {
    validate: js_sys::Function,
    push: js_sys::Function,
    pull: js_sys::Function,
    changed: js_sys::Function,
}

impl Hooks {
    fn from_js(hooks: &JsValue) -> Result<Hooks, JsValue> {
        let get = |name: &str| -> Result<js_sys::Function, JsValue> {
            js_sys::Reflect::get(hooks, &JsValue::from_str(name))?
                .dyn_into()
                .map_err(|_| {
                    JsValue::from(js_sys::Error::new(&format!(
                        "engine hook {name} must be a function"
                    )))
                })
        };
        Ok(Hooks {
            validate: get("validate")?,
            push: get("push")?,
            pull: get("pull")?,
            changed: get("changed")?,
        })
    }
}

/// One non-generic path to a JS promise: boxing keeps a single `future_to_promise` instance in
/// the .wasm instead of one per exported method.
fn run(fut: impl std::future::Future<Output = crate::Result<JsValue>> + 'static) -> Promise {
    let boxed: std::pin::Pin<Box<dyn std::future::Future<Output = crate::Result<JsValue>>>> =
        Box::pin(fut);
    future_to_promise(async move { boxed.await.map_err(to_js_error) })
}

#[wasm_bindgen(js_class = Engine)]
impl Engine {
    /// An engine over memory storage. `models_json` is the wrapper's model description list;
    /// `hooks` holds the wrapper callbacks described on [`Hooks`].
    #[wasm_bindgen(js_name = withMemory)]
    pub fn with_memory(
        models_json: &str,
        store: &MemoryStore,
        hooks: JsValue,
    ) -> Result<Engine, JsValue> {
        Self::create(models_json, AnyStorage::Memory(store.inner.clone()), &hooks)
    }

    #[wasm_bindgen(js_name = withIndexedDb)]
    pub fn with_indexed_db(
        models_json: &str,
        name: &str,
        hooks: JsValue,
    ) -> Result<Engine, JsValue> {
        Self::create(
            models_json,
            AnyStorage::IndexedDb(crate::storage::indexeddb::IdbStorage::new(name)),
            &hooks,
        )
    }

    fn create(models_json: &str, storage: AnyStorage, hooks: &JsValue) -> Result<Engine, JsValue> {
        let models: Vec<ModelDef> = from_json(models_json).map_err(to_js_error)?;
        Ok(Engine {
            storage,
            models,
            hooks: Hooks::from_js(hooks)?,
            db: Rc::default(),
        })
    }

    /// Opens (and if needed upgrades) the storage. Must resolve before any other call.
    pub fn open(&self) -> Promise {
        let (storage, models, slot, hooks) = (
            self.storage.clone(),
            self.models.clone(),
            self.db.clone(),
            self.hooks.clone(),
        );
        let validator = JsValidator::new(hooks.validate.clone());
        let pushing = models
            .iter()
            .filter(|m| m.has_mutation)
            .map(|m| m.name.clone())
            .collect();
        let remote = JsRemote::new(hooks.push.clone(), hooks.pull.clone(), pushing);
        run(async move {
            let env = Env {
                now: js_sys::Date::now,
                random: js_sys::Math::random,
            };
            let db = Db::open(storage, validator, remote, models, env).await?;
            let changed = hooks.changed.clone();
            // Never throw into Rust from the listener: the wrapper's callback catches its own errors.
            db.set_listener(Some(Box::new(move || {
                let _ = changed.call0(&JsValue::NULL);
            })));
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
            let rows = db.select(&model, q.as_ref()).await?;
            load_later(&db, model);
            to_json(&rows)
        })
    }

    pub fn count(&self, model: String, where_: String) -> Promise {
        self.with_db(move |db| async move {
            let w = opt_json(&where_)?;
            let n = db.count(&model, w.as_ref()).await?;
            load_later(&db, model);
            Ok(JsValue::from_f64(n as f64))
        })
    }

    pub fn get(&self, model: String, key: String) -> Promise {
        self.with_db(move |db| async move {
            let k = from_json(&key)?;
            let row = db.get(&model, &k).await?;
            load_later(&db, model);
            to_json(&row)
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
    pub fn pending(&self) -> Result<String, JsValue> {
        let run = || -> crate::Result<String> {
            serde_json::to_string(&self.db()?.pending()?)
                .map_err(|e| crate::Error::storage(e.to_string()))
        };
        run().map_err(to_js_error)
    }

    /// The sync status snapshot of one model, as JSON text.
    pub fn status(&self, model: &str) -> Result<String, JsValue> {
        let run = || -> crate::Result<String> {
            serde_json::to_string(&self.db()?.status(model)?)
                .map_err(|e| crate::Error::storage(e.to_string()))
        };
        run().map_err(to_js_error)
    }

    /// Records whether the background loop runs (the loop itself lives in the wrapper).
    #[wasm_bindgen(js_name = setRunning)]
    pub fn set_running(&self, running: bool) -> Result<(), JsValue> {
        let db = self.db().map_err(to_js_error)?;
        if running { db.start() } else { db.stop() }.map_err(to_js_error)
    }

    #[wasm_bindgen(js_name = setOnline)]
    pub fn set_online(&self, online: bool) -> Result<(), JsValue> {
        self.db().map_err(to_js_error)?.set_online(online);
        Ok(())
    }

    /// Pushes due entries; resolves with a JSON report, or `null` if a drain is already running.
    pub fn drain(&self, force: bool) -> Promise {
        self.with_db(move |db| async move {
            match db.drain(force).await? {
                Some(report) => to_json(&report),
                None => Ok(JsValue::NULL),
            }
        })
    }

    /// Pulls from the backend and merges; resolves with the JSON rows for the query.
    pub fn pull(&self, model: String, query: String) -> Promise {
        self.with_db(move |db| async move {
            let q = opt_json(&query)?;
            to_json(&db.pull(&model, q.as_ref()).await?)
        })
    }

    #[wasm_bindgen(js_name = discardPending)]
    pub fn discard_pending(&self, mutation_id: String) -> Promise {
        self.with_db(move |db| async move {
            db.discard_pending(&mutation_id).await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    #[wasm_bindgen(js_name = retryPending)]
    pub fn retry_pending(&self, mutation_id: String) -> Promise {
        self.with_db(move |db| async move {
            db.retry_pending(&mutation_id).await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Another tab changed rows or the outbox. `changes_json` is the tab's announcement:
    /// `{ models: [name], keys?: { [name]: [primary key] } }`; a model with keys has just those
    /// rows read again, any other listed model is read again whole when next needed.
    pub fn reload(&self, changes_json: String) -> Promise {
        self.with_db(move |db| async move {
            let changes: Changes = from_json(&changes_json)?;
            let mut keys = changes.keys.unwrap_or_default();
            let (mut unload, mut refresh) = (Vec::new(), Vec::new());
            for m in changes.models {
                match keys.remove(&m) {
                    Some(k) => refresh.push((m, k)),
                    None => unload.push(m),
                }
            }
            db.reload(&unload, &refresh).await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Commits acknowledged pushes that still wait for the next write; resolves with whether
    /// there were any.
    pub fn flush(&self) -> Promise {
        self.with_db(|db| async move { Ok(JsValue::from_bool(db.flush().await?)) })
    }

    /// Closes the database at once for callers; resolves when storage is released.
    pub fn close(&self) -> Promise {
        let db = self.db.borrow_mut().take();
        run(async move {
            if let Some(db) = db {
                db.close().await;
            }
            Ok(JsValue::UNDEFINED)
        })
    }
}
