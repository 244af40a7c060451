//! Storage chosen at run time by the JS wrapper.

use crate::core::batch::Batch;
use crate::core::outbox::OutboxEntry;
use crate::core::schema::{ModelDef, Schema};
use crate::core::value::{Key, Row};
use crate::error::Result;
use crate::storage::indexeddb::IdbStorage;
use crate::storage::{MemoryStorage, Storage};

#[derive(Clone)]
pub enum AnyStorage {
    Memory(MemoryStorage),
    IndexedDb(IdbStorage),
}

impl Storage for AnyStorage {
    async fn open(&self, schema: &Schema) -> Result<()> {
        match self {
            AnyStorage::Memory(s) => s.open(schema).await,
            AnyStorage::IndexedDb(s) => s.open(schema).await,
        }
    }
    async fn load(&self, model: &ModelDef) -> Result<Vec<Row>> {
        match self {
            AnyStorage::Memory(s) => s.load(model).await,
            AnyStorage::IndexedDb(s) => s.load(model).await,
        }
    }
    async fn load_matching(&self, model: &ModelDef, field: &str, keys: &[Key]) -> Result<Vec<Row>> {
        match self {
            AnyStorage::Memory(s) => s.load_matching(model, field, keys).await,
            AnyStorage::IndexedDb(s) => s.load_matching(model, field, keys).await,
        }
    }
    async fn load_outbox(&self) -> Result<Vec<OutboxEntry>> {
        match self {
            AnyStorage::Memory(s) => s.load_outbox().await,
            AnyStorage::IndexedDb(s) => s.load_outbox().await,
        }
    }
    async fn commit(&self, batch: &Batch) -> Result<()> {
        match self {
            AnyStorage::Memory(s) => s.commit(batch).await,
            AnyStorage::IndexedDb(s) => s.commit(batch).await,
        }
    }
    fn close(&self) {
        match self {
            AnyStorage::Memory(s) => s.close(),
            AnyStorage::IndexedDb(s) => s.close(),
        }
    }
}
