//! IndexedDB storage (wasm32 only), through `indexed_db_futures`.
//!
//! Layout: one object store per model (keyPath = primary key, plus one IndexedDB index per
//! declared index), the outbox store `_pendingSync` (keyPath `mutationId`) and `_meta`.
//!
//! Opening checks the existing layout and upgrades only when something is missing: a new version
//! (current + 1) that creates the missing stores and indexes and never drops anything, so tabs
//! running older or newer model sets converge on the union. Every connection closes itself on
//! `versionchange`, so another tab's upgrade is never blocked for long; the next operation here
//! reopens.
//!
//! The upgrade step uses `web_sys` directly: adding an index to an *existing* store needs the
//! upgrade transaction, which `indexed_db_futures` 0.6 does not expose.

use super::{Storage, META_STORE, OUTBOX_STORE};
use crate::core::batch::{Batch, RowOp};
use crate::core::outbox::OutboxEntry;
use crate::core::schema::{ModelDef, Schema};
use crate::core::value::{Key, Row};
use crate::error::{Error, Result};
use indexed_db_futures::database::Database;
use indexed_db_futures::error::{DomException, Error as IdbError, OpenDbError};
use indexed_db_futures::prelude::*;
use indexed_db_futures::transaction::TransactionMode;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

#[derive(Clone)]
pub struct IdbStorage {
    inner: Rc<Inner>,
}

struct Inner {
    name: String,
    db: RefCell<Option<Rc<Conn>>>,
    schema: RefCell<Option<Schema>>,
}

fn dom_name(e: &DomException) -> String {
    match e {
        DomException::InvalidStateError(_) => "InvalidStateError".into(),
        DomException::TransactionInactiveError(_) => "TransactionInactiveError".into(),
        DomException::NotFoundError(_) => "NotFoundError".into(),
        DomException::ConstraintError(_) => "ConstraintError".into(),
        DomException::InvalidAccessError(_) => "InvalidAccessError".into(),
        DomException::DataError(_) => "DataError".into(),
        DomException::AbortError(_) => "AbortError".into(),
        DomException::ReadOnlyError(_) => "ReadOnlyError".into(),
        DomException::DataCloneError(_) => "DataCloneError".into(),
        DomException::SyntaxError(_) => "SyntaxError".into(),
        DomException::Other(d) => d.name(),
    }
}

/// Maps an IndexedDB failure to a storage error carrying the DOMException name.
fn idb_err(e: IdbError) -> Error {
    match &e {
        IdbError::DomException(d) => Error::Storage {
            dom_name: Some(dom_name(d)),
            message: d.message(),
        },
        other => Error::storage(other.to_string()),
    }
}

fn open_err(e: OpenDbError) -> Error {
    match e {
        OpenDbError::Base(b) => idb_err(b),
        other => Error::storage(format!("IndexedDB is not available: {other}")),
    }
}

fn js_err(e: JsValue) -> Error {
    match e.dyn_ref::<web_sys::DomException>() {
        Some(d) => Error::Storage {
            dom_name: Some(d.name()),
            message: d.message(),
        },
        None => Error::storage(format!("{e:?}")),
    }
}

fn key_js(k: &Key) -> JsValue {
    match k {
        Key::Num(n) => JsValue::from_f64(*n),
        Key::Str(s) => JsValue::from_str(s),
    }
}

/// Converts Rust values to JS objects in one `JSON.parse` (far cheaper than one reflection call
/// per field).
fn to_js_array<T: serde::Serialize>(items: &[T]) -> Result<js_sys::Array> {
    let text = serde_json::to_string(items).map_err(|e| Error::storage(e.to_string()))?;
    js_sys::JSON::parse(&text)
        .map(|v| v.unchecked_into())
        .map_err(js_err)
}

fn from_js_array<T: serde::de::DeserializeOwned>(arr: &js_sys::Array) -> Result<Vec<T>> {
    let text: String = js_sys::JSON::stringify(arr).map_err(js_err)?.into();
    serde_json::from_str(&text).map_err(|e| Error::storage(format!("unreadable stored data: {e}")))
}

/// What the database must contain: (store, key path, indexes).
fn layout(schema: &Schema) -> Vec<(String, String, Vec<String>)> {
    let mut out: Vec<_> = schema
        .models
        .values()
        .map(|m| (m.name.clone(), m.primary_key.clone(), m.indexes.clone()))
        .collect();
    out.push((OUTBOX_STORE.into(), "mutationId".into(), vec![]));
    out.push((META_STORE.into(), "key".into(), vec![]));
    out
}

impl IdbStorage {
    pub fn new(name: &str) -> Self {
        IdbStorage {
            inner: Rc::new(Inner {
                name: name.to_string(),
                db: RefCell::new(None),
                schema: RefCell::new(None),
            }),
        }
    }

    /// The open connection, reopening (and upgrading) if a `versionchange` closed it.
    async fn db(&self) -> Result<Rc<Conn>> {
        if let Some(db) = self.inner.db.borrow().clone() {
            return Ok(db);
        }
        let schema = self
            .inner
            .schema
            .borrow()
            .clone()
            .ok_or_else(|| Error::storage("storage is not open"))?;
        self.connect(&schema).await
    }

    async fn connect(&self, schema: &Schema) -> Result<Rc<Conn>> {
        let db = Database::open(self.inner.name.as_str())
            .await
            .map_err(open_err)?;
        let missing = missing_parts(&db, schema)?;
        let db = if missing {
            let version = db.version() + 1.0;
            db.close();
            upgrade(&self.inner.name, version, &layout(schema)).await?;
            Database::open(self.inner.name.as_str())
                .await
                .map_err(open_err)?
        } else {
            db
        };
        let db = Rc::new(Conn(db));
        self.watch_version_changes(&db)?;
        *self.inner.db.borrow_mut() = Some(db.clone());
        Ok(db)
    }

    /// Lets go of this connection when another tab asks to upgrade, so that tab is never blocked
    /// for long: the connection closes as soon as in-flight transactions finish (see [`Conn`]).
    fn watch_version_changes(&self, db: &Rc<Conn>) -> Result<()> {
        let mut listener = db.0.version_changes().map_err(idb_err)?;
        let inner = Rc::downgrade(&self.inner);
        let watched = Rc::downgrade(db);
        wasm_bindgen_futures::spawn_local(async move {
            if listener.recv().await.is_some() {
                if let Some(inner) = inner.upgrade() {
                    let mut slot = inner.db.borrow_mut();
                    if slot
                        .as_ref()
                        .is_some_and(|d| Rc::as_ptr(d) == watched.as_ptr())
                    {
                        *slot = None;
                    }
                }
            }
        });
        Ok(())
    }
}

/// An open connection that closes itself when the last user drops it.
struct Conn(Database);

impl Drop for Conn {
    fn drop(&mut self) {
        // `Database::close` consumes the handle; a clone refers to the same JS connection.
        self.0.clone().close();
    }
}

impl IdbStorage {
    /// Every record of one store, converted in a single JSON round trip.
    async fn read_all<T: serde::de::DeserializeOwned>(&self, store_name: &str) -> Result<Vec<T>> {
        let db = self.db().await?;
        let tx = db.0.transaction(store_name).build().map_err(idb_err)?;
        let store = tx.object_store(store_name).map_err(idb_err)?;
        let rows: Vec<JsValue> = store
            .get_all()
            .primitive()
            .map_err(idb_err)?
            .await
            .map_err(idb_err)?
            .collect::<std::result::Result<_, _>>()
            .map_err(idb_err)?;
        from_js_array(&rows.into_iter().collect())
    }
}

/// Whether any store or index of the layout is missing.
fn missing_parts(db: &Database, schema: &Schema) -> Result<bool> {
    let existing: Vec<String> = db.object_store_names().collect();
    let wanted = layout(schema);
    if wanted.iter().any(|(s, _, _)| !existing.contains(s)) {
        return Ok(true);
    }
    let with_indexes: Vec<&(String, String, Vec<String>)> =
        wanted.iter().filter(|(_, _, ix)| !ix.is_empty()).collect();
    if with_indexes.is_empty() {
        return Ok(false);
    }
    let names: Vec<&str> = with_indexes.iter().map(|(s, _, _)| s.as_str()).collect();
    let tx = db.transaction(names.as_slice()).build().map_err(idb_err)?;
    for (store, _, indexes) in with_indexes {
        let have: Vec<String> = tx
            .object_store(store)
            .map_err(idb_err)?
            .index_names()
            .collect();
        if indexes.iter().any(|i| !have.contains(i)) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Opens `name` at `version`, creating every missing store and index in the upgrade transaction.
async fn upgrade(name: &str, version: f64, layout: &[(String, String, Vec<String>)]) -> Result<()> {
    let factory: web_sys::IdbFactory =
        js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("indexedDB"))
            .ok()
            .and_then(|f| f.dyn_into().ok())
            .ok_or_else(|| Error::storage("IndexedDB is not available in this environment"))?;
    let req = factory.open_with_f64(name, version).map_err(js_err)?;
    let layout = layout.to_vec();
    let on_upgrade = Closure::once(
        move |ev: web_sys::IdbVersionChangeEvent| -> std::result::Result<(), JsValue> {
            let req: web_sys::IdbOpenDbRequest = ev.target().ok_or("no target")?.unchecked_into();
            let db: web_sys::IdbDatabase = req.result()?.unchecked_into();
            let tx = req.transaction().ok_or("no upgrade transaction")?;
            let names = db.object_store_names();
            for (store, key_path, indexes) in &layout {
                let os = if names.contains(store) {
                    tx.object_store(store)?
                } else {
                    let params = web_sys::IdbObjectStoreParameters::new();
                    params.set_key_path(&JsValue::from_str(key_path));
                    db.create_object_store_with_optional_parameters(store, &params)?
                };
                let have = os.index_names();
                for ix in indexes {
                    if !have.contains(ix) {
                        os.create_index_with_str(ix, ix)?;
                    }
                }
            }
            Ok(())
        },
    );
    req.set_onupgradeneeded(Some(on_upgrade.as_ref().unchecked_ref()));
    let done = js_sys::Promise::new(&mut |resolve, reject| {
        let ok_req = req.clone();
        let on_success = Closure::once_into_js(move |_: web_sys::Event| {
            if let Ok(db) = ok_req.result() {
                db.unchecked_into::<web_sys::IdbDatabase>().close();
            }
            let _ = resolve.call0(&JsValue::NULL);
        });
        let err_req = req.clone();
        let on_error = Closure::once_into_js(move |_: web_sys::Event| {
            let err = err_req
                .error()
                .ok()
                .flatten()
                .map_or(JsValue::from_str("upgrade failed"), JsValue::from);
            let _ = reject.call1(&JsValue::NULL, &err);
        });
        req.set_onsuccess(Some(on_success.unchecked_ref()));
        req.set_onerror(Some(on_error.unchecked_ref()));
    });
    // `blocked` needs no handler: every micro-sync connection closes itself on `versionchange`,
    // after which the upgrade proceeds on its own.
    wasm_bindgen_futures::JsFuture::from(done)
        .await
        .map_err(js_err)?;
    drop(on_upgrade);
    Ok(())
}

impl Storage for IdbStorage {
    async fn open(&self, schema: &Schema) -> Result<()> {
        *self.inner.schema.borrow_mut() = Some(schema.clone());
        self.connect(schema).await.map(|_| ())
    }

    async fn load(&self, model: &ModelDef) -> Result<Vec<Row>> {
        self.read_all(&model.name).await
    }

    /// One read-only transaction; a `getAll` per key on the object store (primary key) or on the
    /// field's IndexedDB index, all issued before the first is awaited.
    async fn load_matching(&self, model: &ModelDef, field: &str, keys: &[Key]) -> Result<Vec<Row>> {
        let db = self.db().await?;
        let tx =
            db.0.transaction(model.name.as_str())
                .build()
                .map_err(idb_err)?;
        let store = tx.object_store(&model.name).map_err(idb_err)?;
        let index = if field == model.primary_key {
            None
        } else {
            Some(store.index(field).map_err(idb_err)?)
        };
        let mut requests = Vec::with_capacity(keys.len());
        for k in keys {
            let req = match &index {
                None => store
                    .get_all()
                    .with_query::<JsValue, _>(key_js(k))
                    .primitive(),
                Some(ix) => ix.get_all().with_query::<JsValue, _>(key_js(k)).primitive(),
            };
            requests.push(req.map_err(idb_err)?);
        }
        let found = js_sys::Array::new();
        for req in requests {
            for v in req.await.map_err(idb_err)? {
                found.push(&v.map_err(idb_err)?);
            }
        }
        from_js_array(&found)
    }

    async fn load_outbox(&self) -> Result<Vec<OutboxEntry>> {
        let mut entries: Vec<OutboxEntry> = self.read_all(OUTBOX_STORE).await?;
        entries.sort_by(|a, b| a.mutation_id.cmp(&b.mutation_id));
        Ok(entries)
    }

    async fn commit(&self, batch: &Batch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let db = self.db().await?;
        let mut stores: Vec<&str> = batch.models();
        if !batch.outbox_put.is_empty() || !batch.outbox_delete.is_empty() {
            stores.push(OUTBOX_STORE);
        }
        let puts: Vec<&Row> = batch
            .rows
            .iter()
            .filter_map(|op| match op {
                RowOp::Put { row, .. } => Some(&**row),
                RowOp::Delete { .. } => None,
            })
            .collect();
        let put_values = to_js_array(&puts)?;
        let outbox_values = to_js_array(&batch.outbox_put)?;

        // Requests go out when built, so their own futures are dropped unawaited: a failed request
        // aborts the transaction, and `commit` below reports it.
        let tx =
            db.0.transaction(stores.as_slice())
                .with_mode(TransactionMode::Readwrite)
                .build()
                .map_err(idb_err)?;
        let mut next_put = 0;
        for op in &batch.rows {
            match op {
                RowOp::Put { model, .. } => {
                    let store = tx.object_store(model).map_err(idb_err)?;
                    drop(
                        store
                            .put(put_values.get(next_put))
                            .primitive()
                            .map_err(idb_err)?,
                    );
                    next_put += 1;
                }
                RowOp::Delete { model, key } => {
                    let store = tx.object_store(model).map_err(idb_err)?;
                    drop(store.delete(key_js(key)).primitive().map_err(idb_err)?);
                }
            }
        }
        if !batch.outbox_put.is_empty() || !batch.outbox_delete.is_empty() {
            let store = tx.object_store(OUTBOX_STORE).map_err(idb_err)?;
            for v in outbox_values.iter() {
                drop(store.put(v).primitive().map_err(idb_err)?);
            }
            for id in &batch.outbox_delete {
                drop(store.delete(id.as_str()).primitive().map_err(idb_err)?);
            }
        }
        // indexed_db_futures rolls back unless told to commit; this await resolves only once
        // the whole transaction is durable, or fails (quota, constraint) with nothing written.
        tx.commit().await.map_err(idb_err)
    }

    fn close(&self) {
        // The connection closes once in-flight transactions drop their handle.
        self.inner.db.borrow_mut().take();
        *self.inner.schema.borrow_mut() = None;
    }
}
