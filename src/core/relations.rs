//! Loading relations for a page of rows: one pass over the related table per relation level,
//! never one lookup per parent row.

use super::query::{project, run, Select};
use super::schema::RelationKind;
use super::table::Table;
use super::value::{Key, Row};
use crate::error::{Error, Result};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

pub type Tables = HashMap<String, Table>;

/// Turns `rows` (of `sel.model`) into output objects: projected by `sel.fields`, with each
/// requested relation attached under its name.
pub fn materialize(
    tables: &Tables,
    primary_keys: &HashMap<&str, &str>,
    sel: &Select,
    rows: &[&Rc<Row>],
) -> Result<Vec<Value>> {
    let mut out: Vec<Row> = rows
        .iter()
        .map(|r| project(r, sel.fields.as_deref()))
        .collect();
    for (name, rel, sub) in &sel.relations {
        let table = tables
            .get(&rel.model)
            .ok_or_else(|| Error::storage(format!("model \"{}\" was not loaded", rel.model)))?;
        let parent_keys: Vec<Option<Key>> = rows
            .iter()
            .map(|r| r.get(&rel.local_key).and_then(Key::from_value))
            .collect();
        let wanted: HashSet<&Key> = parent_keys.iter().flatten().collect();

        // One read of the related table for every parent at once.
        let mut groups: HashMap<Key, Vec<&Rc<Row>>> = HashMap::new();
        if primary_keys.get(rel.model.as_str()) == Some(&rel.foreign_key.as_str()) {
            for k in &wanted {
                if let Some(r) = table.get(k) {
                    groups.entry((*k).clone()).or_default().push(r);
                }
            }
        } else if !wanted.is_empty() {
            for r in table.iter() {
                if let Some(k) = r.get(&rel.foreign_key).and_then(Key::from_value) {
                    if wanted.contains(&k) {
                        groups.entry(k).or_default().push(r);
                    }
                }
            }
        }

        // Per parent: the relation's own where/orderBy/offset/limit.
        let single = rel.kind != RelationKind::HasMany;
        let mut unique: Vec<&Rc<Row>> = Vec::new();
        let mut seen: HashMap<*const Row, usize> = HashMap::new();
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
                    *seen.entry(Rc::as_ptr(r)).or_insert_with(|| {
                        unique.push(r);
                        unique.len() - 1
                    })
                })
                .collect()
            })
            .collect();

        let children = materialize(tables, primary_keys, sub, &unique)?;
        for (obj, pick) in out.iter_mut().zip(picks) {
            let value = if single {
                pick.first().map_or(Value::Null, |&i| children[i].clone())
            } else {
                Value::Array(pick.into_iter().map(|i| children[i].clone()).collect())
            };
            obj.insert(name.clone(), value);
        }
    }
    Ok(out.into_iter().map(Value::Object).collect())
}
