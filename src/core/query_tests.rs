use super::*;
use crate::core::schema::{ModelDef, Schema};
use crate::core::value::{Obj, Row};
use proptest::prelude::*;
use serde_json::{json, Value};

fn model(fields: Option<&[&str]>) -> ModelDef {
    ModelDef {
        name: "users".into(),
        primary_key: "id".into(),
        indexes: vec![],
        fields: fields.map(|f| f.iter().map(|s| s.to_string()).collect()),
        relations: Default::default(),
        has_schema: false,
        has_mutation: false,
        coalesce: true,
        conflict: Default::default(),
        version: 1,
    }
}

fn row(v: Value) -> Row {
    Row::from_obj(v.as_object().unwrap())
}

fn id(r: &Row) -> i64 {
    r.get_str("id").unwrap().to_value().as_i64().unwrap()
}

fn hits(where_: Value, rows: &[Value]) -> Vec<Value> {
    let f = Filter::parse(&model(None), Some(&where_)).unwrap();
    rows.iter()
        .filter(|r| f.matches(&row((*r).clone())))
        .map(|r| r["id"].clone())
        .collect()
}

fn people() -> Vec<Value> {
    vec![
        json!({"id": 1, "name": "Ada Lovelace", "age": 36, "city": "London", "tags": ["math"]}),
        json!({"id": 2, "name": "alan turing", "age": 41, "city": null}),
        json!({"id": 3, "name": "Grace", "age": "85"}),
        json!({"id": 4, "name": "Émile", "age": 20.5, "born": "1990-05-01T00:00:00Z", "active": true}),
        json!({"id": 5, "active": false, "born": 641_520_000_000_i64}),
    ]
}

#[test]
fn equality_null_and_missing() {
    let p = people();
    assert_eq!(hits(json!({"name": "Grace"}), &p), [json!(3)]);
    assert_eq!(
        hits(json!({"city": null}), &p),
        [json!(2), json!(3), json!(4), json!(5)]
    );
    assert_eq!(hits(json!({"city": {"ne": null}}), &p), [json!(1)]);
    assert_eq!(hits(json!({"city": {"eq": null}}), &p).len(), 4);
    assert_eq!(hits(json!({"age": 36.0}), &p), [json!(1)]);
    assert_eq!(hits(json!({"tags": ["math"]}), &p), [json!(1)]);
    assert_eq!(hits(json!({"active": false}), &p), [json!(5)]);
}

#[test]
fn ne_and_nin_include_missing() {
    let p = people();
    assert_eq!(
        hits(json!({"city": {"ne": "London"}}), &p),
        [json!(2), json!(3), json!(4), json!(5)]
    );
    assert_eq!(
        hits(json!({"id": {"nin": [1, 2, 3]}}), &p),
        [json!(4), json!(5)]
    );
    assert_eq!(
        hits(json!({"id": {"in": [5, 1, 99]}}), &p),
        [json!(1), json!(5)]
    );
}

#[test]
fn ranges_compare_like_kinds_only() {
    let p = people();
    // "85" is a string: not comparable with a number, so excluded from both sides.
    assert_eq!(hits(json!({"age": {"gt": 30}}), &p), [json!(1), json!(2)]);
    assert_eq!(hits(json!({"age": {"lte": 36}}), &p), [json!(1), json!(4)]);
    assert_eq!(
        hits(json!({"age": {"gte": 20.5, "lt": 41}}), &p),
        [json!(1), json!(4)]
    );
    // Code-point order: "É" (U+00C9) sorts after ASCII letters.
    assert_eq!(
        hits(json!({"name": {"gte": "a"}}), &p),
        [json!(2), json!(4)]
    );
    assert_eq!(hits(json!({"active": {"gt": false}}), &p), [json!(4)]);
}

#[test]
fn dates_as_iso_strings_or_numbers() {
    let p = people();
    // 641520000000 ms = 1990-05-01T00:00:00Z, stored as a number on row 5.
    assert_eq!(
        hits(json!({"born": {"gte": "1990-05-01T00:00:00.000Z"}}), &p),
        [json!(4), json!(5)]
    );
    assert_eq!(
        hits(json!({"born": {"lt": "1990-05-01"}}), &p),
        Vec::<Value>::new()
    );
    assert_eq!(
        hits(json!({"born": {"gt": 641_519_999_999_i64}}), &p),
        [json!(4), json!(5)]
    );
}

#[test]
fn patterns() {
    let p = people();
    assert_eq!(hits(json!({"name": {"like": "A%"}}), &p), [json!(1)]);
    assert_eq!(
        hits(json!({"name": {"ilike": "a%"}}), &p),
        [json!(1), json!(2)]
    );
    assert_eq!(hits(json!({"name": {"ilike": "%ÉMILE"}}), &p), [json!(4)]);
    assert_eq!(hits(json!({"name": {"fzlike": "emile"}}), &p), [json!(4)]);
    assert_eq!(hits(json!({"name": {"fzlike": "adl"}}), &p), [json!(1)]);
    assert_eq!(hits(json!({"name": {"like": "G_ace"}}), &p), [json!(3)]);
    assert_eq!(hits(json!({"age": {"like": "8%"}}), &p), [json!(3)]);
}

#[test]
fn boolean_combinators() {
    let p = people();
    assert_eq!(
        hits(json!({"or": [{"id": 1}, {"id": 3}]}), &p),
        [json!(1), json!(3)]
    );
    assert_eq!(
        hits(json!({"not": {"id": {"in": [1, 2, 3, 4]}}}), &p),
        [json!(5)]
    );
    assert_eq!(
        hits(
            json!({"and": [{"age": {"gt": 30}}, {"name": {"like": "%ing"}}]}),
            &p
        ),
        [json!(2)]
    );
    assert_eq!(
        hits(
            json!({"id": {"gt": 1}, "or": [{"name": "Grace"}, {"active": true}]}),
            &p
        ),
        [json!(3), json!(4)]
    );
    assert_eq!(hits(json!({}), &p).len(), 5);
    assert_eq!(hits(json!({"or": []}), &p).len(), 0);
}

#[test]
fn bad_queries_name_the_problem() {
    let m = model(Some(&["name", "age"]));
    let err = |w: Value| Filter::parse(&m, Some(&w)).unwrap_err().to_string();
    assert!(err(json!({"nope": 1})).contains("unknown field \"nope\""));
    assert!(err(json!({"age": {"gtt": 1}})).contains("unknown operator \"gtt\" on users.age"));
    assert!(err(json!({"age": {"in": 3}})).contains("\"in\" on users.age needs an array"));
    assert!(err(json!({"age": {"gt": [1]}})).contains("needs a string, number or boolean"));
    assert!(err(json!({"name": {"like": 5}})).contains("needs a string pattern"));
    assert!(err(json!({"or": {}})).contains("where.or must be an array"));
    assert!(err(json!([1])).contains("must be an object"));
    assert!(
        Filter::parse(&m, Some(&json!({"id": 1}))).is_ok(),
        "primary key is always known"
    );
    let schema = Schema::new(vec![m.clone()]).unwrap();
    let sel = |q: Value| {
        Select::parse(&schema, "users", Some(&q))
            .unwrap_err()
            .to_string()
    };
    assert!(sel(json!({"limit": -1})).contains("limit must be a whole number"));
    assert!(
        sel(json!({"orderBy": [{"field": "age", "direction": "up"}]}))
            .contains("\"asc\" or \"desc\"")
    );
    assert!(sel(json!({"orderBy": [{"field": "x"}]})).contains("unknown field \"x\" in orderBy"));
    assert!(sel(json!({"fields": ["x"]})).contains("unknown field \"x\" in fields"));
    assert!(sel(json!({"relations": {"posts": true}})).contains("unknown relation \"posts\""));
    assert!(sel(json!({"whre": {}})).contains("unknown select option \"whre\""));
    assert!(Select::parse(&schema, "nobody", None).unwrap_err().name() == "UnknownModelError");
}

#[test]
fn order_is_stable_with_nulls_last_and_pages() {
    let rows: Vec<Row> = [
        json!({"id": 1, "g": "b", "n": 2}),
        json!({"id": 2, "g": "a"}),
        json!({"id": 3, "g": "b", "n": 1}),
        json!({"id": 4, "g": "a", "n": 9}),
        json!({"id": 5, "g": "b", "n": 2}),
    ]
    .into_iter()
    .map(row)
    .collect();
    let ids = |order: Vec<OrderKey>, offset, limit| -> Vec<i64> {
        run(&Filter::All, &order, offset, limit, rows.iter())
            .iter()
            .map(|r| id(r))
            .collect()
    };
    let asc = |f: &str| OrderKey {
        field: Name::new(f),
        descending: false,
    };
    let desc = |f: &str| OrderKey {
        field: Name::new(f),
        descending: true,
    };
    assert_eq!(ids(vec![asc("n")], 0, None), [3, 1, 5, 4, 2]);
    assert_eq!(ids(vec![desc("n")], 0, None), [2, 4, 1, 5, 3]);
    assert_eq!(ids(vec![asc("g"), desc("n")], 0, None), [2, 4, 1, 5, 3]);
    assert_eq!(ids(vec![asc("g")], 0, None), [2, 4, 1, 3, 5]);
    assert_eq!(ids(vec![asc("g")], 1, Some(2)), [4, 1]);
    assert_eq!(ids(vec![asc("g")], 4, Some(10)), [5]);
    assert_eq!(ids(vec![], 3, None), [4, 5]);
    assert_eq!(ids(vec![asc("g")], 0, Some(0)), Vec::<i64>::new());
}

// ---- property test: the engine against a naive reference evaluator ----

/// Straightforward interpretation of the where JSON, sharing nothing with the engine but the
/// value-level comparisons, which have their own unit tests.
fn naive_match(w: &Value, r: &Obj) -> bool {
    use std::cmp::Ordering::*;
    let compare =
        |a: &Value, b: &Value| crate::core::value::compare(Val::new(a).get(), Val::new(b).get());
    let loose_eq =
        |a: &Value, b: &Value| crate::core::value::loose_eq(Val::new(a).get(), Val::new(b).get());
    w.as_object().unwrap().iter().all(|(k, v)| match k.as_str() {
        "and" => v.as_array().unwrap().iter().all(|s| naive_match(s, r)),
        "or" => v.as_array().unwrap().iter().any(|s| naive_match(s, r)),
        "not" => !naive_match(v, r),
        field => {
            let got = r.get(field).filter(|x| !x.is_null());
            match v {
                Value::Null => got.is_none(),
                Value::Object(ops) => ops.iter().all(|(op, x)| {
                    let c = got.and_then(|g| compare(g, x));
                    match op.as_str() {
                        "eq" if x.is_null() => got.is_none(),
                        "ne" if x.is_null() => got.is_some(),
                        "eq" => got.is_some_and(|g| loose_eq(g, x)),
                        "ne" => !got.is_some_and(|g| loose_eq(g, x)),
                        "gt" => c == Some(Greater),
                        "gte" => c == Some(Greater) || c == Some(Equal),
                        "lt" => c == Some(Less),
                        "lte" => c == Some(Less) || c == Some(Equal),
                        "in" => got.is_some_and(|g| x.as_array().unwrap().iter().any(|y| loose_eq(g, y))),
                        "nin" => !got.is_some_and(|g| x.as_array().unwrap().iter().any(|y| loose_eq(g, y))),
                        "like" => matches!(got, Some(Value::String(s)) if naive_like(x.as_str().unwrap(), s)),
                        _ => unreachable!(),
                    }
                }),
                x => got.is_some_and(|g| loose_eq(g, x)),
            }
        }
    })
}

/// LIKE via a tiny regex-free recursive matcher (exponential in theory, fine for short strings).
fn naive_like(p: &str, s: &str) -> bool {
    fn go(p: &[char], s: &[char]) -> bool {
        match p.first() {
            None => s.is_empty(),
            Some('%') => (0..=s.len()).any(|i| go(&p[1..], &s[i..])),
            Some('_') => !s.is_empty() && go(&p[1..], &s[1..]),
            Some(c) => s.first() == Some(c) && go(&p[1..], &s[1..]),
        }
    }
    go(
        &p.chars().collect::<Vec<_>>(),
        &s.chars().collect::<Vec<_>>(),
    )
}

fn arb_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-3i64..4).prop_map(Value::from),
        (-3i64..4).prop_map(|n| Value::from(n as f64 + 0.5)),
        "[ab]{0,3}".prop_map(Value::from),
    ]
}

fn arb_row() -> impl Strategy<Value = Option<Value>> {
    proptest::option::weighted(0.85, arb_value())
}

fn arb_leaf() -> impl Strategy<Value = Value> {
    let field = prop_oneof![Just("a"), Just("b"), Just("c")];
    let op = prop_oneof![
        arb_value().prop_map(|v| ("=", v)),
        arb_value().prop_map(|v| ("eq", v)),
        arb_value().prop_map(|v| ("ne", v)),
        arb_value()
            .prop_filter("scalar", |v| !v.is_null())
            .prop_map(|v| ("gt", v)),
        arb_value()
            .prop_filter("scalar", |v| !v.is_null())
            .prop_map(|v| ("gte", v)),
        arb_value()
            .prop_filter("scalar", |v| !v.is_null())
            .prop_map(|v| ("lt", v)),
        arb_value()
            .prop_filter("scalar", |v| !v.is_null())
            .prop_map(|v| ("lte", v)),
        proptest::collection::vec(arb_value(), 0..3).prop_map(|v| ("in", Value::from(v))),
        proptest::collection::vec(arb_value(), 0..3).prop_map(|v| ("nin", Value::from(v))),
        "[ab%_]{0,3}".prop_map(|p| ("like", Value::from(p))),
    ];
    (field, op).prop_map(|(f, (op, v))| {
        if op == "=" {
            json!({ f: v })
        } else {
            json!({ f: { op: v } })
        }
    })
}

/// Rows `{id: i, a, b, c}` from generated field values (a `None` leaves the field out).
fn numbered(data: &[(Option<Value>, Option<Value>, Option<Value>)]) -> Vec<Obj> {
    data.iter()
        .enumerate()
        .map(|(i, (a, b, c))| {
            let mut r = Obj::new();
            r.insert("id".into(), Value::from(i as i64));
            for (k, v) in [("a", a), ("b", b), ("c", c)] {
                if let Some(v) = v {
                    r.insert(k.into(), v.clone());
                }
            }
            r
        })
        .collect()
}

fn arb_where() -> impl Strategy<Value = Value> {
    arb_leaf().prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(|v| json!({ "and": v })),
            proptest::collection::vec(inner.clone(), 0..3).prop_map(|v| json!({ "or": v })),
            inner.prop_map(|v| json!({ "not": v })),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]
    #[test]
    fn engine_matches_naive_reference(
        data in proptest::collection::vec((arb_row(), arb_row(), arb_row()), 0..25),
        where_ in arb_where(),
        order in proptest::collection::vec((prop_oneof![Just("a"), Just("b"), Just("c")], any::<bool>()), 0..3),
        offset in 0usize..5,
        limit in proptest::option::of(0usize..8),
    ) {
        let objs = numbered(&data);
        let rows: Vec<Row> = objs.iter().map(Row::from_obj).collect();
        let keys: Vec<OrderKey> = order.iter().map(|(f, d)| OrderKey { field: Name::new(f), descending: *d }).collect();
        let filter = Filter::parse(&model(None), Some(&where_)).unwrap();
        let got: Vec<i64> = run(&filter, &keys, offset, limit, rows.iter()).iter().map(|r| id(r)).collect();

        let mut expected: Vec<&Obj> = objs.iter().filter(|r| naive_match(&where_, r)).collect();
        expected.sort_by(|x, y| {
            for k in &keys {
                let (xv, yv) = (x.get(k.field.as_str()).map(Val::new), y.get(k.field.as_str()).map(Val::new));
                let o = crate::core::value::sort_cmp(xv.as_ref().map(Val::get), yv.as_ref().map(Val::get));
                let o = if k.descending { o.reverse() } else { o };
                if o != std::cmp::Ordering::Equal { return o; }
            }
            std::cmp::Ordering::Equal
        });
        let expected: Vec<i64> = expected.into_iter().skip(offset).take(limit.unwrap_or(usize::MAX))
            .map(|r| r["id"].as_i64().unwrap()).collect();
        prop_assert_eq!(got, expected, "where {}", where_);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
    /// Index-planned candidates (primary key and declared indexes) give exactly the rows, in the
    /// same order, that a full scan gives.
    #[test]
    fn indexed_planning_equals_full_scan(
        data in proptest::collection::vec((arb_row(), arb_row(), arb_row()), 0..25),
        where_ in arb_where(),
    ) {
        use crate::core::replica::Replica;
        let m: ModelDef = serde_json::from_value(json!({ "name": "t", "primaryKey": "id", "indexes": ["a", "b"] })).unwrap();
        let mut engine = Replica::new(Schema::new(vec![m.clone()]).unwrap());
        let rows = numbered(&data);
        engine.load("t", rows.iter().map(Row::from_obj).collect()).unwrap();
        // Also exercise index maintenance: rewrite every other row through a batch, and delete
        // every fifth.
        let mut batch = crate::core::batch::Batch::default();
        for (i, r) in rows.iter().enumerate().step_by(2) {
            let mut r2 = r.clone();
            r2.insert("a".into(), r.get("b").cloned().unwrap_or(Value::Null));
            let key = crate::core::value::Key::from_value(&r["id"]).unwrap();
            batch.rows.push(if i % 5 == 0 {
                crate::core::batch::RowOp::Delete { model: "t".into(), key }
            } else {
                crate::core::batch::RowOp::Put { model: "t".into(), key, row: Row::from_obj(&r2) }
            });
        }
        engine.apply(&batch);
        let filter = Filter::parse(&m, Some(&where_)).unwrap();
        let planned: Vec<i64> = engine.matching("t", &filter).unwrap().iter().map(|r| id(r)).collect();
        let all = Select::parse(&engine.schema, "t", None).unwrap();
        let scanned: Vec<i64> = engine.select(&all).unwrap().iter()
            .filter(|r| filter.matches(&r.row))
            .map(|r| id(&r.row)).collect();
        prop_assert_eq!(planned, scanned, "where {}", where_);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
    /// A read on a model that is not in memory, answered from only the rows storage returns for
    /// `probe`'s condition, gives the same page and count as the loaded model.
    #[test]
    fn reads_from_storage_equal_reads_from_memory(
        data in proptest::collection::vec((arb_row(), arb_row(), arb_row()), 0..25),
        where_ in arb_where(),
        extra in proptest::option::of((0i64..30, proptest::collection::vec(0i64..30, 0..4))),
        order in proptest::collection::vec((prop_oneof![Just("a"), Just("b"), Just("c")], any::<bool>()), 0..3),
        limit in proptest::option::of(0usize..8),
    ) {
        use crate::core::batch::{Batch, RowOp};
        use crate::core::replica::Replica;
        use crate::core::value::Key;
        use crate::storage::{MemoryStorage, Storage};
        use futures::executor::block_on;
        let m: ModelDef = serde_json::from_value(json!({ "name": "t", "primaryKey": "id", "indexes": ["a", "b"] })).unwrap();
        let schema = Schema::new(vec![m.clone()]).unwrap();
        let rows = numbered(&data);
        let storage = MemoryStorage::new();
        block_on(storage.open(&schema)).unwrap();
        let mut batch = Batch::default();
        for r in &rows {
            batch.rows.push(RowOp::Put { model: "t".into(), key: Key::from_value(&r["id"]).unwrap(), row: Row::from_obj(r) });
        }
        block_on(storage.commit(&batch, 0)).unwrap();

        // Also conditions on the primary key (alone or next to the random ones).
        let where_ = match extra {
            None => where_,
            Some((k, ks)) => json!({ "and": [where_, { "id": k }] , "or": [{ "id": { "in": ks } }, { "id": k }] }),
        };
        let orderby: Vec<Value> = order.iter().map(|(f, d)| json!({ "field": f, "direction": if *d { "desc" } else { "asc" } })).collect();
        let query = json!({ "where": where_, "orderBy": orderby, "limit": limit });

        let mut loaded = Replica::new(schema.clone());
        loaded.load("t", block_on(storage.load(&m)).unwrap().items).unwrap();
        let sel = Select::parse(&schema, "t", Some(&query)).unwrap();
        let expected = loaded.select(&sel).unwrap();

        let cold = Replica::new(schema.clone());
        if let Some((field, keys)) = cold.probe("t", &sel.filter).unwrap() {
            prop_assert!(field == "id" || field == "a" || field == "b");
            let narrow = block_on(storage.load_matching(&m, &field, &keys)).unwrap().items;
            let got = cold.select_from(&sel, narrow.clone()).unwrap();
            let (got, expected): (Vec<Value>, Vec<Value>) = (got.iter().map(|o| o.to_value()).collect(), expected.iter().map(|o| o.to_value()).collect());
            prop_assert_eq!(&got, &expected, "query {}", query);
            let count = narrow.iter().filter(|r| sel.filter.matches(r)).count();
            prop_assert_eq!(count, loaded.count("t", &sel.filter).unwrap());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]
    /// A page read by walking an index in `orderBy` order equals the page sorted from every
    /// match (the same rows in a table without indexes), after writes and deletes too.
    #[test]
    fn ordered_index_walk_equals_sorting_every_match(
        data in proptest::collection::vec((arb_row(), arb_row(), arb_row()), 0..30),
        where_ in arb_where(),
        order in proptest::collection::vec((prop_oneof![Just("a"), Just("b"), Just("c")], any::<bool>()), 1..3),
        offset in 0usize..4,
        limit in 0usize..6,
        rewrite in any::<bool>(),
        strip_bools in any::<bool>(),
    ) {
        use crate::core::batch::{Batch, RowOp};
        use crate::core::replica::Replica;
        use crate::core::value::Key;
        let indexed: ModelDef = serde_json::from_value(json!({ "name": "t", "primaryKey": "id", "indexes": ["a", "b"] })).unwrap();
        let plain: ModelDef = serde_json::from_value(json!({ "name": "t", "primaryKey": "id" })).unwrap();
        let mut rows = numbered(&data);
        if strip_bools {
            // Without booleans the walk can serve most pages (they sort before every indexed value).
            for r in &mut rows {
                for v in r.values_mut() {
                    if let Value::Bool(b) = v {
                        *v = Value::from(i64::from(*b));
                    }
                }
            }
        }
        let mut batch = Batch::default();
        if rewrite {
            for (i, r) in rows.iter().enumerate().skip(1).step_by(3) {
                let mut r2 = r.clone();
                r2.insert("b".into(), r.get("a").cloned().unwrap_or(Value::Null));
                let key = Key::from_value(&r["id"]).unwrap();
                batch.rows.push(if i % 2 == 0 {
                    RowOp::Delete { model: "t".into(), key }
                } else {
                    RowOp::Put { model: "t".into(), key, row: Row::from_obj(&r2) }
                });
            }
        }
        let orderby: Vec<Value> = order.iter().map(|(f, d)| json!({ "field": f, "direction": if *d { "desc" } else { "asc" } })).collect();
        let query = json!({ "where": where_, "orderBy": orderby, "offset": offset, "limit": limit, "fields": ["id"] });
        let mut pages = Vec::new();
        for m in [indexed, plain] {
            let mut e = Replica::new(Schema::new(vec![m]).unwrap());
            e.load("t", rows.iter().map(Row::from_obj).collect()).unwrap();
            e.apply(&batch);
            let sel = Select::parse(&e.schema, "t", Some(&query)).unwrap();
            let page: Vec<Value> = e.select(&sel).unwrap().iter().map(|o| o.to_value()).collect();
            pages.push(page);
        }
        prop_assert_eq!(&pages[0], &pages[1], "query {}", query);
    }
}
