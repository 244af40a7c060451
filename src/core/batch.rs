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
