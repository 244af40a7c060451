//! The scheduler's table row by row, and a simulation with a fake clock: an outbox whose pushes
//! fail at random, connectivity that flaps, the loop started and stopped, a lease another tab
//! sometimes holds. It checks that nothing is pushed offline or before its backoff, and that a due
//! entry never waits past the wake-up armed for it.

use super::Command::*;
use super::Event::*;
use super::*;
use proptest::prelude::*;

/// A scheduler brought into a state by a list of events (their commands ignored).
fn after(online: bool, events: &[Event]) -> Scheduler {
    let mut s = Scheduler::new(online);
    for e in events {
        s.on(*e).unwrap();
    }
    s
}

#[test]
fn wanting_a_drain() {
    // (online at start, events before, event, commands expected)
    let rows: Vec<(bool, Vec<Event>, Event, Vec<Command>)> = vec![
        (true, vec![], Request { force: false }, vec![RequestLease]),
        (false, vec![], Request { force: true }, vec![Settle]),
        (true, vec![Close], Request { force: false }, vec![Settle]),
        (true, vec![], Start, vec![RequestLease, SetInterval(true)]),
        (false, vec![], Start, vec![SetInterval(true)]),
        (true, vec![], Tick, vec![]),
        (true, vec![], Wake, vec![]),
        (false, vec![Start], Tick, vec![]),
        (false, vec![Start], Online(true), vec![RequestLease]),
        (false, vec![], Online(true), vec![]),
        (
            true,
            vec![Request { force: false }],
            Online(false),
            vec![Settle],
        ),
        (true, vec![Start], Stop, vec![SetInterval(false)]),
        (true, vec![], Stop, vec![]),
    ];
    for (online, before, event, expected) in rows {
        let mut s = after(online, &before);
        assert_eq!(
            s.on(event).unwrap(),
            expected,
            "online={online} after {before:?} then {event:?}"
        );
    }
}

#[test]
fn serving_it() {
    let held = [Request { force: true }, LeaseGranted];
    let rows: Vec<(Vec<Event>, Event, Vec<Command>)> = vec![
        // Granted: the first drain of a lease catches up, and keeps the force it was asked with.
        (
            vec![Request { force: true }],
            LeaseGranted,
            vec![Drain {
                force: true,
                catch_up: true,
            }],
        ),
        // Lost: whoever waited stops waiting.
        (vec![Request { force: false }], LeaseLost, vec![Settle]),
        // Asked again while the lock is requested: one request is enough.
        (
            vec![Request { force: false }],
            Request { force: true },
            vec![],
        ),
        // Asked while a drain runs: it goes round again after it, still holding the lease.
        (held.to_vec(), Request { force: false }, vec![]),
        (
            [&held[..], &[Request { force: false }]].concat(),
            Drained { due: None },
            vec![Drain {
                force: false,
                catch_up: false,
            }],
        ),
        // Done with nothing wanted: the idle timer starts.
        (held.to_vec(), Drained { due: None }, vec![ArmIdle]),
        // Idle for long enough: release.
        (
            [&held[..], &[Drained { due: None }]].concat(),
            LeaseIdle,
            vec![Release],
        ),
        // The idle timer of an earlier drain fires while another runs: ignored.
        (held.to_vec(), LeaseIdle, vec![]),
        // Asked while releasing: wait for the release, then ask for the lock again.
        (
            [&held[..], &[Drained { due: None }, LeaseIdle]].concat(),
            Request { force: false },
            vec![],
        ),
        (
            [
                &held[..],
                &[Drained { due: None }, LeaseIdle, Request { force: false }],
            ]
            .concat(),
            Released,
            vec![RequestLease],
        ),
        (
            [&held[..], &[Drained { due: None }, LeaseIdle]].concat(),
            Released,
            vec![],
        ),
        // Held and idle with a drain wanted: it starts at once, without catching up again.
        (
            [&held[..], &[Drained { due: None }]].concat(),
            Request { force: false },
            vec![Drain {
                force: false,
                catch_up: false,
            }],
        ),
        // Closing lets the lease go, at once when idle, else after the drain.
        (
            [&held[..], &[Drained { due: None }]].concat(),
            Close,
            vec![Release],
        ),
        (held.to_vec(), Close, vec![]),
        (
            [&held[..], &[Close]].concat(),
            Drained { due: None },
            vec![Release],
        ),
        // Granted after closing (the request was already on its way): released at once.
        (
            vec![Request { force: false }, Close],
            LeaseGranted,
            vec![Release],
        ),
    ];
    for (before, event, expected) in rows {
        let mut s = after(true, &before);
        assert_eq!(
            s.on(event).unwrap(),
            expected,
            "after {before:?} then {event:?}"
        );
    }
}

#[test]
fn wake_up_follows_the_earliest_retry_time() {
    let mut s = after(true, &[Start, LeaseGranted]);
    assert!(s.draining());
    // A failed push: the head may be tried at t=500; the wake-up is armed there.
    assert_eq!(
        s.on(Drained { due: Some(500.0) }).unwrap(),
        vec![ArmIdle, SetWake(Some(500.0))]
    );
    // Going offline cancels it, coming back arms it again (and drains at once).
    assert_eq!(s.on(Online(false)).unwrap(), vec![SetWake(None)]);
    assert_eq!(
        s.on(Online(true)).unwrap(),
        vec![Drain {
            force: false,
            catch_up: false
        }]
    );
    assert_eq!(
        s.on(Drained { due: Some(900.0) }).unwrap(),
        vec![ArmIdle, SetWake(Some(900.0))]
    );
    // Stopping the loop cancels the wake-up and the interval.
    assert_eq!(s.on(Stop).unwrap(), vec![SetWake(None), SetInterval(false)]);
    // Firing: the wake-up is gone, a drain starts.
    let mut s = after(true, &[Start, LeaseGranted, Drained { due: Some(5.0) }]);
    assert_eq!(
        s.on(Wake).unwrap(),
        vec![Drain {
            force: false,
            catch_up: false
        }]
    );
}

#[test]
fn impossible_events_are_errors_and_change_nothing() {
    for (before, event) in [
        (vec![], LeaseGranted),
        (vec![], LeaseLost),
        (vec![], Drained { due: None }),
        (vec![], Released),
        (vec![Request { force: false }, LeaseGranted], LeaseGranted),
    ] {
        let mut s = after(true, &before);
        let copy = s.clone();
        assert!(s.on(event).is_err(), "{event:?} after {before:?}");
        assert_eq!(s, copy, "{event:?} changed the state");
    }
}

// ---------------------------------------------------------------- simulation

#[derive(Clone, Debug)]
enum Step {
    Advance(u16),
    Online(bool),
    Start,
    Stop,
    Write,
    Retry,
    OtherTabTakesLock(u16),
}

fn arb_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (1u16..5_000).prop_map(Step::Advance),
        1 => any::<bool>().prop_map(Step::Online),
        1 => Just(Step::Start),
        1 => Just(Step::Stop),
        3 => Just(Step::Write),
        1 => Just(Step::Retry),
        1 => (1u16..3_000).prop_map(Step::OtherTabTakesLock),
    ]
}

const INTERVAL: f64 = 10_000.0;
const IDLE: f64 = 25.0;

struct Entry {
    id: u32,
    due: f64,
    attempts: u32,
}

/// The scheduler plus everything around it: outbox, backend, timers, another tab on the lock.
struct Sim {
    s: Scheduler,
    now: f64,
    online: bool,
    outbox: Vec<Entry>,
    next_id: u32,
    /// Push outcomes (true: accepted), consumed in turn; when empty, pushes succeed.
    outcomes: Vec<bool>,
    wake: Option<f64>,
    next_tick: Option<f64>,
    idle: Option<f64>,
    /// Another tab holds the lock until then; a request made meanwhile is granted then.
    other_until: f64,
    grant_at: Option<f64>,
    pushes: u32,
}

impl Sim {
    /// Applies `event` and carries out its commands; what a command reports back (a grant, a
    /// drain's end, a release) is fed after the whole list ran, as the browser layer's async work
    /// reports back on a later task.
    fn feed(&mut self, event: Event) {
        let mut queue = std::collections::VecDeque::from([event]);
        while let Some(event) = queue.pop_front() {
            for c in self.s.on(event).unwrap() {
                match c {
                    RequestLease => {
                        if self.now >= self.other_until {
                            queue.push_back(LeaseGranted);
                        } else {
                            self.grant_at = Some(self.other_until);
                        }
                    }
                    Drain { force, .. } => {
                        self.drain(force);
                        let due = self.outbox.first().map(|e| e.due);
                        queue.push_back(Drained { due });
                    }
                    SetWake(at) => self.wake = at,
                    SetInterval(on) => self.next_tick = on.then_some(self.now + INTERVAL),
                    ArmIdle => self.idle = Some(self.now + IDLE),
                    Release => {
                        self.idle = None;
                        queue.push_back(Released);
                    }
                    Settle => {}
                }
            }
        }
    }

    fn drain(&mut self, force: bool) {
        while self.online {
            let Some(head) = self.outbox.first_mut() else {
                break;
            };
            // As the database's drain does: a head still in its backoff ends a drain that is not
            // forced (and only `retryPendingSync`, a request, forces).
            if !force && head.due > self.now {
                break;
            }
            assert!(self.s.online(), "pushed while offline");
            assert!(self.s.draining(), "pushed outside a drain");
            self.pushes += 1;
            let ok = if self.outcomes.is_empty() {
                true
            } else {
                self.outcomes.remove(0)
            };
            if ok {
                self.outbox.remove(0);
            } else {
                head.attempts += 1;
                head.due = self.now + 1_000.0 * f64::from(1u32 << head.attempts.min(8));
                break;
            }
        }
    }

    /// Moves the clock to `until`, firing every timer due on the way in time order.
    fn advance(&mut self, until: f64) {
        loop {
            let timers = [
                (self.wake, 0u8),
                (self.next_tick, 1),
                (self.idle, 2),
                (self.grant_at, 3),
            ];
            let Some((at, which)) = timers
                .iter()
                .filter_map(|(t, w)| t.map(|t| (t, *w)))
                .filter(|(t, _)| *t <= until)
                .min_by(|a, b| a.0.total_cmp(&b.0))
            else {
                break;
            };
            self.now = self.now.max(at);
            match which {
                0 => {
                    self.wake = None;
                    self.feed(Wake);
                }
                1 => {
                    self.next_tick = Some(at + INTERVAL);
                    self.feed(Tick);
                }
                2 => {
                    self.idle = None;
                    self.feed(LeaseIdle);
                }
                _ => {
                    self.grant_at = None;
                    self.feed(LeaseGranted);
                }
            }
        }
        self.now = until;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn nothing_pushed_offline_or_early_and_due_entries_never_wait(
        steps in proptest::collection::vec(arb_step(), 1..80),
        fails in proptest::collection::vec(any::<bool>(), 0..40),
    ) {
        let mut sim = Sim {
            s: Scheduler::new(true),
            now: 0.0,
            online: true,
            outbox: Vec::new(),
            next_id: 0,
            outcomes: fails.iter().map(|f| !f).collect(),
            wake: None,
            next_tick: None,
            idle: None,
            other_until: 0.0,
            grant_at: None,
            pushes: 0,
        };
        for step in steps {
            match step {
                Step::Advance(ms) => sim.advance(sim.now + f64::from(ms)),
                Step::Online(on) => {
                    sim.online = on;
                    sim.feed(Event::Online(on));
                }
                Step::Start => sim.feed(Start),
                Step::Stop => sim.feed(Stop),
                Step::Write => {
                    sim.next_id += 1;
                    sim.outbox.push(Entry { id: sim.next_id, due: sim.now, attempts: 0 });
                    sim.feed(Request { force: false });
                }
                Step::Retry => sim.feed(Request { force: true }),
                Step::OtherTabTakesLock(ms) => {
                    if sim.s.lease() == Lease::Free {
                        sim.other_until = sim.now + f64::from(ms);
                    }
                }
            }
            // Every due entry was tried at the latest at the wake-up armed for it: while the loop
            // runs online and no other tab holds the lock, the head is never overdue.
            if sim.s.running() && sim.online && sim.now >= sim.other_until {
                if let Some(head) = sim.outbox.first() {
                    prop_assert!(
                        head.due > sim.now,
                        "entry {} due at {} still waits at {}", head.id, head.due, sim.now
                    );
                }
            }
        }
    }
}

#[test]
fn paused_drops_wants_until_resumed() {
    let mut s = Scheduler::new(true);
    s.on(Event::Start).unwrap();
    s.on(Event::LeaseGranted).unwrap();
    s.on(Event::Paused).unwrap();
    s.on(Event::Drained { due: Some(0.0) }).unwrap();
    assert!(s.paused());
    assert_eq!(
        s.on(Event::Request { force: true }).unwrap(),
        vec![Command::Settle],
        "a request waits for nothing"
    );
    assert!(s
        .on(Event::Tick)
        .unwrap()
        .iter()
        .all(|c| !matches!(c, Command::Drain { .. })));
    assert!(s
        .on(Event::Wake)
        .unwrap()
        .iter()
        .all(|c| !matches!(c, Command::Drain { .. })));
    assert!(!s.wanted());
    let resumed = s.on(Event::Resume).unwrap();
    assert!(
        resumed
            .iter()
            .any(|c| matches!(c, Command::Drain { .. } | Command::RequestLease)),
        "{resumed:?}"
    );
    assert!(!s.paused());
    // Resume when not paused changes nothing.
    let mut idle = Scheduler::new(true);
    assert_eq!(idle.on(Event::Resume).unwrap(), vec![]);
}
