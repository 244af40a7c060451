//! micro-sync: a local-first, optimistic sync ORM for the browser.
//!
//! The crate is split so that everything that can be decided without a browser is plain Rust:
//!
//! - [`core`]: models, the query engine, relations, the in-memory tables, write planning and the
//!   async database that ties them to a storage port. No `wasm-bindgen`, `js-sys` or `web-sys`.
//! - [`storage`]: the narrow [`storage::Storage`] port, the memory store, and (wasm32 only) the
//!   IndexedDB store.
//! - `bindings` (wasm32 only): the `#[wasm_bindgen]` surface used by the npm wrapper.
//!
//! TypeScript users never see this crate directly; they import the `micro-sync` npm package.

pub mod core;
pub mod error;
pub mod storage;

#[cfg(target_arch = "wasm32")]
mod bindings;

pub use error::{Error, Result};
