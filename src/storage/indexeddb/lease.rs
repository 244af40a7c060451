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
//! Stepping down stops new unlogged commits at once but keeps the lock until the ones in flight
//! have finished ([`Lease::unlogged`]), so a newcomer never depends on how IndexedDB orders
//! transactions against the lock hand-over.
//!
//! A hidden page (or one being put away, `pagehide`) does not keep the lock exclusively: it
//! steps down, so a tab opening beside a background tab that the browser may suspend never waits
//! for it; it asks again when visible. A lock the browser takes away (the request rejected
//! while held) is given up the same way. If the browser refuses the lock again and again, the
//! waiting calls fail with a `StorageError` instead of waiting forever.
//!
//! Where Web Locks do not exist, the lease counts as held shared: the log is always written.

use crate::browser::lock::{count, locks_available, LockMode, LockRequest};
use crate::error::{Error, Result};
use futures::channel::oneshot;
use gloo_timers::callback::{Interval, Timeout};
use gloo_timers::future::TimeoutFuture;
use js_sys::Reflect;
use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

/// How often an engine waiting for the lock says `join` again (ms).
const NUDGE_MS: u32 = 50;
/// How often an engine holding the lock shared checks whether it is the only holder left (ms).
const CHECK_MS: u32 = 2_000;
/// How long after letting the lock go an engine asks for it exclusively (ms).
const RETRY_MS: u32 = 25;
/// Refusals in a row after which waiting calls fail.
const MAX_REFUSALS: u32 = 3;
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
type OnEvent = Closure<dyn FnMut(web_sys::Event)>;

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
    /// The page's `visibilitychange` (on `document`) and `pagehide`/`pageshow` (on the global).
    page: RefCell<Option<OnEvent>>,
    nudge: RefCell<Option<Interval>>,
    retry: RefCell<Option<Timeout>>,
    /// While held shared: the timer that counts the holders.
    check: RefCell<Option<Interval>>,
    /// Unlogged commits still running, and what waits for them to finish (letting go).
    in_flight: Cell<u32>,
    after_flights: RefCell<Option<Box<dyn FnOnce()>>>,
    /// Lock requests refused in a row, and why waiting calls failed after too many.
    refusals: Cell<u32>,
    refused: RefCell<Option<String>>,
}

/// An unlogged commit in flight: the lock is not let go before it is dropped.
pub struct Flight(Weak<Inner>);

impl Drop for Flight {
    fn drop(&mut self) {
        let Some(inner) = self.0.upgrade() else {
            return;
        };
        inner.in_flight.set(inner.in_flight.get().saturating_sub(1));
        if inner.in_flight.get() == 0 {
            let then = inner.after_flights.borrow_mut().take();
            if let Some(then) = then {
                then();
            }
        }
    }
}

fn page_hidden() -> bool {
    Reflect::get(&js_sys::global(), &JsValue::from_str("document"))
        .ok()
        .filter(|d| d.is_object())
        .and_then(|d| Reflect::get(&d, &JsValue::from_str("hidden")).ok())
        .and_then(|h| h.as_bool())
        .unwrap_or(false)
}

/// `document` and the global object, as event targets (`None` for `document` in a worker).
fn page_targets() -> (Option<web_sys::EventTarget>, Option<web_sys::EventTarget>) {
    let global = js_sys::global();
    let document = Reflect::get(&global, &JsValue::from_str("document"))
        .ok()
        .and_then(|d| d.dyn_into::<web_sys::EventTarget>().ok());
    (document, global.dyn_into::<web_sys::EventTarget>().ok())
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
                page: RefCell::new(None),
                nudge: RefCell::new(None),
                retry: RefCell::new(None),
                check: RefCell::new(None),
                in_flight: Cell::new(0),
                after_flights: RefCell::new(None),
                refusals: Cell::new(0),
                refused: RefCell::new(None),
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

    /// Marks an unlogged commit as running until the returned guard is dropped.
    pub fn unlogged(&self) -> Flight {
        self.inner.in_flight.set(self.inner.in_flight.get() + 1);
        Flight(Rc::downgrade(&self.inner))
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
            if rx.await.is_err() {
                // Cancelled: the storage closed, or the browser kept refusing the lock.
                return Err(match self.inner.refused.borrow().as_ref() {
                    Some(why) if self.inner.state.get() == State::Idle => Error::storage(why),
                    _ => Error::Closed,
                });
            }
        }
    }

    /// Lets the lock go for good and tells the others (closing).
    pub fn release(&self) {
        self.stop(State::Closed);
    }

    /// Lets the lock go until the next [`Lease::hold`] (opening failed).
    pub fn pause(&self) {
        self.stop(State::Idle);
    }

    fn stop(&self, to: State) {
        let was_held = self.current().is_some();
        self.inner.state.set(to);
        self.inner.epoch.set(self.inner.epoch.get() + 1);
        self.inner.asked.set(self.inner.asked.get() + 1);
        self.inner.nudge.borrow_mut().take();
        self.inner.retry.borrow_mut().take();
        self.inner.check.borrow_mut().take();
        self.inner.after_flights.borrow_mut().take();
        self.inner.request.borrow_mut().take();
        if was_held {
            self.say(LEAVE);
        }
        self.inner.close_channel();
        self.inner.waiters.borrow_mut().clear();
    }

    fn start(&self) {
        self.inner.refused.borrow_mut().take();
        if !locks_available() {
            self.granted(Hold::Shared);
            return;
        }
        self.open_channel();
        // A hidden page does not take the lock exclusively (see the module docs).
        let mode = match page_hidden() {
            true => LockMode::Shared,
            false => LockMode::Exclusive,
        };
        self.ask(mode, 0);
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
        let me = Rc::downgrade(&self.inner);
        let on_page = OnEvent::new(move |_e: web_sys::Event| {
            if let Some(inner) = me.upgrade() {
                Lease { inner }.page_changed();
            }
        });
        let (document, global) = page_targets();
        let f = on_page.as_ref().unchecked_ref();
        if let Some(d) = &document {
            let _ = d.add_event_listener_with_callback("visibilitychange", f);
        }
        if let (Some(g), Some(_)) = (&global, &document) {
            let _ = g.add_event_listener_with_callback("pagehide", f);
            let _ = g.add_event_listener_with_callback("pageshow", f);
        }
        *self.inner.page.borrow_mut() = Some(on_page);
    }

    /// The page was hidden or shown: a hidden one steps down, a visible one looks whether it is
    /// alone.
    fn page_changed(&self) {
        match (page_hidden(), self.inner.state.get()) {
            (true, State::Held(Hold::Exclusive)) => self.let_go_and_ask(LockMode::Shared),
            (false, State::Held(Hold::Shared)) => {
                wasm_bindgen_futures::spawn_local(self.clone().check_alone())
            }
            _ => {}
        }
    }

    fn say(&self, word: &str) {
        if let Some((channel, _)) = self.inner.channel.borrow().as_ref() {
            let _ = channel.post_message(&JsValue::from_str(word));
        }
    }

    fn heard(&self, word: &str) {
        match (word, self.inner.state.get()) {
            (JOIN, State::Held(Hold::Exclusive)) => self.let_go_and_ask(LockMode::Shared),
            (LEAVE, State::Held(Hold::Shared)) => {
                // Only the last one left asks again: count the holders once the leaving one's
                // lock is gone (letting go is not instant), and once more a little later.
                let me = Rc::downgrade(&self.inner);
                wasm_bindgen_futures::spawn_local(async move {
                    for wait in [RETRY_MS, 4 * RETRY_MS] {
                        TimeoutFuture::new(wait).await;
                        let Some(inner) = me.upgrade() else { return };
                        Lease { inner }.check_alone().await;
                    }
                });
            }
            _ => {}
        }
    }

    /// Stops holding (in this task: no commit starts under the old hold after this) and asks
    /// again in `mode`, once the unlogged commits in flight have finished. Letting go is not
    /// instant: an exclusive request right away could find our own old hold, so that one is made
    /// after [`RETRY_MS`], with a second try.
    fn let_go_and_ask(&self, mode: LockMode) {
        self.inner.check.borrow_mut().take();
        self.inner.state.set(State::Asking);
        self.inner.epoch.set(self.inner.epoch.get() + 1);
        let n = self.inner.asked.get() + 1;
        self.inner.asked.set(n);
        let me = Rc::downgrade(&self.inner);
        let then = move || {
            let Some(inner) = me.upgrade() else { return };
            if inner.asked.get() != n || inner.state.get() != State::Asking {
                return; // closed (or asked anew) meanwhile
            }
            inner.request.borrow_mut().take();
            let lease = Lease { inner };
            match mode {
                LockMode::Shared => lease.ask(mode, 0),
                LockMode::Exclusive => lease.ask_later(1),
            }
        };
        if self.inner.in_flight.get() == 0 {
            then();
        } else {
            *self.inner.after_flights.borrow_mut() = Some(Box::new(then));
        }
    }

    /// Asks exclusively after [`RETRY_MS`] (`tries` more times if it is not free).
    fn ask_later(&self, tries: u32) {
        self.ask_after(RETRY_MS, LockMode::Exclusive, tries);
    }

    /// Asks in `mode` after `ms`, unless the lease asked anew, was granted or closed meanwhile.
    fn ask_after(&self, ms: u32, mode: LockMode, tries: u32) {
        let n = self.inner.asked.get();
        let me = Rc::downgrade(&self.inner);
        *self.inner.retry.borrow_mut() = Some(Timeout::new(ms, move || {
            if let Some(inner) = me.upgrade() {
                if inner.asked.get() == n && inner.state.get() == State::Asking {
                    Lease { inner }.ask(mode, tries);
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
        let this_request = move |me: &Weak<Inner>| {
            me.upgrade()
                .filter(|inner| inner.asked.get() == n)
                .map(|inner| Lease { inner })
        };
        let answer: Rc<dyn Fn(bool)> = {
            let me = me.clone();
            Rc::new(move |got: bool| {
                let Some(lease) = this_request(&me) else {
                    return;
                };
                if lease.inner.state.get() != State::Asking {
                    return;
                }
                match (got, mode) {
                    (true, LockMode::Exclusive) => lease.granted(Hold::Exclusive),
                    (true, LockMode::Shared) => lease.granted(Hold::Shared),
                    (false, _) if tries > 0 => lease.ask_later(tries - 1),
                    (false, _) => lease.ask(LockMode::Shared, 0),
                }
            })
        };
        let lost: Rc<dyn Fn()> = Rc::new(move || {
            // Not aborted by us (that changes `asked`): the browser refused the request, or took
            // the lock away while it was held.
            let Some(lease) = this_request(&me) else {
                return;
            };
            match lease.inner.state.get() {
                State::Held(_) => lease.let_go_and_ask(LockMode::Shared),
                State::Asking => lease.refused(),
                _ => {}
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

    /// The browser refused a request: ask again shortly, or, after [`MAX_REFUSALS`] in a row,
    /// fail the waiting calls (the next call asks anew).
    fn refused(&self) {
        let refusals = self.inner.refusals.get() + 1;
        self.inner.refusals.set(refusals);
        if refusals >= MAX_REFUSALS {
            self.inner.refusals.set(0);
            *self.inner.refused.borrow_mut() = Some(format!(
                "the browser refused the Web Lock \"{}\" that guards writes to this database",
                self.inner.lock_name
            ));
            self.stop(State::Idle);
            return;
        }
        self.ask_after(NUDGE_MS, LockMode::Shared, 0);
    }

    /// Asks for the lock again if this engine is the only one holding it (others' tabs ended
    /// without saying `leave`) and its page is visible.
    async fn check_alone(self) {
        if page_hidden() || self.inner.state.get() != State::Held(Hold::Shared) {
            return;
        }
        let epoch = self.inner.epoch.get();
        let alone = count(&self.inner.lock_name).await == Some((1, 0));
        let still =
            self.inner.epoch.get() == epoch && self.inner.state.get() == State::Held(Hold::Shared);
        if alone && still && !page_hidden() {
            self.let_go_and_ask(LockMode::Exclusive);
        }
    }

    fn granted(&self, hold: Hold) {
        self.inner.nudge.borrow_mut().take();
        self.inner.refusals.set(0);
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

impl Inner {
    fn close_channel(&self) {
        if let Some((channel, _)) = self.channel.borrow_mut().take() {
            channel.set_onmessage(None);
            channel.close();
        }
        if let Some(on_page) = self.page.borrow_mut().take() {
            let (document, global) = page_targets();
            let f = on_page.as_ref().unchecked_ref();
            if let Some(d) = &document {
                let _ = d.remove_event_listener_with_callback("visibilitychange", f);
            }
            if let Some(g) = &global {
                let _ = g.remove_event_listener_with_callback("pagehide", f);
                let _ = g.remove_event_listener_with_callback("pageshow", f);
            }
        }
    }
}

impl Drop for Inner {
    /// A storage dropped without closing: tell the others and let the page's events go.
    fn drop(&mut self) {
        if matches!(self.state.get(), State::Held(_)) {
            if let Some((channel, _)) = self.channel.borrow().as_ref() {
                let _ = channel.post_message(&JsValue::from_str(LEAVE));
            }
        }
        self.close_channel();
    }
}
