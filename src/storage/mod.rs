//! The storage port: the only thing the database needs from a persistence layer.
//!
//! Every method is async; implementations are single-threaded (the browser's event loop), so the
//! futures are not `Send`.
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

use crate::core::batch::{Batch, ChangeSet};
use crate::core::outbox::OutboxEntry;
use crate::core::queue::WriteQueue;
use crate::core::schema::{ModelDef, Schema};
use crate::core::value::{Key, Row};
use crate::error::Result;
use serde_json::Value;

pub mod memory;

#[cfg(target_arch = "wasm32")]
pub mod indexeddb;

pub use crate::core::outbox::OUTBOX_STORE;
pub use memory::MemoryStorage;

/// Name of the metadata store.
pub const META_STORE: &str = "_meta";
/// Name of the change log store (see the module docs).
pub const CHANGES_STORE: &str = "_changes";
/// Change log records kept; a database further behind than this re-reads everything.
pub const KEEP_CHANGES: u64 = 1_000;

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
