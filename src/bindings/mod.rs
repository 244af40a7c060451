//! The `#[wasm_bindgen]` surface. Every method parses its JS input, calls the core, and converts
//! the result; conversion lives in [`convert`]. Rows cross the boundary as JSON text: one
//! `JSON.parse` on the JS side is much cheaper than a reflection call per field.
//!
//! Calls that change data take their place in the write queue during the JS call itself, so the
//! order of the calls is the order of their effects even when nobody awaits them.
//!
//! The npm wrapper (`pkg-template/index.js`) is the public API; this class is internal to it.

mod convert;
mod storage;

use crate::browser::fatal;
use crate::browser::network::Network;
use crate::browser::remote::{has_hook, JsRemote};
use crate::browser::Runtime;
use crate::core::db::{Db, Env, Pause};
use crate::core::schema::{ModelDef, RelationDef};
use crate::core::vec_map::VecMap;
use convert::{from_json, opt_json, to_js_error, to_json, JsValidator};
use js_sys::Promise;
use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;
use storage::AnyStorage;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::future_to_promise;

/// An engine error as the JS `Error` the wrapper names (for the browser layer's callbacks).
pub(crate) fn js_error(e: crate::Error) -> JsValue {
    to_js_error(e)
}

/// The database as the browser runs it.
pub(crate) type CoreDb = Db<AnyStorage, JsValidator, JsRemote>;

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

/// Calls `listener(online)` on the window's `online`/`offline` events until the returned
/// subscription is freed (`createNetworkDetector().subscribe`).
#[wasm_bindgen(js_name = watchNetwork)]
pub fn watch_network(listener: js_sys::Function) -> NetworkWatch {
    let changed = std::rc::Rc::new(move |online: bool| {
        let _ = listener.call1(&JsValue::NULL, &JsValue::from_bool(online));
    });
    NetworkWatch {
        _network: Network::listen(&JsValue::UNDEFINED, changed).ok(),
    }
}

/// A [`watch_network`] subscription; `free()` removes its listeners.
#[wasm_bindgen]
pub struct NetworkWatch {
    _network: Option<Network>,
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

/// Random bytes are fetched this many at a time: one call into JS per id costs more than the id.
const RANDOM_POOL: usize = 512;

thread_local! {
    /// Random bytes not handed out yet (taken from the end).
    static POOL: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `crypto.getRandomValues`, or `Math.random` where it is missing or throws: never fails.
fn fill_random(buf: &mut [u8]) {
    if crypto_random(buf).is_err() {
        for b in buf.iter_mut() {
            *b = (js_sys::Math::random() * 256.0) as u8;
        }
    }
}

/// Random bytes from the pool, refilled by [`fill_random`] when it runs short.
fn random_bytes(buf: &mut [u8]) {
    if buf.len() > RANDOM_POOL {
        return fill_random(buf);
    }
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < buf.len() {
            pool.resize(RANDOM_POOL, 0);
            fill_random(&mut pool);
        }
        let rest = pool.len() - buf.len();
        buf.copy_from_slice(&pool[rest..]);
        pool.truncate(rest);
    });
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

/// One database: the core [`Db`] and its sync [`Runtime`]. Internal to the npm wrapper.
#[wasm_bindgen]
pub struct Database {
    id: u32,
    db: Rc<CoreDb>,
    rt: Rc<Runtime>,
}

/// The wrapper's callbacks: `validate(model, rowsJson, each)` (the schema), `checkPulled(rows)`
/// (the JSON contract for pulled rows) and `syncs` (`{ [model]: model.sync }`).
struct Hooks {
    validate: js_sys::Function,
    check_pulled: js_sys::Function,
    syncs: JsValue,
}

impl Hooks {
    fn from_js(hooks: &JsValue) -> Result<Hooks, JsValue> {
        let get = |name: &str| js_sys::Reflect::get(hooks, &JsValue::from_str(name));
        let function = |name: &str| -> Result<js_sys::Function, JsValue> {
            get(name)?.dyn_into().map_err(|_| {
                JsValue::from(js_sys::Error::new(&format!(
                    "database hook {name} must be a function"
                )))
            })
        };
        Ok(Hooks {
            validate: function("validate")?,
            check_pulled: function("checkPulled")?,
            syncs: get("syncs")?,
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

#[wasm_bindgen]
impl Database {
    /// A database over memory storage. `models_json` is the wrapper's model description list;
    /// `hooks` is described on [`Hooks`]; `interval_ms` starts the loop once open (the `engine`
    /// option); `detector` is the app's network detector (`undefined`: the window's events).
    #[wasm_bindgen(js_name = withMemory)]
    pub fn with_memory(
        models_json: &str,
        store: &MemoryStore,
        hooks: JsValue,
        interval_ms: Option<u32>,
        detector: JsValue,
    ) -> Result<Database, JsValue> {
        let storage = AnyStorage::Memory(store.inner.clone());
        Self::create(models_json, storage, None, &hooks, interval_ms, detector)
    }

    #[wasm_bindgen(js_name = withIndexedDb)]
    pub fn with_indexed_db(
        models_json: &str,
        name: &str,
        hooks: JsValue,
        interval_ms: Option<u32>,
        detector: JsValue,
    ) -> Result<Database, JsValue> {
        let migrator = js_sys::Reflect::get(&hooks, &JsValue::from_str("migrate"))
            .ok()
            .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
            .map(crate::storage::indexeddb::Migrator);
        let storage =
            AnyStorage::IndexedDb(crate::storage::indexeddb::IdbStorage::new(name, migrator));
        Self::create(
            models_json,
            storage,
            Some(name.to_string()),
            &hooks,
            interval_ms,
            detector,
        )
    }

    fn create(
        models_json: &str,
        storage: AnyStorage,
        shared_name: Option<String>,
        hooks: &JsValue,
        interval_ms: Option<u32>,
        detector: JsValue,
    ) -> Result<Database, JsValue> {
        let models: Vec<ModelDef> = from_json(models_json).map_err(to_js_error)?;
        let hooks = Hooks::from_js(hooks)?;
        let validator = JsValidator::new(hooks.validate);
        let pushing = models
            .iter()
            .filter(|m| {
                has_hook(&hooks.syncs, &m.name, "mutation")
                    || has_hook(&hooks.syncs, &m.name, "mutations")
            })
            .map(|m| m.name.clone())
            .collect();
        let remote = JsRemote::new(hooks.syncs, pushing, hooks.check_pulled);
        let db = Rc::new(Db::new(storage, validator, remote, models, env()).map_err(to_js_error)?);
        let id = NEXT_ID.with(|n| n.replace(n.get() + 1));
        let rt = Runtime::new(id, db.clone(), shared_name, detector, interval_ms);
        Ok(Database { id, db, rt })
    }

    /// This database's id, as fatal reports name it.
    #[wasm_bindgen(getter)]
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Opens (and if needed upgrades) the storage, then starts listening to connectivity and
    /// other tabs. Calls made before it resolves wait for it.
    pub fn open(&self) -> Promise {
        let (db, rt) = (self.db.clone(), self.rt.clone());
        let turn = db.turn();
        run(self.id, async move {
            db.connect_in(turn).await?;
            rt.opened().map_err(crate::Error::query)?;
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

    /// A write of rows to `model`; once committed, its push is requested.
    /// Resolves to the JSON text `{ rows, mutationIds }` of a write.
    fn write_rows<F, Fut>(&self, model: String, f: F) -> Promise
    where
        F: FnOnce(Rc<CoreDb>, crate::core::queue::Turn, String) -> Fut + 'static,
        Fut: Future<Output = crate::Result<crate::core::db::Written>> + 'static,
    {
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Answer<'a> {
            rows: &'a [crate::core::db::Out],
            mutation_ids: &'a [String],
        }
        let rt = self.rt.clone();
        self.write(move |db, turn| async move {
            let w = f(db, turn, model.clone()).await?;
            if !w.rows.is_empty() || !w.mutation_ids.is_empty() {
                rt.wrote(&model);
            }
            to_json(&Answer {
                rows: &w.rows,
                mutation_ids: &w.mutation_ids,
            })
        })
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
        self.write_rows(model, move |db, turn, model| async move {
            let (v, r) = (from_json(&values)?, opt_json(&returning)?);
            db.insert_in(turn, &model, v, r.as_ref()).await
        })
    }

    pub fn update(
        &self,
        model: String,
        where_: String,
        values: String,
        returning: String,
    ) -> Promise {
        self.write_rows(model, move |db, turn, model| async move {
            let (w, v, r) = (
                opt_json(&where_)?,
                from_json(&values)?,
                opt_json(&returning)?,
            );
            db.update_in(turn, &model, w.as_ref(), &v, r.as_ref()).await
        })
    }

    pub fn delete(&self, model: String, where_: String, returning: String) -> Promise {
        self.write_rows(model, move |db, turn, model| async move {
            let (w, r) = (opt_json(&where_)?, opt_json(&returning)?);
            db.delete_in(turn, &model, w.as_ref(), r.as_ref()).await
        })
    }

    /// Replaces a model's relations (they may be assigned after `defineModel`).
    #[wasm_bindgen(js_name = setRelations)]
    pub fn set_relations(&self, model: &str, relations_json: &str) -> Result<(), JsValue> {
        fatal::as_engine(self.id, || {
            let rels: VecMap<String, RelationDef> = from_json(relations_json)?;
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

    /// The sync status snapshot of one model: a frozen object, the same one while unchanged.
    pub fn status(&self, model: &str) -> Result<JsValue, JsValue> {
        fatal::as_engine(self.id, || self.rt.status(model)).map_err(to_js_error)
    }

    /// Calls `listener(snapshot)` when `model`'s status changes; returns the id to unsubscribe.
    pub fn subscribe(&self, model: &str, listener: js_sys::Function) -> Result<u32, JsValue> {
        fatal::as_engine(self.id, || self.rt.subscribe(model, listener)).map_err(to_js_error)
    }

    /// Calls `listener(modelName)` after a model's rows changed (writes, pulls, rollbacks, other
    /// tabs); returns the id to unsubscribe.
    #[wasm_bindgen(js_name = onChange)]
    pub fn on_change(&self, listener: js_sys::Function) -> u32 {
        self.rt.on_change(listener)
    }

    /// Opens a live query: `onRows(json)` is called with the JSON text of its first answer and of
    /// every answer that differs from the last, `onError(error)` when it cannot be answered.
    /// Returns the id to close it with `unsubscribe`.
    pub fn live(
        &self,
        model: &str,
        query: &str,
        on_rows: js_sys::Function,
        on_error: js_sys::Function,
    ) -> u32 {
        fatal::as_engine(self.id, || {
            self.rt.live(model, opt_json(query), on_rows, on_error)
        })
    }

    pub fn unsubscribe(&self, id: u32) {
        self.rt.unsubscribe(id);
    }

    /// Stored records that could not be decoded, as JSON text: `[{ store, key, message }]`.
    pub fn unreadable(&self) -> String {
        serde_json::to_string(&self.db.unreadable()).unwrap_or_else(|_| "[]".into())
    }

    /// Starts the background loop (with a new interval and network detector, if given).
    #[wasm_bindgen(js_name = startEngine)]
    pub fn start_engine(&self, interval_ms: Option<u32>, detector: JsValue) -> Result<(), JsValue> {
        let detector = (!detector.is_undefined()).then_some(detector);
        fatal::as_engine(self.id, || self.rt.start(interval_ms, detector))
            .map_err(|e| to_js_error(crate::Error::query(e)))
    }

    /// Pushes paused because the backend asked for credentials go on.
    #[wasm_bindgen(js_name = resumeSync)]
    pub fn resume_sync(&self) {
        self.rt.resume();
    }

    #[wasm_bindgen(js_name = stopEngine)]
    pub fn stop_engine(&self) {
        fatal::as_engine(self.id, || self.rt.stop());
    }

    #[wasm_bindgen(getter, js_name = engineRunning)]
    pub fn engine_running(&self) -> bool {
        self.rt.running()
    }

    /// Pushes every pending write now, ignoring backoff; resolves when each has been tried.
    #[wasm_bindgen(js_name = retryPendingSync)]
    pub fn retry_pending_sync(&self) -> Promise {
        fatal::as_engine(self.id, || self.rt.retry_all())
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

    /// Resolves when the writes `ids_json` (a JSON array, or `null` for every pending one) are
    /// acknowledged by the backend; rejects with a `RejectedWriteError` when one was rejected.
    #[wasm_bindgen(js_name = whenSynced)]
    pub fn when_synced(&self, ids_json: String) -> Promise {
        let ids: crate::Result<Option<Vec<String>>> = from_json(&ids_json);
        match ids {
            Ok(ids) => fatal::as_engine(self.id, || self.rt.when_synced(ids)),
            Err(e) => rejected(e),
        }
    }

    /// Rejected writes not acknowledged yet, oldest first, as JSON text.
    pub fn rejected(&self) -> Result<String, JsValue> {
        fatal::as_engine(self.id, || {
            serde_json::to_string(&self.db.rejected()?)
                .map_err(|e| crate::Error::storage(e.to_string()))
        })
        .map_err(to_js_error)
    }

    /// Forgets a rejected write; resolves with whether there was one.
    #[wasm_bindgen(js_name = acknowledgeRejected)]
    pub fn acknowledge_rejected(&self, mutation_id: String) -> Promise {
        self.write(move |db, turn| async move {
            let found = db.acknowledge_rejected_in(turn, &mutation_id).await?;
            Ok(JsValue::from_bool(found))
        })
    }

    /// Clears a pending write's backoff, then asks for a drain.
    #[wasm_bindgen(js_name = retryPending)]
    pub fn retry_pending(&self, mutation_id: String) -> Promise {
        let rt = self.rt.clone();
        self.write(move |db, turn| async move {
            let model: String = db.retry_pending_in(turn, &mutation_id).await?;
            rt.wrote(&model);
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Closes the database at once for callers; resolves when the calls made before have run,
    /// storage is released and the outbox lock let go.
    pub fn close(&self) -> Promise {
        let (db, rt) = (self.db.clone(), self.rt.clone());
        let turn = db.turn();
        let first = db.begin_close();
        if first {
            rt.closing();
        }
        run(self.id, async move {
            if first {
                db.finish_close(turn).await;
                rt.closed();
            }
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Gives up on this database after a trap: refuses every call from now on, drops its
    /// listeners, timers and lock, and releases storage. (The wrapper also resets the storage's
    /// write queue, which the interrupted work may hold forever.)
    pub fn abandon(&self) {
        self.rt.end();
        self.db.abandon();
    }
}
