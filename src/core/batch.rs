//! A write batch: everything one user-visible write changes, committed atomically by the storage.

use super::outbox::OutboxEntry;
use super::value::{Key, Row};
use std::rc::Rc;

#[derive(Clone, Debug)]
pub enum RowOp {
    Put {
        model: String,
        key: Key,
        row: Rc<Row>,
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
            let (RowOp::Put { model, .. } | RowOp::Delete { model, .. }) = op;
            if !out.contains(&model.as_str()) {
                out.push(model);
            }
        }
        out
    }
}
