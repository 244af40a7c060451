//! One model's rows held in memory, in primary-key order, with a sorted in-memory index for each
//! declared index field. Rows are shared (a [`Row`] clone is a reference count), so the table,
//! its indexes, query results and write plans hold one copy of each row.

use super::row::{Name, ValRef};
use super::value::{Key, Row};
use std::collections::BTreeMap;
use std::ops::Bound;

#[derive(Clone, Debug, Default)]
pub struct Table {
    rows: BTreeMap<Key, Row>,
    indexes: Vec<Index>,
}

/// `(indexed value, primary key) → row`, for rows whose field holds a string or a number (a
/// lookup is only made for such operands, which can never equal anything else). Sorted, so it
/// serves equality and ranges alike, in value order and then primary-key order.
#[derive(Clone, Debug)]
struct Index {
    field: Name,
    entries: BTreeMap<(Key, Key), Row>,
    /// Rows whose field is `null` or missing (not in `entries`).
    absent: usize,
    /// Rows whose field is a boolean, an array or an object (not in `entries`).
    others: usize,
}

/// Where a row stands with respect to an index.
enum Slot {
    Entry(Key),
    Absent,
    Other,
}

/// Batches of fewer rows are put row by row (see [`Table::put_many`]).
const BULK_MIN: usize = 64;

/// The smallest key there is (every number sorts before every string).
const MIN: Key = Key::Num(f64::NEG_INFINITY);

impl Index {
    fn new(field: &str) -> Index {
        Index {
            field: Name::new(field),
            entries: BTreeMap::new(),
            absent: 0,
            others: 0,
        }
    }

    fn slot(&self, row: &Row) -> Slot {
        match row.get(&self.field) {
            None | Some(ValRef::Null) => Slot::Absent,
            Some(v) => self.value_of(v).map_or(Slot::Other, Slot::Entry),
        }
    }

    fn count(&mut self, slot: &Slot, delta: isize) {
        let n = match slot {
            Slot::Entry(_) => return,
            Slot::Absent => &mut self.absent,
            Slot::Other => &mut self.others,
        };
        *n = n.saturating_add_signed(delta);
    }

    fn value_of(&self, v: ValRef<'_>) -> Option<Key> {
        let v = Key::from_ref(v)?;
        // Share the text of a value other rows already hold (few distinct values, many rows).
        if let Key::Str(_) = v {
            if let Some(((same, _), _)) = self
                .entries
                .range((Bound::Included((v.clone(), MIN)), Bound::Unbounded))
                .next()
            {
                if *same == v {
                    return Some(same.clone());
                }
            }
        }
        Some(v)
    }
}

impl Table {
    pub fn with_indexes(fields: &[String]) -> Self {
        Table {
            rows: BTreeMap::new(),
            indexes: fields.iter().map(|f| Index::new(f)).collect(),
        }
    }

    /// A table of `rows` at once (see [`Table::put_many`]). A later row replaces an earlier one
    /// with the same key.
    pub fn build(fields: &[String], rows: Vec<(Key, Row)>) -> Self {
        let mut t = Table::with_indexes(fields);
        t.merge(rows);
        t
    }

    /// Puts `rows` (a later row replaces an earlier one with the same key). A batch that is
    /// large next to the table is sorted once and merged into the table and each index
    /// (`BTreeMap::append`: linear in both sizes, with full tree nodes) instead of being put row
    /// by row.
    pub fn put_many(&mut self, rows: Vec<(Key, Row)>) {
        if rows.len() < BULK_MIN || rows.len().saturating_mul(4) < self.rows.len() {
            for (k, r) in rows {
                self.put(k, r);
            }
        } else {
            self.merge(rows);
        }
    }

    fn merge(&mut self, rows: Vec<(Key, Row)>) {
        let mut new: BTreeMap<Key, Row> = rows.into_iter().collect();
        let Table {
            rows: old_rows,
            indexes,
        } = self;
        for ix in indexes {
            let mut entries: Vec<((Key, Key), Row)> = Vec::with_capacity(new.len());
            for (k, row) in &new {
                if let Some(old) = old_rows.get(k) {
                    let slot = ix.slot(old);
                    ix.count(&slot, -1);
                    if let Slot::Entry(v) = slot {
                        ix.entries.remove(&(v, k.clone()));
                    }
                }
                match row.get(&ix.field) {
                    None | Some(ValRef::Null) => ix.absent += 1,
                    Some(v) => match Key::from_ref(v) {
                        Some(v) => entries.push(((v, k.clone()), row.clone())),
                        None => ix.others += 1,
                    },
                }
            }
            // `new` is in primary-key order, so a stable sort on the value alone gives
            // (value, key) order while comparing values only.
            entries.sort_by(|a, b| a.0 .0.cmp(&b.0 .0));
            // Share equal values' text.
            for i in 1..entries.len() {
                if entries[i].0 .0 == entries[i - 1].0 .0 {
                    entries[i].0 .0 = entries[i - 1].0 .0.clone();
                }
            }
            let mut entries: BTreeMap<(Key, Key), Row> = entries.into_iter().collect();
            ix.entries.append(&mut entries);
        }
        old_rows.append(&mut new);
    }

    pub fn get(&self, key: &Key) -> Option<&Row> {
        self.rows.get(key)
    }

    pub fn contains(&self, key: &Key) -> bool {
        self.rows.contains_key(key)
    }

    pub fn put(&mut self, key: Key, row: Row) {
        let old = self.rows.insert(key.clone(), row.clone());
        for ix in &mut self.indexes {
            if let Some(o) = &old {
                let slot = ix.slot(o);
                ix.count(&slot, -1);
                if let Slot::Entry(v) = slot {
                    ix.entries.remove(&(v, key.clone()));
                }
            }
            let slot = ix.slot(&row);
            ix.count(&slot, 1);
            if let Slot::Entry(v) = slot {
                ix.entries.insert((v, key.clone()), row.clone());
            }
        }
    }

    pub fn remove(&mut self, key: &Key) -> Option<Row> {
        let row = self.rows.remove(key)?;
        for ix in &mut self.indexes {
            let slot = ix.slot(&row);
            ix.count(&slot, -1);
            if let Slot::Entry(v) = slot {
                ix.entries.remove(&(v, key.clone()));
            }
        }
        Some(row)
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Rows in primary-key order.
    pub fn iter(&self) -> impl Iterator<Item = &Row> {
        self.rows.values()
    }

    /// Rows with these primary keys (sorted, without duplicates), in that order.
    pub fn get_many(&self, keys: &[Key]) -> Vec<(&Key, &Row)> {
        keys.iter()
            .filter_map(|k| self.rows.get_key_value(k))
            .collect()
    }

    pub fn has_index(&self, field: &str) -> bool {
        self.indexes.iter().any(|ix| ix.field == *field)
    }

    /// Rows whose `field` equals one of `values` (sorted, without duplicates), as
    /// `(primary key, row)`, in value order then primary-key order; `None` when `field` has no
    /// index, or when there are more than `cap` of them.
    pub fn lookup(&self, field: &str, values: &[Key], cap: usize) -> Option<Vec<(&Key, &Row)>> {
        let ix = self.indexes.iter().find(|ix| ix.field == *field)?;
        let mut out = Vec::new();
        for v in values {
            let from = Bound::Included((v.clone(), MIN));
            for ((value, pk), row) in ix.entries.range((from, Bound::Unbounded)) {
                if value != v {
                    break;
                }
                if out.len() == cap {
                    return None;
                }
                out.push((pk, row));
            }
        }
        Some(out)
    }

    /// Rows whose `field` lies between `lo` and `hi` in key order, as [`Table::lookup`].
    pub fn range(
        &self,
        field: &str,
        lo: Bound<&Key>,
        hi: Bound<&Key>,
        cap: usize,
    ) -> Option<Vec<(&Key, &Row)>> {
        let ix = self.indexes.iter().find(|ix| ix.field == *field)?;
        // An excluded lower bound starts at the bound too; the loop skips entries equal to it.
        let lower = match lo {
            Bound::Included(k) | Bound::Excluded(k) => Bound::Included((k.clone(), MIN)),
            Bound::Unbounded => Bound::Unbounded,
        };
        let mut out = Vec::new();
        for ((value, pk), row) in ix.entries.range((lower, Bound::Unbounded)) {
            let inside = match hi {
                Bound::Included(k) => value <= k,
                Bound::Excluded(k) => value < k,
                Bound::Unbounded => true,
            };
            if !inside {
                break;
            }
            if matches!(lo, Bound::Excluded(k) if value == k) {
                continue;
            }
            if out.len() == cap {
                return None;
            }
            out.push((pk, row));
        }
        Some(out)
    }

    /// `field`'s index entries in key order (reversed for `descending`), and how many rows it
    /// leaves out: `(entries, null or missing, booleans / arrays / objects)`.
    #[allow(clippy::type_complexity)]
    pub fn index_walk(
        &self,
        field: &str,
        descending: bool,
    ) -> Option<(
        Box<dyn Iterator<Item = (&Key, &Key, &Row)> + '_>,
        usize,
        usize,
    )> {
        let ix = self.indexes.iter().find(|ix| ix.field == *field)?;
        let it = ix.entries.iter().map(|((v, k), r)| (v, k, r));
        let it: Box<dyn Iterator<Item = (&Key, &Key, &Row)>> = if descending {
            Box::new(it.rev())
        } else {
            Box::new(it)
        };
        Some((it, ix.absent, ix.others))
    }

    /// The kinds of value `field`'s index holds: (any numbers, any strings).
    pub fn index_kinds(&self, field: &str) -> Option<(bool, bool)> {
        let ix = self.indexes.iter().find(|ix| ix.field == *field)?;
        let first = ix.entries.keys().next().map(|(v, _)| v);
        let last = ix.entries.keys().next_back().map(|(v, _)| v);
        Some((
            matches!(first, Some(Key::Num(_))),
            last.is_some_and(|k| k.as_str().is_some()),
        ))
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(v: serde_json::Value) -> Row {
        Row::from_obj(v.as_object().unwrap())
    }

    fn pks(found: Option<Vec<(&Key, &Row)>>) -> Vec<Key> {
        found.unwrap().into_iter().map(|(k, _)| k.clone()).collect()
    }

    #[test]
    fn index_follows_puts_and_removes() {
        let mut t = Table::with_indexes(&["s".to_string()]);
        let k = |n: f64| Key::Num(n);
        t.put(k(1.0), row(json!({"id": 1, "s": "a"})));
        t.put(k(2.0), row(json!({"id": 2, "s": "b"})));
        t.put(k(3.0), row(json!({"id": 3, "s": "a"})));
        let a = Key::text("a");
        let b = Key::text("b");
        let all = usize::MAX;
        assert_eq!(
            pks(t.lookup("s", std::slice::from_ref(&a), all)),
            [k(1.0), k(3.0)]
        );
        assert!(t.lookup("s", std::slice::from_ref(&a), 1).is_none());
        t.put(k(1.0), row(json!({"id": 1, "s": "b"}))); // moves from a to b
        assert_eq!(pks(t.lookup("s", std::slice::from_ref(&a), all)), [k(3.0)]);
        assert_eq!(
            pks(t.lookup("s", &[a.clone(), b.clone()], all)),
            [k(3.0), k(1.0), k(2.0)]
        );
        t.remove(&k(2.0));
        t.put(k(3.0), row(json!({"id": 3}))); // field gone: unindexed
        assert_eq!(pks(t.lookup("s", &[a, b], all)), [k(1.0)]);
        assert!(t.lookup("other", &[], all).is_none());
    }

    #[test]
    fn ranges_and_bulk_builds_agree_with_puts() {
        let rows: Vec<(Key, Row)> = (0..50)
            .map(|i| (Key::Num(f64::from(i)), row(json!({"id": i, "n": i % 7}))))
            .collect();
        let built = Table::build(&["n".into()], rows.clone());
        let mut put = Table::with_indexes(&["n".into()]);
        for (k, r) in rows {
            put.put(k, r);
        }
        let (two, five) = (Key::Num(2.0), Key::Num(5.0));
        for t in [&built, &put] {
            let got = t.range(
                "n",
                Bound::Excluded(&two),
                Bound::Included(&five),
                usize::MAX,
            );
            let mut want: Vec<Key> = (0..50)
                .filter(|i| (3..=5).contains(&(i % 7)))
                .map(|i| Key::Num(f64::from(i)))
                .collect();
            let mut got = pks(got);
            got.sort();
            want.sort();
            assert_eq!(got, want);
            assert_eq!(t.index_kinds("n"), Some((true, false)));
        }
    }

    /// What a table holds, as comparable data: its rows in key order (with field `s`), each
    /// index's entries in order, and each index's counts of rows without an entry.
    type Contents = (
        Vec<(Key, serde_json::Value)>,
        Vec<(Vec<(Key, Key)>, usize, usize)>,
    );

    fn contents(t: &Table) -> Contents {
        let rows = t
            .rows
            .iter()
            .map(|(k, r)| {
                (
                    k.clone(),
                    r.get_str("s").map_or(json!("(missing)"), |v| v.to_value()),
                )
            })
            .collect();
        let indexes = t
            .indexes
            .iter()
            .map(|ix| {
                for ((_, pk), row) in &ix.entries {
                    assert_eq!(t.rows.get(pk).map(Row::ptr), Some(row.ptr()));
                }
                (ix.entries.keys().cloned().collect(), ix.absent, ix.others)
            })
            .collect();
        (rows, indexes)
    }

    proptest::proptest! {
        /// Putting a batch at once (merged in, or row by row when small next to the table) leaves
        /// the same table as putting its rows one by one, whatever the table held before: rows
        /// replaced, keys repeated in the batch (the later wins), values moving between index
        /// entries, nulls, missing fields and booleans.
        #[test]
        fn put_many_agrees_with_puts(
            before in proptest::collection::vec((0u8..40, 0u8..6), 0..120),
            batch in proptest::collection::vec((0u8..40, 0u8..6), 0..200),
        ) {
            let make = |(k, v): (u8, u8)| {
                let value = match v {
                    0 => json!(null),
                    1 => json!(true),
                    2 => json!("a value longer than fourteen bytes"),
                    n => json!(n),
                };
                let r = if v == 5 { json!({ "id": k }) } else { json!({ "id": k, "s": value }) };
                (Key::Num(f64::from(k)), row(r))
            };
            let fields = ["s".to_string()];
            let mut one_by_one = Table::build(&fields, before.iter().copied().map(make).collect());
            let mut at_once = one_by_one.clone();
            let rows: Vec<(Key, Row)> = batch.iter().copied().map(make).collect();
            for (k, r) in rows.clone() {
                one_by_one.put(k, r);
            }
            at_once.put_many(rows);
            proptest::prop_assert_eq!(contents(&at_once), contents(&one_by_one));
        }
    }
}
