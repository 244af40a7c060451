//! The writers' lease: a Web Lock that every engine open on an IndexedDB database holds from
//! opening to closing, so each one knows whether it is the only writer.
//!
//! - Opening asks for the lock exclusively without waiting. Granted, no other engine is open
//!   (in any tab), and commits may skip the change log record (see [`super`], "The commit
//!   check").
//! - Otherwise it asks for the lock shared, and until that is granted says `join` on the lease's
//!   BroadcastChannel (again every [`NUDGE_MS`], so a message that crossed a grant is not lost).
//!   An engine holding the lock exclusively steps down on `join`: it stops skipping the log at
//!   once (in the same task, so no unlogged commit starts after), lets the lock go and asks for it
//!   shared. Both then hold it shared, and every commit writes its log record.
//! - An engine that closes says `leave`. Each engine holding the lock shared then lets it go and
//!   asks again from the start, so the last one left becomes the only writer again. A tab that
//!   ends without closing says nothing, so an engine holding the lock shared also counts its
//!   holders every [`CHECK_MS`] (`navigator.locks.query()`) and asks again when it is the only
//!   one.
//!
//! Nothing may be read or committed while the lease is not held ([`Lease::hold`]). An engine
//! that held nothing for a while (between letting go and being granted again) may have missed
//! commits that skipped the log: the first commit of every exclusive hold therefore writes a
//! record marked `solo`, which tells every other engine reading the log to read everything again
//! (see `changes_since`).
//!
//! Where Web Locks do not exist, the lease counts as held shared: the log is always written.

use crate::browser::lock::{count, locks_available, LockMode, LockRequest};
use crate::error::{Error, Result};
use futures::channel::oneshot;
use gloo_timers::callback::{Interval, Timeout};
use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use wasm_bindgen::prelude::*;

/// How often an engine waiting for the lock says `join` again (ms).
const NUDGE_MS: u32 = 50;
/// How often an engine holding the lock shared checks whether it is the only holder left (ms).
const CHECK_MS: u32 = 2_000;
/// How long after letting the lock go an engine asks for it exclusively (ms).
const RETRY_MS: u32 = 25;
const JOIN: &str = "join";
const LEAVE: &str = "leave";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    /// Other engines may be open: every commit is checked against the change log.
    Shared,
    /// The only engine open on the database.
    Exclusive,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Asking,
    Held(Hold),
    /// Released for good (the storage closed).
    Closed,
}

type OnMessage = Closure<dyn FnMut(web_sys::MessageEvent)>;

#[derive(Clone)]
pub struct Lease {
    inner: Rc<Inner>,
}

struct Inner {
    lock_name: String,
    state: Cell<State>,
    /// Counts holds: a commit that skips the log checks that the exclusive hold it started
    /// under is still the current one.
    epoch: Cell<u64>,
    /// Numbers lock requests, so the answer to an abandoned one is ignored.
    asked: Cell<u64>,
    request: RefCell<Option<LockRequest>>,
    waiters: RefCell<Vec<oneshot::Sender<()>>>,
    channel: RefCell<Option<(web_sys::BroadcastChannel, OnMessage)>>,
    nudge: RefCell<Option<Interval>>,
    retry: RefCell<Option<Timeout>>,
    /// While held shared: the timer that counts the holders.
    check: RefCell<Option<Interval>>,
}

impl Lease {
    pub fn new(db_name: &str) -> Lease {
        Lease {
            inner: Rc::new(Inner {
                lock_name: format!("micro-sync:{db_name}:writers"),
                state: Cell::new(State::Idle),
                epoch: Cell::new(0),
                asked: Cell::new(0),
                request: RefCell::new(None),
                waiters: RefCell::new(Vec::new()),
                channel: RefCell::new(None),
                nudge: RefCell::new(None),
                retry: RefCell::new(None),
                check: RefCell::new(None),
            }),
        }
    }

    /// How the lease is held now (`None`: not held, reads and commits must wait).
    pub fn current(&self) -> Option<Hold> {
        match self.inner.state.get() {
            State::Held(h) => Some(h),
            _ => None,
        }
    }

    /// The current hold's number (see [`Inner::epoch`]).
    pub fn epoch(&self) -> u64 {
        self.inner.epoch.get()
    }

    /// Waits until the lease is held (asking for it if nobody has yet).
    pub async fn hold(&self) -> Result<Hold> {
        loop {
            match self.inner.state.get() {
                State::Held(h) => return Ok(h),
                State::Idle => self.start(),
                State::Asking => {}
                State::Closed => return Err(Error::Closed),
            }
            if let State::Held(h) = self.inner.state.get() {
                return Ok(h);
            }
            let (tx, rx) = oneshot::channel();
            self.inner.waiters.borrow_mut().push(tx);
            // Cancelled: the lease was released (the storage closed).
            rx.await.map_err(|_| Error::Closed)?;
        }
    }

    /// Lets the lock go for good and tells the others (closing).
    pub fn release(&self) {
        let was_held = self.current().is_some();
        self.inner.state.set(State::Closed);
        self.inner.epoch.set(self.inner.epoch.get() + 1);
        self.inner.asked.set(self.inner.asked.get() + 1);
        self.inner.nudge.borrow_mut().take();
        self.inner.retry.borrow_mut().take();
        self.inner.check.borrow_mut().take();
        self.inner.request.borrow_mut().take();
        if was_held {
            self.say(LEAVE);
        }
        if let Some((channel, _)) = self.inner.channel.borrow_mut().take() {
            channel.set_onmessage(None);
            channel.close();
        }
        self.inner.waiters.borrow_mut().clear();
    }

    fn start(&self) {
        if !locks_available() {
            self.granted(Hold::Shared);
            return;
        }
        self.open_channel();
        self.ask(LockMode::Exclusive, 0);
    }

    fn open_channel(&self) {
        if self.inner.channel.borrow().is_some() {
            return;
        }
        let Ok(channel) = web_sys::BroadcastChannel::new(&self.inner.lock_name) else {
            return;
        };
        let me = Rc::downgrade(&self.inner);
        let onmessage = OnMessage::new(move |e: web_sys::MessageEvent| {
            // Anything but the two words is ignored.
            if let (Some(inner), Some(word)) = (me.upgrade(), e.data().as_string()) {
                Lease { inner }.heard(&word);
            }
        });
        channel.set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
        *self.inner.channel.borrow_mut() = Some((channel, onmessage));
    }

    fn say(&self, word: &str) {
        if let Some((channel, _)) = self.inner.channel.borrow().as_ref() {
            let _ = channel.post_message(&JsValue::from_str(word));
        }
    }

    fn heard(&self, word: &str) {
        match (word, self.inner.state.get()) {
            (JOIN, State::Held(Hold::Exclusive)) => self.let_go_and_ask(LockMode::Shared),
            (LEAVE, State::Held(Hold::Shared)) => self.let_go_and_ask(LockMode::Exclusive),
            _ => {}
        }
    }

    /// Stops holding (in this task: no commit starts under the old hold after this) and asks
    /// again in `mode`. Letting go is not instant: an exclusive request right away could find
    /// our own old hold, so that one is made after [`RETRY_MS`], with a second try.
    fn let_go_and_ask(&self, mode: LockMode) {
        self.inner.check.borrow_mut().take();
        self.inner.state.set(State::Asking);
        self.inner.epoch.set(self.inner.epoch.get() + 1);
        self.inner.asked.set(self.inner.asked.get() + 1);
        self.inner.request.borrow_mut().take();
        match mode {
            LockMode::Shared => self.ask(mode, 0),
            LockMode::Exclusive => self.ask_later(1),
        }
    }

    /// Asks exclusively after [`RETRY_MS`] (`tries` more times if it is not free).
    fn ask_later(&self, tries: u32) {
        let n = self.inner.asked.get();
        let me = Rc::downgrade(&self.inner);
        *self.inner.retry.borrow_mut() = Some(Timeout::new(RETRY_MS, move || {
            if let Some(inner) = me.upgrade() {
                if inner.asked.get() == n && inner.state.get() == State::Asking {
                    Lease { inner }.ask(LockMode::Exclusive, tries);
                }
            }
        }));
    }

    /// Asks for the lock: exclusively without waiting (trying again `tries` times, then falling
    /// back to shared), or shared, saying `join` until it is granted.
    fn ask(&self, mode: LockMode, tries: u32) {
        self.inner.state.set(State::Asking);
        let n = self.inner.asked.get() + 1;
        self.inner.asked.set(n);
        let me = Rc::downgrade(&self.inner);
        let current = move |me: &Weak<Inner>| {
            me.upgrade()
                .filter(|inner| inner.asked.get() == n && inner.state.get() == State::Asking)
                .map(|inner| Lease { inner })
        };
        let answer: Rc<dyn Fn(bool)> = {
            let me = me.clone();
            Rc::new(move |got: bool| {
                let Some(lease) = current(&me) else { return };
                match (got, mode) {
                    (true, LockMode::Exclusive) => lease.granted(Hold::Exclusive),
                    (true, LockMode::Shared) => lease.granted(Hold::Shared),
                    (false, _) if tries > 0 => lease.ask_later(tries - 1),
                    (false, _) => lease.ask(LockMode::Shared, 0),
                }
            })
        };
        let lost: Rc<dyn Fn()> = Rc::new(move || {
            // Refused by the lock manager (not aborted by us: that changes `asked`). Going on
            // without the lock would be unsafe beside an exclusive holder: ask again shortly.
            if let Some(lease) = current(&me) {
                let me = Rc::downgrade(&lease.inner);
                *lease.inner.retry.borrow_mut() = Some(Timeout::new(NUDGE_MS, move || {
                    if let Some(lease) = current(&me) {
                        lease.ask(LockMode::Shared, 0);
                    }
                }));
            }
        });
        let exclusive = mode == LockMode::Exclusive;
        let request = LockRequest::ask_with(&self.inner.lock_name, mode, exclusive, answer, lost);
        *self.inner.request.borrow_mut() = Some(request);
        if !exclusive {
            self.say(JOIN);
            let me = Rc::downgrade(&self.inner);
            *self.inner.nudge.borrow_mut() = Some(Interval::new(NUDGE_MS, move || {
                if let Some(inner) = me.upgrade() {
                    Lease { inner }.say(JOIN);
                }
            }));
        }
    }

    /// Asks for the lock again if this engine is the only one holding it (others' tabs ended
    /// without saying `leave`).
    async fn check_alone(self) {
        let epoch = self.inner.epoch.get();
        let alone = count(&self.inner.lock_name).await == Some((1, 0));
        let still =
            self.inner.epoch.get() == epoch && self.inner.state.get() == State::Held(Hold::Shared);
        if alone && still {
            self.let_go_and_ask(LockMode::Exclusive);
        }
    }

    fn granted(&self, hold: Hold) {
        self.inner.nudge.borrow_mut().take();
        self.inner.epoch.set(self.inner.epoch.get() + 1);
        self.inner.state.set(State::Held(hold));
        if hold == Hold::Shared && locks_available() {
            let me = Rc::downgrade(&self.inner);
            *self.inner.check.borrow_mut() = Some(Interval::new(CHECK_MS, move || {
                if let Some(inner) = me.upgrade() {
                    wasm_bindgen_futures::spawn_local(Lease { inner }.check_alone());
                }
            }));
        }
        for w in self.inner.waiters.borrow_mut().drain(..) {
            let _ = w.send(());
        }
    }
}
