//! The synchronous heart of the database: loaded tables, queries, and write planning.
//!
//! A write is planned here in three steps so that nothing is changed until storage has committed:
//! `prepare_*` / `plan_*` compute the candidate rows, the caller validates them, `build_*` turns
//! them into a [`Batch`], and after the storage commits it, [`Engine::apply`] updates memory.

use super::batch::{Batch, RowOp};
use super::ids::{IdGen, RandomSource};
use super::limits::{too_deep_path, MAX_DEPTH};
use super::outbox::{Action, Before, OutboxEntry};
use super::query::{parse_fields, parse_relations, run, Filter, Op, Select};
use super::relations::{materialize, Tables};
use super::schema::{ModelDef, Schema};
use super::sync;
use super::table::Table;
use super::value::{Key, Row};
use crate::error::{Error, Issue, Result};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;

pub struct Engine {
    pub schema: Schema,
    tables: Tables,
    /// Pending outbox entries, oldest first (mirrors the storage's outbox store).
    outbox: Vec<OutboxEntry>,
    /// Mutation ids and generated primary keys (interior mutability keeps planning `&self`).
    ids: RefCell<IdGen>,
}

/// What a write returns: `returning: { fields, relations }` parsed up front, so a bad option fails
/// before anything is written.
#[derive(Debug)]
pub struct Returning(Select);

impl Engine {
    pub fn new(schema: Schema) -> Self {
        Engine {
            schema,
            tables: HashMap::new(),
            outbox: Vec::new(),
            ids: RefCell::new(IdGen::default()),
        }
    }

    /// Where new ids take their random bits from.
    pub fn set_random(&mut self, random: RandomSource) {
        self.ids = RefCell::new(IdGen::new(random));
    }

    /// Replaces the in-memory outbox with what storage holds.
    pub fn set_outbox(&mut self, mut entries: Vec<OutboxEntry>) {
        entries.sort_by(|a, b| a.mutation_id.cmp(&b.mutation_id));
        self.outbox = entries;
    }

    /// Replaces the outbox entries with these ids by `entries` (what storage holds for them now;
    /// an id without an entry there is removed).
    pub fn refresh_outbox(&mut self, ids: &[String], entries: Vec<OutboxEntry>) {
        let gone: HashSet<&str> = ids.iter().map(String::as_str).collect();
        self.outbox
            .retain(|e| !gone.contains(e.mutation_id.as_str()));
        for e in entries {
            match self
                .outbox
                .binary_search_by(|x| x.mutation_id.cmp(&e.mutation_id))
            {
                Ok(i) => self.outbox[i] = e,
                Err(i) => self.outbox.insert(i, e),
            }
        }
    }

    /// Forgets every loaded model (they are read again when next needed).
    pub fn unload_all(&mut self) {
        self.tables.clear();
    }

    pub fn outbox(&self) -> &[OutboxEntry] {
        &self.outbox
    }

    pub fn pending_count(&self, model: &str) -> usize {
        self.outbox.iter().filter(|e| e.model == model).count()
    }

    /// Forgets a model's rows so the next read loads them again (another tab changed them).
    pub fn unload(&mut self, model: &str) {
        self.tables.remove(model);
    }

    /// Replaces the rows with these primary keys by `rows` (what storage holds for them now; a key
    /// without a row there is removed). Does nothing for a model that is not loaded.
    pub fn refresh(&mut self, model: &str, keys: &[Key], rows: Vec<Row>) -> Result<()> {
        let def = self.schema.model(model)?.clone();
        let Some(table) = self.tables.get_mut(model) else {
            return Ok(());
        };
        for k in keys {
            table.remove(k);
        }
        for row in rows {
            // A row storage holds under a key the model cannot read is not the engine's to keep.
            if let Ok(key) = row_key(&def, &row) {
                table.put(key, Rc::new(row));
            }
        }
        Ok(())
    }

    pub fn is_loaded(&self, model: &str) -> bool {
        self.tables.contains_key(model)
    }

    pub fn load(&mut self, model: &str, rows: Vec<Row>) -> Result<()> {
        let def = self.schema.model(model)?;
        let table = table_of(def, rows)?;
        self.tables.insert(model.to_string(), table);
        Ok(())
    }

    fn table(&self, model: &str) -> Result<&Table> {
        self.tables
            .get(model)
            .ok_or_else(|| Error::storage(format!("model \"{model}\" was not loaded")))
    }

    fn primary_keys(&self) -> HashMap<&str, &str> {
        self.schema
            .models
            .values()
            .map(|m| (m.name.as_str(), m.primary_key.as_str()))
            .collect()
    }

    /// Rows of `model` matching `filter`, in primary-key order. The filter's top-level `eq`/`in`
    /// conditions pick the candidates when they name the primary key or an indexed field.
    pub fn matching(&self, model: &str, filter: &Filter) -> Result<Vec<&Rc<Row>>> {
        let def = self.schema.model(model)?;
        Ok(matching_in(def, self.table(model)?, filter))
    }

    /// Which rows to read from storage to answer `filter` on a model that is not in memory:
    /// `(field, keys)` for the top-level `eq`/`in` condition on the primary key (preferred) or on
    /// an indexed field with the fewest values. Every row matching `filter` is among the rows
    /// whose `field` holds one of `keys`. `None` when no such condition exists.
    pub fn probe(&self, model: &str, filter: &Filter) -> Result<Option<(String, Vec<Key>)>> {
        let def = self.schema.model(model)?;
        let mut best: Option<(String, Vec<Key>)> = None;
        for c in filter.conjuncts() {
            let Filter::Field(f, op) = c else { continue };
            let Some(keys) = op_keys(op) else { continue };
            if f == &def.primary_key {
                return Ok(Some((f.clone(), keys)));
            }
            if def.indexes.contains(f) && best.as_ref().is_none_or(|(_, b)| keys.len() < b.len()) {
                best = Some((f.clone(), keys));
            }
        }
        Ok(best)
    }

    /// Answers a select without relations from `rows` alone: the rows storage returned for
    /// [`Engine::probe`]'s condition, for a model that is not in memory. Same result as
    /// [`Engine::select`] on the loaded model.
    pub fn select_from(&self, sel: &Select, rows: Vec<Row>) -> Result<Vec<Value>> {
        debug_assert!(sel.relations.is_empty());
        let def = self.schema.model(&sel.model)?;
        let table = table_of(def, rows)?;
        self.page(&Tables::new(), sel, matching_in(def, &table, &sel.filter))
    }

    pub fn select(&self, sel: &Select) -> Result<Vec<Value>> {
        let candidates = self.matching(&sel.model, &sel.filter)?;
        self.page(&self.tables, sel, candidates)
    }

    /// Orders and pages the matching rows, then projects them and attaches relations.
    fn page(&self, tables: &Tables, sel: &Select, matching: Vec<&Rc<Row>>) -> Result<Vec<Value>> {
        let page = run(
            &Filter::All,
            &sel.order,
            sel.offset,
            sel.limit,
            matching.into_iter(),
        );
        materialize(tables, &self.primary_keys(), sel, &page)
    }

    pub fn count(&self, model: &str, filter: &Filter) -> Result<usize> {
        if matches!(filter, Filter::All) {
            return Ok(self.table(model)?.len());
        }
        Ok(self.matching(model, filter)?.len())
    }

    /// The primary-key value `get` was given, as a key.
    pub fn get_key(&self, model: &str, key: &Value) -> Result<Key> {
        let def = self.schema.model(model)?;
        Key::from_value(key).ok_or_else(|| {
            Error::query(format!(
                "get on \"{}\" needs a string or number key, got {key}",
                def.name
            ))
        })
    }

    pub fn get(&self, model: &str, key: &Value) -> Result<Option<Value>> {
        let key = self.get_key(model, key)?;
        Ok(self
            .table(model)?
            .get(&key)
            .map(|r| Value::Object((**r).clone())))
    }

    pub fn parse_returning(&self, model: &str, v: Option<&Value>) -> Result<Returning> {
        let def = self.schema.model(model)?;
        let (fields, relations) = match v {
            None | Some(Value::Null) | Some(Value::Bool(true)) => (None, Vec::new()),
            Some(Value::Object(o)) => {
                if let Some(k) = o.keys().find(|k| *k != "fields" && *k != "relations") {
                    return Err(Error::query(format!(
                        "unknown returning option \"{k}\"; use fields or relations"
                    )));
                }
                (
                    parse_fields(def, o.get("fields"), "returning.fields")?,
                    parse_relations(&self.schema, def, o.get("relations"))?,
                )
            }
            Some(other) => {
                return Err(Error::query(format!(
                    "returning must be an object, got {other}"
                )))
            }
        };
        Ok(Returning(Select {
            model: model.to_string(),
            filter: Filter::All,
            order: Vec::new(),
            limit: None,
            offset: 0,
            fields,
            relations,
        }))
    }

    pub fn returning(&self, ret: &Returning, rows: &[Rc<Row>]) -> Result<Vec<Value>> {
        let refs: Vec<&Rc<Row>> = rows.iter().collect();
        materialize(&self.tables, &self.primary_keys(), &ret.0, &refs)
    }

    /// Every model a returning clause reads.
    pub fn returning_models(ret: &Returning) -> Vec<String> {
        let mut out = Vec::new();
        ret.0.models(&mut out);
        out
    }

    /// Normalizes insert `values` (a row or an array of rows) and fills missing primary keys with
    /// UUIDv7 strings.
    pub fn prepare_insert(&self, model: &str, values: &Value, now: f64) -> Result<Vec<Value>> {
        let def = self.schema.model(model)?;
        let items: Vec<&Value> = match values {
            Value::Array(a) => a.iter().collect(),
            v => vec![v],
        };
        items
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                let Value::Object(o) = v else {
                    return Err(Error::Validation {
                        model: def.name.clone(),
                        issues: vec![crate::error::Issue {
                            path: vec![i.to_string()],
                            message: format!("a row must be an object, got {v}"),
                        }],
                    });
                };
                let mut o = o.clone();
                if o.get(&def.primary_key).is_none_or(Value::is_null) {
                    o.insert(
                        def.primary_key.clone(),
                        Value::String(self.ids.borrow_mut().next(now, None)),
                    );
                }
                Ok(Value::Object(o))
            })
            .collect()
    }

    /// The rows an update would write: each matching row with `values` merged over it.
    pub fn plan_update(&self, model: &str, filter: &Filter, values: &Value) -> Result<Vec<Value>> {
        let def = self.schema.model(model)?;
        let Value::Object(patch) = values else {
            return Err(Error::query(format!(
                "update values on \"{model}\" must be an object, got {values}"
            )));
        };
        for f in patch.keys() {
            def.check_field(f, "update values")?;
        }
        let rows = self.matching(model, filter)?;
        rows.into_iter()
            .map(|r| {
                let mut merged = (**r).clone();
                for (k, v) in patch {
                    merged.insert(k.clone(), v.clone());
                }
                if merged.get(&def.primary_key) != r.get(&def.primary_key) {
                    return Err(Error::query(format!(
                        "update cannot change the primary key \"{}\" of \"{model}\"; delete and insert instead",
                        def.primary_key
                    )));
                }
                Ok(Value::Object(merged))
            })
            .collect()
    }

    pub fn plan_delete(&self, model: &str, filter: &Filter) -> Result<Vec<Rc<Row>>> {
        Ok(self.matching(model, filter)?.into_iter().cloned().collect())
    }

    /// A new outbox entry. Its id sorts after every entry in the outbox, so it is pushed after
    /// them (see [`crate::core::ids`]).
    fn outbox_entry(
        &self,
        def: &ModelDef,
        action: Action,
        query: Value,
        before: Vec<Before>,
        now: f64,
    ) -> OutboxEntry {
        let floor = self.outbox.last().map(|e| e.mutation_id.as_str());
        OutboxEntry {
            mutation_id: self.ids.borrow_mut().next(now, floor),
            model: def.name.clone(),
            action,
            query,
            created_at: now,
            attempts: 0,
            last_error: None,
            next_attempt_at: now,
            before,
        }
    }

    /// Validated rows to insert → batch. Fails on a duplicate key (in the table or the batch).
    pub fn build_insert(
        &self,
        model: &str,
        rows: Vec<Value>,
        now: f64,
    ) -> Result<(Batch, Vec<Rc<Row>>)> {
        let def = self.schema.model(model)?;
        let table = self.table(model)?;
        let mut batch = Batch::default();
        let mut seen = HashSet::new();
        let mut affected = Vec::with_capacity(rows.len());
        for (i, v) in rows.into_iter().enumerate() {
            let row = into_row(def, i, v)?;
            let key = row_key(def, &row)?;
            if table.contains(&key) || !seen.insert(key.clone()) {
                return Err(Error::Constraint(format!(
                    "a \"{model}\" row with {} {key} already exists; use update to change it",
                    def.primary_key
                )));
            }
            let row = Rc::new(row);
            affected.push(row.clone());
            batch.rows.push(RowOp::Insert {
                model: model.to_string(),
                key,
                row,
            });
        }
        if def.has_mutation && !affected.is_empty() {
            let values: Vec<Value> = affected
                .iter()
                .map(|r| Value::Object((**r).clone()))
                .collect();
            let before = affected
                .iter()
                .map(|r| Before {
                    key: r[&def.primary_key].clone(),
                    row: None,
                })
                .collect();
            batch.outbox_put.push(self.outbox_entry(
                def,
                Action::Insert,
                json!({ "values": values }),
                before,
                now,
            ));
        }
        Ok((batch, affected))
    }

    /// Validated merged rows → batch. `patch` is what the user asked to change (sent to the hook).
    pub fn build_update(
        &self,
        model: &str,
        rows: Vec<Value>,
        patch: &Value,
        now: f64,
    ) -> Result<(Batch, Vec<Rc<Row>>)> {
        let def = self.schema.model(model)?;
        let table = self.table(model)?;
        let mut batch = Batch::default();
        let mut affected = Vec::with_capacity(rows.len());
        let mut before = Vec::new();
        for (i, v) in rows.into_iter().enumerate() {
            let row = into_row(def, i, v)?;
            let key = row_key(def, &row)?;
            let old = table.get(&key).ok_or_else(|| {
                Error::query(format!(
                    "the schema changed the primary key of a \"{model}\" row during update"
                ))
            })?;
            before.push(Before {
                key: key.to_value(),
                row: Some((**old).clone()),
            });
            let row = Rc::new(row);
            affected.push(row.clone());
            batch.rows.push(RowOp::Put {
                model: model.to_string(),
                key,
                row,
            });
        }
        if def.has_mutation && !affected.is_empty() {
            let keys: Vec<Value> = before.iter().map(|b| b.key.clone()).collect();
            let query =
                json!({ "where": { def.primary_key.clone(): { "in": keys } }, "values": patch });
            batch
                .outbox_put
                .push(self.outbox_entry(def, Action::Update, query, before, now));
        }
        Ok((batch, affected))
    }

    pub fn build_delete(&self, model: &str, rows: &[Rc<Row>], now: f64) -> Result<Batch> {
        let def = self.schema.model(model)?;
        let mut batch = Batch::default();
        let mut before = Vec::new();
        for r in rows {
            let key = row_key(def, r)?;
            before.push(Before {
                key: key.to_value(),
                row: Some((**r).clone()),
            });
            batch.rows.push(RowOp::Delete {
                model: model.to_string(),
                key,
            });
        }
        if def.has_mutation && !rows.is_empty() {
            let keys: Vec<Value> = before.iter().map(|b| b.key.clone()).collect();
            let query = json!({ "where": { def.primary_key.clone(): { "in": keys } } });
            batch
                .outbox_put
                .push(self.outbox_entry(def, Action::Delete, query, before, now));
        }
        Ok(batch)
    }

    /// Applies a committed batch to the loaded tables and the in-memory outbox.
    pub fn apply(&mut self, batch: &Batch) {
        self.outbox
            .retain(|e| !batch.outbox_delete.contains(&e.mutation_id));
        for e in &batch.outbox_put {
            match self
                .outbox
                .binary_search_by(|x| x.mutation_id.cmp(&e.mutation_id))
            {
                Ok(i) => self.outbox[i] = e.clone(),
                Err(i) => self.outbox.insert(i, e.clone()),
            }
        }
        for op in &batch.rows {
            let Some(t) = self.tables.get_mut(op.model()) else {
                continue;
            };
            match op.row() {
                Some(row) => t.put(op.key().clone(), row.clone()),
                None => {
                    t.remove(op.key());
                }
            }
        }
    }
}

impl Engine {
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

    /// The entry is rejected (or discarded): it leaves the queue, and every row it touched is
    /// rebuilt from its confirmed base with the surviving pending entries replayed (see
    /// [`crate::core::sync`]). The model's table must be loaded.
    pub fn plan_rollback(&self, mutation_id: &str) -> Result<Batch> {
        let rejected = self.entry(mutation_id)?;
        let def = self.schema.model(&rejected.model)?;
        let mut batch = Batch {
            outbox_delete: vec![mutation_id.to_string()],
            ..Batch::default()
        };
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
        Ok(batch)
    }

    /// Merges rows pulled from the backend. Rows without pending writes take the remote version;
    /// rows with pending writes take it as their new base with the writes replayed on top. A
    /// row without a usable primary key is skipped and reported (its index in `remote`, why).
    pub fn plan_pull(&self, model: &str, remote: Vec<(usize, Row)>) -> Result<(Batch, PullPlan)> {
        let def = self.schema.model(model)?;
        let table = self.table(model)?;
        let mut batch = Batch::default();
        let mut plan = PullPlan::default();
        let index = self.touch_index(model);
        for (i, row) in remote {
            let key = match row_key(def, &row) {
                Ok(k) => k,
                Err(e) => {
                    plan.skipped.push(pull_issue(i, e));
                    continue;
                }
            };
            plan.seen.push(key.clone());
            let touching = index.get(&key).map_or(&[][..], Vec::as_slice);
            if touching.is_empty() {
                if table.get(&key).is_none_or(|r| **r != row) {
                    batch.rows.push(RowOp::Put {
                        model: model.to_string(),
                        key,
                        row: Rc::new(row),
                    });
                }
                continue;
            }
            let local = sync::replay(Some(row.clone()), touching, def, &key);
            rebase_in(&mut batch.outbox_put, touching[0], &key, Some(row));
            batch.rows.push(row_op(model, key, local));
        }
        Ok((batch, plan))
    }

    /// After an unpaginated pull: deletes the local rows matching `filter` that the backend did
    /// not return (`seen`) and that have no pending writes.
    pub fn plan_pull_deletions(
        &self,
        model: &str,
        filter: &Filter,
        seen: &HashSet<Key>,
    ) -> Result<Batch> {
        let def = self.schema.model(model)?;
        let index = self.touch_index(model);
        let mut batch = Batch::default();
        for r in self.table(model)?.iter().filter(|r| filter.matches(r)) {
            let key = row_key(def, r)?;
            if !seen.contains(&key) && !index.contains_key(&key) {
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

/// Sets `key`'s base in the copy of `entry` kept in `updated` (adding the copy if needed), so an
/// entry touched for several rows is written once with every change.
fn rebase_in(updated: &mut Vec<OutboxEntry>, entry: &OutboxEntry, key: &Key, base: Option<Row>) {
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

fn row_op(model: &str, key: Key, row: Option<Row>) -> RowOp {
    match row {
        Some(r) => RowOp::Put {
            model: model.to_string(),
            key,
            row: Rc::new(r),
        },
        None => RowOp::Delete {
            model: model.to_string(),
            key,
        },
    }
}

fn into_row(def: &ModelDef, i: usize, v: Value) -> Result<Row> {
    if let Some(path) = too_deep_path(&v, MAX_DEPTH) {
        return Err(Error::Validation {
            model: def.name.clone(),
            issues: vec![Issue {
                path: std::iter::once(i.to_string()).chain(path).collect(),
                message: format!("nested deeper than {MAX_DEPTH} levels"),
            }],
        });
    }
    match v {
        Value::Object(o) => Ok(o),
        other => Err(Error::Validation {
            model: def.name.clone(),
            issues: vec![crate::error::Issue {
                path: vec![i.to_string()],
                message: format!("the schema must produce an object, got {other}"),
            }],
        }),
    }
}

/// The primary key of a row, or a validation error naming what is wrong with it.
/// A table of `def`'s rows, with its declared indexes.
fn table_of(def: &ModelDef, rows: Vec<Row>) -> Result<Table> {
    let mut table = Table::with_indexes(&def.indexes);
    for row in rows {
        let key = row_key(def, &row)?;
        table.put(key, Rc::new(row));
    }
    Ok(table)
}

/// The keys an `eq`/`in` operand names (sorted, without duplicates), if every one can be a key.
fn op_keys(op: &Op) -> Option<Vec<Key>> {
    match op {
        Op::Eq(v) => Key::from_value(v).map(|k| vec![k]),
        Op::In(vs) => vs
            .values
            .iter()
            .map(Key::from_value)
            .collect::<Option<Vec<_>>>()
            .map(|mut ks| {
                ks.sort();
                ks.dedup();
                ks
            }),
        _ => None,
    }
}

/// Rows of `table` matching `filter`, in primary-key order; see [`Engine::matching`].
fn matching_in<'t>(def: &ModelDef, table: &'t Table, filter: &Filter) -> Vec<&'t Rc<Row>> {
    let mut best: Option<Vec<&Rc<Row>>> = None;
    for c in filter.conjuncts() {
        let Filter::Field(f, op) = c else { continue };
        let Some(values) = op_keys(op) else { continue };
        let candidates: Vec<&Rc<Row>> = if f == &def.primary_key {
            values.iter().filter_map(|k| table.get(k)).collect()
        } else if let Some(keys) = table.lookup(f, &values) {
            keys.into_iter().filter_map(|k| table.get(k)).collect()
        } else {
            continue;
        };
        if best.as_ref().is_none_or(|b| candidates.len() < b.len()) {
            best = Some(candidates);
        }
    }
    match best {
        Some(c) => c.into_iter().filter(|r| filter.matches(r)).collect(),
        None => table.iter().filter(|r| filter.matches(r)).collect(),
    }
}

pub fn row_key(def: &ModelDef, row: &Row) -> Result<Key> {
    match row.get(&def.primary_key) {
        Some(v) => Key::from_value(v).ok_or_else(|| Error::Validation {
            model: def.name.clone(),
            issues: vec![crate::error::Issue {
                path: vec![def.primary_key.clone()],
                message: format!("primary key must be a string or a finite number, got {v}"),
            }],
        }),
        None => Err(Error::Validation {
            model: def.name.clone(),
            issues: vec![crate::error::Issue {
                path: vec![def.primary_key.clone()],
                message: "primary key is missing".into(),
            }],
        }),
    }
}
