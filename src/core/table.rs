//! One model's rows held in memory, in primary-key order. Rows are reference counted so queries
//! and write plans can hold them without copying.

use super::value::{Key, Row};
use std::collections::BTreeMap;
use std::rc::Rc;

#[derive(Clone, Debug, Default)]
pub struct Table {
    rows: BTreeMap<Key, Rc<Row>>,
}

impl Table {
    pub fn get(&self, key: &Key) -> Option<&Rc<Row>> {
        self.rows.get(key)
    }

    pub fn contains(&self, key: &Key) -> bool {
        self.rows.contains_key(key)
    }

    pub fn put(&mut self, key: Key, row: Rc<Row>) {
        self.rows.insert(key, row);
    }

    pub fn remove(&mut self, key: &Key) -> Option<Rc<Row>> {
        self.rows.remove(key)
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
}
