//! The sync runtime of one database: carries out the [`Scheduler`]'s commands with the browser's
//! timers, connectivity, the Web Lock and the BroadcastChannel, and feeds their events back. It
//! owns every closure it hands to the browser; `close` and `abandon` drop them all.
//!
//! [`Scheduler`]: crate::core::scheduler::Scheduler

use super::channel::Channel;
use super::fatal::{self, Tagged};
use super::hooks::MAX_TIMER_MS;
use super::listeners::{report_error, Listeners};
use super::lock::LockRequest;
use super::network::Network;
use crate::bindings::CoreDb;
use crate::core::db::Confirmation;
use crate::core::scheduler::{Command, Event};
use gloo_timers::callback::{Interval, Timeout};
use js_sys::{Function, Promise};
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::{Rc, Weak};
use wasm_bindgen::JsValue;

/// How long the outbox lock is kept after the last drain, so a burst of writes drains under one
/// lease (and their acknowledged entries are deleted with the next writes' transactions).
const LEASE_IDLE_MS: u32 = 25;

/// The loop's interval when the app gives none.
pub const DEFAULT_INTERVAL_MS: u32 = 30_000;

pub struct Runtime {
    id: u32,
    db: Rc<CoreDb>,
    me: Weak<Runtime>,
    /// The IndexedDB database's name (the lock's and the channel's); `None` for memory storage.
    shared_name: Option<String>,
    interval_ms: Cell<u32>,
    /// The loop runs once open (`createSyncOrm({ engine })`).
    start_when_open: Cell<bool>,
    detector: RefCell<JsValue>,
    network: RefCell<Option<Network>>,
    channel: RefCell<Option<Rc<Channel>>>,
    interval: RefCell<Option<Interval>>,
    wake: RefCell<Option<Timeout>>,
    idle: RefCell<Option<Timeout>>,
    /// When the lease's grace period ends (`performance.now()`-free: `Date.now()` ms). Re-arming
    /// only moves this; the timer, when it fires early, waits for the rest.
    idle_until: Cell<f64>,
    lock: RefCell<Option<LockRequest>>,
    /// Drains started so far; a waiter settles once the drain it waits for has ended.
    rounds: Cell<u64>,
    waiters: RefCell<Vec<(u64, Function)>>,
    /// `whenSynced` calls: the writes each waits for, and its promise's resolve and reject.
    confirmations: RefCell<Vec<(Vec<String>, Function, Function)>>,
    catching_up: Cell<bool>,
    catch_up_again: Cell<bool>,
    listeners: Listeners,
    delivery_queued: Cell<bool>,
    /// A refresh of the live queries is running (it may wait for a model to load); another one
    /// is due after it.
    live_busy: Cell<bool>,
    live_again: Cell<bool>,
    /// Live queries refused when opened: their error is delivered with the next delivery.
    live_refused: RefCell<Vec<(u32, JsValue)>>,
    open: Cell<bool>,
    ended: Cell<bool>,
}

impl Runtime {
    pub fn new(
        id: u32,
        db: Rc<CoreDb>,
        shared_name: Option<String>,
        detector: JsValue,
        interval_ms: Option<u32>,
    ) -> Rc<Runtime> {
        let rt = Rc::new_cyclic(|me| Runtime {
            id,
            db: db.clone(),
            me: me.clone(),
            shared_name,
            interval_ms: Cell::new(interval_ms.unwrap_or(DEFAULT_INTERVAL_MS)),
            start_when_open: Cell::new(interval_ms.is_some()),
            detector: RefCell::new(detector),
            network: RefCell::new(None),
            channel: RefCell::new(None),
            interval: RefCell::new(None),
            wake: RefCell::new(None),
            idle: RefCell::new(None),
            idle_until: Cell::new(0.0),
            lock: RefCell::new(None),
            rounds: Cell::new(0),
            waiters: RefCell::new(Vec::new()),
            confirmations: RefCell::new(Vec::new()),
            catching_up: Cell::new(false),
            catch_up_again: Cell::new(false),
            listeners: Listeners::default(),
            delivery_queued: Cell::new(false),
            live_busy: Cell::new(false),
            live_again: Cell::new(false),
            live_refused: RefCell::new(Vec::new()),
            open: Cell::new(false),
            ended: Cell::new(false),
        });
        // Until the listeners are on (once open), the status says what the detector says now.
        let online = match web_sys::window() {
            _ if !rt.detector.borrow().is_undefined() => {
                super::network::custom_online(&rt.detector.borrow())
            }
            Some(w) => w.navigator().on_line(),
            None => true,
        };
        let _ = db.schedule(Event::Online(online));
        let me = Rc::downgrade(&rt);
        db.set_listener(Some(Box::new(move |models: &[String]| {
            if let Some(rt) = me.upgrade() {
                rt.changed(models);
            }
        })));
        rt
    }

    /// Storage is open: listen to connectivity and other tabs, and start the loop if asked to.
    pub fn opened(&self) -> Result<(), String> {
        if self.ended.get() {
            return Ok(());
        }
        self.open.set(true);
        self.listen_network()?;
        if let Some(name) = &self.shared_name {
            let me = self.me.clone();
            let heard = Rc::new(move |seq: u64| {
                if let Some(rt) = me.upgrade() {
                    rt.heard(seq);
                }
            });
            *self.channel.borrow_mut() = Channel::open(name, self.db.seq(), heard);
        }
        if self.start_when_open.get() {
            self.feed(Event::Start);
        }
        Ok(())
    }

    fn listen_network(&self) -> Result<(), String> {
        let me = self.me.clone();
        let changed = Rc::new(move |online: bool| {
            if let Some(rt) = me.upgrade() {
                rt.feed(Event::Online(online));
            }
        });
        // The old listeners go before the new ones come.
        self.network.borrow_mut().take();
        let network = Network::listen(&self.detector.borrow(), changed)?;
        let online = network.is_online();
        *self.network.borrow_mut() = Some(network);
        self.feed(Event::Online(online));
        Ok(())
    }

    // ------------------------------------------------------------ the loop and drains
    /// Starts the loop, with a new interval and detector if given.
    pub fn start(&self, interval_ms: Option<u32>, detector: Option<JsValue>) -> Result<(), String> {
        if self.ended.get() {
            return Ok(());
        }
        if let Some(ms) = interval_ms {
            if ms != self.interval_ms.get() {
                self.interval_ms.set(ms);
                if self.interval.borrow().is_some() {
                    self.set_interval(true);
                }
            }
        }
        if let Some(d) = detector {
            *self.detector.borrow_mut() = d;
            if self.open.get() {
                self.listen_network()?;
            }
        }
        if self.open.get() {
            self.feed(Event::Start);
        } else {
            self.start_when_open.set(true);
        }
        Ok(())
    }

    /// `db.resumeSync()`: pushes paused for credentials go on now.
    pub fn resume(&self) {
        self.feed(Event::Resume);
    }

    pub fn stop(&self) {
        self.start_when_open.set(false);
        if self.open.get() && !self.ended.get() {
            self.feed(Event::Stop);
        }
    }

    pub fn running(&self) -> bool {
        if self.open.get() {
            self.db.loop_running()
        } else {
            self.start_when_open.get()
        }
    }

    /// A write to `model` committed: push it now if the model pushes.
    pub fn wrote(&self, model: &str) {
        if self.open.get() && !self.ended.get() && self.db.can_push(model) {
            self.feed(Event::Request { force: false });
        }
    }

    /// Drains now, ignoring backoff; resolves once the drain that serves this request ended (at
    /// once when none will: offline, closed). Called from inside a push's own hook, it resolves
    /// at once too: that drain cannot end before the hook returns.
    pub fn retry_all(&self) -> Promise {
        let mut resolve = None;
        let promise = Promise::new(&mut |res, _| resolve = Some(res));
        let Some(resolve) = resolve else {
            return promise;
        };
        if !self.open.get() || self.ended.get() || self.db.push_in_flight() {
            let _ = resolve.call0(&JsValue::NULL);
            if self.open.get() && !self.ended.get() {
                self.feed(Event::Request { force: true });
            }
            return promise;
        }
        self.waiters
            .borrow_mut()
            .push((self.rounds.get() + 1, resolve));
        self.feed(Event::Request { force: true });
        promise
    }

    /// Resolves once the writes `ids` (every pending one when `None`) are acknowledged by the
    /// backend, in this tab's drain or another's; rejects with the rejection of one of them.
    pub fn when_synced(&self, ids: Option<Vec<String>>) -> Promise {
        let mut settle = None;
        let promise = Promise::new(&mut |res, rej| settle = Some((res, rej)));
        let Some((resolve, reject)) = settle else {
            return promise;
        };
        if !self.open.get() || self.ended.get() {
            let _ = reject.call1(
                &JsValue::NULL,
                &crate::bindings::js_error(crate::Error::Closed),
            );
            return promise;
        }
        let ids = ids.unwrap_or_else(|| self.db.pending_ids());
        self.confirmations.borrow_mut().push((ids, resolve, reject));
        self.check_confirmations();
        promise
    }

    /// Settles the `whenSynced` promises whose writes are no longer pending.
    fn check_confirmations(&self) {
        let settled: Vec<(Confirmation, Function, Function)> = {
            let mut list = self.confirmations.borrow_mut();
            let mut out = Vec::new();
            let mut i = 0;
            while i < list.len() {
                match self.db.confirmation(Some(&list[i].0)) {
                    Confirmation::Pending => i += 1,
                    done => {
                        let (_, res, rej) = list.swap_remove(i);
                        out.push((done, res, rej));
                    }
                }
            }
            out
        };
        for (done, resolve, reject) in settled {
            let _ = match done {
                Confirmation::Rejected(e) => {
                    reject.call1(&JsValue::NULL, &crate::bindings::js_error(e))
                }
                _ => resolve.call0(&JsValue::NULL),
            };
        }
    }

    /// Feeds `event` to the scheduler and carries out what it says.
    fn feed(&self, event: Event) {
        if self.ended.get() {
            return;
        }
        let commands = fatal::as_engine(self.id, || self.db.schedule(event));
        match commands {
            Ok(commands) => {
                for c in commands {
                    self.exec(c);
                }
            }
            Err(e) => report_error(&js_sys::Error::new(&e.to_string()).into()),
        }
    }

    /// Runs `fut` as this engine's code (see [`fatal`]).
    fn spawn(&self, fut: impl Future<Output = ()> + 'static) {
        wasm_bindgen_futures::spawn_local(Tagged {
            id: self.id,
            fut: Box::pin(fut) as std::pin::Pin<Box<dyn Future<Output = ()>>>,
        });
    }

    /// A callback that feeds `event` on a later microtask (timers and the lock call back through
    /// it, so nothing they own is dropped from inside their own callback).
    fn later(&self, event: Event) -> impl Fn() + 'static {
        let me = self.me.clone();
        move || {
            let me = me.clone();
            wasm_bindgen_futures::spawn_local(async move {
                if let Some(rt) = me.upgrade() {
                    rt.feed(event);
                }
            });
        }
    }

    /// Fires `LeaseIdle` once `idle_until` has passed, checking again after `ms`.
    fn idle_timer(&self, ms: u32) {
        let me = self.me.clone();
        let timer = Timeout::new(ms, move || {
            let Some(rt) = me.upgrade() else { return };
            rt.idle.borrow_mut().take();
            let left = rt.idle_until.get() - js_sys::Date::now();
            if left >= 1.0 {
                rt.idle_timer(left.min(f64::from(LEASE_IDLE_MS)).ceil() as u32);
            } else {
                rt.later(Event::LeaseIdle)();
            }
        });
        *self.idle.borrow_mut() = Some(timer);
    }

    fn exec(&self, command: Command) {
        match command {
            Command::RequestLease => {
                let granted = Rc::new(self.later(Event::LeaseGranted));
                let lost = Rc::new(self.later(Event::LeaseLost));
                let request = match &self.shared_name {
                    Some(name) => {
                        LockRequest::ask(&format!("micro-sync:{name}:outbox"), granted, lost)
                    }
                    None => LockRequest::granted_at_once(granted),
                };
                *self.lock.borrow_mut() = Some(request);
            }
            Command::Drain { force, catch_up } => {
                let round = self.rounds.get() + 1;
                self.rounds.set(round);
                let (db, me) = (self.db.clone(), self.me.clone());
                self.spawn(async move {
                    if catch_up {
                        // Another tab may have drained while this one did not hold the lock:
                        // never push what it already did.
                        let _ = db.catch_up().await;
                    }
                    let report = db.drain_round(force).await;
                    if let Some(rt) = me.upgrade() {
                        if report.is_ok_and(|r| r.needs_auth) {
                            rt.feed(Event::Paused);
                        }
                        rt.feed(Event::Drained { due: db.next_due() });
                        rt.settle(round);
                    }
                });
            }
            Command::SetWake(at) => {
                *self.wake.borrow_mut() = at.map(|at| {
                    let ms = (at - js_sys::Date::now()).clamp(0.0, MAX_TIMER_MS);
                    Timeout::new(ms as u32, self.later(Event::Wake))
                });
            }
            Command::SetInterval(on) => self.set_interval(on),
            Command::ArmIdle => {
                // One drain after another re-arms this at each: moving the deadline is cheaper
                // than a new timer each time.
                self.idle_until
                    .set(js_sys::Date::now() + f64::from(LEASE_IDLE_MS));
                if self.idle.borrow().is_none() {
                    self.idle_timer(LEASE_IDLE_MS);
                }
            }
            Command::Release => {
                let (db, me) = (self.db.clone(), self.me.clone());
                self.spawn(async move {
                    // Acknowledged pushes leave storage before the lock goes, so no tab reads
                    // them back and pushes them again. Closing commits them itself and lets the
                    // lock go after that (see `closed`).
                    let closing = db.is_closing();
                    if !closing {
                        let _ = db.flush().await;
                    }
                    if let Some(rt) = me.upgrade() {
                        if !closing {
                            rt.lock.borrow_mut().take();
                        }
                        rt.feed(Event::Released);
                    }
                });
            }
            Command::Settle => self.settle(u64::MAX),
        }
    }

    fn set_interval(&self, on: bool) {
        let tick = self.later(Event::Tick);
        *self.interval.borrow_mut() = on.then(|| Interval::new(self.interval_ms.get(), tick));
    }

    /// Resolves the waiters served by drain `round` (all of them for `u64::MAX`).
    fn settle(&self, round: u64) {
        let done: Vec<Function> = {
            let mut waiters = self.waiters.borrow_mut();
            let (done, wait): (Vec<_>, Vec<_>) = waiters.drain(..).partition(|(r, _)| *r <= round);
            *waiters = wait;
            done.into_iter().map(|(_, f)| f).collect()
        };
        for f in done {
            let _ = f.call0(&JsValue::NULL);
        }
    }

    // ------------------------------------------------------------ other tabs and listeners
    /// Another tab announced commit `seq`: catch up (one catch-up at a time), then, if the loop
    /// runs, look at the outbox.
    fn heard(&self, seq: u64) {
        if self.ended.get() || seq <= self.db.seq() {
            return;
        }
        if self.catching_up.replace(true) {
            self.catch_up_again.set(true);
            return;
        }
        let (db, me) = (self.db.clone(), self.me.clone());
        self.spawn(async move {
            loop {
                if let Some(rt) = me.upgrade() {
                    rt.catch_up_again.set(false);
                }
                let _ = db.catch_up().await;
                match me.upgrade() {
                    Some(rt) if rt.catch_up_again.get() && !rt.ended.get() => continue,
                    Some(rt) => {
                        rt.catching_up.set(false);
                        rt.feed(Event::Tick);
                        break;
                    }
                    None => break,
                }
            }
        });
    }

    /// The database reports a change (of status, and of these models' rows).
    fn changed(&self, models: &[String]) {
        self.listeners.note_changed(models);
        if self.delivery_queued.replace(true) {
            return;
        }
        let me = self.me.clone();
        self.spawn(async move {
            let Some(rt) = me.upgrade() else { return };
            rt.delivery_queued.set(false);
            if rt.ended.get() {
                return;
            }
            if let Some(ch) = rt.channel.borrow().clone() {
                let db = rt.db.clone();
                ch.announce(move || db.seq());
            }
            rt.listeners.deliver(|model| rt.status(model).ok());
            rt.check_confirmations();
            rt.deliver_live().await;
        });
    }

    /// Brings the live queries up to date and calls back those whose answer changed. One refresh
    /// at a time: a change meanwhile runs another after it.
    async fn deliver_live(&self) {
        let refused = std::mem::take(&mut *self.live_refused.borrow_mut());
        for (id, e) in refused {
            self.listeners.live_answer(id, Err(e));
            self.listeners.remove(id);
        }
        if !self.db.live_due() {
            return;
        }
        if self.live_busy.replace(true) {
            self.live_again.set(true);
            return;
        }
        loop {
            self.live_again.set(false);
            let answers = self.db.live_refresh().await;
            if self.ended.get() {
                break;
            }
            for (id, answer) in answers {
                self.listeners
                    .live_answer(id, answer.map_err(crate::bindings::js_error));
            }
            if !self.live_again.get() {
                break;
            }
        }
        self.live_busy.set(false);
    }

    /// Opens a live query on `model`: `on_rows(json)` hears its first answer and every changed
    /// one, `on_error(error)` why it could not be answered (an invalid query: then it is closed).
    /// Returns the id to close it with [`Runtime::unsubscribe`].
    pub fn live(
        &self,
        model: &str,
        query: crate::Result<Option<serde_json::Value>>,
        on_rows: Function,
        on_error: Function,
    ) -> u32 {
        let id = self.listeners.on_live(on_rows, on_error);
        let opened = query.and_then(|q| self.db.live_add(id, model, q.as_ref()));
        if let Err(e) = opened {
            self.live_refused
                .borrow_mut()
                .push((id, crate::bindings::js_error(e)));
        }
        self.changed(&[]);
        id
    }

    pub fn status(&self, model: &str) -> crate::Result<JsValue> {
        let status = self.db.status(model)?;
        Ok(self.listeners.snapshot(model, status))
    }

    pub fn subscribe(&self, model: &str, f: Function) -> crate::Result<u32> {
        let current = self.status(model)?;
        Ok(self.listeners.subscribe(model, f, current))
    }

    pub fn on_change(&self, f: Function) -> u32 {
        self.listeners.on_change(f)
    }

    pub fn unsubscribe(&self, id: u32) {
        self.listeners.remove(id);
        self.db.live_remove(id);
    }

    // ------------------------------------------------------------ the end
    /// `close()` was called: the loop and listeners stop now; a drain in flight ends at its next
    /// step; the lock goes once storage is released (see [`Runtime::closed`]).
    pub fn closing(&self) {
        if self.ended.get() {
            return;
        }
        self.feed(Event::Close);
        self.network.borrow_mut().take();
        self.listeners.clear();
        self.settle(u64::MAX);
        let waiting = std::mem::take(&mut *self.confirmations.borrow_mut());
        for (_, _, reject) in waiting {
            let _ = reject.call1(
                &JsValue::NULL,
                &crate::bindings::js_error(crate::Error::Closed),
            );
        }
    }

    /// Storage is released: let the lock go, tell the other tabs the last commit, drop the rest.
    pub fn closed(&self) {
        if let Some(ch) = self.channel.borrow().as_ref() {
            ch.post(self.db.seq());
        }
        self.end();
    }

    /// Drops everything this runtime handed to the browser (after close, or a trap).
    pub fn end(&self) {
        self.ended.set(true);
        self.interval.borrow_mut().take();
        self.wake.borrow_mut().take();
        self.idle.borrow_mut().take();
        self.lock.borrow_mut().take();
        self.network.borrow_mut().take();
        self.channel.borrow_mut().take();
        self.listeners.clear();
        self.waiters.borrow_mut().clear();
        self.confirmations.borrow_mut().clear();
    }
}
