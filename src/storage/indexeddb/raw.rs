//! The IndexedDB steps that go through `web_sys` directly, because `indexed_db_futures` 0.6 does
//! not expose what they need:
//! - the upgrade, which must create indexes on existing stores in the upgrade transaction;
//! - the write transaction of a commit, which must be committed explicitly (`commit()` lets the
//!   browser write at once: about twice the throughput of waiting for auto-commit) and still tell
//!   why it aborted (`transaction.error`, e.g. `QuotaExceededError`) afterwards.
//!
//! Events resolve promises directly (the promise's `resolve` is the handler), so no Rust closure
//! is left behind whichever event fires.

use super::migration::{self, Migrator};
use super::META_STORE;
use crate::core::schema::Schema;
use crate::error::{Error, Result};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen]
extern "C" {
    // `IDBTransaction.commit()` (web-sys marks its binding deprecated; the method is standard).
    #[wasm_bindgen(js_name = IDBTransaction)]
    type CommittableTx;
    #[wasm_bindgen(catch, method, js_name = commit)]
    fn commit_now(this: &CommittableTx) -> std::result::Result<(), JsValue>;
}

pub(super) fn js_err(e: JsValue) -> Error {
    match e.dyn_ref::<web_sys::DomException>() {
        Some(d) => Error::Storage {
            dom_name: Some(d.name()),
            message: d.message(),
        },
        None => Error::storage(format!("{e:?}")),
    }
}

pub(super) fn factory() -> Result<web_sys::IdbFactory> {
    js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("indexedDB"))
        .ok()
        .and_then(|f| f.dyn_into().ok())
        .ok_or_else(|| Error::storage("IndexedDB is not available in this environment"))
}

/// Resolves (with the event) when `target` fires one of `events`.
fn first_event(target: &web_sys::EventTarget, events: &[&str]) -> JsFuture {
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        for e in events {
            let _ = target.add_event_listener_with_callback(e, &resolve);
        }
    });
    JsFuture::from(promise)
}

/// A connection of our own for writes (`indexed_db_futures` keeps the one for reads). It closes
/// itself on `versionchange` without any of our code having to run (its own `close`, bound to it,
/// is the handler), so it can never hold up another tab's upgrade.
pub(super) async fn open(name: &str) -> Result<web_sys::IdbDatabase> {
    let req = factory()?.open(name).map_err(js_err)?;
    let _ = first_event(&req, &["success", "error"]).await;
    match req.result() {
        Ok(db) => {
            let db: web_sys::IdbDatabase = db.unchecked_into();
            let close: js_sys::Function = js_sys::Reflect::get(&db, &JsValue::from_str("close"))
                .and_then(|f| f.dyn_into())
                .map_err(js_err)?;
            db.set_onversionchange(Some(&close.bind0(&db)));
            Ok(db)
        }
        Err(_) => Err(req.error().ok().flatten().map_or_else(
            || Error::storage("IndexedDB open failed"),
            |e| js_err(e.into()),
        )),
    }
}

/// Opens `name` at `version`, creating every missing store and index in the upgrade transaction
/// (a new model store records its model's version), then migrating the models whose stored rows
/// are older (see [`super::migration`]).
pub(super) async fn upgrade(
    name: &str,
    version: f64,
    layout: &[(String, String, Vec<String>)],
    schema: &Schema,
    migrator: Option<Migrator>,
) -> Result<()> {
    let req = factory()?.open_with_f64(name, version).map_err(js_err)?;
    let layout = layout.to_vec();
    let schema = schema.clone();
    let failure: Rc<RefCell<Option<Error>>> = Rc::default();
    let failure_in = failure.clone();
    let on_upgrade = Closure::once(
        move |ev: web_sys::IdbVersionChangeEvent| -> std::result::Result<(), JsValue> {
            let req: web_sys::IdbOpenDbRequest = ev.target().ok_or("no target")?.unchecked_into();
            let db: web_sys::IdbDatabase = req.result()?.unchecked_into();
            let tx = req.transaction().ok_or("no upgrade transaction")?;
            let names = db.object_store_names();
            let created: Vec<String> = schema
                .models
                .keys()
                .filter(|m| !names.contains(m))
                .cloned()
                .collect();
            for (store, key_path, indexes) in &layout {
                let os = if names.contains(store) {
                    tx.object_store(store)?
                } else {
                    let params = web_sys::IdbObjectStoreParameters::new();
                    params.set_key_path(&JsValue::from_str(key_path));
                    db.create_object_store_with_optional_parameters(store, &params)?
                };
                let have = os.index_names();
                for ix in indexes {
                    if !have.contains(ix) {
                        os.create_index_with_str(ix, ix)?;
                    }
                }
            }
            let meta = tx.object_store(META_STORE)?;
            for m in &created {
                let version = schema.models.get(m).map_or(1, |d| d.version);
                let rec = migration::version_record(m, version).map_err(|e| e.to_string())?;
                meta.put(&rec)?;
            }
            migration::start(tx, schema, created, migrator, failure_in);
            Ok(())
        },
    );
    req.set_onupgradeneeded(Some(on_upgrade.as_ref().unchecked_ref()));
    // `blocked` needs no handler: every micro-sync connection closes itself on `versionchange`,
    // after which the upgrade proceeds on its own.
    let _ = first_event(&req, &["success", "error"]).await;
    drop(on_upgrade);
    let migration_failed = failure.borrow_mut().take();
    if let Some(e) = migration_failed {
        return Err(e);
    }
    match req.result() {
        Ok(db) => {
            db.unchecked_into::<web_sys::IdbDatabase>().close();
            Ok(())
        }
        Err(_) => Err(req
            .error()
            .ok()
            .flatten()
            .map_or_else(|| Error::storage("upgrade failed"), |e| js_err(e.into()))),
    }
}

/// Waits for a request of a transaction that is still being filled: `Some(result)`, or `None`
/// when it failed. (The handlers are the promise's own functions, set as properties: no event
/// is inspected and no listener name crosses into JS.)
pub(super) async fn request(req: &web_sys::IdbRequest) -> Option<JsValue> {
    let promise = js_sys::Promise::new(&mut |resolve, reject| {
        req.set_onsuccess(Some(&resolve));
        req.set_onerror(Some(&reject));
    });
    JsFuture::from(promise).await.ok()?;
    req.result().ok()
}

/// Commits `tx` now and resolves with whether it completed (false: aborted; see `tx.error()`).
pub(super) async fn commit(tx: &web_sys::IdbTransaction) -> bool {
    let finished = JsFuture::from(js_sys::Promise::new(&mut |resolve, reject| {
        tx.set_oncomplete(Some(&resolve));
        tx.set_onabort(Some(&reject));
    }));
    if tx.unchecked_ref::<CommittableTx>().commit_now().is_err() {
        // Already aborting (a request failed): wait for the abort.
    }
    finished.await.is_ok()
}
