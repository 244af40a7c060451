//! Connectivity: the window's `online`/`offline` events and `navigator.onLine`, or an app's
//! detector `{ isOnline(): boolean, subscribe(listener): unsubscribe }`, behind one type. The
//! listeners are owned here and removed when it is dropped.

use super::hooks::message_of;
use js_sys::{Function, Reflect};
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

pub enum Network {
    Window {
        window: web_sys::Window,
        on: Closure<dyn FnMut()>,
        off: Closure<dyn FnMut()>,
    },
    Custom {
        detector: JsValue,
        unsubscribe: Option<Function>,
        _listener: Closure<dyn FnMut(JsValue)>,
    },
    /// No window (a worker without events, Node): always online.
    Nowhere,
}

impl Network {
    /// Listens to `detector`, or to the window when it is `undefined`/`null`; calls `changed` with
    /// the new state. Fails if the detector's `subscribe` throws.
    pub fn listen(detector: &JsValue, changed: Rc<dyn Fn(bool)>) -> Result<Network, String> {
        if detector.is_undefined() || detector.is_null() {
            return Ok(Self::window(changed));
        }
        let d = detector.clone();
        let on_change = changed.clone();
        let listener = Closure::<dyn FnMut(JsValue)>::new(move |v: JsValue| {
            on_change(v.as_bool().unwrap_or_else(|| custom_online(&d)));
        });
        let subscribe: Function = Reflect::get(detector, &JsValue::from_str("subscribe"))
            .ok()
            .and_then(|f| f.dyn_into().ok())
            .ok_or("networkDetector.subscribe is not a function")?;
        let unsubscribe = subscribe
            .call1(detector, listener.as_ref())
            .map_err(|e| format!("networkDetector.subscribe failed: {}", message_of(&e)))?
            .dyn_into::<Function>()
            .ok();
        Ok(Network::Custom {
            detector: detector.clone(),
            unsubscribe,
            _listener: listener,
        })
    }

    fn window(changed: Rc<dyn Fn(bool)>) -> Network {
        let Some(window) = web_sys::window() else {
            return Network::Nowhere;
        };
        let up = changed.clone();
        let on = Closure::<dyn FnMut()>::new(move || up(true));
        let off = Closure::<dyn FnMut()>::new(move || changed(false));
        let _ = window.add_event_listener_with_callback("online", on.as_ref().unchecked_ref());
        let _ = window.add_event_listener_with_callback("offline", off.as_ref().unchecked_ref());
        Network::Window { window, on, off }
    }

    pub fn is_online(&self) -> bool {
        match self {
            Network::Window { window, .. } => window.navigator().on_line(),
            Network::Custom { detector, .. } => custom_online(detector),
            Network::Nowhere => true,
        }
    }
}

/// `detector.isOnline()`; a detector that throws or answers something else counts as online, so
/// a broken detector never silently stops every push.
pub fn custom_online(detector: &JsValue) -> bool {
    Reflect::get(detector, &JsValue::from_str("isOnline"))
        .ok()
        .and_then(|f| f.dyn_into::<Function>().ok())
        .and_then(|f| f.call0(detector).ok())
        .and_then(|v| v.as_bool())
        .unwrap_or(true)
}

impl Drop for Network {
    fn drop(&mut self) {
        match self {
            Network::Window { window, on, off } => {
                let _ = window
                    .remove_event_listener_with_callback("online", on.as_ref().unchecked_ref());
                let _ = window
                    .remove_event_listener_with_callback("offline", off.as_ref().unchecked_ref());
            }
            Network::Custom { unsubscribe, .. } => {
                if let Some(f) = unsubscribe.take() {
                    let _ = f.call0(&JsValue::NULL);
                }
            }
            Network::Nowhere => {}
        }
    }
}
