//! One model's rows held in memory, in primary-key order, with an in-memory secondary index for
//! each declared index field (`value → primary keys`). Rows are reference counted so queries and
//! write plans can hold them without copying.

use super::value::{Key, Row};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;

#[derive(Clone, Debug, Default)]
pub struct Table {
    rows: BTreeMap<Key, Rc<Row>>,
    /// field → (indexed value → primary keys). Only string and number values are indexed; a
    /// lookup is only made for such operands, which can never equal anything else.
    indexes: Vec<(String, HashMap<Key, BTreeSet<Key>>)>,
}

impl Table {
    pub fn with_indexes(fields: &[String]) -> Self {
        Table {
            rows: BTreeMap::new(),
            indexes: fields.iter().map(|f| (f.clone(), HashMap::new())).collect(),
        }
    }

    pub fn get(&self, key: &Key) -> Option<&Rc<Row>> {
        self.rows.get(key)
    }

    pub fn contains(&self, key: &Key) -> bool {
        self.rows.contains_key(key)
    }

    fn unindex(&mut self, key: &Key, row: &Row) {
        for (field, index) in &mut self.indexes {
            if let Some(v) = row.get(field).and_then(Key::from_value) {
                if let Some(set) = index.get_mut(&v) {
                    set.remove(key);
                    if set.is_empty() {
                        index.remove(&v);
                    }
                }
            }
        }
    }

    pub fn put(&mut self, key: Key, row: Rc<Row>) {
        for (field, index) in &mut self.indexes {
            if let Some(v) = row.get(field).and_then(Key::from_value) {
                index.entry(v).or_default().insert(key.clone());
            }
        }
        if let Some(old) = self.rows.insert(key.clone(), row.clone()) {
            // Drop the old row's entries that the new row does not share.
            for (field, index) in &mut self.indexes {
                let Some(old_v) = old.get(field).and_then(Key::from_value) else {
                    continue;
                };
                if Some(&old_v) == row.get(field).and_then(Key::from_value).as_ref() {
                    continue;
                }
                if let Some(set) = index.get_mut(&old_v) {
                    set.remove(&key);
                    if set.is_empty() {
                        index.remove(&old_v);
                    }
                }
            }
        }
    }

    pub fn remove(&mut self, key: &Key) -> Option<Rc<Row>> {
        let row = self.rows.remove(key)?;
        self.unindex(key, &row);
        Some(row)
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Rows in primary-key order.
    pub fn iter(&self) -> impl Iterator<Item = &Rc<Row>> {
        self.rows.values()
    }

    /// Primary keys of rows whose `field` equals one of `values`, in primary-key order; `None`
    /// when `field` has no index.
    pub fn lookup(&self, field: &str, values: &[Key]) -> Option<Vec<&Key>> {
        let (_, index) = self.indexes.iter().find(|(f, _)| f == field)?;
        let mut keys: Vec<&Key> = values
            .iter()
            .filter_map(|v| index.get(v))
            .flatten()
            .collect();
        if values.len() > 1 {
            keys.sort();
            keys.dedup();
        }
        Some(keys)
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(v: serde_json::Value) -> Rc<Row> {
        Rc::new(v.as_object().unwrap().clone())
    }

    #[test]
    fn index_follows_puts_and_removes() {
        let mut t = Table::with_indexes(&["s".to_string()]);
        let k = |n: f64| Key::Num(n);
        t.put(k(1.0), row(json!({"id": 1, "s": "a"})));
        t.put(k(2.0), row(json!({"id": 2, "s": "b"})));
        t.put(k(3.0), row(json!({"id": 3, "s": "a"})));
        let a = Key::Str("a".into());
        let b = Key::Str("b".into());
        assert_eq!(
            t.lookup("s", std::slice::from_ref(&a)).unwrap(),
            [&k(1.0), &k(3.0)]
        );
        t.put(k(1.0), row(json!({"id": 1, "s": "b"}))); // moves from a to b
        assert_eq!(t.lookup("s", std::slice::from_ref(&a)).unwrap(), [&k(3.0)]);
        assert_eq!(
            t.lookup("s", &[b.clone(), a.clone()]).unwrap(),
            [&k(1.0), &k(2.0), &k(3.0)]
        );
        t.remove(&k(2.0));
        t.put(k(3.0), row(json!({"id": 3}))); // field gone: unindexed
        assert_eq!(t.lookup("s", &[a, b]).unwrap(), [&k(1.0)]);
        assert!(t.lookup("other", &[]).is_none());
    }
}
