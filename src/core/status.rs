//! Sync status: the engine's lifecycle as an explicit state machine, and the per-repository
//! snapshot apps bind to.

use crate::error::{Error, Result};
use serde::Serialize;
use std::collections::BTreeMap;

/// Whether the background loop runs, and whether a drain of the outbox is in progress. A drain
/// can run while the loop is stopped (`retryPendingSync()` by hand).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineState {
    Stopped,
    StoppedDraining,
    Idle,
    Draining,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineEvent {
    Start,
    Stop,
    DrainBegin,
    DrainEnd,
}

impl EngineState {
    /// The transition table. Starting a running engine or stopping a stopped one is a no-op;
    /// beginning a drain while one runs, or ending one that never began, is an error.
    pub fn next(self, event: EngineEvent) -> Result<EngineState> {
        use EngineEvent::*;
        use EngineState::*;
        Ok(match (self, event) {
            (Stopped | Idle, Start) => Idle,
            (StoppedDraining | Draining, Start) => Draining,
            (Stopped | Idle, Stop) => Stopped,
            (StoppedDraining | Draining, Stop) => StoppedDraining,
            (Idle, DrainBegin) => Draining,
            (Stopped, DrainBegin) => StoppedDraining,
            (Draining, DrainEnd) => Idle,
            (StoppedDraining, DrainEnd) => Stopped,
            (Draining | StoppedDraining, DrainBegin) | (Idle | Stopped, DrainEnd) => {
                return Err(Error::storage(format!(
                    "sync engine: {event:?} is impossible while {self:?}"
                )))
            }
        })
    }

    pub fn running(self) -> bool {
        matches!(self, EngineState::Idle | EngineState::Draining)
    }

    pub fn draining(self) -> bool {
        matches!(self, EngineState::Draining | EngineState::StoppedDraining)
    }
}

/// What `repo.getSyncStatus()` returns.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncStatus {
    pub online: bool,
    pub engine_running: bool,
    pub syncing: bool,
    pub pending_count: usize,
    pub last_error: Option<String>,
    pub last_synced_at: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelSyncState {
    pub last_error: Option<String>,
    /// A rejection's error stays until the next successful pull; a retryable one clears on the
    /// next successful push.
    pub last_error_is_rejection: bool,
    pub last_synced_at: Option<f64>,
    pub pulling: u32,
}

/// Everything the status snapshots are derived from.
#[derive(Clone, Debug)]
pub struct StatusBoard {
    pub engine: EngineState,
    pub online: bool,
    pub models: BTreeMap<String, ModelSyncState>,
}

impl Default for StatusBoard {
    fn default() -> Self {
        StatusBoard {
            engine: EngineState::Stopped,
            online: true,
            models: BTreeMap::new(),
        }
    }
}

impl StatusBoard {
    pub fn apply(&mut self, event: EngineEvent) -> Result<()> {
        self.engine = self.engine.next(event)?;
        Ok(())
    }

    pub fn model_mut(&mut self, model: &str) -> &mut ModelSyncState {
        self.models.entry(model.to_string()).or_default()
    }

    pub fn snapshot(&self, model: &str, pending_count: usize) -> SyncStatus {
        let m = self.models.get(model).cloned().unwrap_or_default();
        SyncStatus {
            online: self.online,
            engine_running: self.engine.running(),
            syncing: m.pulling > 0 || (self.engine.draining() && pending_count > 0),
            pending_count,
            last_error: m.last_error,
            last_synced_at: m.last_synced_at,
        }
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::EngineEvent::*;
    use super::EngineState::*;
    use super::*;

    #[test]
    fn transition_table() {
        let table = [
            (Stopped, Start, Some(Idle)),
            (Stopped, Stop, Some(Stopped)),
            (Stopped, DrainBegin, Some(StoppedDraining)),
            (Stopped, DrainEnd, None),
            (Idle, Start, Some(Idle)),
            (Idle, Stop, Some(Stopped)),
            (Idle, DrainBegin, Some(Draining)),
            (Idle, DrainEnd, None),
            (Draining, Start, Some(Draining)),
            (Draining, Stop, Some(StoppedDraining)),
            (Draining, DrainBegin, None),
            (Draining, DrainEnd, Some(Idle)),
            (StoppedDraining, Start, Some(Draining)),
            (StoppedDraining, Stop, Some(StoppedDraining)),
            (StoppedDraining, DrainBegin, None),
            (StoppedDraining, DrainEnd, Some(Stopped)),
        ];
        for (from, event, to) in table {
            assert_eq!(from.next(event).ok(), to, "{from:?} + {event:?}");
        }
    }

    #[test]
    fn snapshot_reflects_board() {
        let mut b = StatusBoard::default();
        b.apply(Start).unwrap();
        b.apply(DrainBegin).unwrap();
        b.model_mut("users").last_error = Some("boom".into());
        let s = b.snapshot("users", 2);
        assert!(s.engine_running && s.syncing && s.online);
        assert_eq!(
            (s.pending_count, s.last_error.as_deref()),
            (2, Some("boom"))
        );
        assert!(!b.snapshot("posts", 0).syncing, "nothing pending for posts");
    }
}
