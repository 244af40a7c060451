//! The storage port: the only thing the database needs from a persistence layer.
//!
//! Every method is async; implementations are single-threaded (the browser's event loop), so the
//! futures are not `Send`.

use crate::core::batch::Batch;
use crate::core::outbox::OutboxEntry;
use crate::core::schema::{ModelDef, Schema};
use crate::core::value::{Key, Row};
use crate::error::Result;

pub mod memory;

#[cfg(target_arch = "wasm32")]
pub mod indexeddb;

pub use memory::MemoryStorage;

/// Name of the outbox store.
pub const OUTBOX_STORE: &str = "_pendingSync";
/// Name of the metadata store.
pub const META_STORE: &str = "_meta";

// Single-threaded by design (wasm32 in a browser): no `Send` bounds on the returned futures.
#[allow(async_fn_in_trait)]
pub trait Storage {
    /// Makes sure every model's store (and declared index) exists.
    async fn open(&self, schema: &Schema) -> Result<()>;
    /// Every row of one model.
    async fn load(&self, model: &ModelDef) -> Result<Vec<Row>>;
    /// The rows of one model whose `field` (the primary key or a declared index) holds one of
    /// `keys`, so a read that names keys need not load the whole model. No default on purpose:
    /// a wrapper that forgot to forward it would silently read everything.
    async fn load_matching(&self, model: &ModelDef, field: &str, keys: &[Key]) -> Result<Vec<Row>>;
    /// Every outbox entry, oldest first.
    async fn load_outbox(&self) -> Result<Vec<OutboxEntry>>;
    /// Applies the whole batch atomically: all of it or none of it.
    async fn commit(&self, batch: &Batch) -> Result<()>;
    /// Releases the connection. The storage may be opened again.
    fn close(&self);
}
