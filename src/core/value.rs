//! Row values and the two orderings the engine needs.
//!
//! Rows are JSON objects ([`Row`]). Two comparisons exist on purpose:
//! - [`sort_cmp`] is a total order used by `orderBy`: booleans < numbers < strings < arrays <
//!   objects < null/missing (so nulls come last in ascending order).
//! - [`compare`] is the partial order used by `gt`/`gte`/`lt`/`lte`: values compare only with
//!   values of the same kind, except that a number (epoch milliseconds) and an ISO 8601 date
//!   string compare as instants. Anything else is "not comparable" and the operator is false.

use serde_json::{Map, Value};
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

pub type Row = Map<String, Value>;

/// A primary-key (or join-key) value: a string or a finite number. Ordered like IndexedDB keys:
/// every number sorts before every string.
#[derive(Clone, Debug)]
pub enum Key {
    Num(f64),
    Str(String),
}

impl Key {
    /// The key held by a JSON value, if it can be one.
    pub fn from_value(v: &Value) -> Option<Key> {
        match v {
            Value::String(s) => Some(Key::Str(s.clone())),
            Value::Number(n) => n
                .as_f64()
                .filter(|f| f.is_finite())
                .map(|f| Key::Num(if f == 0.0 { 0.0 } else { f })),
            _ => None,
        }
    }

    pub fn to_value(&self) -> Value {
        match self {
            Key::Str(s) => Value::String(s.clone()),
            Key::Num(f) => num_value(*f),
        }
    }
}

/// A JSON number that stays an integer when it is one (so `1` round-trips as `1`, not `1.0`).
pub fn num_value(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
        Value::from(f as i64)
    } else {
        serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Key {}
impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Key::Num(a), Key::Num(b)) => a.total_cmp(b),
            (Key::Num(_), Key::Str(_)) => Ordering::Less,
            (Key::Str(_), Key::Num(_)) => Ordering::Greater,
            (Key::Str(a), Key::Str(b)) => a.cmp(b),
        }
    }
}
impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            Key::Num(f) => {
                0u8.hash(state);
                f.to_bits().hash(state);
            }
            Key::Str(s) => {
                1u8.hash(state);
                s.hash(state);
            }
        }
    }
}
impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Str(s) => write!(f, "\"{s}\""),
            Key::Num(n) => write!(f, "{n}"),
        }
    }
}

fn rank(v: Option<&Value>) -> u8 {
    match v {
        Some(Value::Bool(_)) => 0,
        Some(Value::Number(_)) => 1,
        Some(Value::String(_)) => 2,
        Some(Value::Array(_)) => 3,
        Some(Value::Object(_)) => 4,
        Some(Value::Null) | None => 5,
    }
}

fn f(n: &serde_json::Number) -> f64 {
    n.as_f64().unwrap_or(f64::NAN)
}

/// Total order for sorting. Missing and `null` are equal to each other and greater than anything.
pub fn sort_cmp(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (Some(Value::Number(x)), Some(Value::Number(y))) => f(x).total_cmp(&f(y)),
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (Some(Value::Array(x)), Some(Value::Array(y))) => {
            for (p, q) in x.iter().zip(y) {
                let o = sort_cmp(Some(p), Some(q));
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        _ => rank(a).cmp(&rank(b)),
    }
}

/// Equality as the `eq`/`in` operators see it: JSON equality, with numbers compared by value.
pub fn loose_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => f(x) == f(y),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| loose_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| loose_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Ordering for range operators, or `None` when the two values are not comparable.
pub fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => f(x).partial_cmp(&f(y)),
        (Value::String(x), Value::String(y)) => Some(x.as_str().cmp(y.as_str())),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Number(x), Value::String(s)) => {
            parse_iso_date(s).and_then(|ms| f(x).partial_cmp(&ms))
        }
        (Value::String(s), Value::Number(y)) => {
            parse_iso_date(s).and_then(|ms| ms.partial_cmp(&f(y)))
        }
        _ => None,
    }
}

/// Parses the ISO 8601 forms `Date.prototype.toISOString` and users write: `YYYY-MM-DD`, optionally
/// followed by `THH:MM`, `:SS`, `.fraction`, and `Z` or `±HH:MM` (no zone means UTC). Returns epoch
/// milliseconds.
pub fn parse_iso_date(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        part.iter().try_fold(0i64, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let mut ms = 0.0;
    let mut i = 10;
    if i < b.len() && (b[i] == b'T' || b[i] == b' ') {
        if b.get(i + 3) != Some(&b':') {
            return None;
        }
        let (h, mi) = (num(i + 1, 2)?, num(i + 4, 2)?);
        if h > 24 || mi > 59 {
            return None;
        }
        ms += (h * 3_600_000 + mi * 60_000) as f64;
        i += 6;
        if b.get(i) == Some(&b':') {
            let sec = num(i + 1, 2)?;
            if sec > 60 {
                return None;
            }
            ms += (sec * 1000) as f64;
            i += 3;
            if b.get(i) == Some(&b'.') {
                let start = i + 1;
                let mut end = start;
                while end < b.len() && b[end].is_ascii_digit() {
                    end += 1;
                }
                if end == start {
                    return None;
                }
                let frac: f64 = format!("0.{}", &s[start..end]).parse().ok()?;
                ms += frac * 1000.0;
                i = end;
            }
        }
        match b.get(i) {
            None => {}
            Some(b'Z') if i + 1 == b.len() => {}
            Some(&sign @ (b'+' | b'-')) if b.len() == i + 6 && b[i + 3] == b':' => {
                let off = (num(i + 1, 2)? * 60 + num(i + 4, 2)?) as f64 * 60_000.0;
                ms += if sign == b'+' { -off } else { off };
            }
            _ => return None,
        }
    } else if i != b.len() {
        return None;
    }
    Some(days_from_civil(y, mo, d) as f64 * 86_400_000.0 + ms)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's well-known algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_order_like_indexeddb() {
        let mut keys = vec![
            Key::Str("b".into()),
            Key::Num(2.0),
            Key::Str("a".into()),
            Key::Num(-1.0),
        ];
        keys.sort();
        assert_eq!(
            keys,
            vec![
                Key::Num(-1.0),
                Key::Num(2.0),
                Key::Str("a".into()),
                Key::Str("b".into())
            ]
        );
        assert_eq!(Key::from_value(&json!(-0.0)), Some(Key::Num(0.0)));
        assert_eq!(Key::from_value(&json!(true)), None);
        assert_eq!(Key::Num(3.0).to_value(), json!(3));
    }

    #[test]
    fn sort_puts_missing_and_null_last() {
        let (n, s, nul) = (json!(5), json!("x"), json!(null));
        assert_eq!(sort_cmp(Some(&n), Some(&s)), Ordering::Less);
        assert_eq!(sort_cmp(Some(&s), Some(&nul)), Ordering::Less);
        assert_eq!(sort_cmp(None, Some(&nul)), Ordering::Equal);
        assert_eq!(sort_cmp(Some(&json!(true)), Some(&n)), Ordering::Less);
    }

    #[test]
    fn compare_only_like_kinds_except_dates() {
        assert_eq!(compare(&json!(1), &json!(2.5)), Some(Ordering::Less));
        assert_eq!(compare(&json!("1"), &json!(2)), None);
        assert_eq!(compare(&json!(null), &json!(2)), None);
        let ms = parse_iso_date("2024-03-01T12:00:00.000Z").unwrap();
        assert_eq!(ms, 1_709_294_400_000.0);
        assert_eq!(
            compare(&json!(ms + 1.0), &json!("2024-03-01T12:00:00Z")),
            Some(Ordering::Greater)
        );
    }

    #[test]
    fn iso_dates() {
        assert_eq!(parse_iso_date("1970-01-01"), Some(0.0));
        assert_eq!(parse_iso_date("1970-01-01T00:00:01.5Z"), Some(1500.0));
        assert_eq!(parse_iso_date("1970-01-01T02:00+02:00"), Some(0.0));
        assert_eq!(
            parse_iso_date("2000-02-29T00:00:00Z"),
            Some(951_782_400_000.0)
        );
        for bad in [
            "",
            "2024",
            "2024-13-01",
            "2024-01-01T",
            "2024-01-01Tab:cd",
            "2024-01-01Zjunk",
            "12345678901",
        ] {
            assert_eq!(parse_iso_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn loose_equality() {
        assert!(loose_eq(&json!(1), &json!(1.0)));
        assert!(loose_eq(&json!({"a": [1, 2]}), &json!({"a": [1.0, 2]})));
        assert!(!loose_eq(&json!("1"), &json!(1)));
    }
}
