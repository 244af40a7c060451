//! The async database: the [`Engine`] plus a storage port and a validator port.
//!
//! Writes are serialized by a lock, so a write's plan is never invalidated by another write of the
//! same database before it commits. A write changes memory only after storage committed it; if
//! validation or the commit fails, nothing changed anywhere.

use super::batch::Batch;
use super::engine::Engine;
use super::outbox::OutboxEntry;
use super::query::{Filter, Op, Select};
use super::retry::Backoff;
use super::schema::{ModelDef, RelationDef, Schema};
use super::status::{EngineEvent, StatusBoard, SyncStatus};
use super::value::{Key, Row};
use crate::error::{Error, Issue, Result};
use crate::storage::Storage;
use futures::lock::Mutex;
use serde_json::Value;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

/// Validates rows against their model's schema. Returns the validated output rows (defaults and
/// coercions applied), or [`Error::Validation`] listing every issue.
#[allow(async_fn_in_trait)]
pub trait Validator {
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

/// The app's backend, reached through each model's `sync` hooks.
#[allow(async_fn_in_trait)]
pub trait Remote {
    /// Whether `model` has a `sync.mutation` hook.
    fn can_push(&self, model: &str) -> bool;
    async fn push(&self, entry: &OutboxEntry) -> PushOutcome;
    /// Rows the backend returns for `query` (`sync.query`).
    async fn pull(
        &self,
        model: &str,
        query: Option<&Value>,
    ) -> std::result::Result<Vec<Value>, String>;
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
    ) -> std::result::Result<Vec<Value>, String> {
        Err(format!("model \"{model}\" has no sync.query hook"))
    }
}

/// Time and randomness, injected so the core stays deterministic under test.
#[derive(Clone, Copy)]
pub struct Env {
    pub now: fn() -> f64,
    pub random: fn() -> f64,
}

/// How many acknowledged pushes may wait before their outbox deletions are committed on their own.
const ACK_BATCH: usize = 64;

/// What one drain did.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct DrainReport {
    pub pushed: usize,
    pub retried: usize,
    pub rejected: usize,
    pub remaining: usize,
}

/// Accepts every row unchanged.
pub struct NoValidation;

impl Validator for NoValidation {
    async fn validate(&self, _model: &str, rows: Vec<Value>) -> Result<Vec<Value>> {
        Ok(rows)
    }
}

pub struct Db<S, V, R = NoRemote> {
    storage: S,
    validator: V,
    remote: R,
    engine: RefCell<Engine>,
    writes: Mutex<()>,
    /// Held while a model loads into memory.
    loading: Mutex<()>,
    env: Env,
    backoff: Backoff,
    status: RefCell<StatusBoard>,
    listener: RefCell<Option<Box<dyn Fn()>>>,
    closed: Cell<bool>,
    /// Acknowledged pushes: already gone from the in-memory outbox, not yet from storage. They
    /// ride along with the next commit, or are committed by [`Db::flush`] (at the latest when
    /// [`ACK_BATCH`] of them wait). Losing them (a crash) only re-sends those entries with their
    /// mutation ids, which the backend deduplicates.
    acks: RefCell<Batch>,
}

impl<S: Storage, V: Validator, R: Remote> Db<S, V, R> {
    pub async fn open(
        storage: S,
        validator: V,
        remote: R,
        models: Vec<ModelDef>,
        env: Env,
    ) -> Result<Self> {
        let schema = Schema::new(models)?;
        storage.open(&schema).await?;
        let mut engine = Engine::new(schema);
        engine.set_outbox(storage.load_outbox().await?);
        Ok(Db {
            storage,
            validator,
            remote,
            engine: RefCell::new(engine),
            writes: Mutex::new(()),
            loading: Mutex::new(()),
            env,
            backoff: Backoff::default(),
            status: RefCell::new(StatusBoard::default()),
            listener: RefCell::new(None),
            closed: Cell::new(false),
            acks: RefCell::default(),
        })
    }

    /// Called (with no arguments) after every change of any status snapshot or of stored data.
    pub fn set_listener(&self, f: Option<Box<dyn Fn()>>) {
        *self.listener.borrow_mut() = f;
    }

    fn notify(&self) {
        if let Some(f) = self.listener.borrow().as_ref() {
            f();
        }
    }

    pub fn status(&self, model: &str) -> Result<SyncStatus> {
        let engine = self.engine.borrow();
        engine.schema.model(model)?;
        Ok(self
            .status
            .borrow()
            .snapshot(model, engine.pending_count(model)))
    }

    fn engine_event(&self, event: EngineEvent) -> Result<()> {
        self.status.borrow_mut().apply(event)?;
        self.notify();
        Ok(())
    }

    pub fn start(&self) -> Result<()> {
        self.engine_event(EngineEvent::Start)
    }

    pub fn stop(&self) -> Result<()> {
        self.engine_event(EngineEvent::Stop)
    }

    pub fn set_online(&self, online: bool) {
        if self.status.borrow().online != online {
            self.status.borrow_mut().online = online;
            self.notify();
        }
    }

    pub fn is_draining(&self) -> bool {
        self.status.borrow().engine.draining()
    }

    /// Pushes due outbox entries in creation order until the queue is empty, an entry fails
    /// (it then waits for its backoff, and so does everything after it: a later write never
    /// overtakes an earlier one), or the network goes offline. `force` ignores backoff.
    /// Returns `None` when another drain is already running.
    pub async fn drain(&self, force: bool) -> Result<Option<DrainReport>> {
        self.check_open()?;
        if self.is_draining() {
            return Ok(None);
        }
        self.engine_event(EngineEvent::DrainBegin)?;
        let result = self.drain_inner(force).await;
        self.engine_event(EngineEvent::DrainEnd)?;
        result.map(Some)
    }

    async fn drain_inner(&self, force: bool) -> Result<DrainReport> {
        let mut report = DrainReport::default();
        self.drain_loop(force, &mut report).await?;
        report.remaining = self.engine.borrow().outbox().len();
        Ok(report)
    }

    /// Commits the acknowledged pushes that are still waiting (see `acks`). Resolves with whether
    /// there were any.
    pub async fn flush(&self) -> Result<bool> {
        let _guard = self.writes.lock().await;
        self.flush_acks().await
    }

    /// [`Db::flush`] for a caller that holds the write lock.
    async fn flush_acks(&self) -> Result<bool> {
        if self.acks.borrow().is_empty() {
            return Ok(false);
        }
        self.check_open()?;
        let acks = std::mem::take(&mut *self.acks.borrow_mut());
        if let Err(e) = self.storage.commit(&acks).await {
            self.restore_acks(acks);
            return Err(e);
        }
        Ok(true)
    }

    /// Puts acks whose commit failed back in front of any acknowledged since.
    fn restore_acks(&self, mut acks: Batch) {
        let later = std::mem::take(&mut *self.acks.borrow_mut());
        acks.merge(later);
        *self.acks.borrow_mut() = acks;
    }

    async fn drain_loop(&self, force: bool, report: &mut DrainReport) -> Result<()> {
        let mut tried = std::collections::HashSet::new();
        loop {
            if !self.status.borrow().online || self.closed.get() {
                break;
            }
            let head = self.engine.borrow().outbox().first().cloned();
            let Some(entry) = head else { break };
            let now = (self.env.now)();
            if (!force && entry.next_attempt_at > now) || !tried.insert(entry.mutation_id.clone()) {
                break;
            }
            if !self.remote.can_push(&entry.model) {
                // Written by a model that no longer pushes: nothing can deliver it.
                break;
            }
            let outcome = self.remote.push(&entry).await;
            let _guard = self.writes.lock().await;
            if !self
                .engine
                .borrow()
                .outbox()
                .iter()
                .any(|e| e.mutation_id == entry.mutation_id)
            {
                continue; // discarded while the push was in flight
            }
            let now = (self.env.now)();
            match outcome {
                PushOutcome::Done => {
                    let batch = self.engine.borrow().plan_push_done(&entry.mutation_id)?;
                    self.engine.borrow_mut().apply(&batch);
                    self.acks.borrow_mut().merge(batch);
                    if self.acks.borrow().outbox_delete.len() >= ACK_BATCH {
                        self.flush_acks().await?;
                    }
                    let mut status = self.status.borrow_mut();
                    let m = status.model_mut(&entry.model);
                    m.last_synced_at = Some(now);
                    if !m.last_error_is_rejection {
                        m.last_error = None;
                    }
                    report.pushed += 1;
                }
                PushOutcome::Retry(msg) => {
                    let delay = self.backoff.delay(entry.attempts + 1, (self.env.random)());
                    let batch = self.engine.borrow().plan_push_retry(
                        &entry.mutation_id,
                        &msg,
                        now + delay,
                    )?;
                    self.commit(&batch).await?;
                    self.set_error(&entry.model, msg, false);
                    report.retried += 1;
                    self.notify();
                    break;
                }
                PushOutcome::Reject(msg) => {
                    self.ensure_loaded(std::slice::from_ref(&entry.model))
                        .await?;
                    let batch = self.engine.borrow().plan_rollback(&entry.mutation_id)?;
                    self.commit(&batch).await?;
                    let action = format!("{:?}", entry.action).to_lowercase();
                    self.set_error(
                        &entry.model,
                        format!("{action} {} rejected: {msg}", entry.mutation_id),
                        true,
                    );
                    report.rejected += 1;
                }
            }
            self.notify();
        }
        Ok(())
    }

    fn set_error(&self, model: &str, msg: String, rejection: bool) {
        let mut status = self.status.borrow_mut();
        let m = status.model_mut(model);
        m.last_error = Some(msg);
        m.last_error_is_rejection = rejection;
    }

    /// Pulls `sync.query(query)` and merges it (see [`Engine::plan_pull`]); resolves with the
    /// local rows for `query` afterwards. Invalid remote rows are skipped and reported in the
    /// model's `lastError`.
    pub async fn pull(&self, model: &str, query: Option<&Value>) -> Result<Vec<Value>> {
        let sel = Select::parse(&self.engine.borrow().schema, model, query)?;
        self.status.borrow_mut().model_mut(model).pulling += 1;
        self.notify();
        let result = self.pull_inner(model, query, &sel).await;
        {
            let mut status = self.status.borrow_mut();
            let m = status.model_mut(model);
            m.pulling -= 1;
            m.last_error_is_rejection = false;
            match &result {
                Ok(skipped) => {
                    m.last_synced_at = Some((self.env.now)());
                    m.last_error = skipped.clone();
                }
                Err(e) => m.last_error = Some(e.to_string()),
            }
        }
        self.notify();
        result?;
        self.select(model, query).await
    }

    async fn pull_inner(
        &self,
        model: &str,
        query: Option<&Value>,
        sel: &Select,
    ) -> Result<Option<String>> {
        let remote = self.remote.pull(model, query).await.map_err(Error::Sync)?;
        let has_schema = self.engine.borrow().schema.model(model)?.has_schema;
        let checked = if has_schema {
            self.validator.validate_each(model, remote).await
        } else {
            remote.into_iter().map(Ok).collect()
        };
        let mut rows: Vec<Row> = Vec::with_capacity(checked.len());
        let mut skipped: Vec<Issue> = Vec::new();
        for (i, r) in checked.into_iter().enumerate() {
            match r {
                Ok(Value::Object(o)) => rows.push(o),
                Ok(other) => skipped.push(Issue {
                    path: vec![i.to_string()],
                    message: format!("not an object: {other}"),
                }),
                Err(Error::Validation { issues, .. }) => {
                    skipped.extend(issues.into_iter().map(|mut is| {
                        is.path.insert(0, i.to_string());
                        is
                    }))
                }
                Err(e) => return Err(e),
            }
        }
        let unpaginated = sel.limit.is_none() && sel.offset == 0;
        let _guard = self.writes.lock().await;
        self.ensure_loaded(&[model.to_string()]).await?;
        let batch =
            self.engine
                .borrow()
                .plan_pull(model, rows, unpaginated.then_some(&sel.filter))?;
        self.commit(&batch).await?;
        Ok((!skipped.is_empty()).then(|| {
            let first = &skipped[0];
            format!(
                "pull skipped invalid rows from the backend ({} issues; first: {}: {})",
                skipped.len(),
                first.path.join("."),
                first.message
            )
        }))
    }

    /// Drops a pending write and rolls its local change back, as if the backend had rejected it.
    pub async fn discard_pending(&self, mutation_id: &str) -> Result<()> {
        let _guard = self.writes.lock().await;
        let model = self
            .engine
            .borrow()
            .outbox()
            .iter()
            .find(|e| e.mutation_id == mutation_id)
            .map(|e| e.model.clone());
        let model =
            model.ok_or_else(|| Error::Sync(format!("no pending mutation {mutation_id}")))?;
        self.ensure_loaded(&[model]).await?;
        let batch = self.engine.borrow().plan_rollback(mutation_id)?;
        self.commit(&batch).await
    }

    /// Makes a pending write due now (its backoff is cleared); the next drain pushes it.
    pub async fn retry_pending(&self, mutation_id: &str) -> Result<()> {
        let _guard = self.writes.lock().await;
        let batch = self
            .engine
            .borrow()
            .plan_due_now(mutation_id, (self.env.now)())?;
        self.commit(&batch).await
    }

    /// Another tab changed rows or the outbox. Models in `unload` are forgotten (read again when
    /// next needed); for each `(model, keys)` in `refresh`, just those rows are read again from
    /// storage (a row that is gone there is dropped). The outbox is always re-read, and the rows of
    /// entries this tab did not know yet are read again too, so rows are never behind the pending
    /// writes the status shows (the announcements of those writes may still be on their way).
    pub async fn reload(&self, unload: &[String], refresh: &[(String, Vec<Value>)]) -> Result<()> {
        let _guard = self.writes.lock().await;
        // This tab's own acknowledged pushes go to storage first, or re-reading would revive them.
        self.flush_acks().await?;
        // A load still reading may hold rows older than the change: let it finish first.
        let _loading = self.loading.lock().await;
        for m in unload {
            self.engine.borrow_mut().unload(m);
        }
        let entries = self.storage.load_outbox().await?;
        // (model, keys) to read again; models are few, so a list.
        let mut wanted: Vec<(String, Vec<Key>)> = Vec::new();
        let mut want = |model: &str, keys: &mut dyn Iterator<Item = Key>| match wanted
            .iter_mut()
            .find(|(m, _)| m == model)
        {
            Some((_, have)) => have.extend(keys),
            None => wanted.push((model.to_string(), keys.collect())),
        };
        for (m, keys) in refresh {
            want(m, &mut keys.iter().filter_map(Key::from_value));
        }
        {
            // Both lists are sorted by mutation id.
            let engine = self.engine.borrow();
            let known = engine.outbox();
            for e in &entries {
                let id = &e.mutation_id;
                if known.binary_search_by(|k| k.mutation_id.cmp(id)).is_err() {
                    want(
                        &e.model,
                        &mut e.before.iter().filter_map(|b| Key::from_value(&b.key)),
                    );
                }
            }
        }
        for (m, mut keys) in wanted {
            if !self.engine.borrow().is_loaded(&m) {
                continue; // the next read goes to storage anyway
            }
            keys.sort();
            keys.dedup();
            let def = self.engine.borrow().schema.model(&m)?.clone();
            let rows = self
                .storage
                .load_matching(&def, &def.primary_key, &keys)
                .await?;
            self.engine.borrow_mut().refresh(&m, &keys, rows)?;
        }
        self.engine.borrow_mut().set_outbox(entries);
        self.notify();
        Ok(())
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.get() {
            Err(Error::Closed)
        } else {
            Ok(())
        }
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
        self.ensure_loaded(&[model.to_string()]).await
    }

    /// For a model not in memory and a filter naming primary keys or indexed values: only the
    /// rows that can match, read from storage. Storage holds every committed write, so these
    /// answer what the loaded model would. `None` when the model must be loaded instead.
    async fn read_narrow(&self, model: &str, filter: &Filter) -> Result<Option<Vec<Row>>> {
        self.check_open()?;
        if self.engine.borrow().is_loaded(model) {
            return Ok(None);
        }
        let Some((field, keys)) = self.engine.borrow().probe(model, filter)? else {
            return Ok(None);
        };
        let def = self.engine.borrow().schema.model(model)?.clone();
        self.storage
            .load_matching(&def, &field, &keys)
            .await
            .map(Some)
    }

    pub async fn select(&self, model: &str, query: Option<&Value>) -> Result<Vec<Value>> {
        let sel = Select::parse(&self.engine.borrow().schema, model, query)?;
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

    pub async fn insert(
        &self,
        model: &str,
        values: &Value,
        returning: Option<&Value>,
    ) -> Result<Vec<Value>> {
        let ret = self.engine.borrow().parse_returning(model, returning)?;
        let _guard = self.writes.lock().await;
        self.ensure_loaded(&Engine::returning_models(&ret)).await?;
        let rows = self.engine.borrow().prepare_insert(model, values)?;
        let rows = self.validate(model, rows).await?;
        let (batch, affected) = self
            .engine
            .borrow()
            .build_insert(model, rows, (self.env.now)())?;
        self.commit(&batch).await?;
        self.engine.borrow().returning(&ret, &affected)
    }

    pub async fn update(
        &self,
        model: &str,
        where_: Option<&Value>,
        values: &Value,
        returning: Option<&Value>,
    ) -> Result<Vec<Value>> {
        let filter = self.required_filter(model, where_, "update")?;
        let ret = self.engine.borrow().parse_returning(model, returning)?;
        let _guard = self.writes.lock().await;
        self.ensure_loaded(&Engine::returning_models(&ret)).await?;
        let rows = self.engine.borrow().plan_update(model, &filter, values)?;
        let rows = self.validate(model, rows).await?;
        let (batch, affected) =
            self.engine
                .borrow()
                .build_update(model, rows, values, (self.env.now)())?;
        self.commit(&batch).await?;
        self.engine.borrow().returning(&ret, &affected)
    }

    pub async fn delete(
        &self,
        model: &str,
        where_: Option<&Value>,
        returning: Option<&Value>,
    ) -> Result<Vec<Value>> {
        let filter = self.required_filter(model, where_, "delete")?;
        let ret = self.engine.borrow().parse_returning(model, returning)?;
        let _guard = self.writes.lock().await;
        self.ensure_loaded(&Engine::returning_models(&ret)).await?;
        let rows = self.engine.borrow().plan_delete(model, &filter)?;
        let batch = self
            .engine
            .borrow()
            .build_delete(model, &rows, (self.env.now)())?;
        self.commit(&batch).await?;
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

    /// Commits `batch` (with any waiting acks, in the same transaction), then applies it in
    /// memory. The caller holds the write lock.
    async fn commit(&self, batch: &Batch) -> Result<()> {
        self.check_open()?;
        if batch.is_empty() {
            return Ok(());
        }
        let acks = std::mem::take(&mut *self.acks.borrow_mut());
        let result = if acks.is_empty() {
            self.storage.commit(batch).await
        } else {
            let mut all = acks.clone();
            all.merge(batch.clone());
            self.storage.commit(&all).await
        };
        if let Err(e) = result {
            self.restore_acks(acks);
            return Err(e);
        }
        self.engine.borrow_mut().apply(batch);
        self.notify();
        Ok(())
    }

    /// Pending outbox entries, oldest first.
    pub fn pending(&self) -> Result<Vec<OutboxEntry>> {
        self.check_open()?;
        Ok(self.engine.borrow().outbox().to_vec())
    }

    /// Closes the database: calls made from now on fail with [`Error::Closed`]; the waiting
    /// acks are committed (best effort: if that fails, those entries are only sent again) and
    /// the storage connection is released once the write in progress, if any, has finished.
    pub async fn close(&self) {
        if self.closed.replace(true) {
            return;
        }
        let _guard = self.writes.lock().await;
        let acks = std::mem::take(&mut *self.acks.borrow_mut());
        if !acks.is_empty() {
            let _ = self.storage.commit(&acks).await;
        }
        self.storage.close();
    }
}
