//! The async database: the [`Replica`] plus a storage port, a validator port and a remote port.
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

mod catch_up;
mod drain;
mod live;
mod read;
mod write;

pub use drain::{Confirmation, DrainReport};
pub use write::Written;

use super::batch::Batch;
use super::live::LiveSet;
use super::outbox::{OutboxEntry, OUTBOX_STORE};
use super::ports::{Committed, Loaded, Storage, Unreadable};
pub use super::ports::{
    Env, NoRemote, NoValidation, Pause, Pulled, PushOutcome, Remote, Validator,
};
use super::query::{Filter, Op, Select};
use super::queue::{Turn, WriteQueue};
pub use super::relations::Out;
use super::replica::{Replica, Returning};
use super::retry::Backoff;
use super::row::{Name, Val};
use super::scheduler::{Command, Event};
use super::schema::{ModelDef, RelationDef, Schema};
use super::status::{StatusBoard, SyncStatus};
use super::value::{Key, Row};
use crate::error::{Error, Result};
use futures::lock::Mutex;
use serde_json::Value;
use std::cell::{Cell, RefCell};

use std::future::Future;

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
    replica: RefCell<Replica>,
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
    /// The mutation ids whose push is in flight.
    in_flight: RefCell<Vec<String>>,
    /// Stored records that could not be decoded (left in storage, skipped in memory).
    unreadable: RefCell<Vec<Unreadable>>,
    /// Open live queries.
    live: RefCell<LiveSet>,
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
        let mut replica = Replica::new(schema);
        replica.set_random(env.random_bytes);
        Ok(Db {
            queue: storage.queue(),
            storage,
            validator,
            remote,
            replica: RefCell::new(replica),
            loading: Mutex::new(()),
            env,
            backoff: Backoff::default(),
            status: RefCell::new(StatusBoard::default()),
            listener: RefCell::new(None),
            phase: RefCell::new(Phase::Opening),
            closing: Cell::new(false),
            seq: Cell::new(0),
            acks: RefCell::default(),
            in_flight: RefCell::new(Vec::new()),
            unreadable: RefCell::new(Vec::new()),
            live: RefCell::default(),
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
        let schema = self.replica.borrow().schema.clone();
        self.storage.open(&schema).await?;
        let (entries, seq) = self.storage.load_outbox().await?;
        let entries = self.keep_readable(entries);
        self.replica.borrow_mut().set_outbox(entries);
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
        if self.live.borrow().is_empty() {
            // Nobody follows row changes: forget them.
            self.replica.borrow_mut().take_touched();
        }
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
        let replica = self.replica.borrow();
        replica.schema.model(model)?;
        Ok(self
            .status
            .borrow()
            .snapshot(model, replica.pending_count(model)))
    }

    /// Feeds `event` to the sync scheduler (see [`crate::core::scheduler`]) and returns what
    /// to do; status subscribers hear of a change of connectivity, loop or drain.
    pub fn schedule(&self, event: Event) -> Result<Vec<Command>> {
        let (commands, changed) = {
            let mut status = self.status.borrow_mut();
            let before = status.sched.clone();
            let commands = status.sched.on(event)?;
            let s = &status.sched;
            let changed = (s.online(), s.running(), s.draining(), s.paused())
                != (
                    before.online(),
                    before.running(),
                    before.draining(),
                    before.paused(),
                );
            (commands, changed)
        };
        let online = self.status.borrow().sched.online();
        self.replica.borrow_mut().set_online(online);
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
                self.replica.borrow_mut().apply(batch);
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
        mut plan: impl FnMut(&Replica) -> Result<Option<(Batch, T)>>,
    ) -> Result<Option<T>> {
        for _ in 0..MAX_ATTEMPTS {
            self.ensure_loaded(models).await?;
            let Some((batch, out)) = plan(&self.replica.borrow())? else {
                return Ok(None);
            };
            if self.try_commit(&batch).await? {
                return Ok(Some(out));
            }
        }
        Err(too_busy())
    }

    /// Pending outbox entries, oldest first.
    pub fn pending(&self) -> Result<Vec<OutboxEntry>> {
        if self.closing.get() {
            return Err(Error::Closed);
        }
        Ok(self.replica.borrow().outbox().to_vec())
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
        self.live.borrow_mut().clear();
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
#[path = "../db_tests.rs"]
mod tests;

#[cfg(all(test, not(target_arch = "wasm32")))]
#[path = "../db_sync_tests.rs"]
mod sync_tests;
