//! Values' identities and the two orderings the engine needs.
//!
//! Two comparisons exist on purpose:
//! - [`sort_cmp`] is a total order used by `orderBy`: booleans < numbers < strings < arrays <
//!   objects < null/missing (so nulls come last in ascending order).
//! - [`compare`] is the partial order used by `gt`/`gte`/`lt`/`lte`: values compare only with
//!   values of the same kind, except that a number (epoch milliseconds) and an ISO 8601 date
//!   string compare as instants. Anything else is "not comparable" and the operator is false.

pub use super::row::{num_value, Obj, Row, ValRef};
use serde_json::Value;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::rc::Rc;

/// A primary-key (or join-key, or index) value: a string or a finite number. Ordered like
/// IndexedDB keys: every number sorts before every string. A string of up to [`SHORT`] bytes (most
/// ids and indexed values) is held inline, without an allocation; a longer one is shared when
/// the key is cloned. Build string keys with [`Key::text`]: one string has one representation.
#[derive(Clone, Debug)]
pub enum Key {
    Num(f64),
    Short(u8, [u8; SHORT]),
    Str(Rc<str>),
}

/// Longest string a [`Key`] holds inline (the key stays 16 bytes on wasm32).
pub const SHORT: usize = 14;

#[cfg(target_arch = "wasm32")]
const _: () = assert!(std::mem::size_of::<Key>() == 16);

impl Key {
    pub fn text(s: &str) -> Key {
        if s.len() <= SHORT {
            let mut bytes = [0u8; SHORT];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            Key::Short(s.len() as u8, bytes)
        } else {
            Key::Str(Rc::from(s))
        }
    }

    /// The string, for a string key.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Key::Num(_) => None,
            Key::Short(len, bytes) => std::str::from_utf8(&bytes[..usize::from(*len)]).ok(),
            Key::Str(s) => Some(s),
        }
    }

    /// The string's bytes, for a string key (ordering and hashing by bytes is ordering and
    /// hashing by string, without checking UTF-8 on every comparison).
    fn bytes(&self) -> Option<&[u8]> {
        match self {
            Key::Num(_) => None,
            Key::Short(len, bytes) => Some(&bytes[..usize::from(*len)]),
            Key::Str(s) => Some(s.as_bytes()),
        }
    }

    /// The key held by a JSON value, if it can be one.
    pub fn from_value(v: &Value) -> Option<Key> {
        match v {
            Value::String(s) => Some(Key::text(s)),
            Value::Number(n) => n.as_f64().and_then(Key::num),
            _ => None,
        }
    }

    /// The key held by a row's value, if it can be one.
    pub fn from_ref(v: ValRef<'_>) -> Option<Key> {
        match v {
            ValRef::Str(s) => Some(Key::text(s)),
            ValRef::Num(f) => Key::num(f),
            _ => None,
        }
    }

    fn num(f: f64) -> Option<Key> {
        f.is_finite()
            .then_some(Key::Num(if f == 0.0 { 0.0 } else { f }))
    }

    pub fn to_value(&self) -> Value {
        match (self, self.as_str()) {
            (Key::Num(f), _) => num_value(*f),
            (_, s) => Value::String(s.unwrap_or_default().to_string()),
        }
    }

    /// Whether a row's value is this key.
    pub fn is(&self, v: ValRef<'_>) -> bool {
        match (self, v) {
            (Key::Num(a), ValRef::Num(b)) => *a == b,
            (_, ValRef::Str(b)) => self.bytes() == Some(b.as_bytes()),
            _ => false,
        }
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
            (Key::Num(_), _) => Ordering::Less,
            (_, Key::Num(_)) => Ordering::Greater,
            _ => self.bytes().cmp(&other.bytes()),
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
            _ => {
                1u8.hash(state);
                self.bytes().hash(state);
            }
        }
    }
}
impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self, self.as_str()) {
            (Key::Num(n), _) => write!(f, "{n}"),
            (_, s) => write!(f, "\"{}\"", s.unwrap_or_default()),
        }
    }
}

fn rank(v: Option<ValRef<'_>>) -> u8 {
    match v {
        Some(ValRef::Bool(_)) => 0,
        Some(ValRef::Num(_)) => 1,
        Some(ValRef::Str(_)) => 2,
        Some(ValRef::Arr(_)) => 3,
        Some(ValRef::Obj(_)) => 4,
        Some(ValRef::Null) | None => 5,
    }
}

/// Total order for sorting. Missing and `null` are equal to each other and greater than anything.
pub fn sort_cmp(a: Option<ValRef<'_>>, b: Option<ValRef<'_>>) -> Ordering {
    match (a, b) {
        (Some(ValRef::Bool(x)), Some(ValRef::Bool(y))) => x.cmp(&y),
        (Some(ValRef::Num(x)), Some(ValRef::Num(y))) => x.total_cmp(&y),
        (Some(ValRef::Str(x)), Some(ValRef::Str(y))) => x.cmp(y),
        (Some(ValRef::Arr(x)), Some(ValRef::Arr(y))) => {
            let (mut xs, mut ys) = (x.iter(), y.iter());
            loop {
                match (xs.next(), ys.next()) {
                    (Some(p), Some(q)) => {
                        let o = sort_cmp(Some(p), Some(q));
                        if o != Ordering::Equal {
                            return o;
                        }
                    }
                    (p, q) => return p.is_some().cmp(&q.is_some()),
                }
            }
        }
        _ => rank(a).cmp(&rank(b)),
    }
}

/// Equality as the `eq`/`in` operators see it: JSON equality, with numbers compared by value
/// and objects regardless of field order.
pub fn loose_eq(a: ValRef<'_>, b: ValRef<'_>) -> bool {
    match (a, b) {
        (ValRef::Null, ValRef::Null) => true,
        (ValRef::Bool(x), ValRef::Bool(y)) => x == y,
        (ValRef::Num(x), ValRef::Num(y)) => x == y,
        (ValRef::Str(x), ValRef::Str(y)) => x == y,
        (ValRef::Arr(x), ValRef::Arr(y)) => {
            let (mut xs, mut ys) = (x.iter(), y.iter());
            loop {
                match (xs.next(), ys.next()) {
                    (Some(p), Some(q)) if loose_eq(p, q) => {}
                    (None, None) => return true,
                    _ => return false,
                }
            }
        }
        (ValRef::Obj(x), ValRef::Obj(y)) => {
            x.iter().count() == y.iter().count()
                && x.iter().all(|(k, v)| {
                    k.with(|name| y.get_str(name))
                        .is_some_and(|w| loose_eq(v, w))
                })
        }
        _ => false,
    }
}

/// Ordering for range operators, or `None` when the two values are not comparable.
pub fn compare(a: ValRef<'_>, b: ValRef<'_>) -> Option<Ordering> {
    match (a, b) {
        (ValRef::Num(x), ValRef::Num(y)) => x.partial_cmp(&y),
        (ValRef::Str(x), ValRef::Str(y)) => Some(x.cmp(y)),
        (ValRef::Bool(x), ValRef::Bool(y)) => Some(x.cmp(&y)),
        (ValRef::Num(x), ValRef::Str(s)) => parse_iso_date(s).and_then(|ms| x.partial_cmp(&ms)),
        (ValRef::Str(s), ValRef::Num(y)) => parse_iso_date(s).and_then(|ms| ms.partial_cmp(&y)),
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
    use crate::core::row::Val;
    use serde_json::json;

    #[test]
    fn keys_order_like_indexeddb() {
        let mut keys = vec![
            Key::text("b"),
            Key::Num(2.0),
            Key::text("a"),
            Key::Num(-1.0),
        ];
        keys.sort();
        assert_eq!(
            keys,
            vec![
                Key::Num(-1.0),
                Key::Num(2.0),
                Key::text("a"),
                Key::text("b")
            ]
        );
        assert_eq!(Key::from_value(&json!(-0.0)), Some(Key::Num(0.0)));
        // Inline and shared strings order, compare and hash as strings.
        let long = "a string longer than fourteen bytes";
        let mut mixed = [
            Key::text(long),
            Key::text("b"),
            Key::text("a"),
            Key::text(""),
        ];
        mixed.sort();
        let texts: Vec<&str> = mixed.iter().map(|k| k.as_str().unwrap()).collect();
        assert_eq!(texts, ["", "a", long, "b"]);
        assert!(matches!(Key::text(long), Key::Str(_)));
        assert!(Key::text("exactly 14 b..").is(ValRef::Str("exactly 14 b..")));
        let set: std::collections::HashSet<Key> = [Key::text(long), Key::text(long)].into();
        assert_eq!(set.len(), 1);
        assert_eq!(Key::from_value(&json!(true)), None);
        assert_eq!(Key::Num(3.0).to_value(), json!(3));
    }

    fn v(x: Value) -> Val {
        Val::new(&x)
    }

    #[test]
    fn sort_puts_missing_and_null_last() {
        let (n, s, nul) = (v(json!(5)), v(json!("x")), v(json!(null)));
        assert_eq!(sort_cmp(Some(n.get()), Some(s.get())), Ordering::Less);
        assert_eq!(sort_cmp(Some(s.get()), Some(nul.get())), Ordering::Less);
        assert_eq!(sort_cmp(None, Some(nul.get())), Ordering::Equal);
        assert_eq!(
            sort_cmp(Some(v(json!(true)).get()), Some(n.get())),
            Ordering::Less
        );
    }

    #[test]
    fn compare_only_like_kinds_except_dates() {
        assert_eq!(
            compare(v(json!(1)).get(), v(json!(2.5)).get()),
            Some(Ordering::Less)
        );
        assert_eq!(compare(v(json!("1")).get(), v(json!(2)).get()), None);
        assert_eq!(compare(v(json!(null)).get(), v(json!(2)).get()), None);
        let ms = parse_iso_date("2024-03-01T12:00:00.000Z").unwrap();
        assert_eq!(ms, 1_709_294_400_000.0);
        assert_eq!(
            compare(
                v(json!(ms + 1.0)).get(),
                v(json!("2024-03-01T12:00:00Z")).get()
            ),
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
        assert!(loose_eq(v(json!(1)).get(), v(json!(1.0)).get()));
        assert!(loose_eq(
            v(json!({"a": [1, 2]})).get(),
            v(json!({"a": [1.0, 2]})).get()
        ));
        assert!(!loose_eq(v(json!("1")).get(), v(json!(1)).get()));
    }
}
