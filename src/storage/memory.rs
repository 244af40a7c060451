//! In-memory storage with the same semantics as IndexedDB storage, for tests, SSR and Node.
//! Clones share the same data, so two databases created on one memory storage see each other's
//! writes, like two connections to one IndexedDB database.

use super::Storage;
use crate::core::batch::{Batch, RowOp};
use crate::core::outbox::OutboxEntry;
use crate::core::schema::{ModelDef, Schema};
use crate::core::value::{Key, Row};
use crate::error::{Error, Result};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

#[derive(Default, Debug)]
struct Data {
    stores: HashMap<String, BTreeMap<Key, Row>>,
    outbox: BTreeMap<String, OutboxEntry>,
}

#[derive(Clone, Default, Debug)]
pub struct MemoryStorage {
    data: Rc<RefCell<Data>>,
}

impl MemoryStorage {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Storage for MemoryStorage {
    async fn open(&self, schema: &Schema) -> Result<()> {
        let mut data = self.data.borrow_mut();
        for name in schema.models.keys() {
            data.stores.entry(name.clone()).or_default();
        }
        Ok(())
    }

    async fn load(&self, model: &ModelDef) -> Result<Vec<Row>> {
        let data = self.data.borrow();
        Ok(data
            .stores
            .get(&model.name)
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn load_matching(&self, model: &ModelDef, field: &str, keys: &[Key]) -> Result<Vec<Row>> {
        let data = self.data.borrow();
        let Some(store) = data.stores.get(&model.name) else {
            return Ok(Vec::new());
        };
        Ok(if field == model.primary_key {
            keys.iter().filter_map(|k| store.get(k)).cloned().collect()
        } else {
            store
                .values()
                .filter(|r| {
                    r.get(field)
                        .and_then(Key::from_value)
                        .is_some_and(|k| keys.contains(&k))
                })
                .cloned()
                .collect()
        })
    }

    async fn load_outbox(&self) -> Result<Vec<OutboxEntry>> {
        Ok(self.data.borrow().outbox.values().cloned().collect())
    }

    async fn commit(&self, batch: &Batch) -> Result<()> {
        let mut data = self.data.borrow_mut();
        // Check first, then write: nothing is half-applied.
        for model in batch.models() {
            if !data.stores.contains_key(model) {
                return Err(Error::storage(format!("no store for model \"{model}\"")));
            }
        }
        for op in &batch.rows {
            match op {
                RowOp::Put { model, key, row } => {
                    data.stores
                        .get_mut(model)
                        .unwrap()
                        .insert(key.clone(), (**row).clone());
                }
                RowOp::Delete { model, key } => {
                    data.stores.get_mut(model).unwrap().remove(key);
                }
            }
        }
        for e in &batch.outbox_put {
            data.outbox.insert(e.mutation_id.clone(), e.clone());
        }
        for id in &batch.outbox_delete {
            data.outbox.remove(id);
        }
        Ok(())
    }

    fn close(&self) {}
}
