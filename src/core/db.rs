//! The async database: the [`Engine`] plus a storage port and a validator port.
//!
//! Writes are serialized by a lock, so a write's plan is never invalidated by another write of the
//! same database before it commits. A write changes memory only after storage committed it; if
//! validation or the commit fails, nothing changed anywhere.

use super::engine::Engine;
use super::outbox::OutboxEntry;
use super::query::{Filter, Select};
use super::schema::{ModelDef, RelationDef, Schema};
use crate::error::{Error, Result};
use crate::storage::Storage;
use futures::lock::Mutex;
use serde_json::Value;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

/// Validates rows against their model's schema. Returns the validated output rows (defaults and
/// coercions applied), or [`Error::Validation`] listing every issue.
#[allow(async_fn_in_trait)]
pub trait Validator {
    async fn validate(&self, model: &str, rows: Vec<Value>) -> Result<Vec<Value>>;
}

/// Accepts every row unchanged.
pub struct NoValidation;

impl Validator for NoValidation {
    async fn validate(&self, _model: &str, rows: Vec<Value>) -> Result<Vec<Value>> {
        Ok(rows)
    }
}

pub struct Db<S, V> {
    storage: S,
    validator: V,
    engine: RefCell<Engine>,
    writes: Mutex<()>,
    clock: fn() -> f64,
    closed: Cell<bool>,
}

impl<S: Storage, V: Validator> Db<S, V> {
    pub async fn open(
        storage: S,
        validator: V,
        models: Vec<ModelDef>,
        clock: fn() -> f64,
    ) -> Result<Self> {
        let schema = Schema::new(models)?;
        storage.open(&schema).await?;
        Ok(Db {
            storage,
            validator,
            engine: RefCell::new(Engine::new(schema)),
            writes: Mutex::new(()),
            clock,
            closed: Cell::new(false),
        })
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.get() {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    pub fn schema(&self) -> Schema {
        self.engine.borrow().schema.clone()
    }

    pub fn set_relations(
        &self,
        model: &str,
        relations: BTreeMap<String, RelationDef>,
    ) -> Result<()> {
        self.engine
            .borrow_mut()
            .schema
            .set_relations(model, relations)
    }

    /// Loads the named models into memory if they are not yet.
    async fn ensure_loaded(&self, models: &[String]) -> Result<()> {
        self.check_open()?;
        for m in models {
            if self.engine.borrow().is_loaded(m) {
                continue;
            }
            let def = self.engine.borrow().schema.model(m)?.clone();
            let rows = self.storage.load(&def).await?;
            let mut engine = self.engine.borrow_mut();
            // Another call may have loaded it (and applied writes) while this one awaited.
            if !engine.is_loaded(m) {
                engine.load(m, rows)?;
            }
        }
        Ok(())
    }

    pub async fn select(&self, model: &str, query: Option<&Value>) -> Result<Vec<Value>> {
        let sel = Select::parse(&self.engine.borrow().schema, model, query)?;
        let mut models = Vec::new();
        sel.models(&mut models);
        self.ensure_loaded(&models).await?;
        self.engine.borrow().select(&sel)
    }

    fn filter(&self, model: &str, where_: Option<&Value>) -> Result<Filter> {
        let engine = self.engine.borrow();
        Filter::parse(engine.schema.model(model)?, where_)
    }

    pub async fn count(&self, model: &str, where_: Option<&Value>) -> Result<usize> {
        let filter = self.filter(model, where_)?;
        self.ensure_loaded(&[model.to_string()]).await?;
        self.engine.borrow().count(model, &filter)
    }

    pub async fn get(&self, model: &str, key: &Value) -> Result<Option<Value>> {
        self.engine.borrow().schema.model(model)?;
        self.ensure_loaded(&[model.to_string()]).await?;
        self.engine.borrow().get(model, key)
    }

    async fn validate(&self, model: &str, rows: Vec<Value>) -> Result<Vec<Value>> {
        let has_schema = self.engine.borrow().schema.model(model)?.has_schema;
        if !has_schema || rows.is_empty() {
            return Ok(rows);
        }
        let n = rows.len();
        let out = self.validator.validate(model, rows).await?;
        if out.len() != n {
            return Err(Error::storage(format!(
                "validator returned {} rows for {n}",
                out.len()
            )));
        }
        Ok(out)
    }

    pub async fn insert(
        &self,
        model: &str,
        values: &Value,
        returning: Option<&Value>,
    ) -> Result<Vec<Value>> {
        let ret = self.engine.borrow().parse_returning(model, returning)?;
        let _guard = self.writes.lock().await;
        self.ensure_loaded(&Engine::returning_models(&ret)).await?;
        let rows = self.engine.borrow().prepare_insert(model, values)?;
        let rows = self.validate(model, rows).await?;
        let (batch, affected) = self
            .engine
            .borrow()
            .build_insert(model, rows, (self.clock)())?;
        self.commit(&batch).await?;
        self.engine.borrow().returning(&ret, &affected)
    }

    pub async fn update(
        &self,
        model: &str,
        where_: Option<&Value>,
        values: &Value,
        returning: Option<&Value>,
    ) -> Result<Vec<Value>> {
        let filter = self.required_filter(model, where_, "update")?;
        let ret = self.engine.borrow().parse_returning(model, returning)?;
        let _guard = self.writes.lock().await;
        self.ensure_loaded(&Engine::returning_models(&ret)).await?;
        let rows = self.engine.borrow().plan_update(model, &filter, values)?;
        let rows = self.validate(model, rows).await?;
        let (batch, affected) =
            self.engine
                .borrow()
                .build_update(model, rows, values, (self.clock)())?;
        self.commit(&batch).await?;
        self.engine.borrow().returning(&ret, &affected)
    }

    pub async fn delete(
        &self,
        model: &str,
        where_: Option<&Value>,
        returning: Option<&Value>,
    ) -> Result<Vec<Value>> {
        let filter = self.required_filter(model, where_, "delete")?;
        let ret = self.engine.borrow().parse_returning(model, returning)?;
        let _guard = self.writes.lock().await;
        self.ensure_loaded(&Engine::returning_models(&ret)).await?;
        let rows = self.engine.borrow().plan_delete(model, &filter)?;
        let batch = self
            .engine
            .borrow()
            .build_delete(model, &rows, (self.clock)())?;
        self.commit(&batch).await?;
        self.engine.borrow().returning(&ret, &rows)
    }

    /// `update` and `delete` need an explicit `where`: `where: {}` targets every row on purpose,
    /// a missing one is almost always a bug (e.g. `{ id: undefined }` serialized away).
    fn required_filter(&self, model: &str, where_: Option<&Value>, op: &str) -> Result<Filter> {
        match where_ {
            None | Some(Value::Null) => Err(Error::query(format!(
                "{op} on \"{model}\" needs a where; pass where: {{}} to {op} every row"
            ))),
            w => self.filter(model, w),
        }
    }

    async fn commit(&self, batch: &super::batch::Batch) -> Result<()> {
        self.check_open()?;
        if batch.is_empty() {
            return Ok(());
        }
        self.storage.commit(batch).await?;
        self.engine.borrow_mut().apply(batch);
        Ok(())
    }

    pub async fn pending(&self) -> Result<Vec<OutboxEntry>> {
        self.check_open()?;
        self.storage.load_outbox().await
    }

    pub fn close(&self) {
        self.closed.set(true);
        self.storage.close();
    }
}
