//! The sync half of the database: pushing the outbox, pulling from the backend, and the outbox
//! operations apps call by hand.

use super::Out;
use super::{Db, Remote, Storage, Validator};
use crate::core::batch::Batch;
use crate::core::coalesce;
use crate::core::db::PushOutcome;
use crate::core::limits::{too_deep_path, MAX_DEPTH};
use crate::core::outbox::OutboxEntry;
use crate::core::query::Select;
use crate::core::queue::Turn;
use crate::core::replica::pull_issue;
use crate::core::replica::Replica;
use crate::core::scheduler::{Command, Event};
use crate::core::value::Obj;
use crate::error::{Error, Issue, Result};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::HashSet;
use std::future::Future;

/// How many acknowledged pushes may wait before their outbox deletions are committed on their own.
const ACK_BATCH: usize = 64;

/// Pulled rows are validated and merged this many at a time, with a pause for the event loop in
/// between, so a big pull never blocks the page for long.
const PULL_CHUNK: usize = 1_000;

/// What one drain did.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct DrainReport {
    pub pushed: usize,
    pub retried: usize,
    pub rejected: usize,
    pub remaining: usize,
    /// A push hook said the backend needs credentials: pushes wait for `resume_sync`.
    pub needs_auth: bool,
}

/// Where a set of writes stands with the backend (see [`Db::confirmation`]).
#[derive(Debug, PartialEq)]
pub enum Confirmation {
    Pending,
    Synced,
    Rejected(Error),
}

impl<S: Storage, V: Validator, R: Remote> Db<S, V, R> {
    pub fn is_draining(&self) -> bool {
        self.status.borrow().sched.draining()
    }

    /// Whether `model` pushes its writes (it has a `sync.mutation` hook).
    pub fn can_push(&self, model: &str) -> bool {
        self.remote.can_push(model)
    }

    /// Whether a push waits for its hook right now.
    pub fn push_in_flight(&self) -> bool {
        !self.in_flight.borrow().is_empty()
    }

    /// When the outbox head may be pushed next; `None` when the outbox is empty or its head
    /// belongs to a model that cannot push.
    pub fn next_due(&self) -> Option<f64> {
        let replica = self.replica.borrow();
        let head = replica.outbox().first()?;
        self.remote
            .can_push(&head.model)
            .then_some(head.next_attempt_at)
    }

    /// Drains now, as a host without timers or other tabs does (tests, tools): see
    /// [`Db::drive`]. Resolves with what the drains did, or `None` if a drain was already
    /// running (it goes round once more) or none may run (offline).
    pub async fn drain(&self, force: bool) -> Result<Option<DrainReport>> {
        self.drive(Event::Request { force }).await
    }

    /// Feeds `event` to the scheduler and carries out what it says the way a host without
    /// timers or other tabs can: the lease is granted and released at once, drains run to their
    /// end, timers are left out. Resolves with what the drains it ran did, if any.
    pub async fn drive(&self, event: Event) -> Result<Option<DrainReport>> {
        self.ready().await?;
        let mut report: Option<DrainReport> = None;
        let mut events = std::collections::VecDeque::from([event]);
        while let Some(event) = events.pop_front() {
            for command in self.schedule(event)? {
                match command {
                    Command::RequestLease => events.push_back(Event::LeaseGranted),
                    Command::Release => events.push_back(Event::Released),
                    Command::Drain { force, catch_up } => {
                        let round = async {
                            if catch_up {
                                self.catch_up().await?;
                            }
                            self.drain_round(force).await
                        }
                        .await;
                        if round.as_ref().is_ok_and(|r| r.needs_auth) {
                            self.schedule(Event::Paused)?;
                        }
                        self.schedule(Event::Drained {
                            due: self.next_due(),
                        })?;
                        let round = round?;
                        let total = report.get_or_insert_with(DrainReport::default);
                        total.pushed += round.pushed;
                        total.retried += round.retried;
                        total.rejected += round.rejected;
                        total.remaining = round.remaining;
                        total.needs_auth |= round.needs_auth;
                    }
                    _ => {}
                }
            }
        }
        Ok(report)
    }

    /// Pushes due outbox entries in creation order until the queue is empty, an entry fails
    /// (it then waits for its backoff, and so does everything after it: a later write never
    /// overtakes an earlier one), or the network goes offline. `force` ignores backoff. The
    /// scheduler makes sure only one runs at a time.
    pub async fn drain_round(&self, force: bool) -> Result<DrainReport> {
        self.ready().await?;
        let mut report = DrainReport::default();
        let result = self.drain_loop(force, &mut report).await;
        self.in_flight.borrow_mut().clear();
        report.remaining = self.replica.borrow().outbox().len();
        self.notify();
        result.map(|()| report)
    }

    async fn drain_loop(&self, force: bool, report: &mut DrainReport) -> Result<()> {
        let mut tried = HashSet::new();
        loop {
            if !self.status.borrow().sched.online() || self.closing.get() {
                break;
            }
            let now = (self.env.now)();
            let entries = self.next_push(force, now, &tried);
            let Some(head) = entries.first() else { break };
            if !self.remote.can_push(&head.model) {
                // Written by a model that no longer pushes: nothing can deliver it.
                break;
            }
            if entries.iter().any(|e| !e.sent) {
                // Written while offline: merge what can be, and mark it all sent before any of
                // it leaves.
                self.prepare_push().await?;
                continue;
            }
            tried.extend(entries.iter().map(|e| e.mutation_id.clone()));
            *self.in_flight.borrow_mut() = entries.iter().map(|e| e.mutation_id.clone()).collect();
            let outcomes = if self.remote.batch_of(&head.model).is_some() {
                self.remote.push_batch(&entries).await
            } else {
                vec![self.remote.push(head).await]
            };
            self.in_flight.borrow_mut().clear();
            let _turn = self.queue.turn().await;
            self.check_open()?;
            let mut outcomes = outcomes.into_iter();
            for entry in &entries {
                let outcome = outcomes.next().unwrap_or_else(|| {
                    PushOutcome::Retry("the batch hook gave no answer for this entry".into())
                });
                if !self.settle(entry, outcome, report).await? {
                    // A failed entry waits for its backoff, and everything after it with it.
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// What to push next: the outbox head if it is due (`force` ignores backoff) and not tried
    /// in this round, with (for a model with a batch hook) the consecutive due entries of the
    /// same hook after it, up to the batch size.
    fn next_push(&self, force: bool, now: f64, tried: &HashSet<String>) -> Vec<OutboxEntry> {
        let replica = self.replica.borrow();
        let ready = |e: &&OutboxEntry| {
            (force || e.next_attempt_at <= now) && !tried.contains(&e.mutation_id)
        };
        let mut outbox = replica.outbox().iter();
        let Some(head) = outbox.next().filter(ready) else {
            return Vec::new();
        };
        let mut out = vec![head.clone()];
        if let Some((hook, size)) = self.remote.batch_of(&head.model) {
            out.extend(
                outbox
                    .take_while(|e| {
                        ready(e)
                            && self
                                .remote
                                .batch_of(&e.model)
                                .is_some_and(|(h, _)| h == hook)
                    })
                    .take(size.saturating_sub(1))
                    .cloned(),
            );
        }
        out
    }

    /// Before entries written while offline are pushed: merges pending writes of one row (see
    /// [`crate::core::coalesce`]), then marks every entry not yet sent as sent, in one commit.
    async fn prepare_push(&self) -> Result<()> {
        let in_flight = self.in_flight.borrow().clone();
        let _turn = self.queue.turn().await;
        self.commit_planned(&[], |replica| {
            let schema = &replica.schema;
            let enabled = |m: &str| schema.model(m).is_ok_and(|d| d.coalesce);
            let mut batch =
                coalesce::plan(replica.outbox(), &in_flight, enabled).unwrap_or_default();
            for e in &mut batch.outbox_put {
                e.sent = true;
            }
            for e in replica.outbox() {
                let handled = batch.outbox_delete.contains(&e.mutation_id)
                    || batch
                        .outbox_put
                        .iter()
                        .any(|p| p.mutation_id == e.mutation_id);
                if !e.sent && !handled {
                    batch.outbox_put.push(OutboxEntry {
                        sent: true,
                        ..e.clone()
                    });
                }
            }
            Ok((!batch.is_empty()).then_some((batch, ())))
        })
        .await?;
        self.notify();
        Ok(())
    }

    /// Applies one push's outcome (the caller holds a turn). Resolves `false` when the entry
    /// is to be retried later: the drain stops there.
    async fn settle(
        &self,
        entry: &OutboxEntry,
        outcome: PushOutcome,
        report: &mut DrainReport,
    ) -> Result<bool> {
        let id = entry.mutation_id.as_str();
        let now = (self.env.now)();
        match outcome {
            PushOutcome::Done => {
                if !self.has_entry(id) {
                    return Ok(true);
                }
                let batch = self.replica.borrow().plan_push_done(id)?;
                self.replica.borrow_mut().apply(&batch);
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
                let planned = self
                    .commit_planned(&[], |replica| {
                        if !replica.outbox().iter().any(|e| e.mutation_id == id) {
                            return Ok(None);
                        }
                        let batch = replica.plan_push_retry(id, &msg, now + delay)?;
                        Ok(Some((batch, ())))
                    })
                    .await?;
                if planned.is_some() {
                    self.set_error(&entry.model, msg, false);
                    report.retried += 1;
                    self.notify();
                }
                return Ok(false);
            }
            PushOutcome::NeedsAuth(msg) => {
                self.set_error(&entry.model, msg, false);
                report.needs_auth = true;
                return Ok(false);
            }
            PushOutcome::Reject(msg) => {
                let planned = self
                    .commit_planned(std::slice::from_ref(&entry.model), |replica| {
                        if !replica.outbox().iter().any(|e| e.mutation_id == id) {
                            return Ok(None);
                        }
                        let batch = replica.plan_rollback(id, Some((msg.clone(), now)))?;
                        Ok(Some((batch, ())))
                    })
                    .await?;
                if planned.is_some() {
                    let action = entry.action.as_str();
                    self.set_error(&entry.model, format!("{action} {id} rejected: {msg}"), true);
                    report.rejected += 1;
                }
            }
        }
        self.notify();
        Ok(true)
    }

    fn has_entry(&self, mutation_id: &str) -> bool {
        self.replica
            .borrow()
            .outbox()
            .iter()
            .any(|e| e.mutation_id == mutation_id)
    }

    fn set_error(&self, model: &str, msg: String, rejection: bool) {
        let mut status = self.status.borrow_mut();
        let m = status.model_mut(model);
        m.last_error = Some(msg);
        m.last_error_is_rejection = rejection;
    }

    /// Pulls `sync.query(query)` and merges it (see [`crate::core::replica::Replica::plan_pull`]);
    /// resolves with the local rows for `query` afterwards. Invalid remote rows are skipped and
    /// reported in the model's `lastError`.
    pub async fn pull(&self, model: &str, query: Option<&Value>) -> Result<Vec<Out>> {
        let sel = Select::parse(&self.replica.borrow().schema, model, query)?;
        self.ready().await?;
        self.status.borrow_mut().model_mut(model).pulling += 1;
        self.notify();
        let watch = PullWatch::begin(&self.replica);
        let result = self.pull_inner(model, query, &sel, watch.mark).await;
        drop(watch);
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

    /// Merges the pulled rows a chunk at a time, each chunk in its own turn, so writes the app
    /// makes meanwhile are not held up and the page stays responsive; then (for an unpaginated
    /// query) deletes what the backend no longer has.
    async fn pull_inner(
        &self,
        model: &str,
        query: Option<&Value>,
        sel: &Select,
        mark: usize,
    ) -> Result<Option<String>> {
        let pulled = self.remote.pull(model, query).await.map_err(Error::Sync)?;
        let has_schema = self.replica.borrow().schema.model(model)?.has_schema;
        let refused: HashSet<String> = pulled
            .issues
            .iter()
            .filter_map(|i| i.path.first().cloned())
            .collect();
        let mut skipped: Vec<Issue> = pulled.issues;
        let mut seen = HashSet::new();
        let mut rest = pulled
            .rows
            .into_iter()
            .enumerate()
            .filter(|(i, v)| !(v.is_null() && refused.contains(&i.to_string())))
            .peekable();
        let mut first = true;
        while rest.peek().is_some() {
            if !first {
                (self.env.pause)().await;
            }
            first = false;
            let chunk: Vec<(usize, Value)> = rest.by_ref().take(PULL_CHUNK).collect();
            let rows = self
                .checked_pull_rows(model, has_schema, chunk, &mut skipped)
                .await;
            let _turn = self.queue.turn().await;
            let plan = self
                .commit_planned(&[model.to_string()], |replica| {
                    let mut resolve = |local: Option<&Obj>, remote: &Obj, base: Option<&Obj>| {
                        self.remote
                            .resolve(model, local, remote, base)
                            .map_err(Error::Sync)
                    };
                    let settled = replica.settled_since(model, mark);
                    let (batch, plan) =
                        replica.plan_pull(model, rows.clone(), &settled, &mut resolve)?;
                    Ok(Some((batch, plan)))
                })
                .await?;
            if let Some(plan) = plan {
                seen.extend(plan.seen);
                skipped.extend(plan.skipped);
            }
        }
        if sel.limit.is_none() && sel.offset == 0 {
            let _turn = self.queue.turn().await;
            self.commit_planned(&[model.to_string()], |replica| {
                let settled = replica.settled_since(model, mark);
                let batch = replica.plan_pull_deletions(model, &sel.filter, &seen, &settled)?;
                Ok(Some((batch, ())))
            })
            .await?;
        }
        // In the order of the backend's answer, whoever found the problem.
        skipped.sort_by_key(|i| i.path.first().and_then(|p| p.parse::<usize>().ok()));
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

    /// The pulled rows that are objects within the nesting limit and pass the schema, with
    /// their index in the pull; the others go to `skipped`.
    async fn checked_pull_rows(
        &self,
        model: &str,
        has_schema: bool,
        chunk: Vec<(usize, Value)>,
        skipped: &mut Vec<Issue>,
    ) -> Vec<(usize, Obj)> {
        let mut shaped: Vec<(usize, Value)> = Vec::with_capacity(chunk.len());
        for (i, v) in chunk {
            if let Some(path) = too_deep_path(&v, MAX_DEPTH) {
                skipped.push(Issue {
                    path: std::iter::once(i.to_string()).chain(path).collect(),
                    message: format!("nested deeper than {MAX_DEPTH} levels"),
                });
            } else if v.is_object() {
                shaped.push((i, v));
            } else {
                skipped.push(Issue {
                    path: vec![i.to_string()],
                    message: format!("not an object: {v}"),
                });
            }
        }
        let checked: Vec<(usize, Result<Value>)> = if has_schema {
            let (index, values): (Vec<usize>, Vec<Value>) = shaped.into_iter().unzip();
            let results = self.validator.validate_each(model, values).await;
            index.into_iter().zip(results).collect()
        } else {
            shaped.into_iter().map(|(i, v)| (i, Ok(v))).collect()
        };
        let mut rows = Vec::with_capacity(checked.len());
        for (i, r) in checked {
            match r {
                Ok(Value::Object(o)) => rows.push((i, o)),
                Ok(other) => skipped.push(Issue {
                    path: vec![i.to_string()],
                    message: format!("the schema must produce an object, got {other}"),
                }),
                Err(e) => skipped.push(pull_issue(i, e)),
            }
        }
        rows
    }

    /// Where the writes `ids` stand (`None`: every pending one, i.e. nothing to wait for once the
    /// outbox is empty): still pending, all acknowledged, or one of them rejected (the oldest).
    /// An id the outbox does not know counts as acknowledged (it may have been long ago).
    pub fn confirmation(&self, ids: Option<&[String]>) -> Confirmation {
        let replica = self.replica.borrow();
        let Some(ids) = ids else {
            return if replica.outbox().is_empty() {
                Confirmation::Synced
            } else {
                Confirmation::Pending
            };
        };
        // An entry stands for its own write and the writes coalesced into it.
        let wanted: HashSet<&str> = ids.iter().map(String::as_str).collect();
        let holds = |e: &&OutboxEntry| {
            wanted.contains(e.mutation_id.as_str())
                || e.merged.iter().any(|m| wanted.contains(m.as_str()))
        };
        if replica.outbox().iter().any(|e| holds(&e)) {
            return Confirmation::Pending;
        }
        match replica.rejected().iter().find(holds) {
            Some(e) => Confirmation::Rejected(Error::Rejected {
                mutation_id: e.mutation_id.clone(),
                message: format!(
                    "the backend rejected {} {} on \"{}\": {}",
                    e.action.as_str(),
                    e.mutation_id,
                    e.model,
                    e.rejected.as_ref().map_or("", |r| r.error.as_str())
                ),
            }),
            None => Confirmation::Synced,
        }
    }

    /// The pending writes' ids, oldest first (what `whenSynced()` without ids waits for).
    pub fn pending_ids(&self) -> Vec<String> {
        let replica = self.replica.borrow();
        replica
            .outbox()
            .iter()
            .map(|e| e.mutation_id.clone())
            .collect()
    }

    /// Writes the backend rejected that the app has not acknowledged, oldest first.
    pub fn rejected(&self) -> Result<Vec<OutboxEntry>> {
        self.check_open()?;
        Ok(self.replica.borrow().rejected().to_vec())
    }

    /// Forgets a rejected write (`db.acknowledgeRejected(id)`); `false` when there is none.
    pub async fn acknowledge_rejected_in(&self, turn: Turn, mutation_id: &str) -> Result<bool> {
        let _turn = turn.await;
        self.check_open()?;
        self.ready().await?;
        let done = self
            .commit_planned(&[], |replica| {
                if !replica
                    .rejected()
                    .iter()
                    .any(|e| e.mutation_id == mutation_id)
                {
                    return Ok(None);
                }
                let batch = Batch {
                    outbox_delete: vec![mutation_id.to_string()],
                    ..Batch::default()
                };
                Ok(Some((batch, ())))
            })
            .await?;
        if done.is_some() {
            self.notify();
        }
        Ok(done.is_some())
    }

    /// Drops a pending write and rolls its local change back, as if the backend had rejected it.
    /// Refused while that write's push is in flight (the backend may be applying it): try again
    /// once it settled.
    pub fn discard_pending<'a>(
        &'a self,
        mutation_id: &'a str,
    ) -> impl Future<Output = Result<()>> + 'a {
        self.discard_pending_in(self.turn(), mutation_id)
    }

    pub async fn discard_pending_in(&self, turn: Turn, mutation_id: &str) -> Result<()> {
        let _turn = turn.await;
        self.check_open()?;
        if self.in_flight.borrow().iter().any(|id| id == mutation_id) {
            return Err(Error::Sync(format!(
                "mutation {mutation_id} is being pushed right now; discard it after the push settled (if it is still pending then)"
            )));
        }
        let model = self
            .replica
            .borrow()
            .outbox()
            .iter()
            .find(|e| e.mutation_id == mutation_id)
            .map(|e| e.model.clone());
        let model =
            model.ok_or_else(|| Error::Sync(format!("no pending mutation {mutation_id}")))?;
        self.commit_planned(&[model], |replica| {
            if !replica
                .outbox()
                .iter()
                .any(|e| e.mutation_id == mutation_id)
            {
                return Err(Error::Sync(format!("no pending mutation {mutation_id}")));
            }
            Ok(Some((replica.plan_rollback(mutation_id, None)?, ())))
        })
        .await?;
        Ok(())
    }

    /// Makes a pending write due now (its backoff is cleared); the next drain pushes it.
    pub fn retry_pending<'a>(
        &'a self,
        mutation_id: &'a str,
    ) -> impl Future<Output = Result<String>> + 'a {
        self.retry_pending_in(self.turn(), mutation_id)
    }

    /// Resolves with the entry's model.
    pub async fn retry_pending_in(&self, turn: Turn, mutation_id: &str) -> Result<String> {
        let _turn = turn.await;
        self.check_open()?;
        let now = (self.env.now)();
        let model = self
            .commit_planned(&[], |replica| {
                let model = replica
                    .outbox()
                    .iter()
                    .find(|e| e.mutation_id == mutation_id)
                    .map(|e| e.model.clone())
                    .unwrap_or_default();
                Ok(Some((replica.plan_due_now(mutation_id, now)?, model)))
            })
            .await?;
        Ok(model.unwrap_or_default())
    }
}

/// Marks a pull as out from just before it asks the backend until its answer is merged (or it
/// fails, or is dropped): meanwhile the replica notes the rows whose pending writes settle.
struct PullWatch<'a> {
    replica: &'a RefCell<Replica>,
    mark: usize,
}

impl<'a> PullWatch<'a> {
    fn begin(replica: &'a RefCell<Replica>) -> Self {
        let mark = replica.borrow_mut().pull_begin();
        PullWatch { replica, mark }
    }
}

impl Drop for PullWatch<'_> {
    fn drop(&mut self) {
        if let Ok(mut r) = self.replica.try_borrow_mut() {
            r.pull_end();
        }
    }
}
