//! Model descriptions as the JS wrapper sends them, checked once when the database opens.

use super::vec_map::{VecMap, VecSet};
use crate::core::conflict::Conflict;
use crate::error::{Error, Result};
use serde::Deserialize;

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
    pub fields: Option<VecSet<String>>,
    #[serde(default)]
    pub relations: VecMap<String, RelationDef>,
    /// The model validates rows through the validator port.
    #[serde(default)]
    pub has_schema: bool,
    /// The model pushes writes (`sync.mutation`), so writes also produce outbox entries.
    #[serde(default)]
    pub has_mutation: bool,
    /// Pending writes of one row merge before they are pushed (see [`crate::core::coalesce`]).
    #[serde(default = "yes")]
    pub coalesce: bool,
    /// How a pull resolves rows with pending writes (see [`crate::core::conflict`]).
    #[serde(default)]
    pub conflict: Conflict,
    /// The version of the model's row shape (see [`crate::core::migrate`]); 1 by default.
    #[serde(default = "one")]
    pub version: u32,
}

fn one() -> u32 {
    1
}

fn yes() -> bool {
    true
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

/// Whether IndexedDB reads `f` as the top-level field `f` when it is a key path: an identifier, no
/// dots (a dotted path would name a nested field, which the engine does not).
fn is_plain_field(f: &str) -> bool {
    let mut chars = f.chars();
    chars
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_alphanumeric() || c == '_' || c == '$')
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Schema {
    pub models: VecMap<String, ModelDef>,
}

impl Schema {
    pub fn new(models: Vec<ModelDef>) -> Result<Self> {
        let mut map = VecMap::new();
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
            for f in std::iter::once(&m.primary_key).chain(&m.indexes) {
                if !is_plain_field(f) {
                    return Err(Error::query(format!(
                        "model \"{}\": \"{f}\" cannot be a primaryKey or index: IndexedDB needs a plain field name (letters, digits, _ or $, not starting with a digit)",
                        m.name
                    )));
                }
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
            if m.version == 0 {
                return Err(Error::query(format!(
                    "model \"{}\": version must be a whole number ≥ 1",
                    m.name
                )));
            }
            if let Conflict::Lww(field) = &m.conflict {
                m.check_field(field, "conflict.lww")?;
            }
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
        for (name, rel) in m.relations.iter() {
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
        relations: VecMap<String, RelationDef>,
    ) -> Result<()> {
        let mut m = self.model(model)?.clone();
        m.relations = relations;
        self.check_relations(&m)?;
        self.models.insert(model.to_string(), m);
        Ok(())
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_paths_must_be_plain_field_names() {
        let def = |pk: &str, ix: &[&str]| -> ModelDef {
            serde_json::from_value(json!({ "name": "t", "primaryKey": pk, "indexes": ix })).unwrap()
        };
        assert!(Schema::new(vec![def("id", &["userId", "_x", "$y", "né2"])]).is_ok());
        for (pk, ix, bad) in [
            ("a.b", vec![], "a.b"),
            ("id", vec!["created-at"], "created-at"),
            ("id", vec!["1st"], "1st"),
            ("id", vec![""], "\"\""),
        ] {
            let e = Schema::new(vec![def(pk, &ix)]).unwrap_err().to_string();
            assert!(e.contains(bad) && e.contains("plain field name"), "{e}");
        }
    }
}
