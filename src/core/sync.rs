//! Rules for reconciling local rows with the outbox and with the backend.
//!
//! Every pending outbox entry records, per row it touched, the row's state before the write
//! ([`Before`]) and its effect. The local state of a row is always
//! `replay(confirmed base, pending entries touching it, in creation order)`, where one step of
//! the replay is this truth table:
//!
//! | current row | entry's effect   | result                  |
//! |-------------|------------------|-------------------------|
//! | any         | `Insert(row)`    | `row`                   |
//! | `Some(r)`   | `Patch(values)`  | `r` with `values` merged |
//! | `None`      | `Patch(values)`  | `None` (nothing to patch) |
//! | any         | `Delete`         | `None`                  |
//!
//! - A **rejected** entry leaves the queue; each row it touched is rebuilt from the confirmed base
//!   (the before-image kept by the oldest pending entry on that row) with the surviving entries
//!   replayed.
//! - A **pull** makes the remote row the confirmed base of rows with pending entries, and replaces
//!   rows without pending entries outright.

use super::outbox::{Action, OutboxEntry};
use super::schema::ModelDef;
use super::value::{Key, Obj};
use serde_json::Value;

#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    Insert(Obj),
    Patch(Obj),
    Delete,
}

/// One replay step (the truth table above).
pub fn step(current: Option<Obj>, effect: &Effect) -> Option<Obj> {
    match (current, effect) {
        (_, Effect::Insert(row)) => Some(row.clone()),
        (Some(mut row), Effect::Patch(values)) => {
            for (k, v) in values {
                row.insert(k.clone(), v.clone());
            }
            Some(row)
        }
        (None, Effect::Patch(_)) => None,
        (_, Effect::Delete) => None,
    }
}

/// What `entry` did to row `key`.
pub fn effect(entry: &OutboxEntry, def: &ModelDef, key: &Key) -> Effect {
    match entry.action {
        Action::Delete => Effect::Delete,
        Action::Update => Effect::Patch(
            entry
                .query
                .get("values")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
        ),
        Action::Insert => entry
            .query
            .get("values")
            .and_then(Value::as_array)
            .and_then(|rows| {
                rows.iter().filter_map(Value::as_object).find(|r| {
                    r.get(&def.primary_key).and_then(Key::from_value).as_ref() == Some(key)
                })
            })
            .cloned()
            .map_or(Effect::Delete, Effect::Insert),
    }
}

/// The confirmed base of row `key` as the oldest pending entry touching it remembers it.
pub fn base_of(entries: &[&OutboxEntry], key: &Key) -> Option<Option<Obj>> {
    let first = entries.first()?;
    first
        .before
        .iter()
        .find(|b| Key::from_value(&b.key).as_ref() == Some(key))
        .map(|b| b.row.clone())
}

/// Replays `entries` (all touching `key`, in order) over `base`.
pub fn replay(
    base: Option<Obj>,
    entries: &[&OutboxEntry],
    def: &ModelDef,
    key: &Key,
) -> Option<Obj> {
    entries
        .iter()
        .fold(base, |row, e| step(row, &effect(e, def, key)))
}

/// Sets the before-image of `key` in `entry` (the new confirmed base).
pub fn set_base(entry: &mut OutboxEntry, key: &Key, base: Option<Obj>) {
    for b in &mut entry.before {
        if Key::from_value(&b.key).as_ref() == Some(key) {
            b.row = base.clone();
        }
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
#[path = "sync_tests.rs"]
mod tests;
