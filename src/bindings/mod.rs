//! The `#[wasm_bindgen]` surface. Every method parses its JS input, calls the core, and converts
//! the result; conversion lives in [`convert`]. Rows cross the boundary as JSON text: one
//! `JSON.parse` on the JS side is much cheaper than a reflection call per field.
//!
//! Calls that change data take their place in the write queue during the JS call itself, so the
//! order of the calls is the order of their effects even when nobody awaits them.
//!
//! The npm wrapper (`pkg-template/index.js`) is the public API; this class is internal to it.

mod convert;
mod fatal;
mod storage;

use crate::core::db::{Db, Env, Pause};
use crate::core::schema::{ModelDef, RelationDef};
use convert::{from_json, opt_json, to_js_error, to_json, JsRemote, JsValidator};
use js_sys::Promise;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::future::Future;
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

    /// Engines created on this store from now on get a new write queue (after one that held the
    /// old queue trapped).
    #[wasm_bindgen(js_name = resetQueue)]
    pub fn reset_queue(&self) {
        self.inner.reset_queue();
    }
}

/// Engines opened on IndexedDB database `name` from now on get a new write queue (after one that
/// held the old queue trapped).
#[wasm_bindgen(js_name = resetIndexedDbQueue)]
pub fn reset_indexed_db_queue(name: &str) {
    crate::storage::indexeddb::reset_queue(name);
}

/// Installs the wrapper's `handler(message, engineId)`, called just before the module traps
/// (see [`fatal`]).
#[wasm_bindgen(js_name = setFatalHandler)]
pub fn set_fatal_handler(handler: js_sys::Function) {
    fatal::set_handler(handler);
}

/// Runs the futures that were queued when a trap interrupted the executor.
#[wasm_bindgen]
pub fn kick() {
    wasm_bindgen_futures::spawn_local(async {});
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(catch, js_namespace = crypto, js_name = getRandomValues)]
    fn crypto_random(buf: &mut [u8]) -> Result<JsValue, JsValue>;
}

/// `crypto.getRandomValues`, or `Math.random` where it is missing or throws: never fails.
fn random_bytes(buf: &mut [u8]) {
    if crypto_random(buf).is_err() {
        for b in buf.iter_mut() {
            *b = (js_sys::Math::random() * 256.0) as u8;
        }
    }
}

fn pause() -> Pause {
    Box::pin(gloo_timers::future::TimeoutFuture::new(0))
}

fn env() -> Env {
    Env {
        now: js_sys::Date::now,
        random: js_sys::Math::random,
        random_bytes,
        pause,
    }
}

thread_local! {
    static NEXT_ID: Cell<u32> = const { Cell::new(1) };
}

#[wasm_bindgen(js_name = Engine)]
pub struct Engine {
    id: u32,
    db: Rc<CoreDb>,
}

/// The wrapper's JS callbacks: `validate(model, rowsJson, each)`, `push(model, entryJson)`,
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
/// the .wasm instead of one per exported method. Polls run as engine `id`'s code.
fn run(id: u32, fut: impl Future<Output = crate::Result<JsValue>> + 'static) -> Promise {
    let tagged = fatal::Tagged {
        id,
        fut: Box::pin(fut) as std::pin::Pin<Box<dyn Future<Output = crate::Result<JsValue>>>>,
    };
    future_to_promise(async move { tagged.await.map_err(to_js_error) })
}

fn rejected(e: crate::Error) -> Promise {
    Promise::reject(&to_js_error(e))
}

/// After a read that storage answered without loading the model (a filter naming keys or indexed
/// values, on a model not yet in memory), loads the model in the background so the next reads run
/// from memory. A failure here is not the read's: the next read that needs the model reports it.
fn load_later(id: u32, db: &Rc<CoreDb>, model: String) {
    if !db.is_loaded(&model) {
        let db = db.clone();
        wasm_bindgen_futures::spawn_local(fatal::Tagged {
            id,
            fut: Box::pin(async move {
                let _ = db.load(&model).await;
            }),
        });
    }
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
        let hooks = Hooks::from_js(hooks)?;
        let validator = JsValidator::new(hooks.validate.clone());
        let pushing = models
            .iter()
            .filter(|m| m.has_mutation)
            .map(|m| m.name.clone())
            .collect();
        let remote = JsRemote::new(hooks.push.clone(), hooks.pull.clone(), pushing);
        let db = Db::new(storage, validator, remote, models, env()).map_err(to_js_error)?;
        let changed = hooks.changed.clone();
        // Never throw into Rust from the listener: the wrapper's callback catches its own errors.
        db.set_listener(Some(Box::new(move || {
            let _ = changed.call0(&JsValue::NULL);
        })));
        let id = NEXT_ID.with(|n| n.replace(n.get() + 1));
        Ok(Engine {
            id,
            db: Rc::new(db),
        })
    }

    /// This engine's id, as fatal reports name it.
    #[wasm_bindgen(getter)]
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Opens (and if needed upgrades) the storage. Calls made before it resolves wait for it.
    pub fn open(&self) -> Promise {
        let db = self.db.clone();
        let turn = db.turn();
        run(self.id, async move {
            db.connect_in(turn).await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// A read: refused at once after `close()`, otherwise run from the next microtask.
    fn read<F, Fut>(&self, f: F) -> Promise
    where
        F: FnOnce(Rc<CoreDb>) -> Fut + 'static,
        Fut: Future<Output = crate::Result<JsValue>> + 'static,
    {
        if self.db.is_closing() {
            return rejected(crate::Error::Closed);
        }
        run(self.id, f(self.db.clone()))
    }

    /// A change: refused at once after `close()`, otherwise its turn is taken now.
    fn write<F, Fut>(&self, f: F) -> Promise
    where
        F: FnOnce(Rc<CoreDb>, crate::core::queue::Turn) -> Fut + 'static,
        Fut: Future<Output = crate::Result<JsValue>> + 'static,
    {
        if self.db.is_closing() {
            return rejected(crate::Error::Closed);
        }
        let turn = self.db.turn();
        run(self.id, f(self.db.clone(), turn))
    }

    /// Resolves to the JSON text of the selected rows.
    pub fn select(&self, model: String, query: String) -> Promise {
        let id = self.id;
        self.read(move |db| async move {
            let q = opt_json(&query)?;
            let rows = db.select(&model, q.as_ref()).await?;
            load_later(id, &db, model);
            to_json(&rows)
        })
    }

    pub fn count(&self, model: String, where_: String) -> Promise {
        let id = self.id;
        self.read(move |db| async move {
            let w = opt_json(&where_)?;
            let n = db.count(&model, w.as_ref()).await?;
            load_later(id, &db, model);
            Ok(JsValue::from_f64(n as f64))
        })
    }

    pub fn get(&self, model: String, key: String) -> Promise {
        let id = self.id;
        self.read(move |db| async move {
            let k = from_json(&key)?;
            let row = db.get(&model, &k).await?;
            load_later(id, &db, model);
            to_json(&row)
        })
    }

    pub fn insert(&self, model: String, values: String, returning: String) -> Promise {
        self.write(move |db, turn| async move {
            let (v, r) = (from_json(&values)?, opt_json(&returning)?);
            to_json(&db.insert_in(turn, &model, &v, r.as_ref()).await?)
        })
    }

    pub fn update(
        &self,
        model: String,
        where_: String,
        values: String,
        returning: String,
    ) -> Promise {
        self.write(move |db, turn| async move {
            let (w, v, r) = (
                opt_json(&where_)?,
                from_json(&values)?,
                opt_json(&returning)?,
            );
            to_json(
                &db.update_in(turn, &model, w.as_ref(), &v, r.as_ref())
                    .await?,
            )
        })
    }

    pub fn delete(&self, model: String, where_: String, returning: String) -> Promise {
        self.write(move |db, turn| async move {
            let (w, r) = (opt_json(&where_)?, opt_json(&returning)?);
            to_json(&db.delete_in(turn, &model, w.as_ref(), r.as_ref()).await?)
        })
    }

    /// Replaces a model's relations (they may be assigned after `defineModel`).
    #[wasm_bindgen(js_name = setRelations)]
    pub fn set_relations(&self, model: &str, relations_json: &str) -> Result<(), JsValue> {
        fatal::as_engine(self.id, || {
            let rels: BTreeMap<String, RelationDef> = from_json(relations_json)?;
            self.db.set_relations(model, rels)
        })
        .map_err(to_js_error)
    }

    /// Outbox entries, oldest first, as JSON text.
    pub fn pending(&self) -> Result<String, JsValue> {
        fatal::as_engine(self.id, || {
            serde_json::to_string(&self.db.pending()?)
                .map_err(|e| crate::Error::storage(e.to_string()))
        })
        .map_err(to_js_error)
    }

    /// The sync status snapshot of one model, as JSON text.
    pub fn status(&self, model: &str) -> Result<String, JsValue> {
        fatal::as_engine(self.id, || {
            serde_json::to_string(&self.db.status(model)?)
                .map_err(|e| crate::Error::storage(e.to_string()))
        })
        .map_err(to_js_error)
    }

    /// The storage commit number this engine's memory reflects (other tabs announce theirs).
    pub fn seq(&self) -> f64 {
        self.db.seq() as f64
    }

    /// Stored records that could not be decoded, as JSON text: `[{ store, key, message }]`.
    pub fn unreadable(&self) -> String {
        serde_json::to_string(&self.db.unreadable()).unwrap_or_else(|_| "[]".into())
    }

    /// Records whether the background loop runs (the loop itself lives in the wrapper).
    #[wasm_bindgen(js_name = setRunning)]
    pub fn set_running(&self, running: bool) -> Result<(), JsValue> {
        fatal::as_engine(self.id, || {
            if running {
                self.db.start()
            } else {
                self.db.stop()
            }
        })
        .map_err(to_js_error)
    }

    #[wasm_bindgen(js_name = setOnline)]
    pub fn set_online(&self, online: bool) {
        fatal::as_engine(self.id, || self.db.set_online(online));
    }

    /// Pushes due entries; resolves with a JSON report, or `null` if a drain is already running.
    pub fn drain(&self, force: bool) -> Promise {
        self.read(move |db| async move {
            match db.drain(force).await? {
                Some(report) => to_json(&report),
                None => Ok(JsValue::NULL),
            }
        })
    }

    /// Pulls from the backend and merges; resolves with the JSON rows for the query.
    pub fn pull(&self, model: String, query: String) -> Promise {
        self.read(move |db| async move {
            let q = opt_json(&query)?;
            to_json(&db.pull(&model, q.as_ref()).await?)
        })
    }

    #[wasm_bindgen(js_name = discardPending)]
    pub fn discard_pending(&self, mutation_id: String) -> Promise {
        self.write(move |db, turn| async move {
            db.discard_pending_in(turn, &mutation_id).await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    #[wasm_bindgen(js_name = retryPending)]
    pub fn retry_pending(&self, mutation_id: String) -> Promise {
        self.write(move |db, turn| async move {
            db.retry_pending_in(turn, &mutation_id).await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Reads what other tabs committed since this engine last looked; resolves with the JSON
    /// list of models whose rows changed.
    #[wasm_bindgen(js_name = catchUp)]
    pub fn catch_up(&self) -> Promise {
        self.write(move |db, turn| async move { to_json(&db.catch_up_in(turn).await?) })
    }

    /// Commits acknowledged pushes that still wait for the next write; resolves with whether
    /// there were any.
    pub fn flush(&self) -> Promise {
        self.write(|db, turn| async move { Ok(JsValue::from_bool(db.flush_in(turn).await?)) })
    }

    /// Closes the database at once for callers; resolves when the calls made before have run
    /// and storage is released.
    pub fn close(&self) -> Promise {
        let db = self.db.clone();
        let turn = db.turn();
        let first = db.begin_close();
        run(self.id, async move {
            if first {
                db.finish_close(turn).await;
            }
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Gives up on this engine after a trap: refuses every call from now on and releases
    /// storage. (The wrapper also resets the storage's write queue, which the interrupted work
    /// may hold forever.)
    pub fn abandon(&self) {
        self.db.abandon();
    }
}
