//! The ports of the core: everything it needs from outside, as traits and plain types. Storage
//! (memory or IndexedDB), the app's schema ([`Validator`]), the app's backend ([`Remote`]), and
//! time, randomness and yielding ([`Env`]). Implementations live in `crate::storage` and (wasm32)
//! `crate::browser` / `crate::bindings`; tests bring their own.
//!
//! ## Commits are checked against storage
//!
//! Several tabs (or several databases in one tab) write to one storage, each planning its writes
//! against the rows it holds in memory. So that nobody overwrites a change it has not seen, every
//! commit carries the *commit sequence number* its planner last saw, and storage keeps a change
//! log: one record per commit, numbered 1, 2, 3, ..., listing the keys it changed per store. A
//! commit whose base is not the latest number is refused with [`Committed::Stale`] and writes
//! nothing; the database then reads the log since its base ([`Storage::changes_since`]),
//! refreshes exactly those rows and outbox entries, plans again and retries. In IndexedDB the
//! check, the write and the new log record are one readwrite transaction, so two tabs can never
//! both commit on the same base.

use super::batch::{Batch, ChangeSet};
use super::outbox::OutboxEntry;
use super::queue::WriteQueue;
use super::schema::{ModelDef, Schema};
use super::value::{Key, Obj, Row};
use crate::error::{Error, Issue, Result};
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;

// ---------------------------------------------------------------- storage

/// A stored record that could not be decoded: left where it is, skipped, and reported.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Unreadable {
    pub store: String,
    /// Its key, when storage could tell it.
    pub key: Option<Value>,
    pub message: String,
}

/// Records read from storage: what could be decoded, and what could not.
#[derive(Debug)]
pub struct Loaded<T> {
    pub items: Vec<T>,
    pub unreadable: Vec<Unreadable>,
}

impl<T> Loaded<T> {
    pub fn all(items: Vec<T>) -> Self {
        Loaded {
            items,
            unreadable: Vec::new(),
        }
    }
}

/// How a commit ended when it did not fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Committed {
    /// Written; the storage's commit sequence number is now this.
    Done(u64),
    /// Nothing written: someone committed after the base the batch was planned on.
    Stale,
}

/// The change log since some commit number.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Changes {
    /// The latest commit number.
    pub seq: u64,
    /// False when the log no longer reaches back to the asked number (or storage was replaced):
    /// everything must be read again.
    pub complete: bool,
    /// Per store, the keys changed (merged over the records), `None` for "all of it".
    pub stores: ChangeSet,
}

impl Changes {
    /// Folds one log record into the merged set.
    pub fn add(&mut self, record: ChangeSet) {
        for (store, keys) in record {
            match self.stores.iter_mut().find(|(s, _)| *s == store) {
                None => self.stores.push((store, keys)),
                Some((_, have)) => match (have.as_mut(), keys) {
                    (Some(h), Some(k)) => h.extend(k),
                    _ => *have = None,
                },
            }
        }
    }
}

// Single-threaded by design (wasm32 in a browser): no `Send` bounds on the returned futures.
#[allow(async_fn_in_trait)]
pub trait Storage {
    /// The write queue of this storage: every database opened on it in this tab shares it, so
    /// their writes run in call order (see [`crate::core::queue`]).
    fn queue(&self) -> WriteQueue;
    /// Makes sure every model's store (and declared index) exists.
    async fn open(&self, schema: &Schema) -> Result<()>;
    /// Every row of one model.
    async fn load(&self, model: &ModelDef) -> Result<Loaded<Row>>;
    /// The rows of one model whose `field` (the primary key or a declared index) holds one of
    /// `keys`, so a read that names keys need not load the whole model. No default on purpose:
    /// a wrapper that forgot to forward it would silently read everything.
    async fn load_matching(
        &self,
        model: &ModelDef,
        field: &str,
        keys: &[Key],
    ) -> Result<Loaded<Row>>;
    /// Every outbox entry, oldest first, with the commit number they are current for.
    async fn load_outbox(&self) -> Result<(Loaded<OutboxEntry>, u64)>;
    /// The outbox entries with these mutation ids that exist.
    async fn load_outbox_entries(&self, ids: &[String]) -> Result<Loaded<OutboxEntry>>;
    /// The change log after commit `seq`.
    async fn changes_since(&self, seq: u64) -> Result<Changes>;
    /// Applies the whole batch atomically if the latest commit is still `base`: all of it or
    /// none of it. An [`crate::core::batch::RowOp::Insert`] of a key that exists fails with
    /// [`crate::Error::Constraint`].
    async fn commit(&self, batch: &Batch, base: u64) -> Result<Committed>;
    /// Releases the connection. The storage may be opened again.
    fn close(&self);
}

// ---------------------------------------------------------------- schema, backend, environment

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
    /// The backend needs credentials first (`needsAuth: true`): keep the entry as it is (no
    /// attempt counted, no backoff) and push nothing until the app resumes.
    NeedsAuth(String),
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
    /// The batch hook `model`'s entries go to (`sync.mutations`): `(hook, batch size)`.
    /// Consecutive entries of one hook are pushed together by [`Remote::push_batch`].
    fn batch_of(&self, _model: &str) -> Option<(String, usize)> {
        None
    }
    /// Pushes consecutive entries at once; answers per entry, in order (an answer missing at the
    /// end counts as a failure of that entry).
    async fn push_batch(&self, entries: &[OutboxEntry]) -> Vec<PushOutcome> {
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let outcome = self.push(e).await;
            let stop = matches!(outcome, PushOutcome::Retry(_));
            out.push(outcome);
            if stop {
                break;
            }
        }
        out
    }
    /// The model's conflict function: the new base of a row with pending writes, from the local
    /// row (pending writes applied), the backend's and the confirmed base.
    fn resolve(
        &self,
        model: &str,
        _local: Option<&Obj>,
        _remote: &Obj,
        _base: Option<&Obj>,
    ) -> std::result::Result<Obj, String> {
        Err(format!("model \"{model}\" has no conflict function"))
    }
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
