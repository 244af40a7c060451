//! The write queue: every change to a database (a user's write, a pull's merge, a push's
//! acknowledgement, a catch-up with other tabs) takes a numbered turn, and turns run strictly in
//! the order they were taken. A turn is taken when [`WriteQueue::turn`] is called, not when its
//! future is first polled, so call order is the order that counts.
//!
//! One queue belongs to one storage (one IndexedDB database name, one memory store): several
//! databases opened on the same storage in one tab share it, so their writes are ordered too.
//!
//! A turn that is dropped before it ran is skipped, so a cancelled caller cannot wedge the queue.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// Where one unfinished turn stands.
enum Slot {
    /// Taken, not parked (not polled yet, or running).
    Taken,
    /// Parked until its number comes up.
    Waiting(Waker),
    /// Dropped before it ran; skipped when its number comes up.
    Abandoned,
}

#[derive(Default)]
struct State {
    /// Turns handed out so far; the next turn gets this number.
    issued: u64,
    /// Turns finished (or skipped) so far: turn `n` may run when `done == n`.
    done: u64,
    /// One slot per unfinished turn: `slots[i]` is turn `done + i`.
    slots: VecDeque<Slot>,
}

impl State {
    fn slot(&mut self, number: u64) -> &mut Slot {
        let i = usize::try_from(number - self.done).unwrap_or(usize::MAX);
        &mut self.slots[i]
    }

    /// Moves past every abandoned turn at the front and wakes the turn whose number came up.
    fn advance(&mut self) {
        while matches!(self.slots.front(), Some(Slot::Abandoned)) {
            self.slots.pop_front();
            self.done += 1;
        }
        if let Some(front) = self.slots.front_mut() {
            if let Slot::Waiting(w) = std::mem::replace(front, Slot::Taken) {
                w.wake();
            }
        }
    }
}

/// A FIFO queue of turns. Cheap to clone (shared state).
#[derive(Clone, Default)]
pub struct WriteQueue {
    state: Rc<RefCell<State>>,
}

impl WriteQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the next turn now; the returned future resolves when every earlier turn has
    /// finished, with a guard that ends the turn when dropped.
    pub fn turn(&self) -> Turn {
        let mut s = self.state.borrow_mut();
        let number = s.issued;
        s.issued += 1;
        s.slots.push_back(Slot::Taken);
        Turn {
            queue: self.clone(),
            number,
            started: false,
        }
    }

    /// Turns taken and not yet finished.
    #[cfg(all(test, not(target_arch = "wasm32")))]
    fn backlog(&self) -> u64 {
        let s = self.state.borrow();
        s.issued - s.done
    }
}

/// A place in the queue. Await it to run; drop it to give the place up.
pub struct Turn {
    queue: WriteQueue,
    number: u64,
    started: bool,
}

impl Future for Turn {
    type Output = TurnGuard;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<TurnGuard> {
        let mut s = self.queue.state.borrow_mut();
        if s.done == self.number {
            *s.slot(self.number) = Slot::Taken;
            drop(s);
            self.started = true;
            return Poll::Ready(TurnGuard {
                queue: self.queue.clone(),
            });
        }
        *s.slot(self.number) = Slot::Waiting(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        if self.started {
            return;
        }
        let mut s = self.queue.state.borrow_mut();
        *s.slot(self.number) = Slot::Abandoned;
        s.advance();
    }
}

/// Held while a turn runs; the next turn starts when it is dropped.
pub struct TurnGuard {
    queue: WriteQueue,
}

impl Drop for TurnGuard {
    fn drop(&mut self) {
        let mut s = self.queue.state.borrow_mut();
        s.slots.pop_front();
        s.done += 1;
        s.advance();
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use futures::executor::LocalPool;
    use futures::task::LocalSpawnExt;

    /// Turns run in the order they were taken, even when their futures are polled in another
    /// order, and a dropped turn is skipped.
    #[test]
    fn turns_run_in_the_order_taken() {
        let q = WriteQueue::new();
        let log = Rc::new(RefCell::new(Vec::new()));
        let mut pool = LocalPool::new();
        let turns: Vec<Turn> = (0..6).map(|_| q.turn()).collect();
        let mut turns: Vec<Option<Turn>> = turns.into_iter().map(Some).collect();
        drop(turns[3].take()); // given up before it ran
                               // Spawn (and so first poll) in reverse order.
        for i in (0..6).rev() {
            if let Some(t) = turns[i].take() {
                let log = log.clone();
                pool.spawner()
                    .spawn_local(async move {
                        let _g = t.await;
                        log.borrow_mut().push(i);
                        // Yield while holding the turn: nobody may overtake.
                        futures::future::ready(()).await;
                    })
                    .unwrap();
            }
        }
        pool.run();
        assert_eq!(*log.borrow(), vec![0, 1, 2, 4, 5]);
        assert_eq!(q.backlog(), 0);
    }

    /// A parked turn that is dropped, and a turn dropped when its number is up but before it was
    /// polled, are skipped too; later turns still run in order and the queue empties.
    #[test]
    fn parked_and_due_turns_can_be_dropped() {
        use std::task::Waker;
        let q = WriteQueue::new();
        let mut cx = Context::from_waker(Waker::noop());
        let mut first = q.turn();
        let mut parked = q.turn();
        let due = q.turn();
        let mut last = q.turn();
        let Poll::Ready(guard) = Pin::new(&mut first).poll(&mut cx) else {
            panic!("the first turn runs at once")
        };
        assert!(Pin::new(&mut parked).poll(&mut cx).is_pending());
        assert!(Pin::new(&mut last).poll(&mut cx).is_pending());
        drop(parked);
        drop(guard); // `due` is up now, and is dropped without a poll
        drop(due);
        assert!(Pin::new(&mut last).poll(&mut cx).is_ready());
        drop(last);
        drop(first);
        assert_eq!(q.backlog(), 0);
        assert!(q.state.borrow().slots.is_empty());
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod random_tests {
    use super::*;
    use proptest::prelude::*;
    use std::task::Waker;
    proptest! {
        #[test]
        /// Any mix of taking, polling (in any order), dropping turns and ending the running one:
        /// turns run one at a time, in the order taken, and the queue empties.
        fn random_takes_polls_and_drops_keep_order(ops in proptest::collection::vec((0u8..4, 0usize..8), 0..200)) {
            let q = WriteQueue::new();
            let mut cx = Context::from_waker(Waker::noop());
            let mut turns: Vec<(u64, Turn)> = Vec::new();
            let mut guard: Option<(u64, TurnGuard)> = None;
            let mut last_run: Option<u64> = None;
            let mut dropped: Vec<u64> = Vec::new();
            for (op, i) in ops {
                match op {
                    0 => { let t = q.turn(); turns.push((t.number, t)); }
                    1 if !turns.is_empty() => {
                        let j = i % turns.len();
                        if let Poll::Ready(g) = Pin::new(&mut turns[j].1).poll(&mut cx) {
                            let (n, t) = turns.remove(j);
                            drop(t);
                            prop_assert!(guard.is_none());
                            // every earlier number was run or dropped
                            if let Some(l) = last_run { prop_assert!(n > l); }
                            prop_assert!(turns.iter().all(|(m, _)| *m > n));
                            last_run = Some(n);
                            guard = Some((n, g));
                        }
                    }
                    2 if !turns.is_empty() => { let (n, t) = turns.remove(i % turns.len()); dropped.push(n); drop(t); }
                    3 => { guard = None; }
                    _ => {}
                }
            }
            drop(guard);
            turns.sort_by_key(|t| t.0);
            for (_, mut t) in turns { prop_assert!(Pin::new(&mut t).poll(&mut cx).is_ready()); }
            prop_assert_eq!(q.backlog(), 0);
            prop_assert!(q.state.borrow().slots.is_empty());
        }
    }
}
