//! The query language: parsing a JSON query into a checked AST, and evaluating it on rows.
//!
//! Parsing does all the checking (unknown field, relation or operator; operand of the wrong type),
//! so evaluation cannot fail and a bad query is rejected before anything is read or written.

use super::limits::{self, MAX_CONDITIONS, MAX_DEPTH, MAX_LIST, MAX_PATTERN};
use super::pattern::{FuzzyPattern, LikePattern};
use super::row::{FastHash, Name, Val, ValRef};
use super::schema::{ModelDef, RelationDef, Schema};
use super::value::{compare, loose_eq, sort_cmp, Key, Row};
use crate::error::{Error, Result};
use serde_json::Value;
use std::cmp::Ordering;
use std::collections::HashSet;
use std::hash::BuildHasherDefault;

/// The operators a field condition may use.
pub const OPERATORS: &[&str] = &[
    "eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "like", "ilike", "fzlike",
];

#[derive(Clone, Debug)]
pub enum Op {
    IsNull,
    NotNull,
    Eq(Val),
    Ne(Val),
    Gt(Val),
    Gte(Val),
    Lt(Val),
    Lte(Val),
    In(ValueSet),
    Nin(ValueSet),
    Like(LikePattern),
    Fuzzy(FuzzyPattern),
}

/// The operand list of `in` / `nin`: strings and numbers hashed (by value, so `1` and `1.0` are
/// one entry), booleans as flags, arrays and objects compared one by one (rare). A lookup costs
/// O(1) for a scalar, whatever the list's length, and allocates nothing.
#[derive(Clone, Debug, Default)]
pub struct ValueSet {
    /// The operands that can be keys, sorted and without duplicates (index planning reads them);
    /// `None` if any operand cannot be a key.
    pub keys: Option<Vec<Key>>,
    nums: HashSet<u64, BuildHasherDefault<FastHash>>,
    strs: HashSet<Box<str>, BuildHasherDefault<FastHash>>,
    bools: [bool; 2],
    nested: Vec<Val>,
}

/// Numbers equal as `eq` compares them hash alike (`-0` is `0`).
fn num_bits(f: f64) -> u64 {
    if f == 0.0 {
        0
    } else {
        f.to_bits()
    }
}

impl ValueSet {
    pub fn new(values: &[Value]) -> Self {
        let mut set = ValueSet::default();
        let mut keys = Some(Vec::with_capacity(values.len()));
        for v in values {
            match v {
                Value::Bool(b) => set.bools[usize::from(*b)] = true,
                Value::Array(_) | Value::Object(_) => set.nested.push(Val::new(v)),
                Value::Null => {}
                Value::String(s) => {
                    set.strs.insert(s.as_str().into());
                }
                Value::Number(n) => {
                    set.nums.insert(num_bits(n.as_f64().unwrap_or(f64::NAN)));
                }
            }
            match (Key::from_value(v), &mut keys) {
                (Some(k), Some(ks)) => ks.push(k),
                _ => keys = None,
            }
        }
        if let Some(ks) = &mut keys {
            ks.sort();
            ks.dedup();
        }
        set.keys = keys;
        set
    }

    /// Whether `v` equals one of the operands (as `eq` compares).
    pub fn contains(&self, v: ValRef<'_>) -> bool {
        match v {
            ValRef::Bool(b) => self.bools[usize::from(b)],
            ValRef::Str(s) => self.strs.contains(s),
            ValRef::Num(f) => self.nums.contains(&num_bits(f)),
            ValRef::Arr(_) | ValRef::Obj(_) => self.nested.iter().any(|x| loose_eq(v, x.get())),
            ValRef::Null => false,
        }
    }
}

#[derive(Clone, Debug)]
pub enum Filter {
    All,
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Field(Name, Op),
}

impl Op {
    pub fn test(&self, v: Option<ValRef<'_>>) -> bool {
        let present = v.filter(|v| !v.is_null());
        match self {
            Op::IsNull => present.is_none(),
            Op::NotNull => present.is_some(),
            Op::Eq(x) => present.is_some_and(|v| loose_eq(v, x.get())),
            Op::Ne(x) => !present.is_some_and(|v| loose_eq(v, x.get())),
            Op::Gt(x) => present.and_then(|v| compare(v, x.get())) == Some(Ordering::Greater),
            Op::Gte(x) => matches!(
                present.and_then(|v| compare(v, x.get())),
                Some(Ordering::Greater | Ordering::Equal)
            ),
            Op::Lt(x) => present.and_then(|v| compare(v, x.get())) == Some(Ordering::Less),
            Op::Lte(x) => matches!(
                present.and_then(|v| compare(v, x.get())),
                Some(Ordering::Less | Ordering::Equal)
            ),
            Op::In(xs) => present.is_some_and(|v| xs.contains(v)),
            Op::Nin(xs) => !present.is_some_and(|v| xs.contains(v)),
            Op::Like(p) => matches!(present, Some(ValRef::Str(s)) if p.matches(s)),
            Op::Fuzzy(p) => matches!(present, Some(ValRef::Str(s)) if p.matches(s)),
        }
    }
}

impl Filter {
    pub fn matches(&self, row: &Row) -> bool {
        match self {
            Filter::All => true,
            Filter::And(fs) => fs.iter().all(|f| f.matches(row)),
            Filter::Or(fs) => fs.iter().any(|f| f.matches(row)),
            Filter::Not(f) => !f.matches(row),
            Filter::Field(field, op) => op.test(row.get(field)),
        }
    }

    /// An `or` of its branches; one whose branches all test one field for equality is that
    /// field's hashed `in` (one lookup per row instead of one test per branch).
    fn or(subs: Vec<Filter>) -> Filter {
        let field = match subs.first() {
            Some(Filter::Field(f, Op::Eq(_))) if subs.len() > 1 => f,
            _ => return Filter::Or(subs),
        };
        let same = subs
            .iter()
            .all(|s| matches!(s, Filter::Field(f, Op::Eq(_)) if f == field));
        if !same {
            return Filter::Or(subs);
        }
        let field = field.clone();
        let values: Vec<Value> = subs
            .into_iter()
            .filter_map(|s| match s {
                Filter::Field(_, Op::Eq(v)) => Some(v.get().to_value()),
                _ => None,
            })
            .collect();
        Filter::Field(field, Op::In(ValueSet::new(&values)))
    }

    /// Top-level conditions that every match must satisfy (the conjuncts), for index planning.
    pub fn conjuncts(&self) -> Vec<&Filter> {
        match self {
            Filter::And(fs) => fs.iter().flat_map(Filter::conjuncts).collect(),
            f => vec![f],
        }
    }

    /// Parses a `where` object for `model`, within the limits of [`crate::core::limits`].
    pub fn parse(model: &ModelDef, v: Option<&Value>) -> Result<Filter> {
        if let Some(v) = v {
            if let Some(path) = limits::too_deep_path(v, MAX_DEPTH) {
                return Err(Error::query(format!(
                    "where on model \"{}\" is nested deeper than {MAX_DEPTH} levels (at where.{})",
                    model.name,
                    path.join(".")
                )));
            }
        }
        let mut conditions = 0;
        Self::parse_object(model, v, &mut conditions)
    }

    fn parse_object(model: &ModelDef, v: Option<&Value>, conditions: &mut usize) -> Result<Filter> {
        let obj = match v {
            None | Some(Value::Null) => return Ok(Filter::All),
            Some(Value::Object(o)) => o,
            Some(other) => {
                return Err(Error::query(format!(
                    "where on model \"{}\" must be an object, got {}",
                    model.name,
                    kind(other)
                )))
            }
        };
        let count = |conditions: &mut usize, n: usize| -> Result<()> {
            *conditions += n;
            if *conditions > MAX_CONDITIONS {
                return Err(Error::query(format!(
                    "where on model \"{}\" has more than {MAX_CONDITIONS} conditions; use \"in\" for long lists of values",
                    model.name
                )));
            }
            Ok(())
        };
        if obj.is_empty() {
            // `{}` matches everything; in an `and` / `or` it still costs a test per row.
            count(conditions, 1)?;
            return Ok(Filter::All);
        }
        let mut parts = Vec::with_capacity(obj.len());
        for (key, val) in obj {
            match key.as_str() {
                "and" | "or" => {
                    let Value::Array(items) = val else {
                        return Err(Error::query(format!(
                            "where.{key} must be an array of where objects, got {}",
                            kind(val)
                        )));
                    };
                    count(conditions, 1)?;
                    let subs = items
                        .iter()
                        .map(|i| Filter::parse_object(model, Some(i), conditions))
                        .collect::<Result<Vec<_>>>()?;
                    parts.push(if key == "and" {
                        Filter::And(subs)
                    } else {
                        Filter::or(subs)
                    });
                }
                "not" => {
                    count(conditions, 1)?;
                    parts.push(Filter::Not(Box::new(Filter::parse_object(
                        model,
                        Some(val),
                        conditions,
                    )?)))
                }
                field => {
                    model.check_field(field, "where")?;
                    match val {
                        Value::Object(ops) if ops.is_empty() => {
                            return Err(Error::query(format!(
                                "where.{field} on model \"{}\" is an empty operator object; give a value or an operator such as {{ eq: ... }}",
                                model.name
                            )))
                        }
                        Value::Object(ops) => {
                            count(conditions, ops.len())?;
                            for (op, operand) in ops {
                                parts.push(Filter::Field(
                                    Name::new(field),
                                    parse_op(model, field, op, operand)?,
                                ));
                            }
                        }
                        Value::Null => {
                            count(conditions, 1)?;
                            parts.push(Filter::Field(Name::new(field), Op::IsNull))
                        }
                        v => {
                            count(conditions, 1)?;
                            parts.push(Filter::Field(Name::new(field), Op::Eq(Val::new(v))))
                        }
                    }
                }
            }
        }
        Ok(match parts.len() {
            0 => Filter::All,
            1 => parts.pop().unwrap_or(Filter::All),
            _ => Filter::And(parts),
        })
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn parse_op(model: &ModelDef, field: &str, op: &str, operand: &Value) -> Result<Op> {
    let at = || format!("{}.{field}", model.name);
    let scalar = |v: &Value| -> Result<Val> {
        match v {
            Value::Number(_) | Value::String(_) | Value::Bool(_) => Ok(Val::new(v)),
            other => Err(Error::query(format!(
                "\"{op}\" on {} needs a string, number or boolean, got {}",
                at(),
                kind(other)
            ))),
        }
    };
    let list = |v: &Value| -> Result<ValueSet> {
        match v {
            Value::Array(xs) if xs.len() > MAX_LIST => Err(Error::query(format!(
                "\"{op}\" on {} has {} values; at most {MAX_LIST} are allowed",
                at(),
                xs.len()
            ))),
            Value::Array(xs) => Ok(ValueSet::new(xs)),
            other => Err(Error::query(format!(
                "\"{op}\" on {} needs an array, got {}",
                at(),
                kind(other)
            ))),
        }
    };
    let text = |v: &Value| -> Result<String> {
        match v {
            Value::String(s) if s.chars().count() > MAX_PATTERN => Err(Error::query(format!(
                "\"{op}\" pattern on {} is longer than {MAX_PATTERN} characters",
                at()
            ))),
            Value::String(s) => Ok(s.clone()),
            other => Err(Error::query(format!(
                "\"{op}\" on {} needs a string pattern, got {}",
                at(),
                kind(other)
            ))),
        }
    };
    Ok(match (op, operand) {
        ("eq", Value::Null) => Op::IsNull,
        ("ne", Value::Null) => Op::NotNull,
        ("eq", v) => Op::Eq(Val::new(v)),
        ("ne", v) => Op::Ne(Val::new(v)),
        ("gt", v) => Op::Gt(scalar(v)?),
        ("gte", v) => Op::Gte(scalar(v)?),
        ("lt", v) => Op::Lt(scalar(v)?),
        ("lte", v) => Op::Lte(scalar(v)?),
        ("in", v) => Op::In(list(v)?),
        ("nin", v) => Op::Nin(list(v)?),
        ("like", v) => Op::Like(LikePattern::new(&text(v)?, false)),
        ("ilike", v) => Op::Like(LikePattern::new(&text(v)?, true)),
        ("fzlike", v) => Op::Fuzzy(FuzzyPattern::new(&text(v)?)),
        _ => {
            return Err(Error::query(format!(
                "unknown operator \"{op}\" on {}; use one of: {}",
                at(),
                OPERATORS.join(", ")
            )))
        }
    })
}

#[derive(Clone, Debug, PartialEq)]
pub struct OrderKey {
    pub field: Name,
    pub descending: bool,
}

pub fn parse_order(model: &ModelDef, v: Option<&Value>) -> Result<Vec<OrderKey>> {
    let items: Vec<&Value> = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a.iter().collect(),
        Some(o @ Value::Object(_)) => vec![o],
        Some(other) => {
            return Err(Error::query(format!(
                "orderBy must be an array of {{ field, direction }}, got {}",
                kind(other)
            )))
        }
    };
    items
        .into_iter()
        .map(|item| {
            let field = item
                .get("field")
                .and_then(Value::as_str)
                .ok_or_else(|| Error::query("each orderBy entry needs a \"field\" string"))?;
            model.check_field(field, "orderBy")?;
            let descending = match item.get("direction") {
                None | Some(Value::Null) => false,
                Some(Value::String(d)) if d == "asc" => false,
                Some(Value::String(d)) if d == "desc" => true,
                Some(other) => {
                    return Err(Error::query(format!(
                        "orderBy direction for \"{field}\" must be \"asc\" or \"desc\", got {other}"
                    )))
                }
            };
            Ok(OrderKey {
                field: Name::new(field),
                descending,
            })
        })
        .collect()
}

/// Compares two rows by an `orderBy` list.
pub fn order_cmp(keys: &[OrderKey], a: &Row, b: &Row) -> Ordering {
    for k in keys {
        let o = sort_cmp(a.get(&k.field), b.get(&k.field));
        let o = if k.descending { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

/// A parsed `select` (or per-relation) query.
#[derive(Clone, Debug)]
pub struct Select {
    pub model: String,
    pub filter: Filter,
    pub order: Vec<OrderKey>,
    pub limit: Option<usize>,
    pub offset: usize,
    pub fields: Option<Vec<Name>>,
    pub relations: Vec<(String, RelationDef, Select)>,
}

fn parse_count(v: Option<&Value>, what: &str) -> Result<Option<usize>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) if f >= 0.0 && f.fract() == 0.0 => Ok(Some(f as usize)),
            _ => Err(Error::query(format!(
                "{what} must be a whole number ≥ 0, got {n}"
            ))),
        },
        Some(other) => Err(Error::query(format!(
            "{what} must be a whole number ≥ 0, got {}",
            kind(other)
        ))),
    }
}

const SELECT_KEYS: &[&str] = &["where", "orderBy", "limit", "offset", "fields", "relations"];

impl Select {
    pub fn parse(schema: &Schema, model: &str, v: Option<&Value>) -> Result<Select> {
        let def = schema.model(model)?;
        let empty = serde_json::Map::new();
        let obj = match v {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(o)) => o,
            Some(other) => {
                return Err(Error::query(format!(
                    "select options must be an object, got {}",
                    kind(other)
                )))
            }
        };
        if let Some(k) = obj.keys().find(|k| !SELECT_KEYS.contains(&k.as_str())) {
            return Err(Error::query(format!(
                "unknown select option \"{k}\"; use one of: {}",
                SELECT_KEYS.join(", ")
            )));
        }
        let fields = parse_fields(def, obj.get("fields"), "fields")?;
        Ok(Select {
            model: model.to_string(),
            filter: Filter::parse(def, obj.get("where"))?,
            order: parse_order(def, obj.get("orderBy"))?,
            limit: parse_count(obj.get("limit"), "limit")?,
            offset: parse_count(obj.get("offset"), "offset")?.unwrap_or(0),
            fields,
            relations: parse_relations(schema, def, obj.get("relations"))?,
        })
    }

    /// Every model this query reads, including through relations.
    pub fn models(&self, out: &mut Vec<String>) {
        if !out.contains(&self.model) {
            out.push(self.model.clone());
        }
        for (_, _, sub) in &self.relations {
            sub.models(out);
        }
    }
}

pub fn parse_fields(def: &ModelDef, v: Option<&Value>, what: &str) -> Result<Option<Vec<Name>>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                let f = i.as_str().ok_or_else(|| {
                    Error::query(format!("{what} must be an array of field names"))
                })?;
                def.check_field(f, what)?;
                Ok(Name::new(f))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some),
        Some(other) => Err(Error::query(format!(
            "{what} must be an array of field names, got {}",
            kind(other)
        ))),
    }
}

pub fn parse_relations(
    schema: &Schema,
    def: &ModelDef,
    v: Option<&Value>,
) -> Result<Vec<(String, RelationDef, Select)>> {
    let obj = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(o)) => o,
        Some(other) => {
            return Err(Error::query(format!(
                "relations must be an object, got {}",
                kind(other)
            )))
        }
    };
    let mut out = Vec::new();
    for (name, opts) in obj {
        let rel = def.relations.get(name).ok_or_else(|| {
            let known: Vec<&str> = def.relations.keys().map(String::as_str).collect();
            Error::query(format!(
                "unknown relation \"{name}\" on model \"{}\"; known relations: {}",
                def.name,
                if known.is_empty() {
                    "(none)".to_string()
                } else {
                    known.join(", ")
                }
            ))
        })?;
        let sub = match opts {
            Value::Bool(false) => continue,
            Value::Bool(true) => Select::parse(schema, &rel.model, None)?,
            o @ Value::Object(_) => Select::parse(schema, &rel.model, Some(o))?,
            other => {
                return Err(Error::query(format!(
                    "relation \"{name}\" must be true or an options object, got {}",
                    kind(other)
                )))
            }
        };
        out.push((name.clone(), rel.clone(), sub));
    }
    Ok(out)
}

/// Filters, sorts (stable) and pages `rows`, which arrive in primary-key order. With `orderBy`
/// and `limit`, only the first `offset + limit` are put in order (a partial selection, then a
/// sort of those), and each row's first sort value is read once.
pub fn run<'a>(
    filter: &Filter,
    order: &[OrderKey],
    offset: usize,
    limit: Option<usize>,
    rows: impl Iterator<Item = &'a Row>,
) -> Vec<&'a Row> {
    let matched = rows.filter(|r| filter.matches(r));
    let Some((first, rest)) = order.split_first() else {
        let it = matched.skip(offset);
        return match limit {
            Some(l) => it.take(l).collect(),
            None => it.collect(),
        };
    };
    let mut hits: Vec<(Option<ValRef<'a>>, usize, &'a Row)> = matched
        .enumerate()
        .map(|(i, r)| (r.get(&first.field), i, r))
        .collect();
    // Tie-break on arrival position so the unstable partial sort behaves like a stable sort.
    let cmp = |a: &(Option<ValRef<'a>>, usize, &'a Row),
               b: &(Option<ValRef<'a>>, usize, &'a Row)| {
        let o = sort_cmp(a.0, b.0);
        let o = if first.descending { o.reverse() } else { o };
        o.then_with(|| order_cmp(rest, a.2, b.2))
            .then(a.1.cmp(&b.1))
    };
    let wanted = limit.map(|l| offset.saturating_add(l));
    match wanted {
        Some(0) => hits.clear(),
        Some(w) if w < hits.len() => {
            hits.select_nth_unstable_by(w - 1, cmp);
            hits.truncate(w);
            hits.sort_unstable_by(cmp);
        }
        _ => hits.sort_unstable_by(cmp),
    }
    hits.into_iter().skip(offset).map(|(_, _, r)| r).collect()
}

/// Keeps only `fields` of a row (all of it when `fields` is `None`).
pub fn project(row: &Row, fields: Option<&[Name]>) -> Row {
    match fields {
        None => row.clone(),
        Some(fs) => row.project(fs),
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
#[path = "query_tests.rs"]
mod tests;
