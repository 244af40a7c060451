//! Telling the other tabs of one database that storage changed: a BroadcastChannel carrying
//! only the new commit number `{ seq }`. A message is a hint; what changed is read from storage's
//! change log, so a lost or forged message cannot make a tab skip or invent a change.

use gloo_timers::callback::Timeout;
use js_sys::{Object, Reflect};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use wasm_bindgen::prelude::*;

/// Announcements go out at most this often (ms); the first one at once.
const ANNOUNCE_MS: f64 = 8.0;

pub struct Channel {
    channel: web_sys::BroadcastChannel,
    _onmessage: Closure<dyn FnMut(web_sys::MessageEvent)>,
    /// The number last announced, and when.
    announced: Cell<u64>,
    last_at: Cell<f64>,
    timer: RefCell<Option<Timeout>>,
}

impl Channel {
    /// Opens the channel of database `name`; `heard(seq)` is called for each well-formed message
    /// (anything else on the channel is ignored). `None` where BroadcastChannel is missing.
    pub fn open(name: &str, seq: u64, heard: Rc<dyn Fn(u64)>) -> Option<Rc<Channel>> {
        let channel = web_sys::BroadcastChannel::new(&format!("micro-sync:{name}")).ok()?;
        let onmessage =
            Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |e: web_sys::MessageEvent| {
                let seq = Reflect::get(&e.data(), &JsValue::from_str("seq"))
                    .ok()
                    .and_then(|v| v.as_f64());
                if let Some(s) = seq {
                    if s >= 0.0 && s.fract() == 0.0 && s <= 9_007_199_254_740_991.0 {
                        heard(s as u64);
                    }
                }
            });
        channel.set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
        Some(Rc::new(Channel {
            channel,
            _onmessage: onmessage,
            announced: Cell::new(seq),
            last_at: Cell::new(f64::NEG_INFINITY),
            timer: RefCell::new(None),
        }))
    }

    /// Announces the latest number `seq()` gives, now or at the end of the current throttle window.
    pub fn announce(self: &Rc<Self>, seq: impl Fn() -> u64 + 'static) {
        if self.timer.borrow().is_some() || seq() <= self.announced.get() {
            return;
        }
        let wait = (self.last_at.get() + ANNOUNCE_MS - js_sys::Date::now()).max(0.0);
        let me = Rc::downgrade(self);
        let timer = Timeout::new(wait as u32, move || {
            // On a later microtask, so the timer is not dropped from inside its own callback.
            wasm_bindgen_futures::spawn_local(async move {
                if let Some(me) = me.upgrade() {
                    me.timer.borrow_mut().take();
                    me.post(seq());
                }
            });
        });
        *self.timer.borrow_mut() = Some(timer);
    }

    /// Posts `seq` now if it is new (closing: nothing may wait for a timer).
    pub fn post(&self, seq: u64) {
        if seq <= self.announced.get() {
            return;
        }
        self.announced.set(seq);
        self.last_at.set(js_sys::Date::now());
        let msg = Object::new();
        let _ = Reflect::set(
            &msg,
            &JsValue::from_str("seq"),
            &JsValue::from_f64(seq as f64),
        );
        let _ = self.channel.post_message(&msg);
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        self.channel.set_onmessage(None);
        self.channel.close();
    }
}
