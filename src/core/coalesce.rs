//! Coalescing: pending writes of one row that are not being pushed are merged before they are
//! pushed, so the backend gets one request where the app made several.
//!
//! Two consecutive pending entries of one row, A then B (entries of other rows may sit between
//! them), each touching that row alone, combine by this table; the result takes A's place in the
//! queue (its mutation id, creation time, attempts and before-image), so the row's state stays
//! `replay(base, entries)` (see [`crate::core::sync`]):
//!
//! | A        | B        | sent                                          |
//! |----------|----------|-----------------------------------------------|
//! | insert   | update   | one insert: A's row with B's values merged in |
//! | insert   | delete   | nothing (the row never reaches the backend); a |
//! |          |          | delete if a pull found the row there already  |
//! | update   | update   | one update: A's values, then B's              |
//! | update   | delete   | one delete                                    |
//! | delete   | insert   | both, in order (a delete then a new row)      |
//! | anything else       | both, in order                                |
//!
//! Only entries never handed to the backend merge: each is marked `sent`, durably, before its
//! first push (entries written while online from the start), because a push whose answer was
//! lost (a crash, a timeout) may still have reached the backend, which would then drop the merged
//! entry as a duplicate of its mutation id. An entry marked sent is never merged, nor is anything
//! into it; an entry touching several rows is left alone and no entry of those
//! rows is merged across it. A model opts out with `coalesce: false`.
//!
//! Merging moves B's change to A's place: another row's entry written between them (a row that
//! B's new values refer to, say) then reaches the backend after it. Models whose backend checks
//! such references between rows keep `coalesce: false`.

use super::batch::Batch;
use super::outbox::{Action, OutboxEntry};
use super::value::Key;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// How two pending entries of one row combine.
#[derive(Debug, PartialEq)]
pub enum Merge {
    /// Sent as they are.
    Keep,
    /// One entry, in A's place.
    Into(Box<OutboxEntry>),
    /// Neither is sent.
    Drop,
}

fn values(entry: &OutboxEntry) -> Option<&Map<String, Value>> {
    match entry.action {
        Action::Insert => entry
            .query
            .get("values")?
            .as_array()
            .filter(|rows| rows.len() == 1)?
            .first()?
            .as_object(),
        Action::Update => entry.query.get("values")?.as_object(),
        Action::Delete => None,
    }
}

/// The table in the module docs, for A then B, both pending, both touching one row alone.
pub fn merge(a: &OutboxEntry, b: &OutboxEntry) -> Merge {
    let mut merged = a.clone();
    merged.merged.push(b.mutation_id.clone());
    merged.merged.extend(b.merged.iter().cloned());
    match (a.action, b.action) {
        (Action::Insert, Action::Update) | (Action::Update, Action::Update) => {
            let (Some(old), Some(new)) = (values(a), values(b)) else {
                return Merge::Keep;
            };
            let mut fields = old.clone();
            for (k, v) in new {
                fields.insert(k.clone(), v.clone());
            }
            let fields = Value::Object(fields);
            match a.action {
                Action::Insert => merged.query["values"] = Value::Array(vec![fields]),
                _ => merged.query["values"] = fields,
            }
            Merge::Into(Box::new(merged))
        }
        // The backend never had the row (a pull would have made it the base): nothing to send.
        (Action::Insert, Action::Delete) if a.before.first().is_some_and(|b| b.row.is_none()) => {
            Merge::Drop
        }
        (Action::Insert | Action::Update, Action::Delete) => {
            merged.action = Action::Delete;
            merged.query = b.query.clone();
            Merge::Into(Box::new(merged))
        }
        _ => Merge::Keep,
    }
}

/// The row a single-row entry touches.
fn row_of(entry: &OutboxEntry) -> Option<(String, Key)> {
    match entry.before.as_slice() {
        [only] => Some((entry.model.clone(), Key::from_value(&only.key)?)),
        _ => None,
    }
}

/// What coalescing `outbox` (oldest first) changes, as a batch: entries merged away deleted,
/// merged entries put; `None` when nothing merges. `in_flight` entries are left alone, and so is
/// every entry of a model for which `enabled` says no.
pub fn plan(
    outbox: &[OutboxEntry],
    in_flight: &[String],
    enabled: impl Fn(&str) -> bool,
) -> Option<Batch> {
    let mut out: Vec<Option<OutboxEntry>> = Vec::with_capacity(outbox.len());
    // Per row: where its latest entry sits in `out`, if a later one may merge into it.
    let mut last: HashMap<(String, Key), usize> = HashMap::new();
    // Per row whose oldest entries were dropped: the base the next entry must carry.
    let mut base: HashMap<(String, Key), Option<super::value::Obj>> = HashMap::new();
    let mut changed = false;
    for e in outbox {
        let busy = e.sent || in_flight.contains(&e.mutation_id) || !enabled(&e.model);
        let Some(row) = row_of(e) else {
            // Several rows: a barrier for each of them.
            for b in &e.before {
                if let Some(k) = Key::from_value(&b.key) {
                    last.remove(&(e.model.clone(), k));
                }
            }
            out.push(Some(e.clone()));
            continue;
        };
        let mut e = e.clone();
        if let Some(row_base) = base.remove(&row) {
            e.before[0].row = row_base;
            changed = true;
        }
        if !busy {
            if let Some(&i) = last.get(&row) {
                let a = out[i]
                    .as_ref()
                    .expect("an entry merged away is not in `last`");
                match merge(a, &e) {
                    Merge::Keep => {}
                    Merge::Into(m) => {
                        out[i] = Some(*m);
                        changed = true;
                        continue;
                    }
                    Merge::Drop => {
                        base.insert(row.clone(), a.before[0].row.clone());
                        out[i] = None;
                        last.remove(&row);
                        changed = true;
                        continue;
                    }
                }
            }
        }
        out.push(Some(e));
        if busy {
            last.remove(&row);
        } else {
            last.insert(row, out.len() - 1);
        }
    }
    if !changed {
        return None;
    }
    let kept: HashMap<&str, &OutboxEntry> = out
        .iter()
        .flatten()
        .map(|e| (e.mutation_id.as_str(), e))
        .collect();
    let mut batch = Batch::default();
    for e in outbox {
        match kept.get(e.mutation_id.as_str()) {
            None => batch.outbox_delete.push(e.mutation_id.clone()),
            Some(k) if *k != e => batch.outbox_put.push((*k).clone()),
            Some(_) => {}
        }
    }
    (!batch.is_empty()).then_some(batch)
}

#[cfg(all(test, not(target_arch = "wasm32")))]
#[path = "coalesce_tests.rs"]
mod tests;
