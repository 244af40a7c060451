//! Reads: loading models into memory, and select, count and get (served from storage for just
//! the named rows while a model is not in memory).

use super::*;

impl<S: Storage, V: Validator, R: Remote> Db<S, V, R> {
    pub fn schema(&self) -> Schema {
        self.replica.borrow().schema.clone()
    }

    pub fn set_relations(
        &self,
        model: &str,
        relations: crate::core::vec_map::VecMap<String, RelationDef>,
    ) -> Result<()> {
        self.replica
            .borrow_mut()
            .schema
            .set_relations(model, relations)
    }

    /// Loads the named models into memory if they are not yet. One load at a time, so a read
    /// that arrives while a model loads waits for that load instead of starting another.
    pub(super) async fn ensure_loaded(&self, models: &[String]) -> Result<()> {
        self.check_open()?;
        for m in models {
            if self.replica.borrow().is_loaded(m) {
                continue;
            }
            let _loading = self.loading.lock().await;
            self.check_open()?;
            if self.replica.borrow().is_loaded(m) {
                continue;
            }
            let def = self.replica.borrow().schema.model(m)?.clone();
            // Every load holds this lock, so nothing else loads the model meanwhile.
            let rows = self.storage.load(&def).await?;
            let rows = self.keep_readable(rows);
            self.replica.borrow_mut().load(m, rows)?;
        }
        Ok(())
    }

    /// Whether `model`'s rows are in memory (reads answer from memory alone).
    pub fn is_loaded(&self, model: &str) -> bool {
        self.replica.borrow().is_loaded(model)
    }

    /// Loads `model` into memory now. The bindings call it after a read that was answered from
    /// storage (see `read_narrow`), so later reads run from memory.
    pub async fn load(&self, model: &str) -> Result<()> {
        self.replica.borrow().schema.model(model)?;
        self.ready().await?;
        self.ensure_loaded(&[model.to_string()]).await
    }

    /// For a model not in memory and a filter naming primary keys or indexed values: only the
    /// rows that can match, read from storage. Storage holds every committed write, so these
    /// answer what the loaded model would. `None` when the model must be loaded instead.
    pub(super) async fn read_narrow(
        &self,
        model: &str,
        filter: &Filter,
    ) -> Result<Option<Vec<Row>>> {
        if self.replica.borrow().is_loaded(model) {
            return Ok(None);
        }
        let Some((field, keys)) = self.replica.borrow().probe(model, filter)? else {
            return Ok(None);
        };
        let def = self.replica.borrow().schema.model(model)?.clone();
        let rows = self.storage.load_matching(&def, &field, &keys).await?;
        Ok(Some(self.keep_readable(rows)))
    }

    pub async fn select(&self, model: &str, query: Option<&Value>) -> Result<Vec<Out>> {
        let sel = Select::parse(&self.replica.borrow().schema, model, query)?;
        self.ready().await?;
        if sel.relations.is_empty() {
            if let Some(rows) = self.read_narrow(model, &sel.filter).await? {
                return self.replica.borrow().select_from(&sel, rows);
            }
        }
        let mut models = Vec::new();
        sel.models(&mut models);
        self.ensure_loaded(&models).await?;
        self.replica.borrow().select(&sel)
    }

    pub(super) fn filter(&self, model: &str, where_: Option<&Value>) -> Result<Filter> {
        let replica = self.replica.borrow();
        Filter::parse(replica.schema.model(model)?, where_)
    }

    pub async fn count(&self, model: &str, where_: Option<&Value>) -> Result<usize> {
        let filter = self.filter(model, where_)?;
        self.ready().await?;
        if let Some(rows) = self.read_narrow(model, &filter).await? {
            return Ok(rows.iter().filter(|r| filter.matches(r)).count());
        }
        self.ensure_loaded(&[model.to_string()]).await?;
        self.replica.borrow().count(model, &filter)
    }

    pub async fn get(&self, model: &str, key: &Value) -> Result<Option<Value>> {
        let key = self.replica.borrow().get_key(model, key)?;
        let pk = self
            .replica
            .borrow()
            .schema
            .model(model)?
            .primary_key
            .clone();
        self.ready().await?;
        let filter = Filter::Field(Name::new(&pk), Op::Eq(Val::new(&key.to_value())));
        if let Some(rows) = self.read_narrow(model, &filter).await? {
            return Ok(rows.into_iter().next().map(|r| Value::Object(r.to_obj())));
        }
        self.ensure_loaded(&[model.to_string()]).await?;
        self.replica.borrow().get(model, &key.to_value())
    }
}
