//! Host tests of the database's order and of its commits checked against storage: writes issued
//! without awaiting, and two "tabs" (two databases on one memory storage, each with its own write
//! queue) writing the same rows.

use super::*;
use crate::error::Error;
use crate::storage::MemoryStorage;
use futures::executor::LocalPool;
use futures::task::LocalSpawnExt;
use proptest::prelude::*;
use serde_json::json;
use std::cell::Cell;
use std::rc::Rc;
use std::task::Poll;

/// Resolves after being polled `n` times (each time waking itself), so concurrent futures
/// interleave at this point.
async fn yield_times(n: u32) {
    let mut left = n;
    std::future::poll_fn(move |cx| {
        if left == 0 {
            Poll::Ready(())
        } else {
            left -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

/// A validator that accepts everything but yields a pseudo-random number of times first, like a
/// schema library that validates asynchronously.
#[derive(Clone)]
struct Yielding(Rc<Cell<u64>>);

impl Yielding {
    fn new(seed: u64) -> Self {
        Yielding(Rc::new(Cell::new(seed | 1)))
    }
    fn next(&self) -> u32 {
        let mut x = self.0.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0.set(x);
        (x % 4) as u32
    }
}

impl Validator for Yielding {
    async fn validate(&self, _model: &str, rows: Vec<Value>) -> Result<Vec<Value>> {
        yield_times(self.next()).await;
        Ok(rows)
    }
}

fn models() -> Vec<ModelDef> {
    serde_json::from_value(json!([
        { "name": "t", "primaryKey": "id", "hasSchema": true, "hasMutation": true }
    ]))
    .unwrap()
}

type TestDb = Db<MemoryStorage, Yielding>;

fn open(storage: MemoryStorage, seed: u64) -> Rc<TestDb> {
    let db = futures::executor::block_on(Db::open(
        storage,
        Yielding::new(seed),
        NoRemote,
        models(),
        Env::host(),
    ))
    .unwrap();
    Rc::new(db)
}

#[derive(Clone, Debug)]
enum W {
    Insert(i64, i64),
    Update(i64, i64),
    Delete(i64),
}

fn arb_write() -> impl Strategy<Value = W> {
    prop_oneof![
        (0i64..3, 0i64..100).prop_map(|(k, v)| W::Insert(k, v)),
        (0i64..3, 0i64..100).prop_map(|(k, v)| W::Update(k, v)),
        (0i64..3).prop_map(W::Delete),
    ]
}

/// Starts `w` on `db`: the turn is taken now, the work runs when the future is polled.
fn start(db: &Rc<TestDb>, w: &W) -> impl Future<Output = String> + 'static {
    let db = db.clone();
    let turn = db.turn();
    let w = w.clone();
    async move {
        let r = match &w {
            W::Insert(k, v) => {
                db.insert_in(turn, "t", json!({ "id": k, "v": v }), None)
                    .await
            }
            W::Update(k, v) => {
                db.update_in(
                    turn,
                    "t",
                    Some(&json!({ "id": k })),
                    &json!({ "v": v }),
                    None,
                )
                .await
            }
            W::Delete(k) => {
                db.delete_in(turn, "t", Some(&json!({ "id": k })), None)
                    .await
            }
        };
        match r {
            Ok(w) => serde_json::to_string(&w.rows).unwrap(),
            Err(e) => e.name().to_string(),
        }
    }
}

/// Rows and outbox (action, query) in order: everything a write sequence leaves behind.
fn snapshot(db: &TestDb) -> (Vec<Value>, Vec<(String, Value)>) {
    let rows = futures::executor::block_on(db.select("t", None))
        .unwrap()
        .iter()
        .map(|o| o.to_value())
        .collect();
    let outbox = db
        .pending()
        .unwrap()
        .into_iter()
        .map(|e| (format!("{:?}", e.action), e.query))
        .collect();
    (rows, outbox)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    /// Writes started one after another without awaiting, whose futures are then polled in a
    /// shuffled order with validators yielding at random, end exactly as the same writes awaited
    /// one by one: same results, same rows, same outbox in the same order.
    #[test]
    fn unawaited_writes_take_effect_in_call_order(
        writes in proptest::collection::vec(arb_write(), 1..12),
        order_seed in any::<u64>(),
        yield_seed in any::<u64>(),
    ) {
        let serial = open(MemoryStorage::new(), yield_seed);
        let mut expected = Vec::new();
        for w in &writes {
            expected.push(futures::executor::block_on(start(&serial, w)));
        }

        let db = open(MemoryStorage::new(), yield_seed.rotate_left(7));
        let results: Rc<RefCell<Vec<Option<String>>>> = Rc::new(RefCell::new(vec![None; writes.len()]));
        let mut futures: Vec<(usize, _)> = writes.iter().enumerate().map(|(i, w)| (i, start(&db, w))).collect();
        // Spawn (and so first poll) in a shuffled order.
        let mut x = order_seed | 1;
        for i in (1..futures.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            futures.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let mut pool = LocalPool::new();
        for (i, f) in futures {
            let results = results.clone();
            pool.spawner().spawn_local(async move {
                let r = f.await;
                results.borrow_mut()[i] = Some(r);
            }).unwrap();
        }
        pool.run();
        let got: Vec<String> = results.borrow().iter().map(|r| r.clone().unwrap()).collect();
        prop_assert_eq!(got, expected);
        prop_assert_eq!(snapshot(&db), snapshot(&serial));
    }
}

/// Runs `a` and `b` concurrently on one executor.
fn race<A: Future<Output = String>, B: Future<Output = String>>(a: A, b: B) -> (String, String) {
    futures::executor::block_on(futures::future::join(a, b))
}

#[test]
fn two_tabs_inserting_one_key_one_fails_with_a_constraint_error() {
    for seed in 0..20 {
        let storage = MemoryStorage::new();
        let a = open(storage.clone(), seed);
        let b = open(storage.another_tab(), seed * 31 + 7);
        let (ra, rb) = race(start(&a, &W::Insert(1, 10)), start(&b, &W::Insert(1, 20)));
        let outcomes = [ra.as_str(), rb.as_str()];
        assert_eq!(
            outcomes.iter().filter(|r| **r == "ConstraintError").count(),
            1,
            "seed {seed}: {outcomes:?}"
        );
        let (rows, outbox) = snapshot(&a);
        assert_eq!(rows.len(), 1);
        assert_eq!(outbox.len(), 1, "one insert in the outbox, not two");
        assert_eq!(snapshot(&b), (rows, outbox), "both tabs agree");
    }
}

#[test]
fn an_update_racing_a_delete_never_brings_the_row_back() {
    for seed in 0..20 {
        let storage = MemoryStorage::new();
        let a = open(storage.clone(), seed);
        futures::executor::block_on(start(&a, &W::Insert(1, 1)));
        let b = open(storage.another_tab(), seed * 17 + 3);
        // Both tabs hold the row in memory.
        snapshot(&a);
        snapshot(&b);
        let (_ra, _rb) = race(start(&a, &W::Delete(1)), start(&b, &W::Update(1, 5)));
        futures::executor::block_on(b.catch_up()).unwrap();
        futures::executor::block_on(a.catch_up()).unwrap();
        let (rows_a, outbox_a) = snapshot(&a);
        let (rows_b, _) = snapshot(&b);
        assert_eq!(rows_a, rows_b, "seed {seed}: tabs agree");
        // Either the update ran first (then the delete removed the row) or it found nothing.
        assert!(
            rows_a.is_empty(),
            "seed {seed}: the deleted row came back: {rows_a:?}"
        );
        let last = outbox_a.last().unwrap();
        assert_eq!(last.0, "Delete", "seed {seed}: {outbox_a:?}");
    }
}

#[test]
fn updates_of_different_fields_from_two_tabs_both_survive() {
    for seed in 0..10 {
        let storage = MemoryStorage::new();
        let a = open(storage.clone(), seed);
        futures::executor::block_on(start(&a, &W::Insert(1, 0)));
        let b = open(storage.another_tab(), seed + 100);
        snapshot(&b);
        let set = |db: &Rc<TestDb>, field: &'static str, v: i64| {
            let db = db.clone();
            let turn = db.turn();
            async move {
                db.update_in(
                    turn,
                    "t",
                    Some(&json!({ "id": 1 })),
                    &json!({ field: v }),
                    None,
                )
                .await
                .map(|_| String::new())
                .unwrap_or_else(|e| e.to_string())
            }
        };
        let tab_a = async {
            for i in 1..=10 {
                assert_eq!(set(&a, "fa", i).await, "");
            }
            String::new()
        };
        let tab_b = async {
            for i in 1..=10 {
                assert_eq!(set(&b, "fb", i).await, "");
            }
            String::new()
        };
        race(tab_a, tab_b);
        futures::executor::block_on(a.catch_up()).unwrap();
        let rows = futures::executor::block_on(a.select("t", None)).unwrap();
        assert_eq!(
            rows,
            vec![json!({ "id": 1, "v": 0, "fa": 10, "fb": 10 })],
            "seed {seed}"
        );
        assert_eq!(snapshot(&a).1.len(), 21, "every write is in the outbox");
    }
}

#[test]
fn a_tab_catches_up_with_exactly_the_rows_another_changed() {
    let storage = MemoryStorage::new();
    let a = open(storage.clone(), 1);
    for k in 0..3 {
        futures::executor::block_on(start(&a, &W::Insert(k, k)));
    }
    let b = open(storage.another_tab(), 2);
    snapshot(&b);
    futures::executor::block_on(start(&a, &W::Update(1, 99)));
    futures::executor::block_on(start(&a, &W::Delete(2)));
    let changed = futures::executor::block_on(b.catch_up()).unwrap();
    assert_eq!(changed, vec!["t".to_string()]);
    assert_eq!(snapshot(&b), snapshot(&a));
    assert_eq!(b.seq(), a.seq());
    assert!(matches!(
        futures::executor::block_on(b.catch_up()).map(|c| c.is_empty()),
        Ok(true)
    ));
}

#[test]
fn calls_after_close_are_refused_and_calls_before_it_complete() {
    let db = open(MemoryStorage::new(), 3);
    let first = start(&db, &W::Insert(1, 1));
    let turn = db.turn(); // close's place in line, taken now
    assert!(db.begin_close());
    let closing = async {
        db.finish_close(turn).await;
        String::new()
    };
    let after = start(&db, &W::Insert(2, 2));
    let (r1, _) = race(first, closing);
    assert!(r1.starts_with('['), "{r1}");
    assert_eq!(futures::executor::block_on(after), "DatabaseClosedError");
    assert!(matches!(
        futures::executor::block_on(db.select("t", None)),
        Err(Error::Closed)
    ));
}
