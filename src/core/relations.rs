//! Loading relations for a page of rows: one pass over the related table per relation level,
//! never one lookup per parent row.

use super::query::{project, run, Select};
use super::row::Name;
use super::schema::RelationKind;
use super::table::Table;
use super::value::{Key, Row};
use crate::error::{Error, Result};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

pub type Tables = HashMap<String, Table>;

/// One row of a result: the (projected) row and the relations attached to it. Written to JSON
/// text straight from the rows; a relation named like a field replaces it.
#[derive(Clone, Debug)]
pub struct Out {
    pub row: Row,
    pub relations: Vec<(Rc<str>, Related)>,
}

#[derive(Clone, Debug)]
pub enum Related {
    One(Option<Rc<Out>>),
    Many(Vec<Rc<Out>>),
}

impl Out {
    /// As a JSON value (tests, and the few callers that need one).
    pub fn to_value(&self) -> Value {
        let mut o = self.row.to_obj();
        for (name, rel) in &self.relations {
            let v = match rel {
                Related::One(one) => one.as_ref().map_or(Value::Null, |c| c.to_value()),
                Related::Many(many) => Value::Array(many.iter().map(|c| c.to_value()).collect()),
            };
            o.insert(name.to_string(), v);
        }
        Value::Object(o)
    }
}

impl PartialEq for Out {
    fn eq(&self, other: &Out) -> bool {
        self.to_value() == other.to_value()
    }
}

impl PartialEq<Value> for Out {
    fn eq(&self, other: &Value) -> bool {
        self.to_value() == *other
    }
}

impl Serialize for Out {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        if self.relations.is_empty() {
            return self.row.serialize(s);
        }
        let mut map = s.serialize_map(None)?;
        for (k, v) in self.row.iter() {
            let shadowed = k.with(|n| self.relations.iter().any(|(r, _)| **r == *n));
            if !shadowed {
                k.with(|n| map.serialize_key(n))?;
                map.serialize_value(&v)?;
            }
        }
        for (name, rel) in &self.relations {
            map.serialize_key(&**name)?;
            match rel {
                Related::One(one) => map.serialize_value(&one.as_deref())?,
                Related::Many(many) => {
                    let items: Vec<&Out> = many.iter().map(|c| &**c).collect();
                    map.serialize_value(&items)?
                }
            }
        }
        map.end()
    }
}

/// Turns `rows` (of `sel.model`) into output rows: projected by `sel.fields`, with each
/// requested relation attached under its name.
pub fn materialize(
    tables: &Tables,
    primary_keys: &HashMap<&str, &str>,
    sel: &Select,
    rows: &[&Row],
) -> Result<Vec<Out>> {
    let mut out: Vec<Out> = rows
        .iter()
        .map(|r| Out {
            row: project(r, sel.fields.as_deref()),
            relations: Vec::new(),
        })
        .collect();
    for (name, rel, sub) in &sel.relations {
        let table = tables
            .get(&rel.model)
            .ok_or_else(|| Error::storage(format!("model \"{}\" was not loaded", rel.model)))?;
        let local = Name::new(&rel.local_key);
        let foreign = Name::new(&rel.foreign_key);
        let parent_keys: Vec<Option<Key>> = rows
            .iter()
            .map(|r| r.get(&local).and_then(Key::from_ref))
            .collect();
        let wanted: HashSet<&Key> = parent_keys.iter().flatten().collect();

        // One read of the related table for every parent at once.
        let mut groups: HashMap<Key, Vec<&Row>> = HashMap::new();
        if primary_keys.get(rel.model.as_str()) == Some(&rel.foreign_key.as_str()) {
            for k in &wanted {
                if let Some(r) = table.get(k) {
                    groups.entry((*k).clone()).or_default().push(r);
                }
            }
        } else if !wanted.is_empty() {
            for r in table.iter() {
                if let Some(k) = r.get(&foreign).and_then(Key::from_ref) {
                    if wanted.contains(&k) {
                        groups.entry(k).or_default().push(r);
                    }
                }
            }
        }

        // Per parent: the relation's own where/orderBy/offset/limit.
        let single = rel.kind != RelationKind::HasMany;
        let mut unique: Vec<&Row> = Vec::new();
        let mut seen: HashMap<*const u8, usize> = HashMap::new();
        let picks: Vec<Vec<usize>> = parent_keys
            .iter()
            .map(|k| {
                let Some(group) = k.as_ref().and_then(|k| groups.get(k)) else {
                    return Vec::new();
                };
                let limit = if single {
                    Some(sub.limit.unwrap_or(1).min(1))
                } else {
                    sub.limit
                };
                run(
                    &sub.filter,
                    &sub.order,
                    sub.offset,
                    limit,
                    group.iter().copied(),
                )
                .into_iter()
                .map(|r| {
                    *seen.entry(r.ptr()).or_insert_with(|| {
                        unique.push(r);
                        unique.len() - 1
                    })
                })
                .collect()
            })
            .collect();

        let children: Vec<Rc<Out>> = materialize(tables, primary_keys, sub, &unique)?
            .into_iter()
            .map(Rc::new)
            .collect();
        let name: Rc<str> = Rc::from(name.as_str());
        for (obj, pick) in out.iter_mut().zip(picks) {
            let related = if single {
                Related::One(pick.first().map(|&i| children[i].clone()))
            } else {
                Related::Many(pick.into_iter().map(|i| children[i].clone()).collect())
            };
            obj.relations.retain(|(n, _)| *n != name);
            obj.relations.push((name.clone(), related));
        }
    }
    Ok(out)
}
