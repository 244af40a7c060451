//! Host tests of live queries: after any sequence of writes (in this database or in another one on
//! the same storage, caught up with), every open query's last delivered answer equals what
//! `select` answers now, and a query hears only of answers that changed.

use crate::core::db::{Db, Env, NoRemote, NoValidation};
use crate::core::schema::ModelDef;
use crate::storage::MemoryStorage;
use futures::executor::block_on;
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;

type TestDb = Db<MemoryStorage, NoValidation>;

fn models() -> Vec<ModelDef> {
    serde_json::from_value(json!([
        { "name": "t", "primaryKey": "id", "indexes": ["g", "v"],
          "relations": { "kids": { "kind": "hasMany", "model": "c", "localKey": "id", "foreignKey": "tid" } } },
        { "name": "c", "primaryKey": "id",
          "relations": { "parent": { "kind": "belongsTo", "model": "t", "localKey": "tid", "foreignKey": "id" } } }
    ]))
    .unwrap()
}

fn open(storage: &MemoryStorage) -> TestDb {
    block_on(Db::open(
        storage.clone(),
        NoValidation,
        NoRemote,
        models(),
        Env::host(),
    ))
    .unwrap()
}

/// The queries every test keeps open: orders, limits and offsets, filters, relations both ways
/// and two levels deep.
fn queries() -> Vec<(&'static str, Value)> {
    vec![
        ("t", json!({})),
        (
            "t",
            json!({ "orderBy": [{ "field": "v", "direction": "asc" }], "limit": 3 }),
        ),
        (
            "t",
            json!({ "orderBy": [{ "field": "v", "direction": "desc" }], "limit": 2, "offset": 1 }),
        ),
        (
            "t",
            json!({ "where": { "g": 1 }, "orderBy": [{ "field": "v", "direction": "asc" }], "limit": 2 }),
        ),
        (
            "t",
            json!({ "where": { "v": { "gte": 30, "lt": 70 } }, "fields": ["id", "v"] }),
        ),
        (
            "t",
            json!({ "where": { "g": { "in": [0, 2] } }, "limit": 2 }),
        ),
        (
            "t",
            json!({ "orderBy": [{ "field": "g", "direction": "asc" }], "limit": 4,
                      "relations": { "kids": { "orderBy": [{ "field": "id", "direction": "asc" }] } } }),
        ),
        (
            "c",
            json!({ "relations": { "parent": { "relations": { "kids": { "fields": ["id"] } } } } }),
        ),
        ("t", json!({ "limit": 0 })),
        ("t", json!({ "offset": 2 })),
    ]
}

#[derive(Clone, Debug)]
enum Op {
    Put(i64, i64, i64),
    Set(i64, i64),
    Del(i64),
    Kid(i64, i64),
    DelKid(i64),
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0i64..8, 0i64..3, 0i64..100).prop_map(|(k, g, v)| Op::Put(k, g, v)),
        (0i64..8, 0i64..100).prop_map(|(k, v)| Op::Set(k, v)),
        (0i64..8).prop_map(Op::Del),
        (0i64..6, 0i64..8).prop_map(|(k, t)| Op::Kid(k, t)),
        (0i64..6).prop_map(Op::DelKid),
    ]
}

/// Runs `op` (an upsert for puts, so every op does something when it can).
fn run(db: &TestDb, op: &Op) {
    let _ = block_on(async {
        match op {
            Op::Put(k, g, v) => {
                let _ = db.delete("t", Some(&json!({ "id": k })), None).await;
                db.insert("t", &json!({ "id": k, "g": g, "v": v }), None)
                    .await
            }
            Op::Set(k, v) => {
                db.update("t", Some(&json!({ "id": k })), &json!({ "v": v }), None)
                    .await
            }
            Op::Del(k) => db.delete("t", Some(&json!({ "id": k })), None).await,
            Op::Kid(k, t) => {
                let _ = db.delete("c", Some(&json!({ "id": k })), None).await;
                db.insert("c", &json!({ "id": k, "tid": t }), None).await
            }
            Op::DelKid(k) => db.delete("c", Some(&json!({ "id": k })), None).await,
        }
    });
}

/// Opens every query of [`queries`] on `db` (ids 1, 2, ...).
fn open_all(db: &TestDb) {
    for (i, (model, q)) in queries().iter().enumerate() {
        db.live_add(i as u32 + 1, model, Some(q)).unwrap();
    }
}

/// Refreshes and folds what was delivered into `answers`; returns how many answers came.
fn deliver(db: &TestDb, answers: &mut BTreeMap<u32, Value>) -> usize {
    let out = block_on(db.live_refresh());
    let n = out.len();
    for (id, r) in out {
        let json = r.unwrap();
        let v: Value = serde_json::from_str(&json).unwrap();
        assert_ne!(
            answers.get(&id),
            Some(&v),
            "query {id} was called back with the same answer"
        );
        answers.insert(id, v);
    }
    n
}

/// Every query's last answer equals a fresh select.
fn check(db: &TestDb, answers: &BTreeMap<u32, Value>, after: &str) {
    for (i, (model, q)) in queries().iter().enumerate() {
        let fresh: Vec<Value> = block_on(db.select(model, Some(q)))
            .unwrap()
            .iter()
            .map(|o| o.to_value())
            .collect();
        assert_eq!(
            answers.get(&(i as u32 + 1)),
            Some(&Value::Array(fresh)),
            "query {q} after {after}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 150, ..ProptestConfig::default() })]
    /// Writes in this database: after each one, every open query answers what select does.
    #[test]
    fn live_answers_follow_writes(ops in proptest::collection::vec(arb_op(), 1..40)) {
        let db = open(&MemoryStorage::default());
        open_all(&db);
        let mut answers = BTreeMap::new();
        deliver(&db, &mut answers);
        check(&db, &answers, "opening");
        for (i, op) in ops.iter().enumerate() {
            run(&db, op);
            deliver(&db, &mut answers);
            check(&db, &answers, &format!("{:?}", &ops[..=i]));
        }
    }

    /// Writes in another database on the same storage (another tab), caught up with.
    #[test]
    fn live_answers_follow_other_tabs(ops in proptest::collection::vec(arb_op(), 1..25)) {
        let storage = MemoryStorage::default();
        let (a, b) = (open(&storage), open(&storage));
        open_all(&a);
        let mut answers = BTreeMap::new();
        deliver(&a, &mut answers);
        for (i, op) in ops.iter().enumerate() {
            run(&b, op);
            block_on(a.catch_up()).unwrap();
            deliver(&a, &mut answers);
            check(&a, &answers, &format!("{:?} in the other tab", &ops[..=i]));
        }
    }
}

#[test]
fn an_unchanged_answer_is_not_delivered_again() {
    let db = open(&MemoryStorage::default());
    let q = json!({ "where": { "g": 1 }, "orderBy": [{ "field": "v", "direction": "asc" }], "limit": 2 });
    db.live_add(1, "t", Some(&q)).unwrap();
    let mut answers = BTreeMap::new();
    assert_eq!(
        deliver(&db, &mut answers),
        1,
        "the first answer (no rows) is delivered"
    );
    run(&db, &Op::Put(1, 2, 5)); // not matched
    assert_eq!(deliver(&db, &mut answers), 0);
    run(&db, &Op::Put(2, 1, 5));
    assert_eq!(deliver(&db, &mut answers), 1);
    run(&db, &Op::Set(2, 5)); // the same value
    assert_eq!(deliver(&db, &mut answers), 0);
    db.live_remove(1);
    run(&db, &Op::Set(2, 6));
    assert_eq!(
        deliver(&db, &mut answers),
        0,
        "a closed query hears nothing"
    );
    assert!(!db.live_due());
}

#[test]
fn an_invalid_live_query_is_refused_when_opened() {
    let db = open(&MemoryStorage::default());
    let e = db
        .live_add(1, "t", Some(&json!({ "relations": { "nope": true } })))
        .unwrap_err();
    assert_eq!(e.name(), "QueryError");
    assert!(db.live_add(2, "nope", None).is_err());
    assert!(!db.live_due());
}

#[test]
fn a_model_read_again_as_a_whole_is_evaluated_again() {
    let storage = MemoryStorage::default();
    let (a, b) = (open(&storage), open(&storage));
    let q = json!({ "orderBy": [{ "field": "v", "direction": "desc" }], "limit": 3 });
    a.live_add(1, "t", Some(&q)).unwrap();
    let mut answers = BTreeMap::new();
    deliver(&a, &mut answers);
    // More rows than the change log lists one by one: `a` forgets the model and reloads it.
    let rows: Vec<Value> = (0..1_200)
        .map(|k| json!({ "id": k, "g": 0, "v": k }))
        .collect();
    block_on(b.insert("t", &Value::Array(rows), None)).unwrap();
    block_on(a.catch_up()).unwrap();
    assert!(!a.is_loaded("t"));
    assert_eq!(deliver(&a, &mut answers), 1);
    check_one(&a, &answers, &q);
}

fn check_one(db: &TestDb, answers: &BTreeMap<u32, Value>, q: &Value) {
    let fresh: Vec<Value> = block_on(db.select("t", Some(q)))
        .unwrap()
        .iter()
        .map(|o| o.to_value())
        .collect();
    assert_eq!(answers.get(&1), Some(&Value::Array(fresh)));
}
