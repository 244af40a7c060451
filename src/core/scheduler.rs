//! When to drain the outbox: a pure state machine over connectivity, the background loop, the
//! outbox lock (a lease shared by the tabs of one database), the drain in progress and the
//! earliest retry time. The browser layer (`src/browser`) feeds it [`Event`]s from listeners and
//! timers and carries out the [`Command`]s it returns; host tests do the same with a fake clock.
//!
//! ## Wanting a drain
//! | event                | when                         | effect                          |
//! |----------------------|------------------------------|---------------------------------|
//! | `Request { force }`  | online, not closed           | wanted (force kept)             |
//! | `Request { .. }`     | offline or closed            | `Settle`: nobody waits for it    |
//! | `Start`              | online                       | running; wanted                  |
//! | `Tick`, `Wake`       | running, online              | wanted                           |
//! | `Online(true)`       | running                      | online; wanted                   |
//! | `Online(false)`      |                              | offline; a wanted drain `Settle`s |
//! | `Stop`               |                              | not running (a drain in flight finishes) |
//! | `Paused`             | a drain met a backend asking for credentials | paused: wants are dropped (`Settle`) until `Resume` |
//! | `Resume`             | paused                       | not paused; wanted               |
//!
//! ## Serving it
//! | lease      | drain   | wanted | does                                                     |
//! |------------|---------|--------|----------------------------------------------------------|
//! | `Free`     | `Idle`  | yes    | `RequestLease` → `Requested`                             |
//! | `Requested`| any     | yes    | waits for `LeaseGranted` (→ `Held`) or `LeaseLost` (→ `Free`, `Settle`) |
//! | `Held`     | `Idle`  | yes    | `Drain { force, catch_up }` → `Running` (`catch_up` on the first drain of a lease) |
//! | `Held`     | `Running`| yes   | goes round again after `Drained`                         |
//! | `Held`     | `Idle`  | no     | `ArmIdle`; on `LeaseIdle`: `Release` → `Releasing`, then `Released` → `Free` |
//! | `Releasing`| `Idle`  | yes    | waits for `Released`, then requests the lease again      |
//!
//! `Drained { due }` ends a drain and says when the outbox head may be tried next. While the loop
//! runs, online, with no drain wanted or running, a wake-up is armed exactly at `due`
//! (`SetWake`), and the interval runs while the loop runs (`SetInterval`). `Close` stops the loop
//! and lets the lease go once no drain runs. An event that cannot happen in a state
//! (`LeaseGranted` without a request, `Drained` without a drain, `Released` without a release)
//! is an error and changes nothing.

use crate::error::{Error, Result};

/// The outbox lock of this tab.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lease {
    Free,
    Requested,
    Held,
    /// Acknowledged pushes are being committed before the lock is let go.
    Releasing,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Event {
    Online(bool),
    Start,
    Stop,
    /// The loop's interval fired, or another tab committed: a drain if the loop runs.
    Tick,
    /// The one-shot wake-up armed by `SetWake` fired.
    Wake,
    /// A write, `retryPendingSync()` or `retryPending(id)`: a drain whether or not the loop runs.
    Request {
        force: bool,
    },
    LeaseGranted,
    LeaseLost,
    /// A drain ended; `due` is when the outbox head may be tried next (`None`: nothing to try).
    Drained {
        due: Option<f64>,
    },
    /// The lease stayed idle for its grace period.
    LeaseIdle,
    Released,
    Close,
    /// A push hook said the backend needs credentials (`needsAuth: true`): no drain until `Resume`.
    Paused,
    /// The app signed in again (`db.resumeSync()`).
    Resume,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Command {
    RequestLease,
    /// Push due entries (`force`: ignoring backoff); `catch_up` first reads what other tabs
    /// committed, since one of them may have drained while this tab did not hold the lease.
    Drain {
        force: bool,
        catch_up: bool,
    },
    /// Arm the one-shot wake-up at this time (replacing any), or cancel it.
    SetWake(Option<f64>),
    /// Run or stop the loop's interval.
    SetInterval(bool),
    /// Start (or restart) the lease's idle timer.
    ArmIdle,
    /// Commit acknowledged pushes, then let the lock go, then report `Released`.
    Release,
    /// No drain will serve the requests made so far: whoever waits for one stops waiting.
    Settle,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Scheduler {
    online: bool,
    running: bool,
    closed: bool,
    /// Pushes wait for `Resume` (the backend asked for credentials).
    paused: bool,
    lease: Lease,
    draining: bool,
    wanted: bool,
    force: bool,
    /// The lease was just granted: the next drain catches up first.
    fresh: bool,
    due: Option<f64>,
    wake: Option<f64>,
    interval: bool,
}

impl Scheduler {
    pub fn new(online: bool) -> Scheduler {
        Scheduler {
            online,
            running: false,
            closed: false,
            paused: false,
            lease: Lease::Free,
            draining: false,
            wanted: false,
            force: false,
            fresh: false,
            due: None,
            wake: None,
            interval: false,
        }
    }

    pub fn online(&self) -> bool {
        self.online
    }

    pub fn running(&self) -> bool {
        self.running
    }

    pub fn draining(&self) -> bool {
        self.draining
    }

    pub fn lease(&self) -> Lease {
        self.lease
    }

    /// Whether pushes wait for `Resume` (the backend asked for credentials).
    pub fn paused(&self) -> bool {
        self.paused
    }

    /// Whether a drain is wanted but not yet started.
    pub fn wanted(&self) -> bool {
        self.wanted
    }

    /// Applies `event` and returns what to do, in order.
    pub fn on(&mut self, event: Event) -> Result<Vec<Command>> {
        let mut out = Vec::new();
        let was_idle = self.held_idle();
        match event {
            Event::Online(online) => {
                self.online = online;
                if online {
                    self.want(false, true, &mut out);
                } else if self.wanted {
                    self.wanted = false;
                    self.force = false;
                    out.push(Command::Settle);
                }
            }
            Event::Start => {
                if !self.closed {
                    self.running = true;
                    self.want(false, true, &mut out);
                }
            }
            Event::Stop => self.running = false,
            Event::Tick => self.want(false, true, &mut out),
            Event::Wake => {
                self.wake = None;
                self.want(false, true, &mut out);
            }
            Event::Request { force } => self.want(force, false, &mut out),
            Event::LeaseGranted => {
                self.expect(self.lease == Lease::Requested, event)?;
                self.lease = Lease::Held;
                self.fresh = true;
            }
            Event::LeaseLost => {
                self.expect(self.lease == Lease::Requested, event)?;
                self.lease = Lease::Free;
                if self.wanted {
                    self.wanted = false;
                    self.force = false;
                    out.push(Command::Settle);
                }
            }
            Event::Drained { due } => {
                self.expect(self.draining, event)?;
                self.draining = false;
                self.due = due;
            }
            Event::LeaseIdle => {
                if self.held_idle() {
                    self.lease = Lease::Releasing;
                    out.push(Command::Release);
                }
            }
            Event::Released => {
                self.expect(self.lease == Lease::Releasing, event)?;
                self.lease = Lease::Free;
            }
            Event::Paused => {
                self.paused = true;
                if self.wanted {
                    self.wanted = false;
                    self.force = false;
                    out.push(Command::Settle);
                }
            }
            Event::Resume => {
                if self.paused {
                    self.paused = false;
                    self.want(false, false, &mut out);
                }
            }
            Event::Close => {
                self.closed = true;
                self.running = false;
                if self.wanted {
                    self.wanted = false;
                    self.force = false;
                    out.push(Command::Settle);
                }
            }
        }
        self.serve(was_idle, &mut out);
        Ok(out)
    }

    fn expect(&self, ok: bool, event: Event) -> Result<()> {
        if ok {
            Ok(())
        } else {
            Err(Error::storage(format!(
                "sync scheduler: {event:?} is impossible with the lease {:?} and {}",
                self.lease,
                if self.draining {
                    "a drain running"
                } else {
                    "no drain running"
                }
            )))
        }
    }

    /// Holding the lease with nothing to do.
    fn held_idle(&self) -> bool {
        self.lease == Lease::Held && !self.draining && !self.wanted
    }

    /// A drain is wanted. `from_loop`: only if the loop runs, and silently dropped offline.
    fn want(&mut self, force: bool, from_loop: bool, out: &mut Vec<Command>) {
        if from_loop && !self.running {
            return;
        }
        if !self.online || self.closed || self.paused {
            if !from_loop {
                out.push(Command::Settle);
            }
            return;
        }
        self.wanted = true;
        self.force |= force;
    }

    /// Starts what the state calls for and keeps the timers in line with it.
    fn serve(&mut self, was_idle: bool, out: &mut Vec<Command>) {
        if self.wanted && !self.draining {
            match self.lease {
                Lease::Free => {
                    self.lease = Lease::Requested;
                    out.push(Command::RequestLease);
                }
                Lease::Held => {
                    out.push(Command::Drain {
                        force: self.force,
                        catch_up: self.fresh,
                    });
                    self.draining = true;
                    self.wanted = false;
                    self.force = false;
                    self.fresh = false;
                }
                Lease::Requested | Lease::Releasing => {}
            }
        }
        if self.held_idle() {
            if self.closed {
                self.lease = Lease::Releasing;
                out.push(Command::Release);
            } else if !was_idle {
                out.push(Command::ArmIdle);
            }
        }
        let wake = if self.running && self.online && !self.paused && !self.draining && !self.wanted
        {
            self.due
        } else {
            None
        };
        if wake != self.wake {
            self.wake = wake;
            out.push(Command::SetWake(wake));
        }
        let interval = self.running && !self.closed;
        if interval != self.interval {
            self.interval = interval;
            out.push(Command::SetInterval(interval));
        }
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
#[path = "scheduler_tests.rs"]
mod tests;
