//! A write batch: everything one user-visible write changes, committed atomically by the storage.

use super::outbox::{OutboxEntry, OUTBOX_STORE};
use super::value::{Key, Row};
use serde_json::Value;

/// A change log record lists at most this many keys per store; a bigger change is recorded as
/// "this whole store changed".
pub const MAX_LOGGED_KEYS: usize = 1_000;

/// What one commit changed, per store: the keys (primary keys, or mutation ids for the outbox),
/// or `None` when there were too many to list. Other tabs read it back to refresh just those.
pub type ChangeSet = Vec<(String, Option<Vec<Value>>)>;

#[derive(Clone, Debug)]
pub enum RowOp {
    /// A new row: the commit fails with a constraint error if storage already holds the key,
    /// even when this tab has not seen that row yet.
    Insert {
        model: String,
        key: Key,
        row: Row,
    },
    /// Writes the row whatever storage holds (updates, pulls, rollbacks).
    Put {
        model: String,
        key: Key,
        row: Row,
    },
    Delete {
        model: String,
        key: Key,
    },
}

#[derive(Clone, Debug, Default)]
pub struct Batch {
    pub rows: Vec<RowOp>,
    pub outbox_put: Vec<OutboxEntry>,
    pub outbox_delete: Vec<String>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.outbox_put.is_empty() && self.outbox_delete.is_empty()
    }

    /// Folds a later outbox-only batch into this one: a later put of an entry replaces an earlier
    /// one, and a delete cancels any put of the same entry.
    pub fn merge(&mut self, later: Batch) {
        self.rows.extend(later.rows);
        for id in later.outbox_delete {
            self.outbox_put.retain(|e| e.mutation_id != id);
            self.outbox_delete.push(id);
        }
        for e in later.outbox_put {
            self.outbox_put.retain(|x| x.mutation_id != e.mutation_id);
            self.outbox_put.push(e);
        }
    }

    /// Names of the model stores this batch touches.
    pub fn models(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for op in &self.rows {
            let model = op.model();
            if !out.contains(&model) {
                out.push(model);
            }
        }
        out
    }

    /// Whether the batch changes the outbox.
    pub fn touches_outbox(&self) -> bool {
        !self.outbox_put.is_empty() || !self.outbox_delete.is_empty()
    }

    /// The change log record of this batch (see [`ChangeSet`]).
    pub fn change_set(&self) -> ChangeSet {
        let mut out: ChangeSet = Vec::new();
        let mut add = |store: &str, key: Value| {
            let i = match out.iter().position(|(s, _)| s == store) {
                Some(i) => i,
                None => {
                    out.push((store.to_string(), Some(Vec::new())));
                    out.len() - 1
                }
            };
            if let Some(keys) = &mut out[i].1 {
                if keys.len() >= MAX_LOGGED_KEYS {
                    out[i].1 = None;
                } else {
                    keys.push(key);
                }
            }
        };
        for op in &self.rows {
            add(op.model(), op.key().to_value());
        }
        for e in &self.outbox_put {
            add(OUTBOX_STORE, Value::String(e.mutation_id.clone()));
        }
        for id in &self.outbox_delete {
            add(OUTBOX_STORE, Value::String(id.clone()));
        }
        out
    }
}

impl RowOp {
    pub fn model(&self) -> &str {
        match self {
            RowOp::Insert { model, .. }
            | RowOp::Put { model, .. }
            | RowOp::Delete { model, .. } => model,
        }
    }

    pub fn key(&self) -> &Key {
        match self {
            RowOp::Insert { key, .. } | RowOp::Put { key, .. } | RowOp::Delete { key, .. } => key,
        }
    }

    /// The row written, if any.
    pub fn row(&self) -> Option<&Row> {
        match self {
            RowOp::Insert { row, .. } | RowOp::Put { row, .. } => Some(row),
            RowOp::Delete { .. } => None,
        }
    }
}
