//! The input contract's limits: the same numbers bound what a write accepts and what a query may
//! ask, so that whatever is written can be read back and no input can make a call run away.
//! The JS wrapper mirrors [`MAX_DEPTH`] (it checks it before the input crosses into
//! WebAssembly, where it also bounds the size of one call's JSON); the rest is enforced here when
//! a query is parsed, and the depth again on every row a write or a pull stores.

use serde_json::Value;

/// Nesting of arrays and objects in a row, and of `and` / `or` / `not` and operands in a `where`.
/// A row is depth 1; `{ a: { b: [1] } }` is depth 3. Stored outbox entries wrap rows in four more
/// levels, which stays well under the 128 levels the JSON reader accepts.
pub const MAX_DEPTH: usize = 64;

/// Field conditions, `and` / `or` / `not` nodes and empty `{}` objects in one `where` (relations'
/// own `where`s count separately): an `or` of 999 single-field branches is 1,000. Use `in` for
/// long lists of alternatives.
pub const MAX_CONDITIONS: usize = 1_000;

/// Values in one `in` / `nin` list. They are hashed, so a long list costs one lookup per row.
pub const MAX_LIST: usize = 100_000;

/// Characters in one `like` / `ilike` / `fzlike` pattern.
pub const MAX_PATTERN: usize = 10_000;

/// Whether `v` nests arrays and objects more than `max` levels deep (a scalar is 0 levels, `[]`
/// and `{}` are 1). No allocation; the recursion is bounded by `max + 1`.
pub fn too_deep(v: &Value, max: usize) -> bool {
    match v {
        Value::Array(a) => max == 0 || a.iter().any(|c| too_deep(c, max - 1)),
        Value::Object(o) => max == 0 || o.values().any(|c| too_deep(c, max - 1)),
        _ => false,
    }
}

/// The path (keys and indexes) to the first value nested deeper than `max`, if any.
pub fn too_deep_path(v: &Value, max: usize) -> Option<Vec<String>> {
    if !too_deep(v, max) {
        return None;
    }
    let mut stack: Vec<(&Value, Vec<String>)> = vec![(v, Vec::new())];
    while let Some((v, path)) = stack.pop() {
        if path.len() >= max && matches!(v, Value::Array(_) | Value::Object(_)) {
            return Some(path);
        }
        match v {
            Value::Array(a) => {
                for (i, c) in a.iter().enumerate() {
                    let mut p = path.clone();
                    p.push(i.to_string());
                    stack.push((c, p));
                }
            }
            Value::Object(o) => {
                for (k, c) in o {
                    let mut p = path.clone();
                    p.push(k.clone());
                    stack.push((c, p));
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use serde_json::json;

    fn nested(levels: usize) -> Value {
        let mut v = json!(1);
        for _ in 0..levels {
            v = json!({ "a": v });
        }
        v
    }

    #[test]
    fn depth_counts_containers() {
        assert!(!too_deep(&json!(1), 0));
        assert!(too_deep(&json!({}), 0));
        assert!(!too_deep(&json!({}), 1));
        assert!(too_deep(&json!({ "a": { "b": [1] } }), 2));
        assert!(!too_deep(&json!({ "a": { "b": [1] } }), 3));
        assert!(!too_deep(&nested(64), 64));
        assert!(too_deep(&nested(500), 64));
    }

    #[test]
    fn path_to_the_first_value_too_deep() {
        assert_eq!(too_deep_path(&nested(64), 64), None);
        let p = too_deep_path(&nested(66), 64).unwrap();
        assert_eq!(p.len(), 64);
        assert!(p.iter().all(|k| k == "a"));
        let arr = json!({ "x": [[[1]]] });
        assert_eq!(too_deep_path(&arr, 2), Some(vec!["x".into(), "0".into()]));
    }
}
