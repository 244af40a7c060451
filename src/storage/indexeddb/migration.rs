//! Model migrations inside the IndexedDB upgrade (see [`crate::core::migrate`]). The stored
//! version of each model is kept in `_meta` as `{ key: "version:<model>", value }`; a model store
//! without that record holds version 1 (data from before versions existed), and a store created
//! by an upgrade records the version of the model that created it.
//!
//! The upgrade transaction is exclusive (every other connection has closed) and atomic: rows and
//! outbox entries are rewritten in it, and when `migrate` throws or breaks a rule the transaction
//! is aborted, so the stored data stays exactly as it was and opening fails with `MigrationError`.

use super::raw::{self, js_err};
use super::{to_js, META_STORE, OUTBOX_STORE};
use crate::core::migrate::migrate_entry;
use crate::core::outbox::OutboxEntry;
use crate::core::schema::{ModelDef, Schema};
use crate::core::value::Obj;
use crate::error::{Error, Result};
use js_sys::{Array, Function, Reflect};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::{JsCast, JsValue};

fn version_key(model: &str) -> JsValue {
    JsValue::from_str(&format!("version:{model}"))
}

/// The `_meta` record of `model`'s version.
pub(super) fn version_record(model: &str, version: u32) -> Result<JsValue> {
    let rec = js_sys::Object::new();
    Reflect::set(&rec, &JsValue::from_str("key"), &version_key(model)).map_err(js_err)?;
    Reflect::set(&rec, &JsValue::from_str("value"), &JsValue::from(version)).map_err(js_err)?;
    Ok(rec.into())
}

fn stored_version(rec: &JsValue) -> u32 {
    Reflect::get(rec, &JsValue::from_str("value"))
        .ok()
        .and_then(|v| v.as_f64())
        .map_or(1, |v| v as u32)
}

/// Whether some model's stored rows are at an older version than the schema's, read in one
/// transaction on `db`. Fails when one is newer (this page runs older models than the data).
pub(super) async fn needs_migration(db: &web_sys::IdbDatabase, schema: &Schema) -> Result<bool> {
    let tx = db.transaction_with_str(META_STORE).map_err(js_err)?;
    let meta = tx.object_store(META_STORE).map_err(js_err)?;
    let mut behind = false;
    for def in schema.models.values() {
        let rec = get(meta.get(&version_key(&def.name))).await?;
        let stored = stored_version(&rec);
        check_not_newer(def, stored)?;
        behind |= stored < def.version;
    }
    Ok(behind)
}

fn check_not_newer(def: &ModelDef, stored: u32) -> Result<()> {
    if stored > def.version {
        return Err(Error::Migration(format!(
            "the stored rows of \"{}\" are at version {stored}, newer than this page's model (version {}): another tab or a later release upgraded them; reload the page to run that code",
            def.name, def.version
        )));
    }
    Ok(())
}

/// The app's `migrate(model, rows, fromVersion)`, as the wrapper gives it.
#[derive(Clone)]
pub struct Migrator(pub Function);

/// Migrates, in the upgrade transaction `tx`, every model of `schema` whose stored version is
/// older (skipping the stores this upgrade created). Runs from the microtask after the upgrade
/// handler, while the transaction is still active; on failure, aborts the transaction and leaves
/// the reason in `failure`.
pub(super) fn start(
    tx: web_sys::IdbTransaction,
    schema: Schema,
    created: Vec<String>,
    migrator: Option<Migrator>,
    failure: Rc<RefCell<Option<Error>>>,
) {
    wasm_bindgen_futures::spawn_local(async move {
        if let Err(e) = migrate_all(&tx, &schema, &created, migrator.as_ref()).await {
            *failure.borrow_mut() = Some(e);
            let _ = tx.abort();
        }
    });
}

async fn get(req: std::result::Result<web_sys::IdbRequest, JsValue>) -> Result<JsValue> {
    let req = req.map_err(js_err)?;
    raw::request(&req).await.ok_or_else(|| {
        req.error().ok().flatten().map_or_else(
            || Error::storage("a read in the upgrade failed"),
            |e| js_err(e.into()),
        )
    })
}

async fn migrate_all(
    tx: &web_sys::IdbTransaction,
    schema: &Schema,
    created: &[String],
    migrator: Option<&Migrator>,
) -> Result<()> {
    let meta = tx.object_store(META_STORE).map_err(js_err)?;
    let outbox = tx.object_store(OUTBOX_STORE).map_err(js_err)?;
    let mut entries: Option<Vec<JsValue>> = None;
    for def in schema.models.values() {
        if created.contains(&def.name) {
            continue;
        }
        let stored = stored_version(&get(meta.get(&version_key(&def.name))).await?);
        check_not_newer(def, stored)?;
        if stored == def.version {
            continue;
        }
        let store = tx.object_store(&def.name).map_err(js_err)?;
        let rows: Array = get(store.get_all()).await?.unchecked_into();
        if rows.length() > 0 {
            let migrated = call(migrator, def, &rows, stored)?;
            for (old, new) in rows.iter().zip(migrated.iter()) {
                check_key(def, &old, &new)?;
                store.put(&new).map_err(js_err)?;
            }
        }
        if entries.is_none() {
            let all: Array = get(outbox.get_all()).await?.unchecked_into();
            entries = Some(all.iter().collect());
        }
        for record in entries.iter().flatten() {
            let Some(entry) = decode_entry(record) else {
                continue; // unreadable: left as it is (and listed by `unreadable()`)
            };
            if entry.model != def.name {
                continue;
            }
            let mut rows_of = |rows: Vec<Obj>| -> Result<Vec<Obj>> {
                let js: Array = to_js(&rows)?.unchecked_into();
                let out = call(migrator, def, &js, stored)?;
                let text = js_sys::JSON::stringify(&out)
                    .map(String::from)
                    .map_err(|_| migrate_failed(def, stored, "its rows are not JSON".into()))?;
                serde_json::from_str(&text).map_err(|e| migrate_failed(def, stored, e.to_string()))
            };
            let migrated = migrate_entry(&entry, def, &mut rows_of)?;
            outbox.put(&to_js(&migrated)?).map_err(js_err)?;
        }
        meta.put(&version_record(&def.name, def.version)?)
            .map_err(js_err)?;
    }
    Ok(())
}

fn decode_entry(record: &JsValue) -> Option<OutboxEntry> {
    let text = js_sys::JSON::stringify(record).ok()?;
    serde_json::from_str(&String::from(text)).ok()
}

fn migrate_failed(def: &ModelDef, from: u32, why: String) -> Error {
    Error::Migration(format!(
        "migrating \"{}\" from version {from} to {} failed: {why}; the stored data was left as it was",
        def.name, def.version
    ))
}

/// `migrate(model, rows, from)`: an array of as many objects.
fn call(migrator: Option<&Migrator>, def: &ModelDef, rows: &Array, from: u32) -> Result<Array> {
    let Some(Migrator(f)) = migrator else {
        return Ok(rows.clone());
    };
    let out = f
        .call3(
            &JsValue::NULL,
            &JsValue::from_str(&def.name),
            rows,
            &JsValue::from(from),
        )
        .map_err(|e| migrate_failed(def, from, crate::browser::hooks::message_of(&e)))?;
    let out: Array = out
        .dyn_into()
        .map_err(|_| migrate_failed(def, from, "the wrapper did not return rows".into()))?;
    if out.length() != rows.length() {
        return Err(migrate_failed(
            def,
            from,
            format!("{} rows came back for {}", out.length(), rows.length()),
        ));
    }
    for row in out.iter() {
        if !row.is_object() || Array::is_array(&row) {
            return Err(migrate_failed(
                def,
                from,
                "migrate must return a row object".into(),
            ));
        }
    }
    Ok(out)
}

/// A migrated row keeps its primary key (else `put` would add a row beside the old one).
fn check_key(def: &ModelDef, old: &JsValue, new: &JsValue) -> Result<()> {
    let pk = JsValue::from_str(&def.primary_key);
    let (a, b) = (
        Reflect::get(old, &pk).unwrap_or(JsValue::UNDEFINED),
        Reflect::get(new, &pk).unwrap_or(JsValue::UNDEFINED),
    );
    let same = raw::factory()
        .ok()
        .and_then(|f| f.cmp(&a, &b).ok())
        .is_some_and(|c| c == 0);
    if same {
        return Ok(());
    }
    Err(Error::Migration(format!(
        "migrate of \"{}\" changed a row's {}; a migration must keep primary keys (the stored data was left as it was)",
        def.name, def.primary_key
    )))
}
