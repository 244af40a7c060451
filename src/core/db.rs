//! The async database: the [`Engine`] plus a storage port, a validator port and a remote port.
//!
//! ## Order
//! Every change (a user's write, a pull's merge, a push's outcome, catching up with other tabs)
//! runs in a turn of the storage's [`WriteQueue`], taken before the call's first `await`, so
//! changes take effect in the order they were called, awaited or not. Reads take no turn: they
//! see every write that resolved before they were called.
//!
//! ## Checked against storage
//! A write is planned against memory, validated, and committed with the commit number memory
//! reflects ([`Storage::commit`]). If another tab (or another database on the same storage)
//! committed in between, storage refuses it; the database reads the change log, refreshes just
//! the rows and outbox entries that changed, and plans again. Memory changes only after storage
//! committed; if validation or the commit fails, nothing changed anywhere.

mod drain;

pub use drain::DrainReport;

use super::batch::Batch;
use super::engine::{Engine, Returning};
use super::outbox::{OutboxEntry, OUTBOX_STORE};
use super::query::{Filter, Op, Select};
use super::queue::{Turn, WriteQueue};
use super::retry::Backoff;
use super::scheduler::{Command, Event};
use super::schema::{ModelDef, RelationDef, Schema};
use super::status::{StatusBoard, SyncStatus};
use super::value::{Key, Row};
use crate::error::{Error, Issue, Result};
use crate::storage::{Committed, Loaded, Storage, Unreadable};
use futures::lock::Mutex;
use serde_json::Value;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

/// Validates rows against their model's schema.
#[allow(async_fn_in_trait)]
pub trait Validator {
    /// The validated output rows (defaults and coercions applied), or [`Error::Validation`]
    /// listing every issue of every row.
    async fn validate(&self, model: &str, rows: Vec<Value>) -> Result<Vec<Value>>;

    /// Validates rows one by one (pulled rows: an invalid one is skipped, not fatal).
    async fn validate_each(&self, model: &str, rows: Vec<Value>) -> Vec<Result<Value>> {
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(
                self.validate(model, vec![row])
                    .await
                    .and_then(|mut v| v.pop().ok_or(Error::Closed)),
            );
        }
        out
    }
}

/// How a push ended.
#[derive(Clone, Debug, PartialEq)]
pub enum PushOutcome {
    /// The backend accepted it (or had already: it deduplicates by `mutationId`).
    Done,
    /// A transient failure: keep the entry and try again later.
    Retry(String),
    /// The backend refused it for good: drop the entry and roll the change back.
    Reject(String),
}

/// What a pull brought: the backend's rows in its order, and the issues of rows the remote port
/// already refused (those rows are `null` in `rows`, so indexes stay those of the answer).
#[derive(Debug, Default)]
pub struct Pulled {
    pub rows: Vec<Value>,
    pub issues: Vec<Issue>,
}

impl From<Vec<Value>> for Pulled {
    fn from(rows: Vec<Value>) -> Self {
        Pulled {
            rows,
            issues: Vec::new(),
        }
    }
}

/// The app's backend, reached through each model's `sync` hooks.
#[allow(async_fn_in_trait)]
pub trait Remote {
    /// Whether `model` has a `sync.mutation` hook.
    fn can_push(&self, model: &str) -> bool;
    async fn push(&self, entry: &OutboxEntry) -> PushOutcome;
    /// Rows the backend returns for `query` (`sync.query`).
    async fn pull(&self, model: &str, query: Option<&Value>)
        -> std::result::Result<Pulled, String>;
}

/// A backend that is never there: local-only databases and tests.
pub struct NoRemote;

impl Remote for NoRemote {
    fn can_push(&self, _model: &str) -> bool {
        false
    }
    async fn push(&self, _entry: &OutboxEntry) -> PushOutcome {
        PushOutcome::Retry("no backend".into())
    }
    async fn pull(
        &self,
        model: &str,
        _query: Option<&Value>,
    ) -> std::result::Result<Pulled, String> {
        Err(format!("model \"{model}\" has no sync.query hook"))
    }
}

/// A future that resolves on a later turn of the event loop.
pub type Pause = Pin<Box<dyn Future<Output = ()>>>;

/// Time, randomness and yielding, injected so the core stays deterministic under test.
#[derive(Clone, Copy)]
pub struct Env {
    pub now: fn() -> f64,
    /// A number in [0, 1) (backoff jitter).
    pub random: fn() -> f64,
    /// Random bytes for ids; must not fail.
    pub random_bytes: fn(&mut [u8]),
    /// Lets the event loop run (between chunks of a big pull).
    pub pause: fn() -> Pause,
}

impl Env {
    /// For hosts and tests: the system clock, a non-cryptographic generator, no pauses.
    pub fn host() -> Env {
        Env {
            now: || {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
            },
            random: || {
                let mut b = [0u8; 4];
                super::ids::fallback_random(&mut b);
                f64::from(u32::from_le_bytes(b)) / 4_294_967_296.0
            },
            random_bytes: super::ids::fallback_random,
            pause: || Box::pin(std::future::ready(())),
        }
    }
}

/// Accepts every row unchanged.
pub struct NoValidation;

impl Validator for NoValidation {
    async fn validate(&self, _model: &str, rows: Vec<Value>) -> Result<Vec<Value>> {
        Ok(rows)
    }
}

/// See [`Db::set_listener`].
pub type Listener = Box<dyn Fn(&[String])>;

/// A commit refused because storage moved on is planned again after catching up, at most this
/// many times (only tabs writing without pause could exhaust it).
const MAX_ATTEMPTS: usize = 32;

#[derive(Clone, Debug)]
enum Phase {
    Opening,
    Open,
    Failed(Error),
    Closed,
}

pub struct Db<S, V, R = NoRemote> {
    storage: S,
    validator: V,
    remote: R,
    engine: RefCell<Engine>,
    queue: WriteQueue,
    /// Held while a model loads into memory (and while catching up, so a load never installs
    /// rows older than a change already caught up with).
    loading: Mutex<()>,
    env: Env,
    backoff: Backoff,
    status: RefCell<StatusBoard>,
    listener: RefCell<Option<Listener>>,
    phase: RefCell<Phase>,
    /// Set as soon as `close()` is called: calls made after it are refused at once.
    closing: Cell<bool>,
    /// The storage commit number that memory reflects (see the module docs).
    seq: Cell<u64>,
    /// Acknowledged pushes: already gone from the in-memory outbox, not yet from storage. They
    /// ride along with the next commit, or are committed by [`Db::flush`] (at the latest when
    /// `ACK_BATCH` of them wait). Losing them (a crash) only re-sends those entries with their
    /// mutation ids, which the backend deduplicates.
    acks: RefCell<Batch>,
    /// The mutation id whose push is in flight.
    in_flight: RefCell<Option<String>>,
    /// Stored records that could not be decoded (left in storage, skipped in memory).
    unreadable: RefCell<Vec<Unreadable>>,
}

impl<S: Storage, V: Validator, R: Remote> Db<S, V, R> {
    /// A database over `storage`; nothing is read until [`Db::connect`], which every other call
    /// waits for (calls made meanwhile queue up in order).
    pub fn new(
        storage: S,
        validator: V,
        remote: R,
        models: Vec<ModelDef>,
        env: Env,
    ) -> Result<Self> {
        let schema = Schema::new(models)?;
        let mut engine = Engine::new(schema);
        engine.set_random(env.random_bytes);
        Ok(Db {
            queue: storage.queue(),
            storage,
            validator,
            remote,
            engine: RefCell::new(engine),
            loading: Mutex::new(()),
            env,
            backoff: Backoff::default(),
            status: RefCell::new(StatusBoard::default()),
            listener: RefCell::new(None),
            phase: RefCell::new(Phase::Opening),
            closing: Cell::new(false),
            seq: Cell::new(0),
            acks: RefCell::default(),
            in_flight: RefCell::new(None),
            unreadable: RefCell::new(Vec::new()),
        })
    }

    /// A place in this database's write queue, taken now. Every `*_in` method takes one, so a
    /// caller can fix the order of its calls before any of them runs (the bindings take it
    /// during the JS call itself); the plain methods take theirs when called.
    pub fn turn(&self) -> Turn {
        self.queue.turn()
    }

    /// Opens storage (creating or upgrading stores) and reads the outbox. Takes the first turn,
    /// so the calls made before it resolves run after it, in order.
    pub fn connect(&self) -> impl Future<Output = Result<()>> + '_ {
        self.connect_in(self.turn())
    }

    pub async fn connect_in(&self, turn: Turn) -> Result<()> {
        let _turn = turn.await;
        let result = self.connect_inner().await;
        {
            let mut phase = self.phase.borrow_mut();
            match (&*phase, &result) {
                (Phase::Opening, Ok(())) => *phase = Phase::Open,
                (Phase::Opening, Err(e)) => *phase = Phase::Failed(e.clone()),
                _ => {}
            }
        }
        // The pending counts are known now.
        self.notify();
        result
    }

    async fn connect_inner(&self) -> Result<()> {
        let schema = self.engine.borrow().schema.clone();
        self.storage.open(&schema).await?;
        let (entries, seq) = self.storage.load_outbox().await?;
        let entries = self.keep_readable(entries);
        self.engine.borrow_mut().set_outbox(entries);
        self.seq.set(seq);
        Ok(())
    }

    /// [`Db::new`] and [`Db::connect`] in one.
    pub async fn open(
        storage: S,
        validator: V,
        remote: R,
        models: Vec<ModelDef>,
        env: Env,
    ) -> Result<Self> {
        let db = Self::new(storage, validator, remote, models, env)?;
        db.connect().await?;
        Ok(db)
    }

    /// Called after every change of a status snapshot or of stored data, with the models whose
    /// rows changed in memory (none when only a status changed).
    pub fn set_listener(&self, f: Option<Listener>) {
        *self.listener.borrow_mut() = f;
    }

    fn notify(&self) {
        self.notify_rows(&[]);
    }

    fn notify_rows(&self, models: &[String]) {
        if let Some(f) = self.listener.borrow().as_ref() {
            f(models);
        }
    }

    /// The storage commit number this database's memory reflects.
    pub fn seq(&self) -> u64 {
        self.seq.get()
    }

    /// Stored records that could not be decoded, oldest report first.
    pub fn unreadable(&self) -> Vec<Unreadable> {
        self.unreadable.borrow().clone()
    }

    /// Records what could not be decoded (once per record) and returns the rest.
    fn keep_readable<T>(&self, loaded: Loaded<T>) -> Vec<T> {
        if !loaded.unreadable.is_empty() {
            let mut list = self.unreadable.borrow_mut();
            for u in loaded.unreadable {
                if !list.iter().any(|x| x.store == u.store && x.key == u.key) {
                    let mut status = self.status.borrow_mut();
                    let key = u.key.as_ref().map_or("?".into(), Value::to_string);
                    status.model_mut(&u.store).last_error = Some(format!(
                        "a stored \"{}\" record (key {key}) cannot be read and was set aside: {}",
                        u.store, u.message
                    ));
                    list.push(u);
                }
            }
            drop(list);
            self.notify();
        }
        loaded.items
    }

    pub fn status(&self, model: &str) -> Result<SyncStatus> {
        let engine = self.engine.borrow();
        engine.schema.model(model)?;
        Ok(self
            .status
            .borrow()
            .snapshot(model, engine.pending_count(model)))
    }

    /// Feeds `event` to the sync scheduler (see [`crate::core::scheduler`]) and returns what
    /// to do; status subscribers hear of a change of connectivity, loop or drain.
    pub fn schedule(&self, event: Event) -> Result<Vec<Command>> {
        let (commands, changed) = {
            let mut status = self.status.borrow_mut();
            let before = status.sched.clone();
            let commands = status.sched.on(event)?;
            let s = &status.sched;
            let changed = (s.online(), s.running(), s.draining())
                != (before.online(), before.running(), before.draining());
            (commands, changed)
        };
        if changed {
            self.notify();
        }
        Ok(commands)
    }

    /// Whether the background loop runs.
    pub fn loop_running(&self) -> bool {
        self.status.borrow().sched.running()
    }

    /// Whether the database can be used now (inside a turn): open, not failed, not closed.
    fn check_open(&self) -> Result<()> {
        match &*self.phase.borrow() {
            Phase::Open => Ok(()),
            Phase::Failed(e) => Err(e.clone()),
            Phase::Closed => Err(Error::Closed),
            Phase::Opening => Err(Error::storage("the database is not open yet")),
        }
    }

    /// For reads: waits for the database to open (reads take no turn otherwise).
    async fn ready(&self) -> Result<()> {
        if matches!(*self.phase.borrow(), Phase::Opening) {
            drop(self.queue.turn().await);
        }
        self.check_open()
    }

    /// Commits `batch` (with any waiting acks, in the same transaction) on the commit number
    /// memory reflects, then applies it in memory. Resolves `false`, having caught up with the
    /// change log, when storage moved on: the caller plans again. The caller holds a turn.
    async fn try_commit(&self, batch: &Batch) -> Result<bool> {
        self.check_open()?;
        if batch.is_empty() {
            return Ok(true);
        }
        let acks = std::mem::take(&mut *self.acks.borrow_mut());
        let result = if acks.is_empty() {
            self.storage.commit(batch, self.seq.get()).await
        } else {
            let mut all = acks.clone();
            all.merge(batch.clone());
            self.storage.commit(&all, self.seq.get()).await
        };
        match result {
            Ok(Committed::Done(seq)) => {
                self.seq.set(seq);
                self.engine.borrow_mut().apply(batch);
                let models: Vec<String> = batch.models().into_iter().map(String::from).collect();
                self.notify_rows(&models);
                Ok(true)
            }
            Ok(Committed::Stale) => {
                self.restore_acks(acks);
                self.catch_up_locked().await?;
                Ok(false)
            }
            Err(e) => {
                self.restore_acks(acks);
                Err(e)
            }
        }
    }

    /// Plans with `plan` and commits, planning again after catching up as long as storage moved
    /// on. `plan` returning `None` means there is nothing to do (any more). The caller holds a
    /// turn.
    async fn commit_planned<T>(
        &self,
        models: &[String],
        mut plan: impl FnMut(&Engine) -> Result<Option<(Batch, T)>>,
    ) -> Result<Option<T>> {
        for _ in 0..MAX_ATTEMPTS {
            self.ensure_loaded(models).await?;
            let Some((batch, out)) = plan(&self.engine.borrow())? else {
                return Ok(None);
            };
            if self.try_commit(&batch).await? {
                return Ok(Some(out));
            }
        }
        Err(too_busy())
    }

    /// Commits the acknowledged pushes that are still waiting (see `acks`). Resolves with whether
    /// there were any.
    pub fn flush(&self) -> impl Future<Output = Result<bool>> + '_ {
        self.flush_in(self.turn())
    }

    pub async fn flush_in(&self, turn: Turn) -> Result<bool> {
        let _turn = turn.await;
        self.flush_acks().await
    }

    /// [`Db::flush`] for a caller that holds a turn.
    async fn flush_acks(&self) -> Result<bool> {
        if self.acks.borrow().is_empty() {
            return Ok(false);
        }
        self.check_open()?;
        for _ in 0..MAX_ATTEMPTS {
            let acks = std::mem::take(&mut *self.acks.borrow_mut());
            match self.storage.commit(&acks, self.seq.get()).await {
                Ok(Committed::Done(seq)) => {
                    self.seq.set(seq);
                    return Ok(true);
                }
                Ok(Committed::Stale) => {
                    self.restore_acks(acks);
                    self.catch_up_locked().await?;
                }
                Err(e) => {
                    self.restore_acks(acks);
                    return Err(e);
                }
            }
        }
        Err(too_busy())
    }

    /// Puts acks whose commit failed back in front of any acknowledged since.
    fn restore_acks(&self, mut acks: Batch) {
        let later = std::mem::take(&mut *self.acks.borrow_mut());
        acks.merge(later);
        *self.acks.borrow_mut() = acks;
    }

    /// Reads what other tabs (or other databases on this storage) committed since this one last
    /// looked, and refreshes exactly those rows and outbox entries. Resolves with the models
    /// whose rows changed.
    pub fn catch_up(&self) -> impl Future<Output = Result<Vec<String>>> + '_ {
        self.catch_up_in(self.turn())
    }

    pub async fn catch_up_in(&self, turn: Turn) -> Result<Vec<String>> {
        let _turn = turn.await;
        self.check_open()?;
        self.catch_up_locked().await
    }

    /// [`Db::catch_up`] for a caller that holds a turn.
    async fn catch_up_locked(&self) -> Result<Vec<String>> {
        // A load still reading may hold rows older than the changes: let it finish first.
        let _loading = self.loading.lock().await;
        let changes = self.storage.changes_since(self.seq.get()).await?;
        let mut changed: Vec<String> = Vec::new();
        if !changes.complete {
            // Too far behind (or storage replaced): read everything again.
            let (entries, seq) = self.storage.load_outbox().await?;
            let entries = self.keep_readable(entries);
            let mut engine = self.engine.borrow_mut();
            engine.unload_all();
            engine.set_outbox(entries);
            changed.extend(engine.schema.models.keys().cloned());
            drop(engine);
            self.seq.set(seq);
        } else {
            for (store, keys) in &changes.stores {
                if store == OUTBOX_STORE {
                    match keys {
                        None => {
                            let (entries, _) = self.storage.load_outbox().await?;
                            let entries = self.keep_readable(entries);
                            self.engine.borrow_mut().set_outbox(entries);
                        }
                        Some(ids) => {
                            let ids: Vec<String> = ids
                                .iter()
                                .filter_map(|v| v.as_str().map(str::to_string))
                                .collect();
                            let entries = self.storage.load_outbox_entries(&ids).await?;
                            let entries = self.keep_readable(entries);
                            self.engine.borrow_mut().refresh_outbox(&ids, entries);
                        }
                    }
                    continue;
                }
                let Ok(def) = self.engine.borrow().schema.model(store).cloned() else {
                    continue; // a model this database does not know
                };
                changed.push(def.name.clone());
                if !self.engine.borrow().is_loaded(store) {
                    continue; // the next read goes to storage anyway
                }
                match keys {
                    None => self.engine.borrow_mut().unload(store),
                    Some(keys) => {
                        let mut keys: Vec<Key> = keys.iter().filter_map(Key::from_value).collect();
                        keys.sort();
                        keys.dedup();
                        let rows = self
                            .storage
                            .load_matching(&def, &def.primary_key, &keys)
                            .await?;
                        let rows = self.keep_readable(rows);
                        self.engine.borrow_mut().refresh(store, &keys, rows)?;
                    }
                }
            }
            self.seq.set(changes.seq);
        }
        // This tab's own acknowledged pushes are not in storage's view yet: keep them applied.
        let acks = self.acks.borrow().clone();
        if !acks.is_empty() {
            self.engine.borrow_mut().apply(&acks);
        }
        self.notify_rows(&changed);
        Ok(changed)
    }

    pub fn schema(&self) -> Schema {
        self.engine.borrow().schema.clone()
    }

    pub fn set_relations(
        &self,
        model: &str,
        relations: BTreeMap<String, RelationDef>,
    ) -> Result<()> {
        self.engine
            .borrow_mut()
            .schema
            .set_relations(model, relations)
    }

    /// Loads the named models into memory if they are not yet. One load at a time, so a read
    /// that arrives while a model loads waits for that load instead of starting another.
    async fn ensure_loaded(&self, models: &[String]) -> Result<()> {
        self.check_open()?;
        for m in models {
            if self.engine.borrow().is_loaded(m) {
                continue;
            }
            let _loading = self.loading.lock().await;
            self.check_open()?;
            if self.engine.borrow().is_loaded(m) {
                continue;
            }
            let def = self.engine.borrow().schema.model(m)?.clone();
            // Every load holds this lock, so nothing else loads the model meanwhile.
            let rows = self.storage.load(&def).await?;
            let rows = self.keep_readable(rows);
            self.engine.borrow_mut().load(m, rows)?;
        }
        Ok(())
    }

    /// Whether `model`'s rows are in memory (reads answer from memory alone).
    pub fn is_loaded(&self, model: &str) -> bool {
        self.engine.borrow().is_loaded(model)
    }

    /// Loads `model` into memory now. The bindings call it after a read that was answered from
    /// storage (see `read_narrow`), so later reads run from memory.
    pub async fn load(&self, model: &str) -> Result<()> {
        self.engine.borrow().schema.model(model)?;
        self.ready().await?;
        self.ensure_loaded(&[model.to_string()]).await
    }

    /// For a model not in memory and a filter naming primary keys or indexed values: only the
    /// rows that can match, read from storage. Storage holds every committed write, so these
    /// answer what the loaded model would. `None` when the model must be loaded instead.
    async fn read_narrow(&self, model: &str, filter: &Filter) -> Result<Option<Vec<Row>>> {
        if self.engine.borrow().is_loaded(model) {
            return Ok(None);
        }
        let Some((field, keys)) = self.engine.borrow().probe(model, filter)? else {
            return Ok(None);
        };
        let def = self.engine.borrow().schema.model(model)?.clone();
        let rows = self.storage.load_matching(&def, &field, &keys).await?;
        Ok(Some(self.keep_readable(rows)))
    }

    pub async fn select(&self, model: &str, query: Option<&Value>) -> Result<Vec<Value>> {
        let sel = Select::parse(&self.engine.borrow().schema, model, query)?;
        self.ready().await?;
        if sel.relations.is_empty() {
            if let Some(rows) = self.read_narrow(model, &sel.filter).await? {
                return self.engine.borrow().select_from(&sel, rows);
            }
        }
        let mut models = Vec::new();
        sel.models(&mut models);
        self.ensure_loaded(&models).await?;
        self.engine.borrow().select(&sel)
    }

    fn filter(&self, model: &str, where_: Option<&Value>) -> Result<Filter> {
        let engine = self.engine.borrow();
        Filter::parse(engine.schema.model(model)?, where_)
    }

    pub async fn count(&self, model: &str, where_: Option<&Value>) -> Result<usize> {
        let filter = self.filter(model, where_)?;
        self.ready().await?;
        if let Some(rows) = self.read_narrow(model, &filter).await? {
            return Ok(rows.iter().filter(|r| filter.matches(r)).count());
        }
        self.ensure_loaded(&[model.to_string()]).await?;
        self.engine.borrow().count(model, &filter)
    }

    pub async fn get(&self, model: &str, key: &Value) -> Result<Option<Value>> {
        let key = self.engine.borrow().get_key(model, key)?;
        let pk = self
            .engine
            .borrow()
            .schema
            .model(model)?
            .primary_key
            .clone();
        self.ready().await?;
        let filter = Filter::Field(pk, Op::Eq(key.to_value()));
        if let Some(rows) = self.read_narrow(model, &filter).await? {
            return Ok(rows.into_iter().next().map(Value::Object));
        }
        self.ensure_loaded(&[model.to_string()]).await?;
        self.engine.borrow().get(model, &key.to_value())
    }

    async fn validate(&self, model: &str, rows: Vec<Value>) -> Result<Vec<Value>> {
        let has_schema = self.engine.borrow().schema.model(model)?.has_schema;
        if !has_schema || rows.is_empty() {
            return Ok(rows);
        }
        let n = rows.len();
        let out = self.validator.validate(model, rows).await?;
        if out.len() != n {
            return Err(Error::storage(format!(
                "validator returned {} rows for {n}",
                out.len()
            )));
        }
        Ok(out)
    }

    pub fn insert<'a>(
        &'a self,
        model: &'a str,
        values: &'a Value,
        returning: Option<&'a Value>,
    ) -> impl Future<Output = Result<Vec<Value>>> + 'a {
        self.insert_in(self.turn(), model, values, returning)
    }

    pub async fn insert_in(
        &self,
        turn: Turn,
        model: &str,
        values: &Value,
        returning: Option<&Value>,
    ) -> Result<Vec<Value>> {
        let ret = self.engine.borrow().parse_returning(model, returning)?;
        let _turn = turn.await;
        let now = (self.env.now)();
        self.write_validated(
            &ret,
            model,
            |engine| engine.prepare_insert(model, values, now),
            |engine, rows| engine.build_insert(model, rows, now),
        )
        .await
    }

    pub fn update<'a>(
        &'a self,
        model: &'a str,
        where_: Option<&'a Value>,
        values: &'a Value,
        returning: Option<&'a Value>,
    ) -> impl Future<Output = Result<Vec<Value>>> + 'a {
        self.update_in(self.turn(), model, where_, values, returning)
    }

    pub async fn update_in(
        &self,
        turn: Turn,
        model: &str,
        where_: Option<&Value>,
        values: &Value,
        returning: Option<&Value>,
    ) -> Result<Vec<Value>> {
        let filter = self.required_filter(model, where_, "update")?;
        let ret = self.engine.borrow().parse_returning(model, returning)?;
        let _turn = turn.await;
        let now = (self.env.now)();
        self.write_validated(
            &ret,
            model,
            |engine| engine.plan_update(model, &filter, values),
            |engine, rows| engine.build_update(model, rows, values, now),
        )
        .await
    }

    /// A write whose rows go through the schema: `plan` proposes the rows, the validator checks
    /// them (asynchronously), `build` turns the validated rows into a batch. All of it again
    /// after catching up when storage moved on. The caller holds a turn.
    async fn write_validated(
        &self,
        ret: &Returning,
        model: &str,
        plan: impl Fn(&Engine) -> Result<Vec<Value>>,
        build: impl Fn(&Engine, Vec<Value>) -> Result<(Batch, Vec<Rc<Row>>)>,
    ) -> Result<Vec<Value>> {
        self.check_open()?;
        let models = Engine::returning_models(ret);
        for _ in 0..MAX_ATTEMPTS {
            self.ensure_loaded(&models).await?;
            let rows = plan(&self.engine.borrow())?;
            let rows = self.validate(model, rows).await?;
            let (batch, affected) = build(&self.engine.borrow(), rows)?;
            if self.try_commit(&batch).await? {
                return self.engine.borrow().returning(ret, &affected);
            }
        }
        Err(too_busy())
    }

    pub fn delete<'a>(
        &'a self,
        model: &'a str,
        where_: Option<&'a Value>,
        returning: Option<&'a Value>,
    ) -> impl Future<Output = Result<Vec<Value>>> + 'a {
        self.delete_in(self.turn(), model, where_, returning)
    }

    pub async fn delete_in(
        &self,
        turn: Turn,
        model: &str,
        where_: Option<&Value>,
        returning: Option<&Value>,
    ) -> Result<Vec<Value>> {
        let filter = self.required_filter(model, where_, "delete")?;
        let ret = self.engine.borrow().parse_returning(model, returning)?;
        let _turn = turn.await;
        self.check_open()?;
        let now = (self.env.now)();
        let rows = self
            .commit_planned(&Engine::returning_models(&ret), |engine| {
                let rows = engine.plan_delete(model, &filter)?;
                let batch = engine.build_delete(model, &rows, now)?;
                Ok(Some((batch, rows)))
            })
            .await?
            .unwrap_or_default();
        self.engine.borrow().returning(&ret, &rows)
    }

    /// `update` and `delete` need an explicit `where`: `where: {}` targets every row on purpose,
    /// a missing one is almost always a bug (e.g. `{ id: undefined }` serialized away).
    fn required_filter(&self, model: &str, where_: Option<&Value>, op: &str) -> Result<Filter> {
        match where_ {
            None | Some(Value::Null) => Err(Error::query(format!(
                "{op} on \"{model}\" needs a where; pass where: {{}} to {op} every row"
            ))),
            w => self.filter(model, w),
        }
    }

    /// Pending outbox entries, oldest first.
    pub fn pending(&self) -> Result<Vec<OutboxEntry>> {
        if self.closing.get() {
            return Err(Error::Closed);
        }
        Ok(self.engine.borrow().outbox().to_vec())
    }

    /// Closes the database: calls made from now on fail with [`Error::Closed`]; calls made
    /// before run first, then the waiting acks are committed (best effort: if that fails, those
    /// entries are only sent again) and the storage connection is released.
    pub async fn close(&self) {
        let turn = self.turn();
        if self.begin_close() {
            self.finish_close(turn).await;
        }
    }

    /// The synchronous half of [`Db::close`]: from now on calls are refused. Returns whether
    /// this was the first request to close.
    pub fn begin_close(&self) -> bool {
        !self.closing.replace(true)
    }

    /// Whether `close()` was called (calls made now are refused).
    pub fn is_closing(&self) -> bool {
        self.closing.get()
    }

    /// The rest of [`Db::close`], in `turn` (taken when close was called).
    pub async fn finish_close(&self, turn: Turn) {
        let _turn = turn.await;
        if matches!(*self.phase.borrow(), Phase::Open) {
            let _ = self.flush_acks().await;
        }
        *self.phase.borrow_mut() = Phase::Closed;
        self.storage.close();
    }

    /// Gives up on this database at once, without waiting for anything (its engine failed):
    /// every call from now on fails with [`Error::Closed`] and storage is released.
    pub fn abandon(&self) {
        self.closing.set(true);
        if let Ok(mut phase) = self.phase.try_borrow_mut() {
            *phase = Phase::Closed;
        }
        self.storage.close();
    }
}

fn too_busy() -> Error {
    Error::storage(format!(
        "gave up after {MAX_ATTEMPTS} attempts: other tabs kept changing the same data"
    ))
}

#[cfg(all(test, not(target_arch = "wasm32")))]
#[path = "db_tests.rs"]
mod tests;
