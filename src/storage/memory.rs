//! In-memory storage with the same semantics as IndexedDB storage, for tests, SSR and Node.
//! Clones share the same data (and write queue), so two databases created on one memory storage
//! see each other's writes, like two connections to one IndexedDB database.

use super::{Changes, Committed, Loaded, Storage, KEEP_CHANGES};
use crate::core::batch::{Batch, ChangeSet, RowOp};
use crate::core::outbox::OutboxEntry;
use crate::core::queue::WriteQueue;
use crate::core::schema::{ModelDef, Schema};
use crate::core::value::{Key, Row};
use crate::error::{Error, Result};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;

#[derive(Default, Debug)]
struct Data {
    stores: HashMap<String, BTreeMap<Key, Row>>,
    outbox: BTreeMap<String, OutboxEntry>,
    /// The latest commit number, and the last [`KEEP_CHANGES`] log records.
    seq: u64,
    log: VecDeque<(u64, ChangeSet)>,
}

#[derive(Clone, Default)]
pub struct MemoryStorage {
    data: Rc<RefCell<Data>>,
    queue: Rc<RefCell<WriteQueue>>,
}

impl MemoryStorage {
    pub fn new() -> Self {
        Self::default()
    }

    /// The same data seen from another tab: shared rows, outbox and change log, but a write
    /// queue of its own (tabs do not share one).
    pub fn another_tab(&self) -> Self {
        MemoryStorage {
            data: self.data.clone(),
            queue: Rc::default(),
        }
    }

    /// Gives databases opened from now on a new write queue (after a database that held the old
    /// one failed for good).
    pub fn reset_queue(&self) {
        *self.queue.borrow_mut() = WriteQueue::new();
    }
}

impl Storage for MemoryStorage {
    fn queue(&self) -> WriteQueue {
        self.queue.borrow().clone()
    }

    async fn open(&self, schema: &Schema) -> Result<()> {
        let mut data = self.data.borrow_mut();
        for name in schema.models.keys() {
            data.stores.entry(name.clone()).or_default();
        }
        Ok(())
    }

    async fn load(&self, model: &ModelDef) -> Result<Loaded<Row>> {
        let data = self.data.borrow();
        Ok(Loaded::all(
            data.stores
                .get(&model.name)
                .map(|s| s.values().cloned().collect())
                .unwrap_or_default(),
        ))
    }

    async fn load_matching(
        &self,
        model: &ModelDef,
        field: &str,
        keys: &[Key],
    ) -> Result<Loaded<Row>> {
        let data = self.data.borrow();
        let Some(store) = data.stores.get(&model.name) else {
            return Ok(Loaded::all(Vec::new()));
        };
        Ok(Loaded::all(if field == model.primary_key {
            keys.iter().filter_map(|k| store.get(k)).cloned().collect()
        } else {
            store
                .values()
                .filter(|r| {
                    r.get_str(field)
                        .and_then(Key::from_ref)
                        .is_some_and(|k| keys.contains(&k))
                })
                .cloned()
                .collect()
        }))
    }

    async fn load_outbox(&self) -> Result<(Loaded<OutboxEntry>, u64)> {
        let data = self.data.borrow();
        Ok((
            Loaded::all(data.outbox.values().cloned().collect()),
            data.seq,
        ))
    }

    async fn load_outbox_entries(&self, ids: &[String]) -> Result<Loaded<OutboxEntry>> {
        let data = self.data.borrow();
        Ok(Loaded::all(
            ids.iter()
                .filter_map(|id| data.outbox.get(id))
                .cloned()
                .collect(),
        ))
    }

    async fn changes_since(&self, seq: u64) -> Result<Changes> {
        let data = self.data.borrow();
        let mut changes = Changes {
            seq: data.seq,
            complete: true,
            stores: Vec::new(),
        };
        if seq >= data.seq {
            changes.complete = seq == data.seq;
            return Ok(changes);
        }
        if data.log.front().is_none_or(|(first, _)| *first > seq + 1) {
            changes.complete = false;
            return Ok(changes);
        }
        for (_, record) in data.log.iter().filter(|(n, _)| *n > seq) {
            changes.add(record.clone());
        }
        Ok(changes)
    }

    async fn commit(&self, batch: &Batch, base: u64) -> Result<Committed> {
        let mut data = self.data.borrow_mut();
        if data.seq != base {
            return Ok(Committed::Stale);
        }
        // Check first, then write: nothing is half-applied.
        for model in batch.models() {
            if !data.stores.contains_key(model) {
                return Err(Error::storage(format!("no store for model \"{model}\"")));
            }
        }
        for op in &batch.rows {
            if let RowOp::Insert { model, key, .. } = op {
                if data.stores[model.as_str()].contains_key(key) {
                    return Err(Error::Constraint(format!(
                        "a \"{model}\" row with key {key} already exists; use update to change it"
                    )));
                }
            }
        }
        for op in &batch.rows {
            let store = data.stores.get_mut(op.model()).expect("checked above");
            match op.row() {
                Some(row) => {
                    store.insert(op.key().clone(), row.clone());
                }
                None => {
                    store.remove(op.key());
                }
            }
        }
        for e in &batch.outbox_put {
            data.outbox.insert(e.mutation_id.clone(), e.clone());
        }
        for id in &batch.outbox_delete {
            data.outbox.remove(id);
        }
        data.seq += 1;
        let seq = data.seq;
        data.log.push_back((seq, batch.change_set()));
        while data.log.len() as u64 > KEEP_CHANGES {
            data.log.pop_front();
        }
        Ok(Committed::Done(seq))
    }

    fn close(&self) {}
}
