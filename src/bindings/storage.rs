//! Storage chosen at run time by the JS wrapper.

use crate::core::batch::Batch;
use crate::core::outbox::OutboxEntry;
use crate::core::queue::WriteQueue;
use crate::core::schema::{ModelDef, Schema};
use crate::core::value::{Key, Row};
use crate::error::Result;
use crate::storage::indexeddb::IdbStorage;
use crate::storage::{Changes, Committed, Loaded, MemoryStorage, Storage};

#[derive(Clone)]
pub enum AnyStorage {
    Memory(MemoryStorage),
    IndexedDb(IdbStorage),
}

/// Forwards every method to the storage inside.
macro_rules! forward {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            AnyStorage::Memory($s) => $call,
            AnyStorage::IndexedDb($s) => $call,
        }
    };
}

impl Storage for AnyStorage {
    fn queue(&self) -> WriteQueue {
        forward!(self, s => s.queue())
    }
    async fn open(&self, schema: &Schema) -> Result<()> {
        forward!(self, s => s.open(schema).await)
    }
    async fn load(&self, model: &ModelDef) -> Result<Loaded<Row>> {
        forward!(self, s => s.load(model).await)
    }
    async fn load_matching(
        &self,
        model: &ModelDef,
        field: &str,
        keys: &[Key],
    ) -> Result<Loaded<Row>> {
        forward!(self, s => s.load_matching(model, field, keys).await)
    }
    async fn load_outbox(&self) -> Result<(Loaded<OutboxEntry>, u64)> {
        forward!(self, s => s.load_outbox().await)
    }
    async fn load_outbox_entries(&self, ids: &[String]) -> Result<Loaded<OutboxEntry>> {
        forward!(self, s => s.load_outbox_entries(ids).await)
    }
    async fn changes_since(&self, seq: u64) -> Result<Changes> {
        forward!(self, s => s.changes_since(seq).await)
    }
    async fn commit(&self, batch: &Batch, base: u64) -> Result<Committed> {
        forward!(self, s => s.commit(batch, base).await)
    }
    fn close(&self) {
        forward!(self, s => s.close())
    }
}
