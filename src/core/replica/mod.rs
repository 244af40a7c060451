//! The synchronous heart of the database: a replica of storage in memory (loaded tables and
//! their indexes, the pending outbox) that answers queries and plans changes.
//!
//! A write is planned in three steps so that nothing is changed until storage has committed:
//! `prepare_*` / `plan_*` compute the candidate rows, the caller validates them, `build_*` turns
//! them into a [`Batch`], and after the storage commits it, [`Replica::apply`] updates memory.
//! Write planning is in `write_plan`, sync planning (pushes' outcomes, rollbacks, pulls) in
//! `sync_plan`.

mod sync_plan;
mod write_plan;

pub use sync_plan::{pull_issue, PullPlan};

use crate::core::batch::RowOp;
use crate::core::ids::{IdGen, RandomSource};
use crate::core::limits::{too_deep_path, MAX_DEPTH};
use crate::core::live::Touched;
use crate::core::outbox::OutboxEntry;
use crate::core::query::{parse_fields, parse_relations, run, Filter, Op, Select};
use crate::core::relations::Out;
use crate::core::relations::{materialize, Tables};
use crate::core::row::Name;
use crate::core::schema::{ModelDef, Schema};
use crate::core::table::Table;
use crate::core::value::parse_iso_date;
use crate::core::value::{Key, Obj, Row};
use crate::error::{Error, Issue, Result};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::ops::Bound;

pub struct Replica {
    pub schema: Schema,
    tables: Tables,
    /// Pending outbox entries, oldest first (mirrors the storage's outbox store).
    outbox: Vec<OutboxEntry>,
    /// Rejected entries kept until acknowledged (stored in the same store, see
    /// [`OutboxEntry::rejected`]).
    rejected: Vec<OutboxEntry>,
    /// Mutation ids and generated primary keys (interior mutability keeps planning `&self`).
    ids: RefCell<IdGen>,
    /// Rows changed in memory since live queries last looked (see [`crate::core::live`]).
    touched: Touched,
    /// New outbox entries count as sent (the network is up: they are pushed at once).
    online: bool,
    /// Pulls whose answer has not been merged yet.
    pulls: u32,
    /// While a pull is out, in order: the rows of every pending entry that left the outbox
    /// (acknowledged, rolled back or merged), and the rows another tab changed (`None`: the
    /// whole model). A pull's answer may predate them, so its merge leaves these rows alone (see
    /// [`Replica::settled_since`]).
    settled: Vec<(String, Option<Key>)>,
}

/// What a write returns: `returning: { fields, relations }` parsed up front, so a bad option fails
/// before anything is written.
#[derive(Debug)]
pub struct Returning(Select);

/// The rows a pull's merge leaves alone (see [`Replica::settled_since`]).
#[derive(Debug, Default)]
pub struct Settled {
    /// Every row of the model (another tab changed it as a whole).
    pub all: bool,
    pub keys: HashSet<Key>,
}

impl Settled {
    pub fn contains(&self, key: &Key) -> bool {
        self.all || self.keys.contains(key)
    }
}

impl Replica {
    pub fn new(schema: Schema) -> Self {
        Replica {
            schema,
            tables: HashMap::new(),
            outbox: Vec::new(),
            rejected: Vec::new(),
            ids: RefCell::new(IdGen::default()),
            touched: Touched::default(),
            online: true,
            pulls: 0,
            settled: Vec::new(),
        }
    }

    /// A pull is about to ask the backend; returns its mark for [`Replica::settled_since`].
    pub fn pull_begin(&mut self) -> usize {
        self.pulls += 1;
        self.settled.len()
    }

    /// A pull begun with [`Replica::pull_begin`] is over (merged, failed or dropped).
    pub fn pull_end(&mut self) {
        self.pulls = self.pulls.saturating_sub(1);
        if self.pulls == 0 {
            self.settled = Vec::new();
        }
    }

    /// The rows of `model` noted since `mark` (see [`Replica::settled`]): the backend may have
    /// applied their writes after it answered the pull, so the answer is no news about them.
    pub fn settled_since(&self, model: &str, mark: usize) -> Settled {
        let mut out = Settled::default();
        for (m, key) in self.settled.get(mark..).unwrap_or_default() {
            if m == model {
                match key {
                    Some(k) => {
                        out.keys.insert(k.clone());
                    }
                    None => out.all = true,
                }
            }
        }
        out
    }

    /// Notes rows of `model` another tab changed (`None`: any row), while a pull is out.
    pub fn note_changed_elsewhere(&mut self, model: &str, keys: Option<Vec<Key>>) {
        if self.pulls == 0 {
            return;
        }
        match keys {
            Some(keys) => self
                .settled
                .extend(keys.into_iter().map(|k| (model.to_string(), Some(k)))),
            None => self.settled.push((model.to_string(), None)),
        }
    }

    /// Notes that pending entry `e` leaves the outbox (only while a pull is out).
    fn settle_rows(pulls: u32, settled: &mut Vec<(String, Option<Key>)>, e: &OutboxEntry) {
        if pulls == 0 {
            return;
        }
        for b in &e.before {
            if let Some(key) = Key::from_value(&b.key) {
                settled.push((e.model.clone(), Some(key)));
            }
        }
    }

    /// Whether the network is up: new outbox entries are then marked sent from the start, since
    /// they are pushed at once (see [`OutboxEntry::sent`]).
    pub fn set_online(&mut self, online: bool) {
        self.online = online;
    }

    /// Where new ids take their random bits from.
    pub fn set_random(&mut self, random: RandomSource) {
        self.ids = RefCell::new(IdGen::new(random));
    }

    /// Replaces the in-memory outbox (and the rejected entries) with what storage holds.
    pub fn set_outbox(&mut self, entries: Vec<OutboxEntry>) {
        for e in &self.outbox {
            Self::settle_rows(self.pulls, &mut self.settled, e);
        }
        self.outbox.clear();
        self.rejected.clear();
        for e in entries {
            self.place(e);
        }
    }

    /// Puts a stored outbox record where it belongs: the pending queue, or the rejected list.
    /// Either list stays sorted by mutation id (creation order).
    pub(super) fn place(&mut self, e: OutboxEntry) {
        // An entry updated in place (a retry, a rebase) stays pending: only one that leaves the
        // queue for the rejected list counts as settled.
        if let Ok(i) = self
            .outbox
            .binary_search_by(|x| x.mutation_id.cmp(&e.mutation_id))
        {
            let old = self.outbox.remove(i);
            if e.rejected.is_some() {
                Self::settle_rows(self.pulls, &mut self.settled, &old);
            }
        }
        self.forget(&e.mutation_id);
        let list = if e.rejected.is_some() {
            &mut self.rejected
        } else {
            &mut self.outbox
        };
        match list.binary_search_by(|x| x.mutation_id.cmp(&e.mutation_id)) {
            Ok(i) => list[i] = e,
            Err(i) => list.insert(i, e),
        }
    }

    /// Removes the outbox record `id` from whichever list holds it.
    pub(super) fn forget(&mut self, id: &str) {
        if let Ok(i) = self
            .outbox
            .binary_search_by(|x| x.mutation_id.as_str().cmp(id))
        {
            let e = self.outbox.remove(i);
            Self::settle_rows(self.pulls, &mut self.settled, &e);
        }
        if let Ok(i) = self
            .rejected
            .binary_search_by(|x| x.mutation_id.as_str().cmp(id))
        {
            self.rejected.remove(i);
        }
    }

    /// Replaces the outbox entries with these ids by `entries` (what storage holds for them now;
    /// an id without an entry there is removed).
    pub fn refresh_outbox(&mut self, ids: &[String], entries: Vec<OutboxEntry>) {
        let gone: HashSet<&str> = ids.iter().map(String::as_str).collect();
        let (pulls, settled) = (self.pulls, &mut self.settled);
        self.outbox.retain(|e| {
            let keep = !gone.contains(e.mutation_id.as_str());
            if !keep {
                Self::settle_rows(pulls, settled, e);
            }
            keep
        });
        self.rejected
            .retain(|e| !gone.contains(e.mutation_id.as_str()));
        for e in entries {
            self.place(e);
        }
    }

    /// Forgets every loaded model (they are read again when next needed).
    pub fn unload_all(&mut self) {
        self.tables.clear();
        for m in self.schema.models.keys() {
            self.touched.model(m);
        }
    }

    /// Pending outbox entries, oldest first.
    pub fn outbox(&self) -> &[OutboxEntry] {
        &self.outbox
    }

    /// Entries the backend rejected and the app has not acknowledged yet, oldest first.
    pub fn rejected(&self) -> &[OutboxEntry] {
        &self.rejected
    }

    pub fn pending_count(&self, model: &str) -> usize {
        self.outbox.iter().filter(|e| e.model == model).count()
    }

    /// Forgets a model's rows so the next read loads them again (another tab changed them).
    pub fn unload(&mut self, model: &str) {
        self.tables.remove(model);
        self.touched.model(model);
    }

    pub fn touched_is_empty(&self) -> bool {
        self.touched.is_empty()
    }

    /// What changed in memory since the last call (for live queries).
    pub fn take_touched(&mut self) -> Touched {
        std::mem::take(&mut self.touched)
    }

    /// The row of `model` with primary key `key`, if the model is in memory and holds one.
    pub fn row(&self, model: &str, key: &Key) -> Option<&Row> {
        self.tables.get(model)?.get(key)
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
            self.touched.row(model, k);
        }
        let pk = Name::new(&def.primary_key);
        for row in rows {
            // A row storage holds under a key the model cannot read is not the engine's to keep.
            if let Ok(key) = row_key_by(&def, &pk, &row) {
                table.put(key, row);
            }
        }
        Ok(())
    }

    pub fn is_loaded(&self, model: &str) -> bool {
        self.tables.contains_key(model)
    }

    pub fn load(&mut self, model: &str, rows: Vec<Row>) -> Result<()> {
        let def = self.schema.model(model)?;
        let table = table_of(def, &def.indexes, rows)?;
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
    pub fn matching(&self, model: &str, filter: &Filter) -> Result<Vec<&Row>> {
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
                return Ok(Some((f.to_string(), keys)));
            }
            if def.indexes.iter().any(|i| f == i)
                && best.as_ref().is_none_or(|(_, b)| keys.len() < b.len())
            {
                best = Some((f.to_string(), keys));
            }
        }
        Ok(best)
    }

    /// Answers a select without relations from `rows` alone: the rows storage returned for
    /// [`Replica::probe`]'s condition, for a model that is not in memory. Same result as
    /// [`Replica::select`] on the loaded model.
    pub fn select_from(&self, sel: &Select, rows: Vec<Row>) -> Result<Vec<Out>> {
        debug_assert!(sel.relations.is_empty());
        let def = self.schema.model(&sel.model)?;
        // A one-off table: every row was read for this query, so no index is worth building.
        let table = table_of(def, &[], rows)?;
        self.page(&Tables::new(), sel, matching_in(def, &table, &sel.filter))
    }

    pub fn select(&self, sel: &Select) -> Result<Vec<Out>> {
        let page = self.page_rows(sel)?;
        materialize(&self.tables, &self.primary_keys(), sel, &page)
    }

    /// The rows of `sel`'s page, in answer order, before projection and relations.
    fn page_rows(&self, sel: &Select) -> Result<Vec<&Row>> {
        let def = self.schema.model(&sel.model)?;
        let table = self.table(&sel.model)?;
        let picked = candidates(def, table, &sel.filter);
        let budget = picked
            .as_ref()
            .map_or(table.len(), |(c, _)| c.len().saturating_mul(2));
        if let Some(page) = walk_order(table, sel, budget) {
            return Ok(page);
        }
        let matching = filter_candidates(table, picked, &sel.filter);
        Ok(run(
            &Filter::All,
            &sel.order,
            sel.offset,
            sel.limit,
            matching.into_iter(),
        ))
    }

    /// The first `wanted` rows `sel` matches (all of them for `None`) in answer order, with their
    /// primary keys: a live query's window (see [`crate::core::live`]).
    pub fn window(&self, sel: &Select, wanted: Option<usize>) -> Result<Vec<(Key, Row)>> {
        let def = self.schema.model(&sel.model)?;
        let pk = Name::new(&def.primary_key);
        let whole = Select {
            model: sel.model.clone(),
            filter: sel.filter.clone(),
            order: sel.order.clone(),
            limit: wanted,
            offset: 0,
            fields: None,
            relations: Vec::new(),
        };
        self.page_rows(&whole)?
            .into_iter()
            .map(|r| Ok((row_key_by(def, &pk, r)?, r.clone())))
            .collect()
    }

    /// Projects `rows` (of `sel.model`) and attaches `sel`'s relations.
    pub fn materialize(&self, sel: &Select, rows: &[&Row]) -> Result<Vec<Out>> {
        materialize(&self.tables, &self.primary_keys(), sel, rows)
    }

    /// Orders and pages the matching rows, then projects them and attaches relations.
    fn page(&self, tables: &Tables, sel: &Select, matching: Vec<&Row>) -> Result<Vec<Out>> {
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
            .map(|r| Value::Object(r.to_obj())))
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

    pub fn returning(&self, ret: &Returning, rows: &[Row]) -> Result<Vec<Out>> {
        let refs: Vec<&Row> = rows.iter().collect();
        materialize(&self.tables, &self.primary_keys(), &ret.0, &refs)
    }

    /// Every model a returning clause reads.
    pub fn returning_models(ret: &Returning) -> Vec<String> {
        let mut out = Vec::new();
        ret.0.models(&mut out);
        out
    }
}

fn row_op(model: &str, key: Key, row: Option<Obj>) -> RowOp {
    match row {
        Some(r) => RowOp::Put {
            model: model.to_string(),
            key,
            row: Row::from_obj(&r),
        },
        None => RowOp::Delete {
            model: model.to_string(),
            key,
        },
    }
}

fn into_row(def: &ModelDef, i: usize, v: &Value) -> Result<Row> {
    if let Some(path) = too_deep_path(v, MAX_DEPTH) {
        return Err(Error::Validation {
            model: def.name.clone(),
            issues: vec![Issue {
                path: std::iter::once(i.to_string()).chain(path).collect(),
                message: format!("nested deeper than {MAX_DEPTH} levels"),
            }],
        });
    }
    match v {
        Value::Object(o) => Ok(Row::from_obj(o)),
        other => Err(Error::Validation {
            model: def.name.clone(),
            issues: vec![crate::error::Issue {
                path: vec![i.to_string()],
                message: format!("the schema must produce an object, got {other}"),
            }],
        }),
    }
}

/// A table of `def`'s rows, with these indexes.
fn table_of(def: &ModelDef, indexes: &[String], rows: Vec<Row>) -> Result<Table> {
    let pk = Name::new(&def.primary_key);
    let keyed = rows
        .into_iter()
        .map(|row| Ok((row_key_by(def, &pk, &row)?, row)))
        .collect::<Result<Vec<_>>>()?;
    Ok(Table::build(indexes, keyed))
}

/// The keys an `eq`/`in` operand names (sorted, without duplicates), if every one can be a key.
fn op_keys(op: &Op) -> Option<Vec<Key>> {
    match op {
        Op::Eq(v) => Key::from_ref(v.get()).map(|k| vec![k]),
        Op::In(vs) => vs.keys.clone(),
        _ => None,
    }
}

/// The bounds `gt`/`gte`/`lt`/`lte` conditions on one indexed field put on its index, when the
/// index alone can find every row they match: each operand can be a key, and the index holds no
/// values of another kind that the operator would still compare with (numbers and ISO date
/// strings compare as instants).
fn index_bounds(table: &Table, field: &str, ops: &[&Op]) -> Option<(Bound<Key>, Bound<Key>)> {
    let (has_nums, has_strs) = table.index_kinds(field)?;
    let (mut lo, mut hi) = (Bound::Unbounded, Bound::Unbounded);
    for op in ops {
        let (v, lower, inclusive) = match op {
            Op::Gt(v) => (v, true, false),
            Op::Gte(v) => (v, true, true),
            Op::Lt(v) => (v, false, false),
            Op::Lte(v) => (v, false, true),
            _ => continue,
        };
        let key = Key::from_ref(v.get())?;
        let mixed = match &key {
            Key::Num(_) => has_strs,
            k => has_nums && k.as_str().and_then(parse_iso_date).is_some(),
        };
        if mixed {
            return None;
        }
        let b = if inclusive {
            Bound::Included(key)
        } else {
            Bound::Excluded(key)
        };
        // Keep the tighter bound; bounds of different kinds are left to the filter.
        let slot = if lower { &mut lo } else { &mut hi };
        *slot = tighter(std::mem::replace(slot, Bound::Unbounded), b, lower);
    }
    if matches!((&lo, &hi), (Bound::Unbounded, Bound::Unbounded)) {
        return None;
    }
    Some((lo, hi))
}

fn tighter(a: Bound<Key>, b: Bound<Key>, lower: bool) -> Bound<Key> {
    let key = |x: &Bound<Key>| match x {
        Bound::Included(k) | Bound::Excluded(k) => Some(k.clone()),
        Bound::Unbounded => None,
    };
    match (key(&a), key(&b)) {
        (None, _) => b,
        (_, None) => a,
        (Some(x), Some(y)) => {
            let b_wins = match x.cmp(&y) {
                std::cmp::Ordering::Equal => matches!(b, Bound::Excluded(_)),
                o => (o == std::cmp::Ordering::Less) == lower,
            };
            if b_wins {
                b
            } else {
                a
            }
        }
    }
}

/// Rows of `table` matching `filter`, in primary-key order; see [`Replica::matching`].
///
/// The candidates come from the narrowest of: the primary keys an `eq`/`in` names, an index's
/// rows for the values an `eq`/`in` names, an index's range for `gt`/`gte`/`lt`/`lte` on one
/// field, or else every row. Candidate lists are collected only while they stay smaller than the
/// best so far, so trying a poor index costs no more than the best one.
fn matching_in<'t>(def: &ModelDef, table: &'t Table, filter: &Filter) -> Vec<&'t Row> {
    filter_candidates(table, candidates(def, table, filter), filter)
}

/// Candidates as [`candidates`] picked them: `(primary key, row)`, and whether they are in
/// primary-key order already.
type Picked<'t> = Option<(Vec<(&'t Key, &'t Row)>, bool)>;

/// The rows of `picked` (or of the whole table) that match `filter`, in primary-key order.
fn filter_candidates<'t>(table: &'t Table, picked: Picked<'t>, filter: &Filter) -> Vec<&'t Row> {
    match picked {
        Some((mut c, in_order)) => {
            if !in_order {
                c.sort_unstable_by(|a, b| a.0.cmp(b.0));
            }
            c.into_iter()
                .map(|(_, r)| r)
                .filter(|r| filter.matches(r))
                .collect()
        }
        None => table.iter().filter(|r| filter.matches(r)).collect(),
    }
}

/// For `orderBy` with `limit` whose first field is indexed: the page, found by walking that
/// index in order and testing each row until `offset + limit` rows matched (plus the rows tied
/// with the last of them), instead of finding every match and selecting the first. `None` when
/// the walk cannot give the answer alone (the index leaves out rows that would sort among the
/// ones walked: booleans, arrays and objects anywhere, `null` or missing values when the walk
/// runs out or goes in descending order), or when it tested `budget` rows without finishing:
/// the caller then uses its candidates. The budget is twice the candidates, so a walk through
/// rows that rarely match costs at most twice what the candidates cost.
fn walk_order<'t>(table: &'t Table, sel: &Select, budget: usize) -> Option<Vec<&'t Row>> {
    let first = sel.order.first()?;
    let want = sel.offset.checked_add(sel.limit?)?;
    if want == 0 {
        return None;
    }
    let (entries, absent, others) = table.index_walk(&first.field, first.descending)?;
    if others > 0 || (first.descending && absent > 0) {
        return None;
    }
    let mut found: Vec<(&Key, &Row)> = Vec::with_capacity(want.min(1024));
    let mut tied: Option<&Key> = None;
    let mut complete = false;
    for (tested, (value, pk, row)) in entries.enumerate() {
        if found.len() >= want && tied != Some(value) {
            complete = true;
            break;
        }
        if tested >= budget {
            return None;
        }
        if sel.filter.matches(row) {
            found.push((pk, row));
            tied = Some(value);
        }
    }
    // Ran out of entries: the rows left out (null or missing, sorting last) may still match.
    if !complete && absent > 0 {
        return None;
    }
    // Ties keep primary-key order (a stable sort); `run` breaks ties by arrival.
    found.sort_unstable_by(|a, b| a.0.cmp(b.0));
    Some(run(
        &Filter::All,
        &sel.order,
        sel.offset,
        sel.limit,
        found.into_iter().map(|(_, r)| r),
    ))
}

/// The narrowest candidate list the filter's conditions give, if any; see [`matching_in`].
fn candidates<'t>(def: &ModelDef, table: &'t Table, filter: &Filter) -> Picked<'t> {
    let conjuncts = filter.conjuncts();
    // (candidates, whether they are already in primary-key order)
    let mut best: Option<(Vec<(&'t Key, &'t Row)>, bool)> = None;
    let cap =
        |best: &Option<(Vec<(&Key, &Row)>, bool)>| best.as_ref().map_or(usize::MAX, |b| b.0.len());
    let mut ranged: Vec<(&str, Vec<&Op>)> = Vec::new();
    for c in &conjuncts {
        let Filter::Field(f, op) = c else { continue };
        if matches!(op, Op::Gt(_) | Op::Gte(_) | Op::Lt(_) | Op::Lte(_)) && table.has_index(f) {
            match ranged.iter_mut().find(|(n, _)| *n == &**f) {
                Some((_, ops)) => ops.push(op),
                None => ranged.push((f, vec![op])),
            }
            continue;
        }
        let Some(values) = op_keys(op) else { continue };
        let found = if *f == def.primary_key {
            Some((table.get_many(&values), true))
        } else {
            table
                .lookup(f, &values, cap(&best))
                .map(|c| (c, values.len() == 1))
        };
        if let Some(found) = found {
            if found.0.len() < cap(&best) {
                best = Some(found);
            }
        }
    }
    for (field, ops) in ranged {
        let Some((lo, hi)) = index_bounds(table, field, &ops) else {
            continue;
        };
        if let Some(found) = table.range(field, lo.as_ref(), hi.as_ref(), cap(&best)) {
            if found.len() < cap(&best) {
                best = Some((found, false));
            }
        }
    }
    best
}

/// The primary key of a row, or a validation error naming what is wrong with it.
pub fn row_key(def: &ModelDef, row: &Row) -> Result<Key> {
    row_key_by(def, &Name::new(&def.primary_key), row)
}

pub(crate) fn row_key_by(def: &ModelDef, pk: &Name, row: &Row) -> Result<Key> {
    match row.get(pk) {
        Some(v) => Key::from_ref(v).ok_or_else(|| Error::Validation {
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
