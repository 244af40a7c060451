//! Browser suite: the database over real IndexedDB in headless Chromium, a fresh randomly named
//! database per test.
#![cfg(target_arch = "wasm32")]

use indexed_db_futures::{Build, BuildPrimitive};
use micro_sync::core::db::Out;
use micro_sync::core::db::{
    Db, Env, NoRemote, NoValidation, Pulled, PushOutcome, Remote, Validator,
};
use micro_sync::core::outbox::OutboxEntry;
use micro_sync::core::scheduler::Event;
use micro_sync::core::schema::ModelDef;
use micro_sync::storage::indexeddb::IdbStorage;
use micro_sync::storage::Storage;
use micro_sync::{Error, Result};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn fresh_name() -> String {
    format!("micro-sync-test-{}", js_sys::Math::random().to_bits())
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

fn random_bytes(buf: &mut [u8]) {
    for b in buf.iter_mut() {
        *b = (js_sys::Math::random() * 256.0) as u8;
    }
}

const ENV: Env = Env {
    now: js_sys::Date::now,
    random: js_sys::Math::random,
    random_bytes,
    pause: || Box::pin(gloo_timers::future::TimeoutFuture::new(0)),
};

async fn open_with<V: Validator>(name: &str, m: Vec<ModelDef>, v: V) -> Db<IdbStorage, V> {
    Db::open(IdbStorage::new(name, None), v, NoRemote, m, ENV)
        .await
        .expect("open")
}

async fn open(name: &str) -> Db<IdbStorage, NoValidation> {
    open_with(name, blog(), NoValidation).await
}

fn ids(rows: &[Out]) -> Vec<Value> {
    rows.iter().map(|r| r.to_value()["id"].clone()).collect()
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
    let gid = generated[0].to_value()["id"].as_str().unwrap().to_string();
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
    db.close().await;

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
    again.close().await;
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
        ok[0].to_value()["role"],
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
    db.close().await;

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
    db.close().await;
    let again = open(&name).await;
    let pending = again.pending().unwrap();
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
    let s = IdbStorage::new(&fresh_name(), None);
    let err = s
        .load(&models(json!([{ "name": "x", "primaryKey": "id" }]))[0])
        .await
        .unwrap_err();
    assert_eq!(err.name(), "StorageError", "{err}");
}

/// A scripted backend: fails the first `fail_first` pushes, rejects mutations on rows whose
/// title is "forbidden", and records what it applied (deduplicating by mutation id).
#[derive(Clone, Default)]
struct Backend {
    inner: Rc<RefCell<BackendState>>,
}

#[derive(Default)]
struct BackendState {
    fail_first: usize,
    calls: usize,
    applied: Vec<String>,
    rows: Vec<Value>,
}

impl Remote for Backend {
    fn can_push(&self, _model: &str) -> bool {
        true
    }
    async fn push(&self, entry: &OutboxEntry) -> PushOutcome {
        let mut s = self.inner.borrow_mut();
        s.calls += 1;
        if s.calls <= s.fail_first {
            return PushOutcome::Retry(format!("HTTP 503 (call {})", s.calls));
        }
        if entry.query.to_string().contains("forbidden") {
            return PushOutcome::Reject("title not allowed".into());
        }
        if !s.applied.contains(&entry.mutation_id) {
            s.applied.push(entry.mutation_id.clone());
        }
        PushOutcome::Done
    }
    async fn pull(&self, _model: &str, _q: Option<&Value>) -> std::result::Result<Pulled, String> {
        Ok(self.inner.borrow().rows.clone().into())
    }
}

fn notes() -> Vec<ModelDef> {
    models(json!([{ "name": "notes", "primaryKey": "id", "hasMutation": true }]))
}

/// A fresh database's storage, opened on the `notes` model: (name, schema, storage).
async fn notes_storage() -> (String, micro_sync::core::schema::Schema, IdbStorage) {
    let name = fresh_name();
    let schema = micro_sync::core::schema::Schema::new(notes()).unwrap();
    let storage = IdbStorage::new(&name, None);
    storage.open(&schema).await.unwrap();
    (name, schema, storage)
}

/// Writes `records` (store, value) into database `name` in one transaction, behind the back of
/// any storage opened on it (for records the storage itself would never write).
async fn put_behind_storage(name: &str, records: Vec<(&str, wasm_bindgen::JsValue)>) {
    let raw = indexed_db_futures::database::Database::open(name)
        .await
        .unwrap();
    let stores: Vec<&str> = records.iter().map(|(s, _)| *s).collect();
    let tx = raw
        .transaction(stores.as_slice())
        .with_mode(indexed_db_futures::transaction::TransactionMode::Readwrite)
        .build()
        .unwrap();
    for (store, value) in records {
        tx.object_store(store)
            .unwrap()
            .put(value)
            .primitive()
            .unwrap()
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    raw.close();
}

async fn open_synced(name: &str, backend: &Backend) -> Db<IdbStorage, NoValidation, Backend> {
    Db::open(
        IdbStorage::new(name, None),
        NoValidation,
        backend.clone(),
        notes(),
        ENV,
    )
    .await
    .expect("open")
}

#[wasm_bindgen_test]
async fn retry_until_the_backend_recovers_then_deliver_once() {
    let backend = Backend::default();
    backend.inner.borrow_mut().fail_first = 2;
    let name = fresh_name();
    let db = open_synced(&name, &backend).await;
    db.insert("notes", &json!({ "id": 1, "title": "a" }), None)
        .await
        .unwrap();
    db.insert("notes", &json!({ "id": 2, "title": "b" }), None)
        .await
        .unwrap();

    let r = db.drain(true).await.unwrap().unwrap();
    assert_eq!(
        (r.pushed, r.retried, r.remaining),
        (0, 1, 2),
        "head failed: nothing overtakes it"
    );
    let head = &db.pending().unwrap()[0];
    assert_eq!(
        (head.attempts, head.last_error.as_deref()),
        (1, Some("HTTP 503 (call 1)"))
    );
    assert!(
        head.next_attempt_at > js_sys::Date::now(),
        "backoff scheduled"
    );
    let status = db.status("notes").unwrap();
    assert_eq!(
        (status.pending_count, status.last_error.as_deref()),
        (2, Some("HTTP 503 (call 1)"))
    );

    let r = db.drain(false).await.unwrap().unwrap();
    assert_eq!(r.pushed + r.retried, 0, "not due yet: backoff respected");
    db.drain(true).await.unwrap();
    let r = db.drain(true).await.unwrap().unwrap();
    assert_eq!((r.pushed, r.remaining), (2, 0));
    let ids: Vec<String> = backend.inner.borrow().applied.clone();
    assert_eq!(ids.len(), 2, "each mutation applied once");
    let status = db.status("notes").unwrap();
    assert_eq!((status.pending_count, status.last_error.clone()), (0, None));
    assert!(status.last_synced_at.is_some());
}

#[wasm_bindgen_test]
async fn rejection_rolls_back_and_keeps_later_writes() {
    let backend = Backend::default();
    let db = open_synced(&fresh_name(), &backend).await;
    db.insert(
        "notes",
        &json!({ "id": 1, "title": "draft", "body": "x" }),
        None,
    )
    .await
    .unwrap();
    db.drain(true).await.unwrap();
    db.update(
        "notes",
        Some(&json!({ "id": 1 })),
        &json!({ "title": "forbidden" }),
        None,
    )
    .await
    .unwrap();
    db.update(
        "notes",
        Some(&json!({ "id": 1 })),
        &json!({ "body": "y" }),
        None,
    )
    .await
    .unwrap();
    let r = db.drain(true).await.unwrap().unwrap();
    assert_eq!((r.rejected, r.pushed), (1, 1));
    assert_eq!(
        db.get("notes", &json!(1)).await.unwrap(),
        Some(json!({ "id": 1, "title": "draft", "body": "y" }))
    );
    let status = db.status("notes").unwrap();
    assert!(status
        .last_error
        .unwrap()
        .contains("rejected: title not allowed"));
}

#[wasm_bindgen_test]
async fn pull_merges_over_pending_writes_and_detects_deletions() {
    let backend = Backend::default();
    backend.inner.borrow_mut().fail_first = usize::MAX; // keep local writes pending
    let db = open_synced(&fresh_name(), &backend).await;
    db.insert(
        "notes",
        &json!([{ "id": 1, "title": "a" }, { "id": 2, "title": "b" }]),
        None,
    )
    .await
    .unwrap();
    // Pretend both were confirmed earlier: drop the entries' effect by pulling first.
    backend.inner.borrow_mut().rows = vec![
        json!({ "id": 1, "title": "A", "v": 2 }),
        json!({ "id": 3, "title": "C" }),
    ];
    let rows = db.pull("notes", None).await.unwrap();
    assert_eq!(
        rows,
        vec![
            json!({ "id": 1, "title": "a" }),
            json!({ "id": 2, "title": "b" }),
            json!({ "id": 3, "title": "C" })
        ],
        "pending inserts stay applied over the remote base"
    );
    db.discard_pending(&db.pending().unwrap()[0].mutation_id.clone())
        .await
        .unwrap();
    let rows = db.select("notes", None).await.unwrap();
    assert_eq!(
        rows,
        vec![
            json!({ "id": 1, "title": "A", "v": 2 }),
            json!({ "id": 3, "title": "C" })
        ],
        "discard rolls back to the remote base"
    );
    backend.inner.borrow_mut().rows = vec![json!({ "id": 1, "title": "A", "v": 2 })];
    let rows = db.pull("notes", None).await.unwrap();
    assert_eq!(
        rows,
        vec![json!({ "id": 1, "title": "A", "v": 2 })],
        "row 3 vanished remotely, no pending writes: deleted"
    );
    assert!(db.status("notes").unwrap().last_synced_at.is_some());
}

#[wasm_bindgen_test]
async fn status_over_offline_write_online_drain_and_pending_survives_reopen() {
    let backend = Backend::default();
    let name = fresh_name();
    let db = open_synced(&name, &backend).await;
    let seen: Rc<RefCell<Vec<String>>> = Rc::default();
    db.drive(Event::Start).await.unwrap();
    db.drive(Event::Online(false)).await.unwrap();
    db.insert("notes", &json!({ "id": 1, "title": "offline" }), None)
        .await
        .unwrap();
    assert!(
        db.drain(true).await.unwrap().is_none(),
        "nothing drains while offline"
    );
    assert_eq!(backend.inner.borrow().applied.len(), 0);
    let s = db.status("notes").unwrap();
    assert_eq!(
        (s.online, s.engine_running, s.syncing, s.pending_count),
        (false, true, false, 1)
    );
    db.close().await;

    // The pending entry is durable: a new connection finds it and delivers it once online.
    let db = open_synced(&name, &backend).await;
    {
        let seen = seen.clone();
        db.set_listener(Some(Box::new(move |_: &[String]| {
            seen.borrow_mut().push("changed".into())
        })));
    }
    assert_eq!(db.status("notes").unwrap().pending_count, 1);
    db.drive(Event::Online(true)).await.unwrap();
    // Starting the loop online drains at once.
    let r = db.drive(Event::Start).await.unwrap().unwrap();
    assert_eq!((r.pushed, r.remaining), (1, 0));
    let s = db.status("notes").unwrap();
    assert_eq!(
        (s.online, s.engine_running, s.syncing, s.pending_count),
        (true, true, false, 0)
    );
    assert!(
        seen.borrow().len() >= 3,
        "listeners hear start, drain begin/end and the commit"
    );
    assert_eq!(backend.inner.borrow().applied.len(), 1);
}

#[wasm_bindgen_test]
async fn an_aborted_transaction_leaves_neither_row_nor_outbox_entry() {
    use micro_sync::core::batch::{Batch, RowOp};
    use micro_sync::core::outbox::{Action, Before};
    use micro_sync::core::value::Key;

    let (_, _, storage) = notes_storage().await;
    let good = json!({ "id": 1, "title": "kept?" })
        .as_object()
        .unwrap()
        .clone();
    // No "id": IndexedDB cannot derive the key, fails the request, and aborts the transaction.
    let bad = json!({ "title": "no key" }).as_object().unwrap().clone();
    let entry = OutboxEntry {
        mutation_id: "01900000-0000-7000-8000-000000000001".to_string(),
        model: "notes".into(),
        action: Action::Insert,
        query: json!({ "values": [good.clone()] }),
        created_at: 0.0,
        attempts: 0,
        last_error: None,
        next_attempt_at: 0.0,
        before: vec![Before {
            key: json!(1),
            row: None,
        }],
        sent: false,
        rejected: None,
        merged: Vec::new(),
    };
    let batch = Batch {
        rows: vec![
            RowOp::Put {
                model: "notes".into(),
                key: Key::Num(1.0),
                row: micro_sync::core::value::Row::from_obj(&good),
            },
            RowOp::Put {
                model: "notes".into(),
                key: Key::Num(2.0),
                row: micro_sync::core::value::Row::from_obj(&bad),
            },
        ],
        outbox_put: vec![entry],
        outbox_delete: vec![],
    };
    let err = storage.commit(&batch, 0).await.unwrap_err();
    assert_eq!(err.name(), "StorageError", "{err}");
    assert!(
        err.to_string().contains("DataError"),
        "mapped from the DOMException name: {err}"
    );
    assert!(
        storage.load(&notes()[0]).await.unwrap().items.is_empty(),
        "no row was written"
    );
    assert!(
        storage.load_outbox().await.unwrap().0.items.is_empty(),
        "no outbox entry was written"
    );
}

/// Outbox entries the backend acknowledged in storage, read through a second connection.
async fn stored_outbox(name: &str) -> Vec<String> {
    let storage = IdbStorage::new(name, None);
    let schema = micro_sync::core::schema::Schema::new(notes()).unwrap();
    storage.open(&schema).await.unwrap();
    let (ids, _) = storage.load_outbox().await.unwrap();
    storage.close();
    ids.items.into_iter().map(|e| e.mutation_id).collect()
}

#[wasm_bindgen_test]
async fn acknowledged_pushes_leave_storage_with_the_next_write_or_on_flush_and_close() {
    let backend = Backend::default();
    let name = fresh_name();
    let db = open_synced(&name, &backend).await;
    db.insert("notes", &json!({ "id": 1, "title": "a" }), None)
        .await
        .unwrap();
    let first = db.pending().unwrap()[0].mutation_id.clone();
    let r = db.drain(false).await.unwrap().unwrap();
    assert_eq!((r.pushed, r.remaining), (1, 0));
    assert_eq!(db.status("notes").unwrap().pending_count, 0);

    // A crash now would only re-send the acknowledged entry: a second connection still finds
    // it, pushes it again with the same mutation id, and the backend applies it once.
    assert_eq!(stored_outbox(&name).await, [first.as_str()]);
    let crashed = open_synced(&name, &backend).await;
    assert_eq!(crashed.drain(false).await.unwrap().unwrap().pushed, 1);
    crashed.close().await;
    assert_eq!(backend.inner.borrow().applied, [first.as_str()]);

    // The next write commits the waiting deletion in its own transaction.
    let db = open_synced(&name, &backend).await;
    db.insert("notes", &json!({ "id": 2, "title": "b" }), None)
        .await
        .unwrap();
    let second = db.pending().unwrap()[0].mutation_id.clone();
    assert_eq!(stored_outbox(&name).await, [second.as_str()]);
    db.drain(false).await.unwrap();
    assert!(db.flush().await.unwrap(), "one acknowledgement waited");
    assert!(stored_outbox(&name).await.is_empty());
    assert!(!db.flush().await.unwrap(), "nothing left to flush");

    // close() commits what still waits before it releases the connection.
    db.insert("notes", &json!({ "id": 3, "title": "c" }), None)
        .await
        .unwrap();
    db.drain(false).await.unwrap();
    db.close().await;
    assert!(stored_outbox(&name).await.is_empty());
    assert_eq!(backend.inner.borrow().applied.len(), 3);
    let err = db.drain(false).await.unwrap_err();
    assert_eq!(err.name(), "DatabaseClosedError", "{err}");
}

#[wasm_bindgen_test]
async fn reads_naming_keys_or_indexed_values_are_answered_from_indexeddb_before_loading() {
    let name = fresh_name();
    let db = open(&name).await;
    let names = [
        json!("Ada"),
        json!("Alan"),
        json!(7),
        json!("Grace"),
        json!(null),
    ];
    let rows: Vec<Value> = (0..60)
        .map(|i| json!({ "id": format!("u{i:02}"), "name": names[i % 5], "age": (i * 7) % 50 }))
        .collect();
    db.insert("users", &Value::Array(rows), None).await.unwrap();
    db.update(
        "users",
        Some(&json!({ "id": "u03" })),
        &json!({ "name": "Ada" }),
        None,
    )
    .await
    .unwrap();
    db.close().await;

    let queries = [
        json!({ "where": { "name": "Ada" }, "orderBy": [{ "field": "age", "direction": "desc" }], "limit": 5 }),
        json!({ "where": { "name": { "in": ["Alan", 7] }, "age": { "gte": 10 } }, "fields": ["id", "age"] }),
        json!({ "where": { "id": { "in": ["u03", "u10", "nope"] } } }),
        json!({ "where": { "and": [{ "name": "Grace" }, { "or": [{ "age": 0 }, { "age": { "gt": 30 } }] }] }, "offset": 1 }),
    ];
    let db = open(&name).await;
    let mut narrow = Vec::new();
    for q in &queries {
        narrow.push(db.select("users", Some(q)).await.unwrap());
    }
    let ada = db
        .count("users", Some(&json!({ "name": "Ada" })))
        .await
        .unwrap();
    let u03 = db.get("users", &json!("u03")).await.unwrap();
    let missing = db.get("users", &json!("zz")).await.unwrap();
    assert!(!db.is_loaded("users"), "answered without loading the model");
    assert_eq!(ada, 13, "12 Ada rows plus u03 renamed");
    assert_eq!(u03.unwrap()["name"], json!("Ada"));
    assert_eq!(missing, None);
    assert_eq!(ids(&narrow[2]), [json!("u03"), json!("u10")]);

    db.load("users").await.unwrap();
    assert!(db.is_loaded("users"));
    for (q, got) in queries.iter().zip(&narrow) {
        assert_eq!(
            &db.select("users", Some(q)).await.unwrap(),
            got,
            "query {q}"
        );
    }
    assert_eq!(
        db.count("users", Some(&json!({ "name": "Ada" })))
            .await
            .unwrap(),
        ada
    );
    // A filter with nothing to look up still loads the model.
    let db2 = open(&name).await;
    let old = db2
        .select("users", Some(&json!({ "where": { "age": { "gte": 45 } } })))
        .await
        .unwrap();
    assert!(db2.is_loaded("users"));
    assert_eq!(old.len(), 6);
}

#[wasm_bindgen_test]
async fn catch_up_reads_back_only_the_rows_another_connection_changed() {
    let name = fresh_name();
    let here = open(&name).await;
    let there = open(&name).await; // another connection to the same database
    let rows: Vec<Value> = (0..20)
        .map(|i| json!({ "id": format!("u{i:02}"), "name": format!("n{i}") }))
        .collect();
    here.insert("users", &Value::Array(rows), None)
        .await
        .unwrap();
    assert_eq!(here.count("users", None).await.unwrap(), 20); // loaded here

    there
        .update(
            "users",
            Some(&json!({ "id": "u01" })),
            &json!({ "name": "renamed" }),
            None,
        )
        .await
        .unwrap();
    there
        .delete("users", Some(&json!({ "id": "u02" })), None)
        .await
        .unwrap();
    there
        .insert("users", &json!({ "id": "u99", "name": "new" }), None)
        .await
        .unwrap();
    // Not caught up yet: this connection still answers from memory.
    assert!(here.get("users", &json!("u99")).await.unwrap().is_none());

    let changed = here.catch_up().await.unwrap();
    assert_eq!(changed, vec!["users".to_string()]);
    assert_eq!(here.seq(), there.seq());
    assert!(
        here.is_loaded("users"),
        "patched in place, not reloaded whole"
    );
    assert_eq!(here.count("users", None).await.unwrap(), 20);
    let by_name = here
        .select(
            "users",
            Some(&json!({ "where": { "name": { "in": ["renamed", "new", "n2"] } } })),
        )
        .await
        .unwrap();
    assert_eq!(
        ids(&by_name),
        [json!("u01"), json!("u99")],
        "index follows the patch"
    );
    assert!(here.get("users", &json!("u02")).await.unwrap().is_none());

    // A synced model's new outbox entries come back with their rows, so rows never lag the
    // pending count.
    assert!(here.select("posts", None).await.unwrap().is_empty()); // loaded here
    there
        .insert(
            "posts",
            &json!({ "id": 7, "userId": "u01", "title": "t" }),
            None,
        )
        .await
        .unwrap();
    here.catch_up().await.unwrap();
    assert_eq!(here.status("posts").unwrap().pending_count, 1);
    assert!(here.is_loaded("posts"));
    assert_eq!(ids(&here.select("posts", None).await.unwrap()), [json!(7)]);

    // A write too big to list its keys makes the model read again whole when next needed.
    let many: Vec<Value> = (0..1_001)
        .map(|i| json!({ "id": format!("m{i:04}") }))
        .collect();
    there
        .insert("users", &Value::Array(many), None)
        .await
        .unwrap();
    here.catch_up().await.unwrap();
    assert!(!here.is_loaded("users"));
    assert_eq!(here.count("users", None).await.unwrap(), 1_021);
}

/// The commit protocol itself, on two connections: a commit planned on an old commit number
/// writes nothing, and an insert of a key storage already holds fails with a constraint error.
#[wasm_bindgen_test]
async fn stale_commits_write_nothing_and_inserts_never_overwrite() {
    use micro_sync::core::batch::{Batch, RowOp};
    use micro_sync::core::schema::Schema;
    use micro_sync::core::value::Key;
    use micro_sync::storage::Committed;

    let name = fresh_name();
    let schema = Schema::new(notes()).unwrap();
    let a = IdbStorage::new(&name, None);
    let b = IdbStorage::new(&name, None);
    a.open(&schema).await.unwrap();
    b.open(&schema).await.unwrap();
    let row = |title: &str| {
        micro_sync::core::value::Row::from_obj(
            json!({ "id": 1, "title": title }).as_object().unwrap(),
        )
    };
    let insert = |title: &str| Batch {
        rows: vec![RowOp::Insert {
            model: "notes".into(),
            key: Key::Num(1.0),
            row: row(title),
        }],
        ..Batch::default()
    };
    assert_eq!(
        a.commit(&insert("from a"), 0).await.unwrap(),
        Committed::Done(1)
    );
    // b planned on commit 0 too: refused, nothing written.
    assert_eq!(
        b.commit(&insert("from b"), 0).await.unwrap(),
        Committed::Stale
    );
    let changes = b.changes_since(0).await.unwrap();
    assert!(changes.complete);
    assert_eq!(changes.seq, 1);
    assert_eq!(
        changes.stores,
        vec![("notes".to_string(), Some(vec![json!(1)]))]
    );
    // Caught up, but inserting the same key again: storage refuses it.
    let err = b.commit(&insert("from b"), 1).await.unwrap_err();
    assert_eq!(err.name(), "ConstraintError", "{err}");
    let stored = b.load(&notes()[0]).await.unwrap().items;
    assert_eq!(stored, vec![row("from a")]);
    assert_eq!(
        b.changes_since(1).await.unwrap().seq,
        1,
        "the failed commit left no record"
    );
}

/// Records another version (or another program) left in storage that cannot be read are set
/// aside and reported; everything else keeps working, in every model and in the outbox.
#[wasm_bindgen_test]
async fn unreadable_records_are_set_aside_and_the_rest_works() {
    let name = fresh_name();
    let db = open(&name).await;
    db.insert(
        "users",
        &json!([{ "id": "ok1", "name": "Ada" }, { "id": "ok2", "name": "Alan" }]),
        None,
    )
    .await
    .unwrap();
    db.close().await;

    // Write what micro-sync itself would refuse, straight into IndexedDB.
    let mut deep = json!(1);
    for _ in 0..200 {
        deep = json!({ "a": deep });
    }
    let bad_row: wasm_bindgen::JsValue =
        js_sys::JSON::parse(&json!({ "id": "deep", "name": "x", "deep": deep }).to_string())
            .unwrap();
    let bad_entry: wasm_bindgen::JsValue = js_sys::JSON::parse(
        r#"{"mutationId":"01900000-0000-7000-8000-0000000000ff","model":"posts"}"#,
    )
    .unwrap();
    put_behind_storage(&name, vec![("users", bad_row), ("_pendingSync", bad_entry)]).await;

    let db = open(&name).await;
    assert!(
        db.pending().unwrap().is_empty(),
        "the broken entry is not pushed"
    );
    let rows = db
        .select("users", Some(&json!({ "orderBy": [{ "field": "id" }] })))
        .await
        .unwrap();
    assert_eq!(ids(&rows), [json!("ok1"), json!("ok2")]);
    assert_eq!(db.get("users", &json!("deep")).await.unwrap(), None);
    db.insert(
        "posts",
        &json!({ "id": 1, "userId": "ok1", "title": "still writable" }),
        None,
    )
    .await
    .unwrap();
    let unreadable = db.unreadable();
    let mut seen: Vec<(String, Option<Value>)> = unreadable
        .iter()
        .map(|u| (u.store.clone(), u.key.clone()))
        .collect();
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        seen,
        vec![
            (
                "_pendingSync".to_string(),
                Some(json!("01900000-0000-7000-8000-0000000000ff"))
            ),
            ("users".to_string(), Some(json!("deep"))),
        ]
    );
    assert!(db
        .status("users")
        .unwrap()
        .last_error
        .unwrap()
        .contains("set aside"));
}

/// Two connections opening a new database at the same moment with different model sets: whoever
/// upgrades second finds its stores missing after the race and upgrades again, so both can write.
#[wasm_bindgen_test]
async fn concurrent_first_opens_with_different_models_converge() {
    for round in 0..6 {
        let name = fresh_name();
        let left = models(
            json!([{ "name": "a", "primaryKey": "id" }, { "name": "shared", "primaryKey": "id" }]),
        );
        let right = models(
            json!([{ "name": "b", "primaryKey": "id", "indexes": ["k"] }, { "name": "shared", "primaryKey": "id" }]),
        );
        let (l, r) = futures::future::join(
            Db::open(
                IdbStorage::new(&name, None),
                NoValidation,
                NoRemote,
                left,
                ENV,
            ),
            Db::open(
                IdbStorage::new(&name, None),
                NoValidation,
                NoRemote,
                right,
                ENV,
            ),
        )
        .await;
        let (l, r) = (l.expect("left opens"), r.expect("right opens"));
        l.insert("a", &json!({ "id": 1 }), None)
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        r.insert("b", &json!({ "id": 1, "k": "x" }), None)
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(r.count("b", Some(&json!({ "k": "x" }))).await.unwrap(), 1);
        l.close().await;
        r.close().await;
    }
}

/// A model larger than one load chunk loads whole, in primary-key order, with a record that
/// cannot be read (in the second chunk) set aside.
#[wasm_bindgen_test]
async fn large_models_load_in_chunks() {
    use micro_sync::core::batch::{Batch, RowOp};
    use micro_sync::core::value::{Key, Row};
    use micro_sync::storage::Committed;

    let (name, schema, storage) = notes_storage().await;
    let n = 12_001;
    let mut batch = Batch::default();
    for i in 0..n {
        let row = json!({ "id": i, "title": format!("note {i}") });
        batch.rows.push(RowOp::Put {
            model: "notes".into(),
            key: Key::Num(f64::from(i)),
            row: Row::from_obj(row.as_object().unwrap()),
        });
    }
    assert!(matches!(
        storage.commit(&batch, 0).await.unwrap(),
        Committed::Done(1)
    ));
    // A record JSON cannot hold, written behind the storage's back.
    let bad = js_sys::Object::new();
    js_sys::Reflect::set(&bad, &"id".into(), &7_000.into()).unwrap();
    js_sys::Reflect::set(&bad, &"big".into(), &js_sys::BigInt::from(1u32).into()).unwrap();
    put_behind_storage(&name, vec![("notes", bad.into())]).await;

    let def = schema.model("notes").unwrap();
    let loaded = storage.load(def).await.unwrap();
    assert_eq!(loaded.items.len(), n as usize - 1);
    assert_eq!(loaded.unreadable.len(), 1);
    assert_eq!(loaded.unreadable[0].key, Some(json!(7000)));
    let ids: Vec<i64> = loaded
        .items
        .iter()
        .map(|r| r.get_str("id").unwrap().to_value().as_i64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "primary-key order");
    assert_eq!((ids[0], ids[ids.len() - 1]), (0, i64::from(n) - 1));
}
