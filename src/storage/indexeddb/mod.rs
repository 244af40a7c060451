//! IndexedDB storage (wasm32 only), through `indexed_db_futures` (reads, opening) and, where it
//! does not reach, `web_sys` (see [`raw`]).
//!
//! Layout: one object store per model (keyPath = primary key, plus one IndexedDB index per
//! declared index), the outbox store `_pendingSync` (keyPath `mutationId`), the change log
//! `_changes` (keyPath `seq`, see [`super`]) and `_meta`.
//!
//! Opening checks the existing layout and upgrades only when something is missing: a new version
//! (current + 1) that creates the missing stores and indexes and never drops anything, so tabs
//! running older or newer model sets converge on the union. Two tabs may race to upgrade a new
//! database to the same version with different model sets; the loser's upgrade then finds nothing
//! to do, so the layout is checked again after every upgrade until nothing is missing. Every
//! connection closes itself on `versionchange`, so another tab's upgrade is never blocked for
//! long; the next operation here reopens.
//!
//! ## The commit check
//! A commit on base `b` writes the change log record `b + 1` with `add`, as the first request of
//! its transaction: if another connection committed `b + 1` already, that `add` fails, the
//! transaction aborts and nothing is written (`Stale`). The transaction is committed at once,
//! without waiting for any read. That check is exact as long as record `b + 1` cannot have been
//! trimmed, which holds when this connection confirmed `b` as the latest number recently
//! ([`FRESH_MS`]) and records are trimmed only once older than [`TRIM_AGE_MS`] (and beyond the
//! last [`KEEP_CHANGES`]). Otherwise the commit first asks for any record after `b`.
//!
//! ## The only writer
//! While this storage holds the writers' lease exclusively ([`lease`]), no other storage is open
//! on the database, so nobody else can commit. Its first commit under that hold is a checked one
//! whose record is marked `solo` (with this storage's id); the commits after it write no record
//! and leave the commit number where that record put it. A storage reading the log past another
//! storage's `solo` record reads everything again, since what came after is not in the log.

mod lease;
mod migration;
mod raw;

pub use migration::Migrator;

use super::{
    Changes, Committed, Loaded, Storage, Unreadable, CHANGES_STORE, KEEP_CHANGES, META_STORE,
    OUTBOX_STORE,
};
use crate::core::batch::{Batch, ChangeSet, RowOp};
use crate::core::outbox::OutboxEntry;
use crate::core::queue::WriteQueue;
use crate::core::schema::{ModelDef, Schema};
use crate::core::value::{Key, Row};
use crate::error::{Error, Result};
use indexed_db_futures::database::Database;
use indexed_db_futures::error::{DomException, Error as IdbError, OpenDbError};
use indexed_db_futures::internals::SystemRepr;
use indexed_db_futures::prelude::*;
use indexed_db_futures::KeyRange;
use lease::{Hold, Lease};
use raw::js_err;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

thread_local! {
    /// One write queue per database name: every database opened on the same IndexedDB database
    /// in this tab takes its turns from it (see [`crate::core::queue`]).
    static QUEUES: RefCell<HashMap<String, WriteQueue>> = RefCell::new(HashMap::new());
}

/// Gives databases opened on `name` from now on a new write queue (after one that held the old
/// queue failed for good).
pub fn reset_queue(name: &str) {
    QUEUES.with(|q| q.borrow_mut().remove(name));
}

/// How often opening re-checks the layout after an upgrade before giving up.
const MAX_UPGRADES: usize = 8;

/// A commit skips the "anyone after my base?" read when this connection confirmed its base as
/// the latest commit number less than this long ago (see the module docs).
const FRESH_MS: f64 = 20_000.0;
/// Change log records are trimmed only once older than this (and beyond [`KEEP_CHANGES`]).
const TRIM_AGE_MS: f64 = 60_000.0;

#[derive(Clone)]
pub struct IdbStorage {
    inner: Rc<Inner>,
}

struct Inner {
    name: String,
    /// The app's `migrate`, for models whose stored rows are at an older version.
    migrator: Option<Migrator>,
    db: RefCell<Option<Rc<Conn>>>,
    schema: RefCell<Option<Schema>>,
    /// The latest commit number this connection saw, and when (`Date.now()`: the clock trimming
    /// uses, which keeps running while the machine sleeps; a clock that went back is not fresh).
    confirmed: Cell<Option<(u64, f64)>>,
    /// The writers' lease: held exclusively, commits may skip the change log.
    lease: Lease,
    /// While commits skip the log: the number of the `solo` record that began it, and the
    /// exclusive hold (its epoch) it belongs to.
    solo: Cell<Option<(u64, u64)>>,
    /// Names this storage in the `solo` records it writes.
    me: f64,
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

fn key_js(k: &Key) -> JsValue {
    match k {
        Key::Num(n) => JsValue::from_f64(*n),
        k => JsValue::from_str(k.as_str().unwrap_or_default()),
    }
}

/// Converts Rust values to JS objects in one `JSON.parse` (far cheaper than one reflection call
/// per field).
fn to_js<T: serde::Serialize + ?Sized>(v: &T) -> Result<JsValue> {
    let text = serde_json::to_string(v).map_err(|e| Error::storage(e.to_string()))?;
    js_sys::JSON::parse(&text).map_err(js_err)
}

/// The key of a stored record, read from the JS object itself.
fn js_key(record: &JsValue, key_field: &str) -> Option<Value> {
    let k = js_sys::Reflect::get(record, &JsValue::from_str(key_field)).ok()?;
    if let Some(s) = k.as_string() {
        return Some(Value::String(s));
    }
    k.as_f64().map(crate::core::value::num_value)
}

/// How many records cross into WebAssembly as one JSON text when reading: large enough that the
/// per-call cost vanishes, small enough that the text (which WebAssembly memory keeps as capacity
/// once grown) stays far below the rows' own size.
const DECODE_CHUNK: usize = 2_000;

/// Decodes records read from `store`, each on its own: one that cannot be decoded (not JSON, not
/// the expected shape, nested too deep) is reported with its key instead of failing the read.
/// The common case is one `JSON.stringify` per [`DECODE_CHUNK`] records, decoded straight into
/// `T` (for rows: their compact form, with no JSON tree in between).
fn decode<T: DeserializeOwned>(records: Vec<JsValue>, store: &str, key_field: &str) -> Loaded<T> {
    decode_array(&records.into_iter().collect(), store, key_field)
}

/// [`decode`] for records still in the JS array IndexedDB returned: chunks are sliced and
/// stringified on the JS side, so no record crosses into WebAssembly on its own.
fn decode_array<T: DeserializeOwned>(
    records: &js_sys::Array,
    store: &str,
    key_field: &str,
) -> Loaded<T> {
    let n = records.length();
    let mut out = Loaded::all(Vec::with_capacity(n as usize));
    let mut start = 0;
    while start < n {
        let end = (start + DECODE_CHUNK as u32).min(n);
        let chunk = records.slice(start, end);
        start = end;
        if let Ok(text) = js_sys::JSON::stringify(&chunk) {
            if let Ok(items) = serde_json::from_str::<Vec<T>>(&String::from(text)) {
                if items.len() == chunk.length() as usize {
                    out.items.extend(items);
                    continue;
                }
            }
        }
        // Something in this chunk cannot be read: find what, record by record.
        for record in chunk.iter() {
            let record = &record;
            match stringify_one(record)
                .and_then(|t| serde_json::from_str::<T>(&t).map_err(|e| e.to_string()))
            {
                Ok(item) => out.items.push(item),
                Err(message) => out.unreadable.push(Unreadable {
                    store: store.to_string(),
                    key: js_key(record, key_field),
                    message,
                }),
            }
        }
    }
    out
}

fn stringify_one(v: &JsValue) -> std::result::Result<String, String> {
    match js_sys::JSON::stringify(v) {
        Ok(t) => Ok(String::from(t)),
        Err(e) => Err(format!(
            "not representable as JSON: {}",
            e.dyn_ref::<js_sys::Error>().map_or_else(
                || "unknown error".to_string(),
                |e| String::from(e.message())
            )
        )),
    }
}

/// One change log record as stored. The change set is kept as JSON text: a record is written
/// with every commit, and a flat object with a string costs the browser far less to clone than
/// nested arrays.
#[derive(serde::Serialize, serde::Deserialize)]
struct LogRecord {
    seq: u64,
    /// When it was written (`Date.now()`), for trimming.
    #[serde(default)]
    at: f64,
    /// The [`ChangeSet`] as JSON.
    changes: String,
    /// On the first commit of an exclusive hold of the writers' lease: the writing storage's id.
    /// Its later commits skip the log, so any other storage reading past this record reads
    /// everything again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    solo: Option<f64>,
}

/// What the database must contain: (store, key path, indexes).
fn layout(schema: &Schema) -> Vec<(String, String, Vec<String>)> {
    let mut out: Vec<_> = schema
        .models
        .values()
        .map(|m| (m.name.clone(), m.primary_key.clone(), m.indexes.clone()))
        .collect();
    out.push((OUTBOX_STORE.into(), "mutationId".into(), vec![]));
    out.push((CHANGES_STORE.into(), "seq".into(), vec![]));
    out.push((META_STORE.into(), "key".into(), vec![]));
    out
}

impl IdbStorage {
    pub fn new(name: &str, migrator: Option<Migrator>) -> Self {
        IdbStorage {
            inner: Rc::new(Inner {
                name: name.to_string(),
                migrator,
                db: RefCell::new(None),
                schema: RefCell::new(None),
                confirmed: Cell::new(None),
                lease: Lease::new(name),
                solo: Cell::new(None),
                me: (js_sys::Math::random() * 9_007_199_254_740_991.0).floor(),
            }),
        }
    }

    /// The open connection, reopening (and upgrading) if a `versionchange` closed it.
    async fn db(&self) -> Result<Rc<Conn>> {
        if self.inner.lease.current().is_none() {
            self.inner.lease.hold().await?;
        }
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

    /// Opens both connections. The write connection is opened first: it closes itself on
    /// `versionchange`, so waiting for the read connection behind another tab's upgrade cannot
    /// deadlock; the read connection gets its `versionchange` watcher before anything else is
    /// awaited. If an upgrade came between the two opens, both are opened again.
    async fn connect(&self, schema: &Schema) -> Result<Rc<Conn>> {
        self.inner.lease.hold().await?;
        let name = self.inner.name.as_str();
        for _ in 0..MAX_UPGRADES {
            let writer = raw::open(name).await?;
            let db = match Database::open(name).await.map_err(open_err) {
                Ok(db) => db,
                Err(e) => {
                    writer.close();
                    return Err(e);
                }
            };
            let conn = Rc::new_cyclic(|me| {
                let on_version_change = self.version_change_handler(me.clone());
                sys(&db).set_onversionchange(Some(on_version_change.as_ref().unchecked_ref()));
                Conn {
                    db,
                    writer,
                    _on_version_change: on_version_change,
                }
            });
            if conn.writer.version() != conn.db.version() {
                continue; // upgraded in between: the write connection closed itself
            }
            let complete = !missing_parts(&conn.db, schema)?;
            let migrate = match complete {
                true => migration::needs_migration(&conn.writer, schema).await,
                false => Ok(false),
            };
            match migrate {
                // Reading the versions took a turn: another tab's upgrade may have closed the
                // connections meanwhile (a closing connection refuses new transactions).
                Ok(false) if complete && !conn.usable() => {
                    conn.shut();
                    continue;
                }
                Ok(false) if complete => {
                    *self.inner.db.borrow_mut() = Some(conn.clone());
                    return Ok(conn);
                }
                Ok(_) => {}
                // Another tab's upgrade closed the connection while the versions were read:
                // look again.
                Err(Error::Storage {
                    dom_name: Some(n), ..
                }) if n == "InvalidStateError" || n == "AbortError" => {
                    conn.shut();
                    continue;
                }
                Err(e) => {
                    conn.shut();
                    return Err(e);
                }
            }
            let version = conn.db.version() + 1.0;
            conn.shut();
            drop(conn);
            let migrator = self.inner.migrator.clone();
            match raw::upgrade(name, version, &layout(schema), schema, migrator).await {
                Ok(()) => {}
                // Another tab upgraded past that version meanwhile: look again.
                Err(Error::Storage {
                    dom_name: Some(n), ..
                }) if n == "VersionError" => {}
                Err(e) => return Err(e),
            }
        }
        Err(Error::storage(format!(
            "the layout of database \"{name}\" is still incomplete after {MAX_UPGRADES} upgrades (other tabs keep upgrading it)"
        )))
    }

    /// The read connection's `onversionchange` handler (the write connection closes itself, see
    /// [`raw::open`]): lets go of connection `watched` when another tab asks to upgrade, so that
    /// tab is never blocked for long. The connection closes as soon as in-flight transactions
    /// finish (see [`Conn`]).
    fn version_change_handler(&self, watched: Weak<Conn>) -> Closure<dyn FnMut()> {
        let inner = Rc::downgrade(&self.inner);
        Closure::<dyn FnMut()>::new(move || {
            let (inner, watched) = (inner.clone(), watched.clone());
            // Out of the event handler: the last handle on the connection may go here, and with
            // it this handler.
            wasm_bindgen_futures::spawn_local(async move {
                // Closed now: transactions in flight still finish, new ones go to a new connection.
                if let Some(conn) = watched.upgrade() {
                    conn.shut();
                }
                if let Some(inner) = inner.upgrade() {
                    let Ok(mut slot) = inner.db.try_borrow_mut() else {
                        return;
                    };
                    if slot
                        .as_ref()
                        .is_some_and(|d| Rc::as_ptr(d) == watched.as_ptr())
                    {
                        *slot = None;
                    }
                }
            });
        })
    }

    /// Asks for the next `LOAD_CHUNK` records of `store_name` after primary key `after` (from
    /// the start without one), in a transaction of its own, through `web_sys`: the result comes
    /// as the JS array IndexedDB returns (`indexed_db_futures` hands records over one by one,
    /// which costs more for many records).
    fn request_chunk(
        db: &Conn,
        store_name: &str,
        after: Option<&JsValue>,
    ) -> Result<web_sys::IdbRequest> {
        let store = db
            .reader()
            .transaction_with_str(store_name)
            .and_then(|tx| tx.object_store(store_name))
            .map_err(js_err)?;
        let range = match after {
            Some(k) => web_sys::IdbKeyRange::lower_bound_with_open(k, true)
                .map_err(js_err)?
                .into(),
            None => JsValue::UNDEFINED,
        };
        store
            .get_all_with_key_and_limit(&range, LOAD_CHUNK)
            .map_err(js_err)
    }
}

/// Records per read when a whole model loads. Each chunk is its own transaction, so writes (and
/// other tabs) wait for one chunk at most, never for the whole model; the next chunk is read
/// while this one is decoded.
const LOAD_CHUNK: u32 = 5_000;

async fn chunk_result(req: &web_sys::IdbRequest) -> Result<js_sys::Array> {
    match raw::request(req).await {
        Some(v) => v.dyn_into().map_err(js_err),
        None => Err(req.error().ok().flatten().map_or_else(
            || Error::storage("reading the store failed"),
            |e| js_err(e.into()),
        )),
    }
}

/// The open connections (reads through `indexed_db_futures`, writes through `web_sys`), closed
/// when the last user drops them.
struct Conn {
    db: Database,
    writer: web_sys::IdbDatabase,
    /// The read connection's `versionchange` handler, kept for as long as the connection.
    _on_version_change: Closure<dyn FnMut()>,
}

impl Conn {
    /// The read connection as `web_sys` sees it, for the reads that take IndexedDB's result
    /// array whole (reads stay off the write connection, as with `indexed_db_futures`).
    fn reader(&self) -> &web_sys::IdbDatabase {
        sys(&self.db)
    }

    /// Whether both connections still accept transactions (neither is closing).
    fn usable(&self) -> bool {
        [self.reader(), &self.writer]
            .iter()
            .all(|c| c.transaction_with_str(META_STORE).is_ok())
    }

    fn shut(&self) {
        // `Database::close` consumes the handle; a clone refers to the same JS connection.
        self.db.clone().close();
        self.writer.close();
    }
}

/// An `indexed_db_futures` connection as `web_sys` sees it.
fn sys(db: &Database) -> &web_sys::IdbDatabase {
    db.as_sys().unchecked_ref()
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.shut();
        // A closed connection sees no more events; the handler goes with it.
        self.reader().set_onversionchange(None);
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

/// The latest commit number given the keys of the change log (ascending).
fn latest(keys: &[JsValue]) -> u64 {
    keys.last()
        .and_then(JsValue::as_f64)
        .map_or(0, |n| n as u64)
}

/// Why a transaction did not commit, by DOMException name; a failed `add` of a row is the
/// constraint error the insert contract names.
fn tx_error(e: Option<web_sys::DomException>) -> Error {
    match e {
        Some(d) if d.name() == "ConstraintError" => Error::Constraint(format!(
            "a row with that primary key already exists in storage (written by another tab or database); use update to change it ({})",
            d.message()
        )),
        Some(d) => js_err(d.into()),
        None => Error::storage("the transaction was aborted"),
    }
}

impl IdbStorage {
    fn confirm(&self, seq: u64) {
        self.inner.confirmed.set(Some((seq, js_sys::Date::now())));
    }

    /// Issues every request of `batch` in `tx`: the log record first (see the module docs), if
    /// there is one.
    fn fill(
        tx: &web_sys::IdbTransaction,
        batch: &Batch,
        record: Option<&JsValue>,
    ) -> Result<Option<web_sys::IdbRequest>> {
        let log_req = match record {
            Some(record) => {
                let log = tx.object_store(CHANGES_STORE).map_err(js_err)?;
                Some(log.add(record).map_err(js_err)?)
            }
            None => None,
        };
        let rows: Vec<&Row> = batch.rows.iter().filter_map(|op| op.row()).collect();
        let rows: js_sys::Array = to_js(&rows)?.unchecked_into();
        let mut next_row = 0;
        // Ops come grouped by model: ask for a store once per run of ops on it.
        let mut store: Option<(&str, web_sys::IdbObjectStore)> = None;
        for op in &batch.rows {
            let s = match &store {
                Some((model, s)) if *model == op.model() => s,
                _ => {
                    let s = tx.object_store(op.model()).map_err(js_err)?;
                    &store.insert((op.model(), s)).1
                }
            };
            match op {
                RowOp::Insert { .. } => s.add(&rows.get(next_row)),
                RowOp::Put { .. } => s.put(&rows.get(next_row)),
                RowOp::Delete { key, .. } => s.delete(&key_js(key)),
            }
            .map_err(js_err)?;
            if op.row().is_some() {
                next_row += 1;
            }
        }
        if batch.touches_outbox() {
            let store = tx.object_store(OUTBOX_STORE).map_err(js_err)?;
            let entries: js_sys::Array = to_js(&batch.outbox_put)?.unchecked_into();
            for e in entries.iter() {
                store.put(&e).map_err(js_err)?;
            }
            for id in &batch.outbox_delete {
                store.delete(&JsValue::from_str(id)).map_err(js_err)?;
            }
        }
        Ok(log_req)
    }

    /// The transaction of a commit over `batch`'s stores (and the log's, with `log`).
    fn write_tx(db: &Conn, batch: &Batch, log: bool) -> Result<web_sys::IdbTransaction> {
        let mut stores: Vec<&str> = batch.models();
        if batch.touches_outbox() {
            stores.push(OUTBOX_STORE);
        }
        if log {
            stores.push(CHANGES_STORE);
        }
        let mode = web_sys::IdbTransactionMode::Readwrite;
        match stores.as_slice() {
            // One store (a local model's write while alone): no array to build and convert.
            [store] => db.writer.transaction_with_str_and_mode(store, mode),
            _ => {
                let names: js_sys::Array = stores.iter().map(|s| JsValue::from_str(s)).collect();
                db.writer
                    .transaction_with_str_sequence_and_mode(&names, mode)
            }
        }
        .map_err(js_err)
    }

    /// A commit while this storage is the only writer: no log record, no check (nobody else can
    /// have committed since its `solo` record). Storage stays at commit number `seq`.
    async fn commit_unlogged(&self, db: &Conn, batch: &Batch, seq: u64) -> Result<Committed> {
        // Until it has finished, the lease is not let go (see [`lease`]).
        let _flight = self.inner.lease.unlogged();
        let tx = Self::write_tx(db, batch, false)?;
        if let Err(e) = Self::fill(&tx, batch, None) {
            let _ = tx.abort();
            return Err(e);
        }
        if raw::commit(&tx).await {
            return Ok(Committed::Done(seq));
        }
        Err(tx_error(tx.error()))
    }

    /// A checked commit (module docs). With `solo`, its record starts this storage's run of
    /// unlogged commits, for the exclusive hold `epoch`.
    async fn commit_logged(
        &self,
        db: &Conn,
        batch: &Batch,
        base: u64,
        solo: bool,
        epoch: u64,
    ) -> Result<Committed> {
        let seq = base + 1;
        let changes = serde_json::to_string(&batch.change_set())
            .map_err(|e| Error::storage(e.to_string()))?;
        let record = to_js(&LogRecord {
            seq,
            at: js_sys::Date::now(),
            changes,
            solo: solo.then_some(self.inner.me),
        })?;
        let tx = Self::write_tx(db, batch, true)?;
        let fresh = self.inner.confirmed.get().is_some_and(|(s, t)| {
            s == base && (0.0..FRESH_MS).contains(&(js_sys::Date::now() - t))
        });
        if !fresh {
            // Not confirmed lately: first ask whether anyone committed after `base`.
            let after = JsValue::from_f64(base as f64);
            let newer = web_sys::IdbKeyRange::lower_bound_with_open(&after, true)
                .and_then(|range| tx.object_store(CHANGES_STORE)?.get_key(&range))
                .map_err(js_err)?;
            let found = raw::request(&newer).await;
            if found.is_none_or(|k| !k.is_undefined()) {
                let _ = tx.abort();
                self.inner.confirmed.set(None);
                return Ok(Committed::Stale);
            }
        }
        let log_req = match Self::fill(&tx, batch, Some(&record)) {
            Ok(r) => r,
            Err(e) => {
                // A request could not even be made (a key missing, a value not cloneable): write
                // none of them.
                let _ = tx.abort();
                return Err(e);
            }
        };
        if raw::commit(&tx).await {
            self.confirm(seq);
            self.trim_later(seq);
            if solo {
                self.inner.solo.set(Some((seq, epoch)));
            }
            return Ok(Committed::Done(seq));
        }
        let log_failed = log_req.and_then(|r| r.error().ok().flatten());
        if log_failed.is_some_and(|e| e.name() == "ConstraintError") {
            // Someone committed `base + 1` first.
            self.inner.confirmed.set(None);
            return Ok(Committed::Stale);
        }
        Err(tx_error(tx.error()))
    }

    /// Deletes change log records that are both beyond the last [`KEEP_CHANGES`] and older than
    /// [`TRIM_AGE_MS`]. In the background: a failure only keeps them longer.
    fn trim_later(&self, seq: u64) {
        if seq % 100 != 0 || seq <= KEEP_CHANGES {
            return;
        }
        let this = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let Ok(db) = this.db().await else { return };
            let cut = JsValue::from_f64((seq - KEEP_CHANGES) as f64);
            let mode = web_sys::IdbTransactionMode::Readwrite;
            let Ok(tx) = db.writer.transaction_with_str_and_mode(CHANGES_STORE, mode) else {
                return;
            };
            let Ok(store) = tx.object_store(CHANGES_STORE) else {
                return;
            };
            let Ok(req) = store.get(&cut) else { return };
            let at = raw::request(&req)
                .await
                .and_then(|r| js_sys::Reflect::get(&r, &JsValue::from_str("at")).ok())
                .and_then(|a| a.as_f64());
            if at.is_some_and(|at| js_sys::Date::now() - at > TRIM_AGE_MS) {
                if let Ok(range) = web_sys::IdbKeyRange::upper_bound_with_open(&cut, false) {
                    let _ = store.delete(&range);
                }
            }
            let _ = raw::commit(&tx).await;
        });
    }
}

impl Storage for IdbStorage {
    fn queue(&self) -> WriteQueue {
        QUEUES.with(|q| {
            q.borrow_mut()
                .entry(self.inner.name.clone())
                .or_default()
                .clone()
        })
    }

    async fn open(&self, schema: &Schema) -> Result<()> {
        *self.inner.schema.borrow_mut() = Some(schema.clone());
        let opened = self.connect(schema).await.map(|_| ());
        if opened.is_err() {
            // Not open: hold nothing meanwhile (the next call asks again).
            self.inner.lease.pause();
        }
        opened
    }

    /// The model's records in chunks of [`LOAD_CHUNK`] by primary key. Reading them across
    /// several transactions is safe: a row another tab changes meanwhile was changed by a commit
    /// after this database's commit number, which catching up reads again once the load is done
    /// (the load holds off catching up).
    async fn load(&self, model: &ModelDef) -> Result<Loaded<Row>> {
        let db = self.db().await?;
        let key = JsValue::from_str(&model.primary_key);
        let mut out = Loaded::all(Vec::new());
        let mut req = Self::request_chunk(&db, &model.name, None)?;
        loop {
            let records = chunk_result(&req).await?;
            let n = records.length();
            let more = n == LOAD_CHUNK;
            if more {
                let last = js_sys::Reflect::get(&records.get(n - 1), &key).map_err(js_err)?;
                req = Self::request_chunk(&db, &model.name, Some(&last))?;
            }
            let chunk: Loaded<Row> = decode_array(&records, &model.name, &model.primary_key);
            out.items.extend(chunk.items);
            out.unreadable.extend(chunk.unreadable);
            if !more {
                return Ok(out);
            }
        }
    }

    /// One read-only transaction; a `getAll` per key on the object store (primary key) or on the
    /// field's IndexedDB index, all issued before the first is awaited.
    async fn load_matching(
        &self,
        model: &ModelDef,
        field: &str,
        keys: &[Key],
    ) -> Result<Loaded<Row>> {
        let db = self.db().await?;
        let tx = db
            .reader()
            .transaction_with_str(&model.name)
            .map_err(js_err)?;
        let store = tx.object_store(&model.name).map_err(js_err)?;
        let index = if field == model.primary_key {
            None
        } else {
            Some(store.index(field).map_err(js_err)?)
        };
        let mut requests = Vec::with_capacity(keys.len());
        for k in keys {
            let req = match &index {
                None => store.get_all_with_key(&key_js(k)),
                Some(ix) => ix.get_all_with_key(&key_js(k)),
            };
            requests.push(req.map_err(js_err)?);
        }
        let mut out = Loaded::all(Vec::new());
        for req in requests {
            let Some(found) = raw::request(&req).await else {
                return Err(req.error().ok().flatten().map_or_else(
                    || Error::storage("reading the store failed"),
                    |e| js_err(e.into()),
                ));
            };
            let found: Loaded<Row> =
                decode_array(&found.unchecked_into(), &model.name, &model.primary_key);
            out.items.extend(found.items);
            out.unreadable.extend(found.unreadable);
        }
        Ok(out)
    }

    /// The outbox and the latest commit number, in one read-only transaction.
    async fn load_outbox(&self) -> Result<(Loaded<OutboxEntry>, u64)> {
        let db = self.db().await?;
        let tx = db
            .db
            .transaction([OUTBOX_STORE, CHANGES_STORE])
            .build()
            .map_err(idb_err)?;
        let outbox = tx.object_store(OUTBOX_STORE).map_err(idb_err)?;
        let changes = tx.object_store(CHANGES_STORE).map_err(idb_err)?;
        let entries = outbox.get_all().primitive().map_err(idb_err)?;
        let keys = changes
            .get_all_keys::<JsValue>()
            .primitive()
            .map_err(idb_err)?;
        let entries: Vec<JsValue> = entries
            .await
            .map_err(idb_err)?
            .collect::<std::result::Result<_, _>>()
            .map_err(idb_err)?;
        let keys: Vec<JsValue> = keys
            .await
            .map_err(idb_err)?
            .collect::<std::result::Result<_, _>>()
            .map_err(idb_err)?;
        let mut loaded: Loaded<OutboxEntry> = decode(entries, OUTBOX_STORE, "mutationId");
        loaded
            .items
            .sort_by(|a, b| a.mutation_id.cmp(&b.mutation_id));
        let seq = latest(&keys);
        self.confirm(seq);
        Ok((loaded, seq))
    }

    async fn load_outbox_entries(&self, ids: &[String]) -> Result<Loaded<OutboxEntry>> {
        let db = self.db().await?;
        let tx = db.db.transaction(OUTBOX_STORE).build().map_err(idb_err)?;
        let store = tx.object_store(OUTBOX_STORE).map_err(idb_err)?;
        let mut requests = Vec::with_capacity(ids.len());
        for id in ids {
            requests.push(
                store
                    .get_all()
                    .with_query::<JsValue, _>(JsValue::from_str(id))
                    .primitive()
                    .map_err(idb_err)?,
            );
        }
        let mut found = Vec::new();
        for req in requests {
            for v in req.await.map_err(idb_err)? {
                found.push(v.map_err(idb_err)?);
            }
        }
        Ok(decode(found, OUTBOX_STORE, "mutationId"))
    }

    async fn changes_since(&self, seq: u64) -> Result<Changes> {
        let db = self.db().await?;
        let tx = db.db.transaction(CHANGES_STORE).build().map_err(idb_err)?;
        let store = tx.object_store(CHANGES_STORE).map_err(idb_err)?;
        // From our own record on: it must still be there, or the log no longer reaches back.
        let range = KeyRange::LowerBound(JsValue::from_f64(seq as f64), false);
        let records: Vec<JsValue> = store
            .get_all()
            .with_query::<JsValue, _>(range)
            .primitive()
            .map_err(idb_err)?
            .await
            .map_err(idb_err)?
            .collect::<std::result::Result<_, _>>()
            .map_err(idb_err)?;
        let loaded: Loaded<LogRecord> = decode(records, CHANGES_STORE, "seq");
        let mut changes = Changes {
            seq,
            complete: loaded.unreadable.is_empty(),
            stores: Vec::new(),
        };
        let mut records = loaded.items.into_iter().peekable();
        match records.peek() {
            Some(first) if first.seq == seq => {
                records.next();
            }
            // Nothing committed yet, or our record is gone (trimmed, or the database replaced).
            None if seq == 0 => {}
            Some(first) if seq == 0 && first.seq == 1 => {}
            _ => changes.complete = false,
        }
        for r in records {
            changes.seq = r.seq;
            if r.solo.is_some_and(|writer| writer != self.inner.me) {
                changes.complete = false; // commits after it are not in the log
            }
            match serde_json::from_str::<ChangeSet>(&r.changes) {
                Ok(set) => changes.add(set),
                Err(_) => changes.complete = false, // read everything again instead
            }
        }
        if changes.complete {
            self.confirm(changes.seq);
        }
        Ok(changes)
    }

    async fn commit(&self, batch: &Batch, base: u64) -> Result<Committed> {
        if batch.is_empty() {
            return Ok(Committed::Done(base));
        }
        // Whatever was awaited last, the hold is read in the same task that creates the
        // transaction: a step-down (see [`lease`]) cannot come in between.
        let (db, hold) = loop {
            let db = self.db().await?;
            if let Some(hold) = self.inner.lease.current() {
                break (db, hold);
            }
        };
        let epoch = self.inner.lease.epoch();
        let solo = match (hold, self.inner.solo.get()) {
            (Hold::Exclusive, Some((seq, e))) if e == epoch => Some(seq),
            _ => None,
        };
        if let Some(seq) = solo {
            if base != seq {
                // Behind its own `solo` record (it caught up past it, or not yet): catch up.
                return Ok(Committed::Stale);
            }
            return self.commit_unlogged(&db, batch, seq).await;
        }
        self.commit_logged(&db, batch, base, hold == Hold::Exclusive, epoch)
            .await
    }

    fn close(&self) {
        // Closes the connections now for new transactions; ones in flight finish first.
        if let Ok(mut slot) = self.inner.db.try_borrow_mut() {
            if let Some(conn) = slot.take() {
                conn.shut();
            }
        }
        if let Ok(mut schema) = self.inner.schema.try_borrow_mut() {
            *schema = None;
        }
        self.inner.confirmed.set(None);
        self.inner.solo.set(None);
        self.inner.lease.release();
    }
}
