//! Host tests of coalescing: every row of the truth table, what the plan leaves alone, and a
//! property test that coalescing never changes any row's replayed state.

use super::*;
use crate::core::outbox::{test_entry, Before};
use crate::core::schema::ModelDef;
use crate::core::sync;
use proptest::prelude::*;
use serde_json::json;

fn def() -> ModelDef {
    serde_json::from_value(json!({ "name": "t", "primaryKey": "id" })).unwrap()
}

fn entry(id: &str, action: Action, key: i64, query: Value, before: Option<Value>) -> OutboxEntry {
    test_entry(id, action, query, vec![(key, before)])
}

fn insert(id: &str, key: i64, row: Value) -> OutboxEntry {
    entry(id, Action::Insert, key, json!({ "values": [row] }), None)
}
fn update(id: &str, key: i64, values: Value) -> OutboxEntry {
    entry(
        id,
        Action::Update,
        key,
        json!({ "where": { "id": { "in": [key] } }, "values": values }),
        Some(json!({ "id": key })),
    )
}
fn delete(id: &str, key: i64) -> OutboxEntry {
    entry(
        id,
        Action::Delete,
        key,
        json!({ "where": { "id": { "in": [key] } } }),
        Some(json!({ "id": key })),
    )
}

#[test]
fn insert_then_update_is_one_insert_of_the_merged_row() {
    let a = insert("a", 1, json!({ "id": 1, "x": 1, "y": 1 }));
    let b = update("b", 1, json!({ "y": 2, "z": 3 }));
    let Merge::Into(m) = merge(&a, &b) else {
        panic!("merged")
    };
    assert_eq!((m.mutation_id.as_str(), m.action), ("a", Action::Insert));
    assert_eq!(
        m.query,
        json!({ "values": [{ "id": 1, "x": 1, "y": 2, "z": 3 }] })
    );
    assert_eq!(m.before, a.before);
}

#[test]
fn insert_then_delete_sends_nothing() {
    assert_eq!(
        merge(&insert("a", 1, json!({ "id": 1 })), &delete("b", 1)),
        Merge::Drop
    );
}

#[test]
fn update_then_update_is_one_update() {
    let a = update("a", 1, json!({ "x": 1, "y": 1 }));
    let Merge::Into(m) = merge(&a, &update("b", 1, json!({ "y": 2 }))) else {
        panic!("merged")
    };
    assert_eq!((m.mutation_id.as_str(), m.action), ("a", Action::Update));
    assert_eq!(m.query["values"], json!({ "x": 1, "y": 2 }));
    assert_eq!(m.query["where"], a.query["where"]);
}

#[test]
fn update_then_delete_is_one_delete_keeping_the_base() {
    let a = update("a", 1, json!({ "x": 1 }));
    let b = delete("b", 1);
    let Merge::Into(m) = merge(&a, &b) else {
        panic!("merged")
    };
    assert_eq!((m.mutation_id.as_str(), m.action), ("a", Action::Delete));
    assert_eq!(m.query, b.query);
    assert_eq!(m.before, a.before);
}

#[test]
fn delete_then_insert_and_the_rest_are_kept() {
    let (i, u, d) = (
        insert("i", 1, json!({ "id": 1 })),
        update("u", 1, json!({ "x": 1 })),
        delete("d", 1),
    );
    assert_eq!(merge(&d, &i), Merge::Keep);
    for (a, b) in [(&d, &u), (&d, &d), (&i, &i), (&u, &i)] {
        assert_eq!(
            merge(a, b),
            Merge::Keep,
            "{:?} then {:?}",
            a.action,
            b.action
        );
    }
    // An insert of several rows is not one row's insert.
    let many = entry(
        "m",
        Action::Insert,
        1,
        json!({ "values": [{ "id": 1 }, { "id": 2 }] }),
        None,
    );
    assert_eq!(merge(&many, &u), Merge::Keep);
}

#[test]
fn the_plan_merges_across_other_rows_and_leaves_in_flight_entries_alone() {
    let outbox = vec![
        insert("1", 1, json!({ "id": 1, "v": 0 })),
        insert("2", 2, json!({ "id": 2 })),
        update("3", 1, json!({ "v": 1 })),
        update("4", 2, json!({ "v": 9 })),
    ];
    let batch = plan(&outbox, &[], |_| true).unwrap();
    assert_eq!(batch.outbox_delete, vec!["3".to_string(), "4".to_string()]);
    let put: Vec<(&str, &Value)> = batch
        .outbox_put
        .iter()
        .map(|e| (e.mutation_id.as_str(), &e.query))
        .collect();
    assert_eq!(
        put,
        vec![
            ("1", &json!({ "values": [{ "id": 1, "v": 1 }] })),
            ("2", &json!({ "values": [{ "id": 2, "v": 9 }] }))
        ]
    );
    // Entry 1 is being pushed: 3 does not merge into it.
    let batch = plan(&outbox, &["1".to_string()], |_| true).unwrap();
    assert_eq!(batch.outbox_delete, vec!["4".to_string()]);
    // A model that opted out.
    assert!(plan(&outbox, &[], |_| false).is_none());
    // Nothing to merge.
    assert!(plan(&outbox[..2], &[], |_| true).is_none());
}

#[test]
fn entries_after_an_in_flight_one_merge_with_each_other() {
    let outbox = vec![
        update("1", 1, json!({ "v": 1 })),
        update("2", 1, json!({ "v": 2 })),
        update("3", 1, json!({ "v": 3 })),
    ];
    let batch = plan(&outbox, &["1".to_string()], |_| true).unwrap();
    assert_eq!(batch.outbox_delete, vec!["3".to_string()]);
    assert_eq!(batch.outbox_put[0].mutation_id, "2");
    assert_eq!(batch.outbox_put[0].query["values"], json!({ "v": 3 }));
}

#[test]
fn a_multi_row_entry_is_a_barrier() {
    let mut many = update("2", 1, json!({ "w": 1 }));
    many.before.push(Before {
        key: json!(2),
        row: Some(json!({ "id": 2 }).as_object().unwrap().clone()),
    });
    let outbox = vec![
        update("1", 1, json!({ "v": 1 })),
        many,
        update("3", 1, json!({ "v": 3 })),
    ];
    assert!(plan(&outbox, &[], |_| true).is_none());
}

#[test]
fn a_dropped_insert_hands_its_base_to_the_next_entry() {
    // The row existed (base {id:1,old:true}), was deleted, inserted again, deleted again, and
    // inserted once more: the middle insert+delete goes, and the last insert carries on.
    let d1 = delete("1", 1);
    let i2 = insert("2", 1, json!({ "id": 1, "n": 2 }));
    let d3 = delete("3", 1);
    let mut i4 = insert("4", 1, json!({ "id": 1, "n": 4 }));
    i4.before[0].row = None;
    let batch = plan(&[d1, i2, d3, i4], &[], |_| true).unwrap();
    assert_eq!(batch.outbox_delete, vec!["2".to_string(), "3".to_string()]);
}

#[derive(Clone, Debug)]
enum Op {
    Insert(i64, i64),
    Update(i64, i64),
    Delete(i64),
}

proptest! {
    /// Random single-row writes (only those the local state allows: an insert of a missing row, an
    /// update or delete of a present one) on three rows, with a random prefix in flight: after
    /// coalescing, replaying each row's entries gives the same state as before, the in-flight
    /// entries are untouched, and the queue never grows.
    #[test]
    fn coalescing_never_changes_what_the_rows_become(
        ops in proptest::collection::vec((0i64..3, 0i64..3, 0i64..100), 1..30),
        flying in 0usize..4,
    ) {
        let def = def();
        let mut state: HashMap<i64, Option<Value>> = (0..3).map(|k| (k, if k == 0 { Some(json!({ "id": 0, "v": -1 })) } else { None })).collect();
        let bases = state.clone();
        let mut outbox = Vec::new();
        for (n, (kind, key, v)) in ops.iter().enumerate() {
            let id = format!("{n:03}");
            let present = state[key].is_some();
            let op = match (kind, present) {
                (0, false) => Op::Insert(*key, *v),
                (1, true) => Op::Update(*key, *v),
                (2, true) => Op::Delete(*key),
                _ => continue,
            };
            let before = state[key].clone();
            let mut e = match op {
                Op::Insert(k, v) => insert(&id, k, json!({ "id": k, "v": v })),
                Op::Update(k, v) => update(&id, k, json!({ "v": v })),
                Op::Delete(k) => delete(&id, k),
            };
            e.before[0].row = before.as_ref().and_then(|b| b.as_object().cloned());
            let k = Key::from_value(&json!(key)).unwrap();
            let next = sync::step(before.and_then(|b| b.as_object().cloned()), &sync::effect(&e, &def, &k));
            state.insert(*key, next.map(Value::Object));
            outbox.push(e);
        }
        let in_flight: Vec<String> = outbox.iter().take(flying).map(|e| e.mutation_id.clone()).collect();
        let mut after = outbox.clone();
        if let Some(batch) = plan(&outbox, &in_flight, |_| true) {
            after.retain(|e| !batch.outbox_delete.contains(&e.mutation_id));
            for put in &batch.outbox_put {
                let slot = after.iter_mut().find(|e| e.mutation_id == put.mutation_id).unwrap();
                *slot = put.clone();
            }
            for id in &in_flight {
                prop_assert!(batch.outbox_put.iter().all(|e| &e.mutation_id != id) && !batch.outbox_delete.contains(id));
            }
        }
        prop_assert!(after.len() <= outbox.len());
        for key in 0..3i64 {
            let k = Key::from_value(&json!(key)).unwrap();
            let touching: Vec<&OutboxEntry> = after.iter().filter(|e| Key::from_value(&e.before[0].key) == Some(k.clone())).collect();
            let base = sync::base_of(&touching, &k).unwrap_or_else(|| bases[&key].as_ref().and_then(|b| b.as_object().cloned()));
            let replayed = sync::replay(base, &touching, &def, &k).map(Value::Object);
            prop_assert_eq!(&replayed, &state[&key], "row {} from {:?}", key, after.iter().map(|e| (&e.mutation_id, e.action)).collect::<Vec<_>>());
        }
    }
}

#[test]
fn insert_then_delete_of_a_row_the_backend_has_is_a_delete() {
    // A pull found the row on the backend while the insert waited: it became the insert's base.
    let mut a = insert("a", 1, json!({ "id": 1 }));
    a.before[0].row = json!({ "id": 1, "v": 100 }).as_object().cloned();
    let b = delete("b", 1);
    let Merge::Into(m) = merge(&a, &b) else {
        panic!("merged")
    };
    assert_eq!(
        (m.mutation_id.as_str(), m.action, &m.query),
        ("a", Action::Delete, &b.query)
    );
}

#[test]
fn an_entry_pushed_before_is_never_merged_into() {
    // Its failed attempt may have reached the backend, which would drop the merged entry (same
    // mutation id) as a duplicate.
    let mut a = update("1", 1, json!({ "v": 1 }));
    a.sent = true;
    assert!(plan(&[a, update("2", 1, json!({ "v": 2 }))], &[], |_| true).is_none());
}
