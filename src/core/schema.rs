//! Model descriptions as the JS wrapper sends them, checked once when the database opens.

use crate::error::{Error, Result};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RelationKind {
    HasMany,
    HasOne,
    BelongsTo,
}

/// `parent[local_key] == related[foreign_key]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RelationDef {
    pub kind: RelationKind,
    pub model: String,
    pub local_key: String,
    pub foreign_key: String,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelDef {
    pub name: String,
    pub primary_key: String,
    #[serde(default)]
    pub indexes: Vec<String>,
    /// Field names when the schema reveals them (Zod objects, Valibot objects); `None` means any
    /// field name is accepted in queries.
    #[serde(default)]
    pub fields: Option<BTreeSet<String>>,
    #[serde(default)]
    pub relations: BTreeMap<String, RelationDef>,
    /// The model validates rows through the validator port.
    #[serde(default)]
    pub has_schema: bool,
    /// The model pushes writes (`sync.mutation`), so writes also produce outbox entries.
    #[serde(default)]
    pub has_mutation: bool,
}

impl ModelDef {
    /// Checks that `field` may be used in a query on this model.
    pub fn check_field(&self, field: &str, context: &str) -> Result<()> {
        match &self.fields {
            Some(known) if !known.contains(field) && field != self.primary_key => {
                let list: Vec<&str> = known.iter().map(String::as_str).collect();
                Err(Error::query(format!(
                    "unknown field \"{field}\" in {context} on model \"{}\"; known fields: {}",
                    self.name,
                    list.join(", ")
                )))
            }
            _ => Ok(()),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Schema {
    pub models: BTreeMap<String, ModelDef>,
}

impl Schema {
    pub fn new(models: Vec<ModelDef>) -> Result<Self> {
        let mut map = BTreeMap::new();
        for m in models {
            if m.name.is_empty() || m.name.starts_with('_') {
                return Err(Error::query(format!(
                    "invalid model name \"{}\": names must be non-empty and not start with \"_\"",
                    m.name
                )));
            }
            if m.primary_key.is_empty() {
                return Err(Error::query(format!(
                    "model \"{}\" needs a primaryKey",
                    m.name
                )));
            }
            if map.contains_key(&m.name) {
                return Err(Error::query(format!(
                    "model \"{}\" is defined twice",
                    m.name
                )));
            }
            map.insert(m.name.clone(), m);
        }
        let schema = Schema { models: map };
        for m in schema.models.values() {
            schema.check_relations(m)?;
        }
        Ok(schema)
    }

    pub fn model(&self, name: &str) -> Result<&ModelDef> {
        self.models
            .get(name)
            .ok_or_else(|| Error::UnknownModel(name.to_string()))
    }

    fn check_relations(&self, m: &ModelDef) -> Result<()> {
        for (name, rel) in &m.relations {
            let target = self.models.get(&rel.model).ok_or_else(|| {
                Error::UnknownModel(format!("{}\" (relation \"{}.{name}\")", rel.model, m.name))
            })?;
            m.check_field(&rel.local_key, &format!("relation \"{name}\""))?;
            target.check_field(&rel.foreign_key, &format!("relation \"{}.{name}\"", m.name))?;
        }
        Ok(())
    }

    /// Replaces a model's relations (they may be assigned after `defineModel`).
    pub fn set_relations(
        &mut self,
        model: &str,
        relations: BTreeMap<String, RelationDef>,
    ) -> Result<()> {
        let mut m = self.model(model)?.clone();
        m.relations = relations;
        self.check_relations(&m)?;
        self.models.insert(model.to_string(), m);
        Ok(())
    }
}
