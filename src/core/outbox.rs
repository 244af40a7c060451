//! The outbox entry: one per local write of a model that pushes (`sync.mutation`). It is written
//! in the same storage transaction as the row change it describes.

use super::value::Obj;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Name of the outbox store (and of the outbox in change log records).
pub const OUTBOX_STORE: &str = "_pendingSync";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    Insert,
    Update,
    Delete,
}

impl Action {
    /// The action's name as the outbox stores it and messages print it.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Insert => "insert",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }
}

/// The state of one row before a write, so a rejected write can be rolled back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Before {
    pub key: Value,
    pub row: Option<Obj>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboxEntry {
    /// UUIDv7: sorts by creation time, and is the idempotency key the backend sees.
    pub mutation_id: String,
    pub model: String,
    pub action: Action,
    /// What the hook receives as `query`: `{ values }` for insert, `{ where, values }` for update
    /// (with `where` pinned to the affected keys), `{ where }` for delete.
    pub query: Value,
    pub created_at: f64,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub next_attempt_at: f64,
    /// Rows as they were before this write.
    pub before: Vec<Before>,
    /// The entry may have been handed to the backend (marked, durably, before any push; entries
    /// written while online are marked from the start). Only entries never sent may be merged
    /// with others (see [`crate::core::coalesce`]): the backend could drop a merged entry as a
    /// duplicate of its mutation id. Entries stored before this field existed count as sent.
    #[serde(default = "sent_by_default")]
    pub sent: bool,
    /// Set when the backend rejected the entry: it is then no longer pending (it is never pushed
    /// again and its change was rolled back) but stays stored, listed by `db.rejected()`, until the
    /// app acknowledges it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<Rejection>,
    /// Ids of later writes coalesced into this entry (see [`crate::core::coalesce`]): they are
    /// confirmed or rejected with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged: Vec<String>,
}

/// Why and when the backend rejected an entry, and the rows as the app saw them just before the
/// rollback (the write's effect, lost unless the app writes it again).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rejection {
    pub error: String,
    pub rejected_at: f64,
    pub rows: Vec<Obj>,
}

fn sent_by_default() -> bool {
    true
}

/// A new, unsent entry of model `t` for tests: `before` as `(key, row before the write)`.
#[cfg(all(test, not(target_arch = "wasm32")))]
pub fn test_entry(
    id: &str,
    action: Action,
    query: Value,
    before: Vec<(i64, Option<Value>)>,
) -> OutboxEntry {
    OutboxEntry {
        mutation_id: id.into(),
        model: "t".into(),
        action,
        query,
        created_at: 0.0,
        attempts: 0,
        last_error: None,
        next_attempt_at: 0.0,
        before: before
            .into_iter()
            .map(|(k, row)| Before {
                key: serde_json::json!(k),
                row: row.and_then(|v| v.as_object().cloned()),
            })
            .collect(),
        sent: false,
        rejected: None,
        merged: Vec::new(),
    }
}
