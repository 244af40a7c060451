use super::*;
use crate::core::query::Filter;
use crate::core::replica::{Replica, Settled};
use crate::core::schema::Schema;
use proptest::prelude::*;
use serde_json::json;
use std::collections::BTreeMap;

fn row(v: Value) -> Obj {
    v.as_object().unwrap().clone()
}

#[test]
fn replay_truth_table() {
    let r = row(json!({"id": 1, "a": 1, "b": 1}));
    let patch = Effect::Patch(row(json!({"b": 2})));
    let ins = Effect::Insert(row(json!({"id": 1, "a": 9})));
    assert_eq!(
        step(Some(r.clone()), &ins),
        Some(row(json!({"id": 1, "a": 9})))
    );
    assert_eq!(step(None, &ins), Some(row(json!({"id": 1, "a": 9}))));
    assert_eq!(
        step(Some(r.clone()), &patch),
        Some(row(json!({"id": 1, "a": 1, "b": 2})))
    );
    assert_eq!(step(None, &patch), None);
    assert_eq!(step(Some(r), &Effect::Delete), None);
    assert_eq!(step(None, &Effect::Delete), None);
}

fn engine() -> Replica {
    let m: ModelDef =
        serde_json::from_value(json!({ "name": "t", "primaryKey": "id", "hasMutation": true }))
            .unwrap();
    let mut e = Replica::new(Schema::new(vec![m]).unwrap());
    e.load("t", vec![]).unwrap();
    e
}

/// Plans and applies a local write as the database does.
fn write(e: &mut Replica, op: &Op) {
    let filter =
        |k: i64| Filter::parse(e.schema.model("t").unwrap(), Some(&json!({ "id": k }))).unwrap();
    let batch = match op {
        Op::Upsert(k, v) => {
            if e.get("t", &json!(k)).unwrap().is_some() {
                let rows = e.plan_update("t", &filter(*k), &json!({ "v": v })).unwrap();
                e.build_update("t", &rows, &json!({ "v": v }), 0.0)
                    .unwrap()
                    .0
            } else {
                e.build_insert("t", &[json!({ "id": k, "v": v })], 0.0)
                    .unwrap()
                    .0
            }
        }
        Op::Delete(k) => {
            let rows = e.plan_delete("t", &filter(*k)).unwrap();
            e.build_delete("t", &rows, 0.0).unwrap()
        }
        _ => unreachable!(),
    };
    e.apply(&batch);
}

fn state(e: &Replica) -> BTreeMap<i64, i64> {
    let sel = crate::core::query::Select::parse(&e.schema, "t", None).unwrap();
    e.select(&sel)
        .unwrap()
        .iter()
        .map(|r| r.to_value())
        .map(|r| (r["id"].as_i64().unwrap(), r["v"].as_i64().unwrap()))
        .collect()
}

#[test]
fn rejecting_a_middle_write_keeps_later_ones() {
    let mut e = engine();
    write(&mut e, &Op::Upsert(1, 10)); // insert
    write(&mut e, &Op::Upsert(1, 20)); // update
    write(&mut e, &Op::Upsert(1, 30)); // update
    let middle = e.outbox()[1].mutation_id.clone();
    let batch = e.plan_rollback(&middle, None).unwrap();
    e.apply(&batch);
    assert_eq!(
        state(&e),
        BTreeMap::from([(1, 30)]),
        "later write still applied"
    );
    let first = e.outbox()[0].mutation_id.clone();
    let batch = e.plan_rollback(&first, None).unwrap();
    e.apply(&batch);
    assert_eq!(
        state(&e),
        BTreeMap::new(),
        "without its insert, the update has nothing to patch"
    );
    assert_eq!(e.outbox().len(), 1);
    assert_eq!(
        e.outbox()[0].before[0].row,
        None,
        "the surviving entry inherits the confirmed base"
    );
}

#[test]
fn pull_rebases_pending_rows_and_deletes_vanished_ones() {
    let mut e = engine();
    e.load(
        "t",
        [
            row(json!({"id": 1, "v": 1})),
            row(json!({"id": 2, "v": 2})),
            row(json!({"id": 3, "v": 3})),
        ]
        .iter()
        .map(crate::core::value::Row::from_obj)
        .collect(),
    )
    .unwrap();
    write(&mut e, &Op::Upsert(2, 20)); // pending update on row 2
    let remote = vec![
        row(json!({"id": 1, "v": 100, "extra": true})),
        row(json!({"id": 2, "v": 200, "extra": true})),
    ];
    let (batch, plan) = e
        .plan_pull(
            "t",
            remote.into_iter().enumerate().collect(),
            &Settled::default(),
            &mut no_resolver,
        )
        .unwrap();
    e.apply(&batch);
    let seen = plan.seen.into_iter().collect();
    let deletions = e
        .plan_pull_deletions("t", &Filter::All, &seen, &Settled::default())
        .unwrap();
    e.apply(&deletions);
    let sel = crate::core::query::Select::parse(&e.schema, "t", None).unwrap();
    let rows = e.select(&sel).unwrap();
    assert_eq!(
        rows,
        vec![
            json!({"id": 1, "v": 100, "extra": true}),
            json!({"id": 2, "v": 20, "extra": true})
        ]
    );
    assert_eq!(
        e.outbox()[0].before[0].row,
        Some(row(json!({"id": 2, "v": 200, "extra": true}))),
        "remote is the new base"
    );
    // A pull of nothing changes nothing (deletions are a separate, unpaginated step).
    let (batch, _) = e
        .plan_pull("t", vec![], &Settled::default(), &mut no_resolver)
        .unwrap();
    assert!(batch.rows.is_empty());
}

#[test]
fn pulled_rows_without_a_usable_key_are_skipped_not_fatal() {
    let e = engine();
    let remote = vec![
        (0, row(json!({"v": 1}))),
        (1, row(json!({"id": 7, "v": 2}))),
        (2, row(json!({"id": true, "v": 3}))),
    ];
    let (batch, plan) = e
        .plan_pull("t", remote, &Settled::default(), &mut no_resolver)
        .unwrap();
    assert_eq!(batch.rows.len(), 1, "the keyed row is merged");
    let paths: Vec<String> = plan.skipped.iter().map(|i| i.path.join(".")).collect();
    assert_eq!(paths, ["0.id", "2.id"]);
    assert!(plan.skipped[0].message.contains("missing"));
}

#[derive(Clone, Debug)]
enum Op {
    Upsert(i64, i64),
    Delete(i64),
    PushOk,
    PushReject,
    Pull,
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0i64..4, 0i64..100).prop_map(|(k, v)| Op::Upsert(k, v)),
        1 => (0i64..4).prop_map(Op::Delete),
        2 => Just(Op::PushOk),
        1 => Just(Op::PushReject),
        1 => Just(Op::Pull),
    ]
}

/// The backend applies an entry as the demo backend would (update/delete of a missing row: no-op).
fn backend_apply(backend: &mut BTreeMap<i64, i64>, e: &OutboxEntry) {
    match e.action {
        Action::Insert => {
            for r in e.query["values"].as_array().unwrap() {
                backend.insert(r["id"].as_i64().unwrap(), r["v"].as_i64().unwrap());
            }
        }
        Action::Update => {
            for k in e.query["where"]["id"]["in"].as_array().unwrap() {
                let k = k.as_i64().unwrap();
                if let Some(v) = backend.get_mut(&k) {
                    *v = e.query["values"]["v"].as_i64().unwrap();
                }
            }
        }
        Action::Delete => {
            for k in e.query["where"]["id"]["in"].as_array().unwrap() {
                backend.remove(&k.as_i64().unwrap());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
    /// For any interleaving of local writes, accepted pushes, rejections and pulls, the local
    /// state equals the backend's state with the surviving pending writes replayed in order.
    #[test]
    fn local_state_is_confirmed_state_plus_pending(ops in proptest::collection::vec(arb_op(), 1..40)) {
        let mut e = engine();
        let mut backend: BTreeMap<i64, i64> = BTreeMap::new();
        for op in &ops {
            match op {
                Op::Upsert(..) | Op::Delete(_) => write(&mut e, op),
                Op::PushOk => {
                    if let Some(head) = e.outbox().first().cloned() {
                        backend_apply(&mut backend, &head);
                        let b = e.plan_push_done(&head.mutation_id).unwrap();
                        e.apply(&b);
                    }
                }
                Op::PushReject => {
                    if let Some(head) = e.outbox().first().cloned() {
                        let b = e.plan_rollback(&head.mutation_id, None).unwrap();
                        e.apply(&b);
                    }
                }
                Op::Pull => {
                    let rows = backend.iter().map(|(k, v)| row(json!({"id": k, "v": v}))).enumerate().collect();
                    let (b, plan) = e.plan_pull("t", rows, &Settled::default(), &mut no_resolver).unwrap();
                    e.apply(&b);
                    let seen = plan.seen.into_iter().collect();
                    let d = e.plan_pull_deletions("t", &Filter::All, &seen, &Settled::default()).unwrap();
                    e.apply(&d);
                }
            }
            // Expected: the backend with every pending entry applied, in order.
            let mut expected = backend.clone();
            for p in e.outbox() {
                backend_apply(&mut expected, p);
            }
            prop_assert_eq!(state(&e), expected, "after {:?}", op);
        }
    }
}

fn no_resolver(_: Option<&Obj>, _: &Obj, _: Option<&Obj>) -> crate::error::Result<Obj> {
    Err(crate::error::Error::Sync("no conflict function".into()))
}

/// A replica whose model `t` has `conflict`, holding rows 1 (`v: 1, at: 10`, pending update of
/// `v` to 20) and 2 (`v: 2, at: 10`, no pending writes).
fn with_conflict(conflict: Value) -> Replica {
    let m: ModelDef = serde_json::from_value(
        json!({ "name": "t", "primaryKey": "id", "hasMutation": true, "conflict": conflict }),
    )
    .unwrap();
    let mut e = Replica::new(Schema::new(vec![m]).unwrap());
    let rows = [
        row(json!({"id": 1, "v": 1, "w": "base", "at": 10})),
        row(json!({"id": 2, "v": 2, "w": "base", "at": 10})),
    ];
    e.load(
        "t",
        rows.iter().map(crate::core::value::Row::from_obj).collect(),
    )
    .unwrap();
    write(&mut e, &Op::Upsert(1, 20));
    e
}

fn pull_with(
    e: &mut Replica,
    remote: Vec<Value>,
    resolve: &mut crate::core::conflict::Resolver,
) -> Vec<Value> {
    let rows = remote.into_iter().map(row).enumerate().collect();
    let (batch, plan) = e
        .plan_pull("t", rows, &Settled::default(), resolve)
        .unwrap();
    assert!(plan.skipped.is_empty(), "{:?}", plan.skipped);
    e.apply(&batch);
    let sel = crate::core::query::Select::parse(&e.schema, "t", None).unwrap();
    e.select(&sel)
        .unwrap()
        .iter()
        .map(|r| r.to_value())
        .collect()
}

/// The strategies end to end through the merge: every row's result, and the pending write's
/// field (`v` of row 1) on top in every case.
#[test]
fn pull_applies_each_conflict_strategy() {
    // The backend changed `w` of both rows; `at` 5 is older than the local rows, 20 newer.
    let remote = |at: i64| {
        vec![
            json!({"id": 1, "v": 100, "w": "remote", "at": at}),
            json!({"id": 2, "v": 200, "w": "remote", "at": at}),
        ]
    };
    let cases = [
        (json!("remote"), 5, ["remote", "remote"]),
        (json!("local"), 5, ["base", "remote"]),
        (json!({"lww": "at"}), 5, ["base", "base"]),
        (json!({"lww": "at"}), 20, ["remote", "remote"]),
    ];
    for (strategy, at, want) in cases {
        let mut e = with_conflict(strategy.clone());
        let rows = pull_with(&mut e, remote(at), &mut no_resolver);
        let w: Vec<&str> = rows.iter().map(|r| r["w"].as_str().unwrap()).collect();
        assert_eq!(w, want, "{strategy} with remote at {at}");
        assert_eq!(
            rows[0]["v"], 20,
            "{strategy}: the pending write stays on top"
        );
        let base_w = e.outbox()[0].before[0].row.as_ref().unwrap()["w"].clone();
        assert_eq!(base_w, want[0], "{strategy}: the base follows the decision");
    }
}

#[test]
fn pull_asks_the_conflict_function_only_for_rows_with_pending_writes() {
    let mut e = with_conflict(json!("custom"));
    let mut calls = Vec::new();
    let rows = pull_with(
        &mut e,
        vec![
            json!({"id": 1, "v": 100, "w": "remote", "at": 20}),
            json!({"id": 2, "v": 200, "w": "remote", "at": 20}),
        ],
        &mut |local, remote, base| {
            calls.push((local.cloned(), base.cloned()));
            let mut merged = remote.clone();
            merged.insert("w".into(), json!("merged"));
            Ok(merged)
        },
    );
    assert_eq!(calls.len(), 1, "row 2 has no pending writes: no conflict");
    let (local, base) = &calls[0];
    assert_eq!(
        local.as_ref().unwrap()["v"],
        20,
        "local has the pending write"
    );
    assert_eq!(base.as_ref().unwrap()["v"], 1, "base is the confirmed row");
    assert_eq!(rows[0], json!({"id": 1, "v": 20, "w": "merged", "at": 20}));
    assert_eq!(rows[1]["w"], "remote");
}

#[test]
fn a_failing_or_key_changing_conflict_function_skips_the_row_and_changes_nothing() {
    let remote = vec![(0, row(json!({"id": 1, "v": 100, "w": "remote"})))];
    for answer in [
        Err("boom"),
        Ok(json!({"id": 9, "w": "x"})),
        Ok(json!({"w": "x"})),
    ] {
        let e = with_conflict(json!("custom"));
        let (batch, plan) = e
            .plan_pull(
                "t",
                remote.clone(),
                &Settled::default(),
                &mut |_, _, _| match &answer {
                    Ok(v) => Ok(row(v.clone())),
                    Err(m) => Err(crate::error::Error::Sync(m.to_string())),
                },
            )
            .unwrap();
        assert!(batch.rows.is_empty() && batch.outbox_put.is_empty());
        assert_eq!(plan.skipped.len(), 1);
        assert_eq!(plan.skipped[0].path, ["0"]);
    }
}

#[test]
fn lww_needs_a_known_field() {
    let m: ModelDef = serde_json::from_value(json!({
        "name": "t", "primaryKey": "id", "fields": ["id", "at"], "conflict": {"lww": "updated"}
    }))
    .unwrap();
    let e = Schema::new(vec![m]).unwrap_err();
    assert!(
        e.to_string()
            .contains("unknown field \"updated\" in conflict.lww"),
        "{e}"
    );
}
