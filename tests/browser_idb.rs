//! Browser suite: the database over real IndexedDB in headless Chromium, a fresh randomly named
//! database per test.
#![cfg(target_arch = "wasm32")]

use indexed_db_futures::Build;
use micro_sync::core::db::{Db, NoValidation, Validator};
use micro_sync::core::schema::ModelDef;
use micro_sync::storage::indexeddb::IdbStorage;
use micro_sync::storage::Storage;
use micro_sync::{Error, Result};
use serde_json::{json, Value};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn fresh_name() -> String {
    format!("micro-sync-test-{}", uuid::Uuid::now_v7())
}

fn models(v: Value) -> Vec<ModelDef> {
    serde_json::from_value(v).unwrap()
}

fn blog() -> Vec<ModelDef> {
    models(json!([
        { "name": "users", "primaryKey": "id", "indexes": ["name"],
          "relations": {
            "posts": { "kind": "hasMany", "model": "posts", "localKey": "id", "foreignKey": "userId" },
            "profile": { "kind": "hasOne", "model": "profiles", "localKey": "id", "foreignKey": "userId" } } },
        { "name": "posts", "primaryKey": "id", "hasMutation": true,
          "relations": {
            "author": { "kind": "belongsTo", "model": "users", "localKey": "userId", "foreignKey": "id" },
            "comments": { "kind": "hasMany", "model": "comments", "localKey": "id", "foreignKey": "postId" } } },
        { "name": "comments", "primaryKey": "id" },
        { "name": "profiles", "primaryKey": "userId" }
    ]))
}

async fn open_with<V: Validator>(name: &str, m: Vec<ModelDef>, v: V) -> Db<IdbStorage, V> {
    Db::open(IdbStorage::new(name), v, m, js_sys::Date::now)
        .await
        .expect("open")
}

async fn open(name: &str) -> Db<IdbStorage, NoValidation> {
    open_with(name, blog(), NoValidation).await
}

fn ids(rows: &[Value]) -> Vec<Value> {
    rows.iter().map(|r| r["id"].clone()).collect()
}

#[wasm_bindgen_test]
async fn crud_round_trip_and_persistence() {
    let name = fresh_name();
    let db = open(&name).await;
    let inserted = db
        .insert("users", &json!([{ "id": "u1", "name": "Ada", "age": 36 }, { "id": "u2", "name": "Alan", "age": 41 }]), None)
        .await
        .unwrap();
    assert_eq!(ids(&inserted), [json!("u1"), json!("u2")]);
    let generated = db
        .insert("users", &json!({ "name": "Grace" }), None)
        .await
        .unwrap();
    let gid = generated[0]["id"].as_str().unwrap().to_string();
    assert_eq!(gid.len(), 36, "UUIDv7 string key generated");
    assert_eq!(&gid[14..15], "7", "version nibble is 7");

    let updated = db
        .update(
            "users",
            Some(&json!({ "age": { "gt": 40 } })),
            &json!({ "age": 42 }),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        updated,
        vec![json!({ "id": "u2", "name": "Alan", "age": 42 })]
    );
    let deleted = db
        .delete("users", Some(&json!({ "id": "u1" })), None)
        .await
        .unwrap();
    assert_eq!(ids(&deleted), [json!("u1")]);
    assert_eq!(db.count("users", None).await.unwrap(), 2);
    db.close();

    // A new connection reads what the first one committed.
    let again = open(&name).await;
    let rows = again
        .select("users", Some(&json!({ "orderBy": [{ "field": "name" }] })))
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![
            json!({ "id": "u2", "name": "Alan", "age": 42 }),
            json!({ "id": gid, "name": "Grace" })
        ]
    );
    assert_eq!(again.get("users", &json!("u1")).await.unwrap(), None);
    again.close();
}

#[wasm_bindgen_test]
async fn relations_nested_and_returning() {
    let db = open(&fresh_name()).await;
    db.insert(
        "users",
        &json!([{ "id": 1, "name": "Ada" }, { "id": 2, "name": "Alan" }]),
        None,
    )
    .await
    .unwrap();
    db.insert("profiles", &json!([{ "userId": 1, "bio": "math" }]), None)
        .await
        .unwrap();
    db.insert(
        "posts",
        &json!([
            { "id": 10, "userId": 1, "title": "Notes", "rank": 2 },
            { "id": 11, "userId": 1, "title": "Engine", "rank": 1 },
            { "id": 12, "userId": 2, "title": "Machines", "rank": 3 }
        ]),
        None,
    )
    .await
    .unwrap();
    db.insert("comments", &json!([{ "id": "c1", "postId": 11, "text": "wow" }, { "id": "c2", "postId": 11, "text": "yes" }]), None)
        .await
        .unwrap();

    let rows = db
        .select(
            "users",
            Some(&json!({
                "orderBy": [{ "field": "id" }],
                "fields": ["name"],
                "relations": {
                    "profile": true,
                    "posts": { "orderBy": [{ "field": "rank" }], "limit": 1, "fields": ["title"],
                               "relations": { "comments": { "where": { "text": { "ne": "yes" } } } } }
                }
            })),
        )
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![
            json!({ "name": "Ada", "profile": { "userId": 1, "bio": "math" },
                    "posts": [{ "title": "Engine", "comments": [{ "id": "c1", "postId": 11, "text": "wow" }] }] }),
            json!({ "name": "Alan", "profile": null, "posts": [{ "title": "Machines", "comments": [] }] }),
        ]
    );

    let back = db
        .update(
            "posts",
            Some(&json!({ "id": 12 })),
            &json!({ "title": "Machines II" }),
            Some(
                &json!({ "fields": ["title"], "relations": { "author": { "fields": ["name"] } } }),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        back,
        vec![json!({ "title": "Machines II", "author": { "name": "Alan" } })]
    );
}

struct RejectOld;
impl Validator for RejectOld {
    async fn validate(&self, model: &str, rows: Vec<Value>) -> Result<Vec<Value>> {
        if rows
            .iter()
            .any(|r| r["age"].as_f64().is_some_and(|a| a > 150.0))
        {
            return Err(Error::Validation {
                model: model.into(),
                issues: vec![micro_sync::error::Issue {
                    path: vec!["age".into()],
                    message: "too old".into(),
                }],
            });
        }
        Ok(rows
            .into_iter()
            .map(|mut r| {
                r.as_object_mut()
                    .unwrap()
                    .entry("role")
                    .or_insert(json!("member"));
                r
            })
            .collect())
    }
}

#[wasm_bindgen_test]
async fn rejected_writes_change_nothing() {
    let m = models(
        json!([{ "name": "users", "primaryKey": "id", "hasSchema": true, "fields": ["id", "name", "age", "role"] }]),
    );
    let name = fresh_name();
    let db = open_with(&name, m.clone(), RejectOld).await;
    let ok = db
        .insert(
            "users",
            &json!({ "id": "a", "name": "Ada", "age": 36 }),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        ok[0]["role"],
        json!("member"),
        "validated output (defaults) is what is stored"
    );

    let err = db
        .insert(
            "users",
            &json!([{ "id": "b", "age": 20 }, { "id": "c", "age": 200 }]),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.name(), "ValidationError");
    let err = db
        .update("users", Some(&json!({})), &json!({ "age": 999 }), None)
        .await
        .unwrap_err();
    assert_eq!(err.name(), "ValidationError");
    let err = db
        .insert("users", &json!({ "id": "a", "age": 1 }), None)
        .await
        .unwrap_err();
    assert_eq!(err.name(), "ConstraintError");
    let err = db
        .select("users", Some(&json!({ "where": { "nope": 1 } })))
        .await
        .unwrap_err();
    assert_eq!(err.name(), "QueryError");
    let err = db.delete("users", None, None).await.unwrap_err();
    assert!(err.to_string().contains("needs a where"), "{err}");
    db.close();

    let again = open_with(&name, m, RejectOld).await;
    let rows = again.select("users", None).await.unwrap();
    assert_eq!(
        rows,
        vec![json!({ "id": "a", "name": "Ada", "age": 36, "role": "member" })]
    );
}

#[wasm_bindgen_test]
async fn row_and_outbox_entry_commit_together() {
    let name = fresh_name();
    let db = open(&name).await;
    db.insert("users", &json!({ "id": 1, "name": "Ada" }), None)
        .await
        .unwrap();
    db.insert(
        "posts",
        &json!({ "id": 1, "userId": 1, "title": "a" }),
        None,
    )
    .await
    .unwrap();
    db.update(
        "posts",
        Some(&json!({ "id": 1 })),
        &json!({ "title": "b" }),
        None,
    )
    .await
    .unwrap();
    db.close();
    let again = open(&name).await;
    let pending = again.pending().await.unwrap();
    let actions: Vec<String> = pending.iter().map(|e| format!("{:?}", e.action)).collect();
    assert_eq!(
        actions,
        ["Insert", "Update"],
        "local-only users write no outbox entries"
    );
    assert_eq!(
        pending[1].query,
        json!({ "where": { "id": { "in": [1] } }, "values": { "title": "b" } })
    );
    assert_eq!(
        pending[1].before[0].row.as_ref().unwrap()["title"],
        json!("a")
    );
    assert!(
        pending[0].mutation_id < pending[1].mutation_id,
        "UUIDv7 ids sort by creation"
    );
}

#[wasm_bindgen_test]
async fn upgrade_adds_model_and_index_keeping_data() {
    let name = fresh_name();
    let v1 = models(json!([{ "name": "users", "primaryKey": "id" }]));
    let db = open_with(&name, v1, NoValidation).await;
    db.insert("users", &json!({ "id": 1, "name": "Ada" }), None)
        .await
        .unwrap();

    // A second connection with a newer model set upgrades while the first is still open: the
    // first closes itself on versionchange instead of blocking it.
    let v2 = models(json!([
        { "name": "users", "primaryKey": "id", "indexes": ["name"] },
        { "name": "tags", "primaryKey": "slug", "indexes": ["label"] }
    ]));
    let db2 = open_with(&name, v2.clone(), NoValidation).await;
    assert_eq!(
        db2.select("users", None).await.unwrap(),
        vec![json!({ "id": 1, "name": "Ada" })]
    );
    db2.insert("tags", &json!({ "slug": "rust", "label": "Rust" }), None)
        .await
        .unwrap();

    // The raw database now has the new store and both indexes.
    let raw = indexed_db_futures::database::Database::open(name.as_str())
        .await
        .unwrap();
    let stores: Vec<String> = raw.object_store_names().collect();
    assert!(
        stores.contains(&"tags".to_string()) && stores.contains(&"_pendingSync".to_string()),
        "{stores:?}"
    );
    let tx = raw
        .transaction(["users", "tags"].as_slice())
        .build()
        .unwrap();
    let ix: Vec<String> = tx.object_store("users").unwrap().index_names().collect();
    assert_eq!(ix, ["name"]);
    let ix: Vec<String> = tx.object_store("tags").unwrap().index_names().collect();
    assert_eq!(ix, ["label"]);
    drop(tx);
    raw.close();

    // The old connection reopens transparently on its next operation.
    assert_eq!(db.count("users", None).await.unwrap(), 1);
    db.insert("users", &json!({ "id": 2 }), None).await.unwrap();
    let fresh = open_with(&name, v2, NoValidation).await;
    assert_eq!(fresh.count("users", None).await.unwrap(), 2);
}

#[wasm_bindgen_test]
async fn storage_errors_carry_dom_names() {
    let s = IdbStorage::new(&fresh_name());
    let err = s
        .load(&models(json!([{ "name": "x", "primaryKey": "id" }]))[0])
        .await
        .unwrap_err();
    assert_eq!(err.name(), "StorageError", "{err}");
}
