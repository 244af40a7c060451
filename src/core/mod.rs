//! Pure Rust: no wasm-bindgen, js-sys or web-sys below this module, so all of it runs under plain
//! `cargo test`.

pub mod batch;
pub mod coalesce;
pub mod conflict;
pub mod db;
pub mod ids;
pub mod limits;
pub mod live;
pub mod migrate;
pub mod outbox;
pub mod pattern;
pub mod ports;
pub mod query;
pub mod queue;
pub mod relations;
pub mod replica;
pub mod retry;
pub mod row;
pub mod scheduler;
pub mod schema;
pub mod status;
pub mod sync;
pub mod table;
pub mod value;
pub mod vec_map;
