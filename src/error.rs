//! The crate's one error type. It holds no JS values; the bindings turn it into a JS `Error`
//! whose `name` is [`Error::name`], so apps can branch on `err.name` reliably.

use std::fmt;

/// One problem found while validating a row: where, and what.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Issue {
    /// Path into the row, e.g. `["0", "email"]` for the first row's `email` field.
    pub path: Vec<String>,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Error {
    /// A row failed its model's schema. Nothing was written.
    Validation { model: String, issues: Vec<Issue> },
    /// The query names an unknown field, relation or operator, or an operand has the wrong type.
    Query(String),
    /// `db.model(name)` or a relation names a model that was not registered.
    UnknownModel(String),
    /// A write would break a storage rule, e.g. inserting a key that already exists.
    Constraint(String),
    /// The storage failed. `dom_name` is the DOMException name when IndexedDB reported one
    /// (`QuotaExceededError`, `InvalidStateError`, ...).
    Storage {
        dom_name: Option<String>,
        message: String,
    },
    /// The backend could not be reached or answered with an error (pull), or an outbox operation
    /// named an unknown mutation.
    Sync(String),
    /// The database was closed and cannot be used any more.
    Closed,
    /// A model migration failed (or stored data is newer than the app's models); nothing was
    /// changed.
    Migration(String),
    /// The backend rejected write `mutation_id` (`db.whenSynced`); its change was rolled back.
    Rejected {
        mutation_id: String,
        message: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The stable JS `name` of this error.
    pub fn name(&self) -> &'static str {
        match self {
            Error::Validation { .. } => "ValidationError",
            Error::Query(_) => "QueryError",
            Error::UnknownModel(_) => "UnknownModelError",
            Error::Constraint(_) => "ConstraintError",
            Error::Storage { dom_name, .. }
                if dom_name.as_deref() == Some("QuotaExceededError") =>
            {
                "QuotaExceededError"
            }
            Error::Storage { .. } => "StorageError",
            Error::Sync(_) => "SyncError",
            Error::Closed => "DatabaseClosedError",
            Error::Rejected { .. } => "RejectedWriteError",
            Error::Migration(_) => "MigrationError",
        }
    }

    pub fn query(msg: impl Into<String>) -> Self {
        Error::Query(msg.into())
    }

    pub fn storage(message: impl Into<String>) -> Self {
        Error::Storage {
            dom_name: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Validation { model, issues } => {
                write!(f, "invalid {model} row: ")?;
                for (i, issue) in issues.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    let path = if issue.path.is_empty() {
                        "(row)".to_string()
                    } else {
                        issue.path.join(".")
                    };
                    write!(f, "{path}: {}", issue.message)?;
                }
                Ok(())
            }
            Error::Query(m) | Error::Constraint(m) | Error::Sync(m) | Error::Migration(m) => {
                f.write_str(m)
            }
            Error::Rejected { message, .. } => f.write_str(message),
            Error::UnknownModel(m) => write!(
                f,
                "unknown model \"{m}\": pass it in createSyncOrm({{ models }}) before using it"
            ),
            Error::Storage {
                dom_name: Some(n),
                message,
            } => write!(f, "storage failed ({n}): {message}"),
            Error::Storage {
                dom_name: None,
                message,
            } => write!(f, "storage failed: {message}"),
            Error::Closed => {
                f.write_str("the database is closed; create a new one with createSyncOrm()")
            }
        }
    }
}

impl std::error::Error for Error {}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable() {
        let quota = Error::Storage {
            dom_name: Some("QuotaExceededError".into()),
            message: "full".into(),
        };
        assert_eq!(quota.name(), "QuotaExceededError");
        assert_eq!(Error::storage("x").name(), "StorageError");
        assert_eq!(Error::query("x").name(), "QueryError");
        assert_eq!(Error::UnknownModel("x".into()).name(), "UnknownModelError");
        let v = Error::Validation {
            model: "users".into(),
            issues: vec![Issue {
                path: vec!["0".into(), "age".into()],
                message: "Expected number".into(),
            }],
        };
        assert_eq!(v.name(), "ValidationError");
        assert_eq!(v.to_string(), "invalid users row: 0.age: Expected number");
    }
}
