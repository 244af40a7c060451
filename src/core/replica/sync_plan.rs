//! Sync planning: what a push's outcome, a rollback or a pull changes.

use super::*;
use crate::core::batch::{Batch, RowOp};
use crate::core::conflict::{self, Conflict, Decision};
use crate::core::outbox::{OutboxEntry, Rejection};
use crate::core::query::Filter;
use crate::core::sync;
use crate::core::value::{Key, Obj, Row};
use crate::error::{Error, Issue, Result};
use std::collections::{BTreeMap, HashSet};

impl Replica {
    /// Pending entries that touched row `key` of `model`, oldest first.
    /// The pending entries of `model` by the rows they touched, each list oldest first. Built
    /// once per plan, so planning over an entry of n rows costs O(n log n), not O(n²).
    fn touch_index(&self, model: &str) -> BTreeMap<Key, Vec<&OutboxEntry>> {
        let mut index: BTreeMap<Key, Vec<&OutboxEntry>> = BTreeMap::new();
        for e in self.outbox.iter().filter(|e| e.model == model) {
            for b in &e.before {
                if let Some(key) = Key::from_value(&b.key) {
                    let list = index.entry(key).or_default();
                    if !list.last().is_some_and(|last| std::ptr::eq(*last, e)) {
                        list.push(e);
                    }
                }
            }
        }
        index
    }

    fn entry(&self, mutation_id: &str) -> Result<&OutboxEntry> {
        self.outbox
            .iter()
            .find(|e| e.mutation_id == mutation_id)
            .ok_or_else(|| Error::Sync(format!("no pending mutation {mutation_id}")))
    }

    /// A push succeeded: the entry leaves the queue, and for every row it touched the confirmed
    /// base advances (its effect applied to its base) and passes to the next pending entry there.
    pub fn plan_push_done(&self, mutation_id: &str) -> Result<Batch> {
        let done = self.entry(mutation_id)?;
        let def = self.schema.model(&done.model)?;
        let mut batch = Batch {
            outbox_delete: vec![mutation_id.to_string()],
            ..Batch::default()
        };
        let index = self.touch_index(&def.name);
        for before in &done.before {
            let Some(key) = Key::from_value(&before.key) else {
                continue;
            };
            let touching = index.get(&key).map_or(&[][..], Vec::as_slice);
            if touching.first().map(|e| e.mutation_id.as_str()) != Some(mutation_id) {
                continue; // an older entry on this row still holds the base
            }
            if let Some(next) = touching.get(1) {
                let confirmed = sync::step(before.row.clone(), &sync::effect(done, def, &key));
                rebase_in(&mut batch.outbox_put, next, &key, confirmed);
            }
        }
        Ok(batch)
    }

    /// A push failed and will be retried at `next_attempt_at`.
    pub fn plan_push_retry(
        &self,
        mutation_id: &str,
        error: &str,
        next_attempt_at: f64,
    ) -> Result<Batch> {
        let mut e = self.entry(mutation_id)?.clone();
        e.attempts += 1;
        e.last_error = Some(error.to_string());
        e.next_attempt_at = next_attempt_at;
        Ok(Batch {
            outbox_put: vec![e],
            ..Batch::default()
        })
    }

    /// Makes an entry due now (`db.retryPending(id)`).
    pub fn plan_due_now(&self, mutation_id: &str, now: f64) -> Result<Batch> {
        let mut e = self.entry(mutation_id)?.clone();
        e.next_attempt_at = now;
        Ok(Batch {
            outbox_put: vec![e],
            ..Batch::default()
        })
    }

    /// The entry is rejected (`rejection`: the backend's error, and when) or discarded: it leaves
    /// the queue, and every row it touched is rebuilt from its confirmed base with the surviving
    /// pending entries replayed (see [`crate::core::sync`]). A rejected entry stays stored, marked
    /// with the error and the rows as they were before the rollback, until acknowledged. The
    /// model's table must be loaded.
    pub fn plan_rollback(
        &self,
        mutation_id: &str,
        rejection: Option<(String, f64)>,
    ) -> Result<Batch> {
        let rejected = self.entry(mutation_id)?;
        let def = self.schema.model(&rejected.model)?;
        let mut batch = Batch::default();
        let mut kept = None;
        if let Some((error, rejected_at)) = rejection {
            let rows = rejected
                .before
                .iter()
                .filter_map(|b| Key::from_value(&b.key))
                .filter_map(|k| self.table(&def.name).ok()?.get(&k).map(Row::to_obj))
                .collect();
            let mut e = rejected.clone();
            e.rejected = Some(Rejection {
                error,
                rejected_at,
                rows,
            });
            kept = Some(e);
        } else {
            batch.outbox_delete.push(mutation_id.to_string());
        }
        let mut rebased: Vec<OutboxEntry> = Vec::new();
        let index = self.touch_index(&def.name);
        for before in &rejected.before {
            let Some(key) = Key::from_value(&before.key) else {
                continue;
            };
            let touching = index.get(&key).map_or(&[][..], Vec::as_slice);
            let base = match touching.first() {
                Some(first) if first.mutation_id == mutation_id => before.row.clone(),
                _ => sync::base_of(touching, &key).unwrap_or(None),
            };
            let survivors: Vec<&OutboxEntry> = touching
                .iter()
                .copied()
                .filter(|e| e.mutation_id != mutation_id)
                .collect();
            let row = sync::replay(base.clone(), &survivors, def, &key);
            // The rejected entry held the base: hand it to the next entry on this row.
            if touching
                .first()
                .is_some_and(|e| e.mutation_id == mutation_id)
            {
                if let Some(next) = survivors.first() {
                    rebase_in(&mut rebased, next, &key, base);
                }
            }
            batch.rows.push(row_op(&def.name, key, row));
        }
        batch.outbox_put = rebased;
        batch.outbox_put.extend(kept);
        Ok(batch)
    }

    /// Merges rows pulled from the backend, per the model's conflict strategy (see
    /// [`crate::core::conflict`]): a row taken as a new base gets the pending writes replayed on
    /// top. `resolve(local, remote, base)` is the app's conflict function. A row without a usable
    /// primary key, or whose conflict function failed, is skipped and reported (its index in
    /// `remote`, why). Rows in `settled` (see [`Replica::settled_since`]) keep their local state
    /// and pending writes: the answer may predate writes acknowledged or made elsewhere since.
    pub fn plan_pull(
        &self,
        model: &str,
        remote: Vec<(usize, Obj)>,
        settled: &Settled,
        resolve: &mut crate::core::conflict::Resolver,
    ) -> Result<(Batch, PullPlan)> {
        let def = self.schema.model(model)?;
        let table = self.table(model)?;
        let mut batch = Batch::default();
        let mut plan = PullPlan::default();
        let index = self.touch_index(model);
        let pk = Name::new(&def.primary_key);
        for (i, obj) in remote {
            let row = Row::from_obj(&obj);
            let key = match row_key_by(def, &pk, &row) {
                Ok(k) => k,
                Err(e) => {
                    plan.skipped.push(pull_issue(i, e));
                    continue;
                }
            };
            plan.seen.push(key.clone());
            let touching = index.get(&key).map_or(&[][..], Vec::as_slice);
            if settled.contains(&key) {
                // Written (and acknowledged, or changed by another tab) after the backend
                // answered: the answer is older than what is here, pending writes included.
                continue;
            }
            let pending = !touching.is_empty();
            let stored = table.get(&key);
            let cheap_take = !pending && !matches!(def.conflict, Conflict::Lww(_));
            let local = (!cheap_take).then(|| stored.map(Row::to_obj)).flatten();
            let base = if pending {
                sync::base_of(touching, &key).unwrap_or(None)
            } else {
                local.clone()
            };
            let decision = if cheap_take {
                Decision::TakeRemote
            } else {
                conflict::decide(&def.conflict, pending, local.as_ref(), &obj, base.as_ref())
            };
            let new_base = match decision {
                Decision::KeepLocal => continue,
                Decision::TakeRemote => obj,
                Decision::Ask => match resolve(local.as_ref(), &obj, base.as_ref())
                    .and_then(|r| resolved_row(def, &pk, &key, r))
                {
                    Ok(r) => r,
                    Err(e) => {
                        plan.skipped.push(pull_issue(i, e));
                        continue;
                    }
                },
            };
            if !pending {
                let row = Row::from_obj(&new_base);
                if stored.is_none_or(|r| *r != row) {
                    batch.rows.push(RowOp::Put {
                        model: model.to_string(),
                        key,
                        row,
                    });
                }
                continue;
            }
            let local = sync::replay(Some(new_base.clone()), touching, def, &key);
            rebase_in(&mut batch.outbox_put, touching[0], &key, Some(new_base));
            batch.rows.push(row_op(model, key, local));
        }
        Ok((batch, plan))
    }

    /// After an unpaginated pull: deletes the local rows matching `filter` that the backend did
    /// not return (`seen`), that have no pending writes, and whose writes were not acknowledged
    /// while the pull was out (`settled`).
    pub fn plan_pull_deletions(
        &self,
        model: &str,
        filter: &Filter,
        seen: &HashSet<Key>,
        settled: &Settled,
    ) -> Result<Batch> {
        let def = self.schema.model(model)?;
        let index = self.touch_index(model);
        let mut batch = Batch::default();
        for r in self.table(model)?.iter().filter(|r| filter.matches(r)) {
            let key = row_key(def, r)?;
            if !seen.contains(&key) && !index.contains_key(&key) && !settled.contains(&key) {
                batch.rows.push(RowOp::Delete {
                    model: model.to_string(),
                    key,
                });
            }
        }
        Ok(batch)
    }
}

/// What a pull's merge saw: the keys the backend returned, and the rows it skipped.
#[derive(Debug, Default)]
pub struct PullPlan {
    pub seen: Vec<Key>,
    pub skipped: Vec<Issue>,
}

/// A validation error about pulled row `i`, its paths prefixed with the row's index.
pub fn pull_issue(i: usize, e: Error) -> Issue {
    match e {
        Error::Validation { mut issues, .. } if !issues.is_empty() => {
            let mut first = issues.swap_remove(0);
            first.path.insert(0, i.to_string());
            first
        }
        other => Issue {
            path: vec![i.to_string()],
            message: other.to_string(),
        },
    }
}

/// Checks the conflict function's row: it must keep the row's primary key.
fn resolved_row(def: &ModelDef, pk: &Name, key: &Key, row: Obj) -> Result<Obj> {
    match row_key_by(def, pk, &Row::from_obj(&row)) {
        Ok(k) if &k == key => Ok(row),
        _ => Err(Error::Sync(format!(
            "the conflict function of \"{}\" returned a row without the pulled row's {} ({key})",
            def.name, def.primary_key
        ))),
    }
}

/// Sets `key`'s base in the copy of `entry` kept in `updated` (adding the copy if needed), so an
/// entry touched for several rows is written once with every change.
fn rebase_in(updated: &mut Vec<OutboxEntry>, entry: &OutboxEntry, key: &Key, base: Option<Obj>) {
    let i = match updated
        .iter()
        .position(|e| e.mutation_id == entry.mutation_id)
    {
        Some(i) => i,
        None => {
            updated.push(entry.clone());
            updated.len() - 1
        }
    };
    sync::set_base(&mut updated[i], key, base);
}
