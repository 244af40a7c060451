//! Conflict strategies on pull: what a row the backend returned does to the local one.
//!
//! A pulled row meets one of two local situations:
//! - **No pending writes** on the row: there is no local change to protect, so the remote row is
//!   taken, except under `{ lww: field }` when the local row's field is newer (a pull that started
//!   before this tab's last confirmed push must not bring back an older version).
//! - **Pending writes** on the row, and the backend's row differs from the confirmed base they were
//!   written on (a conflict): the strategy picks the new base, and the pending writes are replayed
//!   on top of it, so the fields they set stay local in every case.
//!
//! | strategy        | no pending writes              | pending writes, remote changed        |
//! |-----------------|--------------------------------|---------------------------------------|
//! | `"remote"`      | take remote                    | base := remote                        |
//! | `"local"`       | take remote                    | keep the base (remote ignored)        |
//! | `{ lww: f }`    | keep local if local.f > remote.f, else take remote | keep the base if local.f > remote.f, else base := remote |
//! | function        | take remote                    | base := f(local, remote, base)        |
//!
//! A pending row whose base equals the remote row is no conflict: the remote row is taken.
//! Under `lww`, values compare as range queries do (numbers, strings, ISO dates against numbers);
//! a missing or incomparable field, or a tie, lets the remote row win.

use crate::core::row::{Obj, Val};
use crate::core::value::compare;
use serde::Deserialize;
use std::cmp::Ordering;

/// The model's `conflict` option as the wrapper describes it (a function becomes `"custom"`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Conflict {
    #[default]
    Remote,
    Local,
    Lww(String),
    Custom,
}

/// The app's conflict function: `(local, remote, base)` to the new base.
pub type Resolver<'a> =
    dyn FnMut(Option<&Obj>, &Obj, Option<&Obj>) -> crate::error::Result<Obj> + 'a;

/// What the merge does with one pulled row.
#[derive(Debug, PartialEq)]
pub enum Decision {
    /// The remote row replaces the local one (no pending writes) or becomes the new base.
    TakeRemote,
    /// Leave the row and its base as they are.
    KeepLocal,
    /// Ask the app's function for the new base.
    Ask,
}

/// Decides one pulled row. `local` is the row as this tab shows it (pending writes applied),
/// `base` the confirmed row the pending writes were made on (only meaningful when `pending`).
pub fn decide(
    strategy: &Conflict,
    pending: bool,
    local: Option<&Obj>,
    remote: &Obj,
    base: Option<&Obj>,
) -> Decision {
    let local_newer = |field: &str| {
        let (Some(l), Some(r)) = (local.and_then(|l| l.get(field)), remote.get(field)) else {
            return false;
        };
        compare(Val::new(l).get(), Val::new(r).get()) == Some(Ordering::Greater)
    };
    if !pending {
        return match strategy {
            Conflict::Lww(field) if local_newer(field) => Decision::KeepLocal,
            _ => Decision::TakeRemote,
        };
    }
    if base == Some(remote) {
        return Decision::TakeRemote;
    }
    match strategy {
        Conflict::Remote => Decision::TakeRemote,
        Conflict::Local => Decision::KeepLocal,
        Conflict::Lww(field) if local_newer(field) => Decision::KeepLocal,
        Conflict::Lww(_) => Decision::TakeRemote,
        Conflict::Custom => Decision::Ask,
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: serde_json::Value) -> Obj {
        v.as_object().unwrap().clone()
    }

    /// Every row of the table in the module documentation.
    #[test]
    fn truth_table() {
        let base = obj(json!({ "id": 1, "title": "base", "at": 10 }));
        let older = obj(json!({ "id": 1, "title": "remote", "at": 5 }));
        let newer = obj(json!({ "id": 1, "title": "remote", "at": 20 }));
        let local = obj(json!({ "id": 1, "title": "local", "at": 15 }));
        let lww = Conflict::Lww("at".into());
        use Decision::*;
        let cases: Vec<(&Conflict, bool, &Obj, Decision)> = vec![
            // no pending writes
            (&Conflict::Remote, false, &older, TakeRemote),
            (&Conflict::Local, false, &older, TakeRemote),
            (&Conflict::Custom, false, &older, TakeRemote),
            (&lww, false, &older, KeepLocal),
            (&lww, false, &newer, TakeRemote),
            // pending writes, the backend's row changed
            (&Conflict::Remote, true, &newer, TakeRemote),
            (&Conflict::Local, true, &newer, KeepLocal),
            (&Conflict::Custom, true, &newer, Ask),
            (&lww, true, &older, KeepLocal),
            (&lww, true, &newer, TakeRemote),
        ];
        for (strategy, pending, remote, want) in cases {
            assert_eq!(
                decide(strategy, pending, Some(&local), remote, Some(&base)),
                want,
                "{strategy:?}, pending: {pending}, remote at {}",
                remote["at"]
            );
        }
        // A backend row equal to the base is no conflict, whatever the strategy.
        for s in [&Conflict::Remote, &Conflict::Local, &lww, &Conflict::Custom] {
            assert_eq!(
                decide(s, true, Some(&local), &base, Some(&base)),
                TakeRemote
            );
        }
    }

    #[test]
    fn lww_lets_the_remote_win_on_ties_and_missing_or_incomparable_fields() {
        let lww = Conflict::Lww("at".into());
        let remote = obj(json!({ "id": 1, "at": 10 }));
        for local in [
            json!({ "id": 1, "at": 10 }),
            json!({ "id": 1 }),
            json!({ "id": 1, "at": true }),
            json!({ "id": 1, "at": "not a date" }),
        ] {
            let local = obj(local);
            assert_eq!(
                decide(&lww, false, Some(&local), &remote, None),
                Decision::TakeRemote
            );
            assert_eq!(
                decide(&lww, true, Some(&local), &remote, None),
                Decision::TakeRemote
            );
        }
        // A row only the backend has.
        assert_eq!(
            decide(&lww, false, None, &remote, None),
            Decision::TakeRemote
        );
        // ISO strings compare with each other and with epoch milliseconds.
        let iso_local = obj(json!({ "id": 1, "at": "2026-12-05T10:00:00Z" }));
        let iso_remote = obj(json!({ "id": 1, "at": "2026-12-05T09:00:00Z" }));
        assert_eq!(
            decide(&lww, false, Some(&iso_local), &iso_remote, None),
            Decision::KeepLocal
        );
        // 2026-12-05T11:00:00Z
        let ms_remote = obj(json!({ "id": 1, "at": 1_796_468_400_000_u64 }));
        assert_eq!(
            decide(&lww, false, Some(&iso_local), &ms_remote, None),
            Decision::TakeRemote
        );
    }

    #[test]
    fn described_strategies_deserialize() {
        let parse = |s: &str| serde_json::from_str::<Conflict>(s).unwrap();
        assert_eq!(parse(r#""remote""#), Conflict::Remote);
        assert_eq!(parse(r#""local""#), Conflict::Local);
        assert_eq!(parse(r#""custom""#), Conflict::Custom);
        assert_eq!(
            parse(r#"{"lww":"updatedAt"}"#),
            Conflict::Lww("updatedAt".into())
        );
    }
}
