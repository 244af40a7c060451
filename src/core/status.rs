//! Sync status: the per-repository snapshot apps bind to, derived from the sync scheduler's
//! state (connectivity, loop, drain) and each model's last error, sync time and pulls.

use super::scheduler::Scheduler;
use super::vec_map::VecMap;
use serde::Serialize;

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
    /// Pushes are paused until `db.resumeSync()`: the backend asked for credentials.
    pub needs_auth: bool,
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
    pub sched: Scheduler,
    pub models: VecMap<String, ModelSyncState>,
}

impl Default for StatusBoard {
    fn default() -> Self {
        StatusBoard {
            sched: Scheduler::new(true),
            models: VecMap::new(),
        }
    }
}

impl StatusBoard {
    pub fn model_mut(&mut self, model: &str) -> &mut ModelSyncState {
        self.models
            .get_or_insert_with(model.to_string(), ModelSyncState::default)
    }

    pub fn snapshot(&self, model: &str, pending_count: usize) -> SyncStatus {
        let m = self.models.get(model).cloned().unwrap_or_default();
        SyncStatus {
            online: self.sched.online(),
            engine_running: self.sched.running(),
            syncing: m.pulling > 0 || (self.sched.draining() && pending_count > 0),
            pending_count,
            last_error: m.last_error,
            last_synced_at: m.last_synced_at,
            needs_auth: self.sched.paused(),
        }
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::core::scheduler::Event::*;

    #[test]
    fn snapshot_reflects_board() {
        let mut b = StatusBoard::default();
        b.sched.on(Start).unwrap();
        b.sched.on(LeaseGranted).unwrap();
        assert!(b.sched.draining());
        b.model_mut("users").last_error = Some("boom".into());
        let s = b.snapshot("users", 2);
        assert!(s.engine_running && s.syncing && s.online);
        assert_eq!(
            (s.pending_count, s.last_error.as_deref()),
            (2, Some("boom"))
        );
        assert!(!b.snapshot("posts", 0).syncing, "nothing pending for posts");
        b.sched.on(Online(false)).unwrap();
        assert!(!b.snapshot("users", 2).online);
    }
}
