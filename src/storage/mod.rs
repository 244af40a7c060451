//! Storage implementations: memory, and (wasm32) IndexedDB.
//!
//! The port itself ([`Storage`]) and its types live in [`crate::core::ports`], so the core does
//! not depend on this module; the rules for checked commits are documented there.

pub mod memory;

#[cfg(target_arch = "wasm32")]
pub mod indexeddb;

pub use crate::core::outbox::OUTBOX_STORE;
pub use memory::MemoryStorage;

/// Name of the metadata store.
pub const META_STORE: &str = "_meta";
/// Name of the change log store (see the module docs).
pub const CHANGES_STORE: &str = "_changes";
/// Change log records kept; a database further behind than this re-reads everything.
pub const KEEP_CHANGES: u64 = 1_000;

pub use crate::core::ports::{Changes, Committed, Loaded, Storage, Unreadable};
