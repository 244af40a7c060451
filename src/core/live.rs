//! Live queries: queries kept open, whose answers are brought up to date after each change instead
//! of being run again.
//!
//! Each query keeps a *window*: the first `offset + limit` rows it matches (every match when it has
//! no limit), in answer order, with their primary keys. Memory records which rows changed since the
//! queries last looked ([`Touched`]); for each changed row of a query's model, the query tests the
//! row's current value against its filter and moves it into, within or out of its window: one
//! filter test and a search of the window. Only when a row leaves a full window (something beyond
//! it may move in) or the whole model changed (loaded again after another tab's large change) is
//! the query evaluated again in full. A change to a model the query reads through its relations
//! re-attaches the relations of the window's rows.
//!
//! The answer is compared, as the JSON text it is delivered as, with the one delivered last: a
//! listener hears only of answers that differ.

use super::query::{order_cmp, Select};
use super::replica::Replica;
use super::value::{Key, Row};
use super::vec_map::{VecMap, VecSet};
use crate::error::{Error, Result};
use std::cmp::Ordering;

/// A change of more rows than this (since live queries last looked) counts as a change of the
/// whole model: evaluating the queries again is then cheaper than following each row.
pub const MAX_TOUCHED_ROWS: usize = 5_000;

/// What changed in memory since live queries last looked.
#[derive(Debug, Default)]
pub struct Touched {
    /// Rows (model, primary key) written, deleted or read again from storage.
    pub rows: Vec<(String, Key)>,
    /// Models changed as a whole (forgotten to be loaded again, or too many rows).
    pub models: VecSet<String>,
}

impl Touched {
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.models.is_empty()
    }

    pub fn row(&mut self, model: &str, key: &Key) {
        if self.models.contains(model) {
            return;
        }
        if self.rows.len() >= MAX_TOUCHED_ROWS {
            let models: VecSet<String> = self.rows.drain(..).map(|(m, _)| m).collect();
            self.models.extend(models);
            self.models.insert(model.to_string());
            return;
        }
        self.rows.push((model.to_string(), key.clone()));
    }

    pub fn model(&mut self, model: &str) {
        self.rows.retain(|(m, _)| m != model);
        self.models.insert(model.to_string());
    }
}

/// The rows a query's answer is cut from; see the module docs.
#[derive(Debug)]
struct Window {
    rows: Vec<(Key, Row)>,
    /// `offset + limit`; `None` without a limit (the window holds every match).
    wanted: Option<usize>,
}

/// How a row's change moved a window.
#[derive(Debug, PartialEq)]
enum Moved {
    /// The window is as it was.
    Same,
    Changed,
    /// A row left a full window: what follows it is unknown, evaluate again.
    Refill,
}

impl Window {
    fn full(&self) -> bool {
        self.wanted.is_some_and(|w| self.rows.len() >= w)
    }

    /// Moves `key`, now holding `row` (`None`: deleted), where it belongs.
    fn apply(&mut self, sel: &Select, key: &Key, row: Option<&Row>) -> Moved {
        let was_full = self.full();
        let pos = self.rows.iter().position(|(k, _)| k == key);
        let row = row.filter(|r| sel.filter.matches(r));
        let Some(row) = row else {
            return match pos {
                None => Moved::Same,
                Some(i) => {
                    self.rows.remove(i);
                    if was_full {
                        Moved::Refill
                    } else {
                        Moved::Changed
                    }
                }
            };
        };
        if let Some(i) = pos {
            self.rows.remove(i);
        }
        // Answer order: the `orderBy` fields, then the primary key (a stable sort of rows that
        // arrive in primary-key order).
        let at = self.rows.partition_point(|(k, r)| {
            order_cmp(&sel.order, r, row).then_with(|| k.cmp(key)) == Ordering::Less
        });
        if was_full && at == self.rows.len() {
            // It sorts after every row the window holds: rows beyond the window may come first.
            return if pos.is_some() {
                Moved::Refill
            } else {
                Moved::Same
            };
        }
        self.rows.insert(at, (key.clone(), row.clone()));
        if let Some(w) = self.wanted {
            self.rows.truncate(w);
        }
        Moved::Changed
    }
}

struct LiveQuery {
    sel: Select,
    /// Models read through relations (at any depth).
    related: Vec<String>,
    window: Option<Window>,
    /// The answer delivered last, as JSON text.
    last: Option<String>,
}

/// The open live queries of one database.
#[derive(Default)]
pub struct LiveSet {
    queries: VecMap<u32, LiveQuery>,
}

impl LiveSet {
    pub fn is_empty(&self) -> bool {
        self.queries.is_empty()
    }

    /// Opens query `id`; its first answer comes with the next [`LiveSet::refresh`].
    pub fn add(&mut self, id: u32, sel: Select) {
        let mut related = Vec::new();
        for (_, _, sub) in &sel.relations {
            sub.models(&mut related);
        }
        self.queries.insert(
            id,
            LiveQuery {
                sel,
                related,
                window: None,
                last: None,
            },
        );
    }

    pub fn remove(&mut self, id: u32) {
        self.queries.remove(&id);
    }

    pub fn clear(&mut self) {
        self.queries.clear();
    }

    /// Every model an open query reads.
    pub fn models(&self) -> Vec<String> {
        let mut out = Vec::new();
        for q in self.queries.values() {
            q.sel.models(&mut out);
        }
        out
    }

    /// Whether some query has no answer delivered yet.
    pub fn has_new(&self) -> bool {
        self.queries.values().any(|q| q.last.is_none())
    }

    /// Reports `e` to every query without a first answer (the models they read could not be
    /// loaded); the others keep their answers until the next refresh.
    pub fn fail(&mut self, e: Error) -> Vec<(u32, Result<String>)> {
        self.queries
            .iter_mut()
            .filter(|(_, q)| q.last.is_none())
            .map(|(id, q)| {
                q.last = Some(String::new());
                (*id, Err(e.clone()))
            })
            .collect()
    }

    /// Brings every query up to date with `touched` (the models the queries read must be in
    /// memory). Returns the queries whose answer changed, with the new answer as JSON text, or
    /// the error evaluating it gave.
    pub fn refresh(&mut self, replica: &Replica, touched: &Touched) -> Vec<(u32, Result<String>)> {
        let mut out = Vec::new();
        for (id, q) in self.queries.iter_mut() {
            match q.refresh(replica, touched) {
                Ok(Some(json)) => out.push((*id, Ok(json))),
                Ok(None) => {}
                Err(e) => {
                    // Delivered once; the next change tries again.
                    q.window = None;
                    q.last = Some(String::new());
                    out.push((*id, Err(e)));
                }
            }
        }
        out
    }
}

impl LiveQuery {
    fn refresh(&mut self, replica: &Replica, touched: &Touched) -> Result<Option<String>> {
        let root = self.sel.model.as_str();
        let mut dirty = self.last.as_deref().is_none_or(str::is_empty);
        if touched.models.contains(root) {
            self.window = None;
        }
        if touched.models.iter().any(|m| self.related.contains(m)) {
            dirty = true;
        }
        if let Some(w) = &mut self.window {
            for (model, key) in &touched.rows {
                if model == root {
                    match w.apply(&self.sel, key, replica.row(root, key)) {
                        Moved::Same => {}
                        Moved::Changed => dirty = true,
                        Moved::Refill => {
                            self.window = None;
                            break;
                        }
                    }
                }
            }
        }
        if !dirty && touched.rows.iter().any(|(m, _)| self.related.contains(m)) {
            dirty = true;
        }
        let window = match &mut self.window {
            Some(w) => w,
            None => {
                dirty = true;
                let wanted = self.sel.limit.map(|l| l.saturating_add(self.sel.offset));
                let rows = replica.window(&self.sel, wanted)?;
                self.window.insert(Window { rows, wanted })
            }
        };
        if !dirty {
            return Ok(None);
        }
        let page: Vec<&Row> = window
            .rows
            .iter()
            .skip(self.sel.offset)
            .map(|(_, r)| r)
            .collect();
        let out = replica.materialize(&self.sel, &page)?;
        let json = serde_json::to_string(&out)
            .map_err(|e| Error::storage(format!("could not write the answer: {e}")))?;
        if self.last.as_deref() == Some(json.as_str()) {
            return Ok(None);
        }
        self.last = Some(json.clone());
        Ok(Some(json))
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
#[path = "live_tests.rs"]
mod tests;
