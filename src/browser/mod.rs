//! Browser-bound code (wasm32 only): the sync runtime of each database and the browser APIs it
//! drives (timers through gloo-timers, window `online`/`offline` events, the Web Lock, the
//! BroadcastChannel, the app's sync hooks), and the report of traps. The decisions are made by
//! the pure [`crate::core::scheduler`]; this module only carries them out.

pub mod channel;
pub mod fatal;
pub mod hooks;
pub mod listeners;
pub mod lock;
pub mod network;
pub mod remote;
mod runtime;

pub use runtime::Runtime;
