//! Writes: insert, update and delete, planned in memory, validated, committed, then applied.

use super::*;

/// A write's answer: the rows it returns, and the outbox entries it queued (none for a model that
/// does not push, or a write that changed nothing).
#[derive(Debug, Default)]
pub struct Written {
    pub rows: Vec<Out>,
    pub mutation_ids: Vec<String>,
}

/// Turns a write's validated rows into its batch and the rows it affected.
type BuildFn<'a> = dyn Fn(&Replica, &[Value]) -> Result<(Batch, Vec<Row>)> + 'a;

/// Where a write's rows come from on each attempt.
pub(super) enum Plan<'a> {
    /// Prepared and validated once (insert: the rows do not depend on what is stored).
    Ready(Vec<Value>),
    /// Planned from the rows in memory, then validated, on each attempt (update).
    Each(&'a dyn Fn(&Replica) -> Result<Vec<Value>>),
}

/// The outbox entries a write's batch creates.
fn new_entries(batch: &Batch) -> Vec<String> {
    batch
        .outbox_put
        .iter()
        .map(|e| e.mutation_id.clone())
        .collect()
}

impl<S: Storage, V: Validator, R: Remote> Db<S, V, R> {
    pub(super) async fn validate(&self, model: &str, rows: Vec<Value>) -> Result<Vec<Value>> {
        let has_schema = self.replica.borrow().schema.model(model)?.has_schema;
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

    pub fn insert<'a>(
        &'a self,
        model: &'a str,
        values: &'a Value,
        returning: Option<&'a Value>,
    ) -> impl Future<Output = Result<Vec<Out>>> + 'a {
        let written = self.insert_in(self.turn(), model, values.clone(), returning);
        async { written.await.map(|w| w.rows) }
    }

    /// Inserts `values` (taken over: the rows are moved, not copied). Its rows do not depend on
    /// what is stored, so they are prepared and validated once, however often the commit is
    /// planned again.
    pub async fn insert_in(
        &self,
        turn: Turn,
        model: &str,
        values: Value,
        returning: Option<&Value>,
    ) -> Result<Written> {
        let ret = self.replica.borrow().parse_returning(model, returning)?;
        let _turn = turn.await;
        self.check_open()?;
        let now = (self.env.now)();
        let rows = self.replica.borrow().prepare_insert(model, values, now)?;
        let rows = self.validate(model, rows).await?;
        self.write_validated(&ret, model, Plan::Ready(rows), &|replica, rows| {
            replica.build_insert(model, rows, now)
        })
        .await
    }

    pub fn update<'a>(
        &'a self,
        model: &'a str,
        where_: Option<&'a Value>,
        values: &'a Value,
        returning: Option<&'a Value>,
    ) -> impl Future<Output = Result<Vec<Out>>> + 'a {
        let written = self.update_in(self.turn(), model, where_, values, returning);
        async { written.await.map(|w| w.rows) }
    }

    pub async fn update_in(
        &self,
        turn: Turn,
        model: &str,
        where_: Option<&Value>,
        values: &Value,
        returning: Option<&Value>,
    ) -> Result<Written> {
        let filter = self.required_filter(model, where_, "update")?;
        let ret = self.replica.borrow().parse_returning(model, returning)?;
        let _turn = turn.await;
        let now = (self.env.now)();
        self.write_validated(
            &ret,
            model,
            Plan::Each(&|replica| replica.plan_update(model, &filter, values)),
            &|replica, rows| replica.build_update(model, rows, values, now),
        )
        .await
    }

    /// A write whose rows go through the schema: `plan` gives the validated rows, `build` turns
    /// them into a batch. Planned again after catching up when storage moved on. The caller holds
    /// a turn.
    pub(super) async fn write_validated(
        &self,
        ret: &Returning,
        model: &str,
        plan: Plan<'_>,
        // A borrowed trait object, so insert and update share one copy of this function.
        build: &BuildFn<'_>,
    ) -> Result<Written> {
        self.check_open()?;
        let models = Replica::returning_models(ret);
        let mut caught_up = false;
        for _ in 0..MAX_ATTEMPTS {
            self.ensure_loaded(&models).await?;
            let planned;
            let rows = match &plan {
                Plan::Ready(rows) => rows,
                Plan::Each(plan) => {
                    let rows = plan(&self.replica.borrow())?;
                    planned = self.validate(model, rows).await?;
                    &planned
                }
            };
            let built = build(&self.replica.borrow(), rows);
            let (batch, affected) = match built {
                // Memory may hold rows another tab wrote (a load reads storage as it is now)
                // before this tab caught up with that write: refuse only on caught-up state,
                // so the error and this tab's view (its outbox) agree.
                Err(Error::Constraint(_)) if !caught_up => {
                    self.catch_up_locked().await?;
                    caught_up = true;
                    continue;
                }
                built => built?,
            };
            if self.try_commit(&batch).await? {
                return Ok(Written {
                    rows: self.replica.borrow().returning(ret, &affected)?,
                    mutation_ids: new_entries(&batch),
                });
            }
        }
        Err(too_busy())
    }

    pub fn delete<'a>(
        &'a self,
        model: &'a str,
        where_: Option<&'a Value>,
        returning: Option<&'a Value>,
    ) -> impl Future<Output = Result<Vec<Out>>> + 'a {
        let written = self.delete_in(self.turn(), model, where_, returning);
        async { written.await.map(|w| w.rows) }
    }

    pub async fn delete_in(
        &self,
        turn: Turn,
        model: &str,
        where_: Option<&Value>,
        returning: Option<&Value>,
    ) -> Result<Written> {
        let filter = self.required_filter(model, where_, "delete")?;
        let ret = self.replica.borrow().parse_returning(model, returning)?;
        let _turn = turn.await;
        self.check_open()?;
        let now = (self.env.now)();
        let (rows, mutation_ids) = self
            .commit_planned(&Replica::returning_models(&ret), |replica| {
                let rows = replica.plan_delete(model, &filter)?;
                let batch = replica.build_delete(model, &rows, now)?;
                let ids = new_entries(&batch);
                Ok(Some((batch, (rows, ids))))
            })
            .await?
            .unwrap_or_default();
        Ok(Written {
            rows: self.replica.borrow().returning(&ret, &rows)?,
            mutation_ids,
        })
    }

    /// `update` and `delete` need an explicit `where`: `where: {}` targets every row on purpose,
    /// a missing one is almost always a bug (e.g. `{ id: undefined }` serialized away).
    pub(super) fn required_filter(
        &self,
        model: &str,
        where_: Option<&Value>,
        op: &str,
    ) -> Result<Filter> {
        match where_ {
            None | Some(Value::Null) => Err(Error::query(format!(
                "{op} on \"{model}\" needs a where; pass where: {{}} to {op} every row"
            ))),
            w => self.filter(model, w),
        }
    }
}
