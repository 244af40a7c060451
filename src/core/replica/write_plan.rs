//! Write planning: inserts, updates and deletes turned into batches, and batches applied.

use super::*;
use crate::core::batch::{Batch, RowOp};
use crate::core::outbox::{Action, Before, OutboxEntry};
use crate::core::query::Filter;
use crate::core::row::Name;
use crate::core::schema::ModelDef;
use crate::core::value::Row;
use crate::error::{Error, Result};
use serde_json::{json, Value};
use std::collections::HashSet;

impl Replica {
    /// Normalizes insert `values` (a row or an array of rows) and fills missing primary keys with
    /// UUIDv7 strings. Takes the values over: rows are moved, not copied.
    pub fn prepare_insert(&self, model: &str, values: Value, now: f64) -> Result<Vec<Value>> {
        let def = self.schema.model(model)?;
        let items: Vec<Value> = match values {
            Value::Array(a) => a,
            v => vec![v],
        };
        items
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                let Value::Object(mut o) = v else {
                    return Err(Error::Validation {
                        model: def.name.clone(),
                        issues: vec![crate::error::Issue {
                            path: vec![i.to_string()],
                            message: format!("a row must be an object, got {v}"),
                        }],
                    });
                };
                if o.get(&def.primary_key).is_none_or(Value::is_null) {
                    o.insert(
                        def.primary_key.clone(),
                        Value::String(self.ids.borrow_mut().next(now, None)),
                    );
                }
                Ok(Value::Object(o))
            })
            .collect()
    }

    /// The rows an update would write: each matching row with `values` merged over it.
    pub fn plan_update(&self, model: &str, filter: &Filter, values: &Value) -> Result<Vec<Value>> {
        let def = self.schema.model(model)?;
        let Value::Object(patch) = values else {
            return Err(Error::query(format!(
                "update values on \"{model}\" must be an object, got {values}"
            )));
        };
        for f in patch.keys() {
            def.check_field(f, "update values")?;
        }
        let rows = self.matching(model, filter)?;
        rows.into_iter()
            .map(|r| {
                let mut merged = r.to_obj();
                let old_key = merged.get(&def.primary_key).cloned();
                for (k, v) in patch {
                    merged.insert(k.clone(), v.clone());
                }
                if merged.get(&def.primary_key) != old_key.as_ref() {
                    return Err(Error::query(format!(
                        "update cannot change the primary key \"{}\" of \"{model}\"; delete and insert instead",
                        def.primary_key
                    )));
                }
                Ok(Value::Object(merged))
            })
            .collect()
    }

    pub fn plan_delete(&self, model: &str, filter: &Filter) -> Result<Vec<Row>> {
        Ok(self.matching(model, filter)?.into_iter().cloned().collect())
    }

    /// A new outbox entry. Its id sorts after every entry in the outbox, so it is pushed after
    /// them (see [`crate::core::ids`]).
    fn outbox_entry(
        &self,
        def: &ModelDef,
        action: Action,
        query: Value,
        before: Vec<Before>,
        now: f64,
    ) -> OutboxEntry {
        let floor = self.outbox.last().map(|e| e.mutation_id.as_str());
        OutboxEntry {
            mutation_id: self.ids.borrow_mut().next(now, floor),
            model: def.name.clone(),
            action,
            query,
            created_at: now,
            attempts: 0,
            last_error: None,
            next_attempt_at: now,
            before,
            sent: self.online,
            rejected: None,
            merged: Vec::new(),
        }
    }

    /// Validated rows to insert → batch. Fails on a duplicate key (in the table or the batch).
    pub fn build_insert(&self, model: &str, rows: &[Value], now: f64) -> Result<(Batch, Vec<Row>)> {
        let def = self.schema.model(model)?;
        let table = self.table(model)?;
        let pk = Name::new(&def.primary_key);
        let mut batch = Batch::default();
        let mut seen = HashSet::new();
        let mut affected = Vec::with_capacity(rows.len());
        for (i, v) in rows.iter().enumerate() {
            let row = into_row(def, i, v)?;
            let key = row_key_by(def, &pk, &row)?;
            if table.contains(&key) || !seen.insert(key.clone()) {
                return Err(Error::Constraint(format!(
                    "a \"{model}\" row with {} {key} already exists; use update to change it",
                    def.primary_key
                )));
            }
            affected.push(row.clone());
            batch.rows.push(RowOp::Insert {
                model: model.to_string(),
                key,
                row,
            });
        }
        if def.has_mutation && !affected.is_empty() {
            let values: Vec<Value> = affected.iter().map(|r| Value::Object(r.to_obj())).collect();
            let before = batch
                .rows
                .iter()
                .map(|op| Before {
                    key: op.key().to_value(),
                    row: None,
                })
                .collect();
            batch.outbox_put.push(self.outbox_entry(
                def,
                Action::Insert,
                json!({ "values": values }),
                before,
                now,
            ));
        }
        Ok((batch, affected))
    }

    /// Validated merged rows → batch. `patch` is what the user asked to change (sent to the hook).
    pub fn build_update(
        &self,
        model: &str,
        rows: &[Value],
        patch: &Value,
        now: f64,
    ) -> Result<(Batch, Vec<Row>)> {
        let def = self.schema.model(model)?;
        let table = self.table(model)?;
        let pk = Name::new(&def.primary_key);
        let mut batch = Batch::default();
        let mut affected = Vec::with_capacity(rows.len());
        let mut before = Vec::new();
        for (i, v) in rows.iter().enumerate() {
            let row = into_row(def, i, v)?;
            let key = row_key_by(def, &pk, &row)?;
            let old = table.get(&key).ok_or_else(|| {
                Error::query(format!(
                    "the schema changed the primary key of a \"{model}\" row during update"
                ))
            })?;
            before.push(Before {
                key: key.to_value(),
                row: Some(old.to_obj()),
            });
            affected.push(row.clone());
            batch.rows.push(RowOp::Put {
                model: model.to_string(),
                key,
                row,
            });
        }
        if def.has_mutation && !affected.is_empty() {
            let keys: Vec<Value> = before.iter().map(|b| b.key.clone()).collect();
            let query =
                json!({ "where": { def.primary_key.clone(): { "in": keys } }, "values": patch });
            batch
                .outbox_put
                .push(self.outbox_entry(def, Action::Update, query, before, now));
        }
        Ok((batch, affected))
    }

    pub fn build_delete(&self, model: &str, rows: &[Row], now: f64) -> Result<Batch> {
        let def = self.schema.model(model)?;
        let mut batch = Batch::default();
        let mut before = Vec::new();
        for r in rows {
            let key = row_key(def, r)?;
            before.push(Before {
                key: key.to_value(),
                row: Some(r.to_obj()),
            });
            batch.rows.push(RowOp::Delete {
                model: model.to_string(),
                key,
            });
        }
        if def.has_mutation && !rows.is_empty() {
            let keys: Vec<Value> = before.iter().map(|b| b.key.clone()).collect();
            let query = json!({ "where": { def.primary_key.clone(): { "in": keys } } });
            batch
                .outbox_put
                .push(self.outbox_entry(def, Action::Delete, query, before, now));
        }
        Ok(batch)
    }

    /// Applies a committed batch to the loaded tables and the in-memory outbox.
    pub fn apply(&mut self, batch: &Batch) {
        for id in &batch.outbox_delete {
            self.forget(id);
        }
        for e in &batch.outbox_put {
            self.place(e.clone());
        }
        // Consecutive puts to one model go in together (a bulk insert or a pull's chunk).
        let mut puts: Vec<(Key, Row)> = Vec::new();
        let mut puts_model = "";
        for op in &batch.rows {
            if !self.tables.contains_key(op.model()) {
                continue;
            }
            self.touched.row(op.model(), op.key());
            if puts_model != op.model() || op.row().is_none() {
                self.put_rows(puts_model, std::mem::take(&mut puts));
                puts_model = op.model();
            }
            match op.row() {
                Some(row) => puts.push((op.key().clone(), row.clone())),
                None => {
                    if let Some(t) = self.tables.get_mut(op.model()) {
                        t.remove(op.key());
                    }
                }
            }
        }
        self.put_rows(puts_model, puts);
    }

    fn put_rows(&mut self, model: &str, rows: Vec<(Key, Row)>) {
        if rows.is_empty() {
            return;
        }
        if let Some(t) = self.tables.get_mut(model) {
            t.put_many(rows);
        }
    }
}
