//! micro-sync: a local-first, optimistic sync ORM for the browser.
//!
//! The crate is split so that everything that can be decided without a browser is plain Rust:
//!
//! - [`core`]: models, the query engine, relations, the in-memory tables, write planning and the
//!   async database that ties them to a storage port. No `wasm-bindgen`, `js-sys` or `web-sys`.
//! - [`storage`]: the implementations of the core's [`core::ports::Storage`] port: the memory
//!   store, and (wasm32 only) the IndexedDB store.
//! - `browser` (wasm32 only): the sync runtime: timers, connectivity, the Web Lock, the
//!   BroadcastChannel and the app's hooks, carrying out what [`core::scheduler`] decides.
//! - `bindings` (wasm32 only): the `#[wasm_bindgen]` surface used by the npm wrapper.
//!
//! TypeScript users never see this crate directly; they import the `micro-sync` npm package.

pub mod core;
pub mod error;
pub mod storage;

#[cfg(target_arch = "wasm32")]
mod bindings;
#[cfg(target_arch = "wasm32")]
mod browser;

pub use error::{Error, Result};
