//! Model migrations: a model's `version` and `migrate(row, fromVersion)` bring stored rows and the
//! pending (and rejected) outbox entries of the model up to the current version. Storage runs it
//! in one upgrade before anything is read; this module says what becomes of an outbox entry.
//!
//! | entry             | migrated                                                            |
//! |-------------------|---------------------------------------------------------------------|
//! | before-images     | each row through `migrate`                                          |
//! | insert `values`   | each row through `migrate`                                          |
//! | update `values`   | the fields where `migrate(before + values)` differs from `migrate(before)` |
//! | delete `where`    | unchanged (keys do not change)                                      |
//! | rejected `rows`   | each row through `migrate`                                          |
//!
//! An update is migrated through whole rows because `migrate` is written for whole rows: run on a
//! bare patch, a default it fills in would overwrite the row's real value. An update of several
//! rows whose migrated changes differ cannot stay one entry: the migration fails (and changes
//! nothing). A migrated row must keep its primary key.

use crate::core::outbox::{Action, OutboxEntry};
use crate::core::schema::ModelDef;
use crate::core::sync::{step, Effect};
use crate::core::value::Obj;
use crate::error::{Error, Result};
use serde_json::Value;

/// Migrates a list of rows of the model (from the entry's stored version), one answer per row.
pub type RowMigrator<'a> = dyn FnMut(Vec<Obj>) -> Result<Vec<Obj>> + 'a;

/// The entry as the current version of `def` writes it.
pub fn migrate_entry(
    entry: &OutboxEntry,
    def: &ModelDef,
    migrate: &mut RowMigrator,
) -> Result<OutboxEntry> {
    let mut e = entry.clone();
    // Every row to migrate, in one call: before-images, then what the action needs, then the
    // rejected rows.
    let befores: Vec<Obj> = e.before.iter().filter_map(|b| b.row.clone()).collect();
    let values = e.query.get("values").cloned();
    let inserted: Vec<Obj> = match (e.action, &values) {
        (Action::Insert, Some(Value::Array(rows))) => {
            rows.iter().filter_map(|r| r.as_object().cloned()).collect()
        }
        _ => Vec::new(),
    };
    let patch = match (e.action, &values) {
        (Action::Update, Some(Value::Object(p))) => Some(p.clone()),
        _ => None,
    };
    let updated: Vec<Obj> = match &patch {
        Some(p) => befores
            .iter()
            .filter_map(|b| step(Some(b.clone()), &Effect::Patch(p.clone())))
            .collect(),
        None => Vec::new(),
    };
    let rejected: Vec<Obj> = e.rejected.as_ref().map_or(Vec::new(), |r| r.rows.clone());
    let all: Vec<Obj> = [&befores, &inserted, &updated, &rejected]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    let n = all.len();
    let migrated = if n == 0 {
        Vec::new()
    } else {
        migrate(all.clone())?
    };
    if migrated.len() != n {
        return Err(Error::Migration(format!(
            "migrate of \"{}\" returned {} rows for {n}",
            def.name,
            migrated.len()
        )));
    }
    for (old, new) in all.iter().zip(&migrated) {
        if old.get(&def.primary_key) != new.get(&def.primary_key) {
            return Err(Error::Migration(format!(
                "migrate of \"{}\" changed a row's {} ({} → {}); a migration must keep primary keys",
                def.name,
                def.primary_key,
                old.get(&def.primary_key).unwrap_or(&Value::Null),
                new.get(&def.primary_key).unwrap_or(&Value::Null)
            )));
        }
    }
    let mut rest = migrated.into_iter();
    let mut take = |k: usize| rest.by_ref().take(k).collect::<Vec<Obj>>();
    let new_befores = take(befores.len());
    let new_inserted = take(inserted.len());
    let new_updated = take(updated.len());
    let new_rejected = take(rejected.len());

    let mut it = new_befores.iter();
    for b in &mut e.before {
        if b.row.is_some() {
            b.row = it.next().cloned();
        }
    }
    if e.action == Action::Insert && !inserted.is_empty() {
        e.query["values"] = Value::Array(new_inserted.into_iter().map(Value::Object).collect());
    }
    if patch.is_some() {
        let mut diffs = new_befores
            .iter()
            .zip(&new_updated)
            .map(|(before, after)| changed_fields(before, after));
        if let Some(first) = diffs.next() {
            if diffs.any(|d| d != first) {
                return Err(Error::Migration(format!(
                    "pending update {} of \"{}\" changes several rows, and migrate gives them different changes; it cannot stay one write",
                    e.mutation_id, def.name
                )));
            }
            e.query["values"] = Value::Object(first);
        }
    }
    if let Some(r) = &mut e.rejected {
        r.rows = new_rejected;
    }
    Ok(e)
}

/// The fields of `after` whose value differs from `before`'s.
fn changed_fields(before: &Obj, after: &Obj) -> Obj {
    after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::core::outbox::{test_entry, Rejection};
    use serde_json::json;

    fn def() -> ModelDef {
        serde_json::from_value(json!({ "name": "t", "primaryKey": "id", "version": 2 })).unwrap()
    }

    fn obj(v: Value) -> Obj {
        v.as_object().unwrap().clone()
    }

    fn entry(action: Action, query: Value, before: Vec<(i64, Option<Value>)>) -> OutboxEntry {
        test_entry("m1", action, query, before)
    }

    /// Version 1 → 2: `title` becomes `name`, `priority` gets a default.
    fn v2(rows: Vec<Obj>) -> Result<Vec<Obj>> {
        Ok(rows
            .into_iter()
            .map(|mut r| {
                if let Some(t) = r.remove("title") {
                    r.insert("name".into(), t);
                }
                r.entry("priority").or_insert(json!(2));
                r
            })
            .collect())
    }

    #[test]
    fn each_action_migrates_per_the_table() {
        let insert = entry(
            Action::Insert,
            json!({ "values": [{ "id": 1, "title": "a" }] }),
            vec![(1, None)],
        );
        let m = migrate_entry(&insert, &def(), &mut v2).unwrap();
        assert_eq!(
            m.query,
            json!({ "values": [{ "id": 1, "name": "a", "priority": 2 }] })
        );
        assert_eq!(m.before[0].row, None);

        // The row's real priority (3) must not be overwritten by migrate's default.
        let update = entry(
            Action::Update,
            json!({ "where": { "id": { "in": [1] } }, "values": { "title": "b" } }),
            vec![(1, Some(json!({ "id": 1, "title": "a", "priority": 3 })))],
        );
        let m = migrate_entry(&update, &def(), &mut v2).unwrap();
        assert_eq!(m.query["values"], json!({ "name": "b" }));
        assert_eq!(m.query["where"], update.query["where"]);
        assert_eq!(
            m.before[0].row,
            Some(obj(json!({ "id": 1, "name": "a", "priority": 3 })))
        );

        let delete = entry(
            Action::Delete,
            json!({ "where": { "id": { "in": [1] } } }),
            vec![(1, Some(json!({ "id": 1, "title": "a" })))],
        );
        let m = migrate_entry(&delete, &def(), &mut v2).unwrap();
        assert_eq!(m.query, delete.query);
        assert_eq!(
            m.before[0].row,
            Some(obj(json!({ "id": 1, "name": "a", "priority": 2 })))
        );

        let mut rejected = insert.clone();
        rejected.rejected = Some(Rejection {
            error: "no".into(),
            rejected_at: 1.0,
            rows: vec![obj(json!({ "id": 1, "title": "a" }))],
        });
        let m = migrate_entry(&rejected, &def(), &mut v2).unwrap();
        assert_eq!(
            m.rejected.unwrap().rows,
            [obj(json!({ "id": 1, "name": "a", "priority": 2 }))]
        );
    }

    #[test]
    fn an_update_of_several_rows_stays_one_write_only_if_its_migrated_change_is_the_same() {
        let update = |rows: Vec<(i64, Option<Value>)>| {
            entry(
                Action::Update,
                json!({ "where": { "id": { "in": [1, 2] } }, "values": { "title": "b" } }),
                rows,
            )
        };
        let same = update(vec![
            (1, Some(json!({ "id": 1, "title": "a" }))),
            (2, Some(json!({ "id": 2, "title": "c", "priority": 1 }))),
        ]);
        let m = migrate_entry(&same, &def(), &mut v2).unwrap();
        assert_eq!(m.query["values"], json!({ "name": "b" }));

        // A migration deriving a field from the changed one gives each row another change.
        let mut derived = |rows: Vec<Obj>| -> Result<Vec<Obj>> {
            Ok(rows
                .into_iter()
                .map(|mut r| {
                    let title = r.get("title").cloned().unwrap_or(Value::Null);
                    let id = r["id"].clone();
                    r.insert("slug".into(), json!(format!("{id}-{title}")));
                    r
                })
                .collect())
        };
        let e = migrate_entry(&same, &def(), &mut derived).unwrap_err();
        assert_eq!(e.name(), "MigrationError");
        assert!(e.to_string().contains("different changes"), "{e}");
    }

    #[test]
    fn a_migration_that_changes_keys_or_fails_is_an_error() {
        let insert = entry(
            Action::Insert,
            json!({ "values": [{ "id": 1, "title": "a" }] }),
            vec![(1, None)],
        );
        let mut rekey = |rows: Vec<Obj>| -> Result<Vec<Obj>> {
            Ok(rows
                .into_iter()
                .map(|mut r| {
                    r.insert("id".into(), json!("x"));
                    r
                })
                .collect())
        };
        let e = migrate_entry(&insert, &def(), &mut rekey).unwrap_err();
        assert!(e.to_string().contains("keep primary keys"), "{e}");
        let mut fail = |_: Vec<Obj>| -> Result<Vec<Obj>> { Err(Error::Migration("boom".into())) };
        assert_eq!(
            migrate_entry(&insert, &def(), &mut fail).unwrap_err(),
            Error::Migration("boom".into())
        );
        let mut short = |_: Vec<Obj>| -> Result<Vec<Obj>> { Ok(Vec::new()) };
        assert!(migrate_entry(&insert, &def(), &mut short).is_err());
    }
}
