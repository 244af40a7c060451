//! Telling the wrapper that the module is about to trap.
//!
//! A WebAssembly trap (a panic under `panic = "abort"`, an allocation that cannot be satisfied)
//! unwinds out of the module without settling the promise of the call that caused it. So that
//! the wrapper can reject that database's calls and let go of its locks, two hooks report it
//! first, through the JS function given to `setFatalHandler`: the panic hook, and a global
//! allocator that notices a failed allocation before Rust aborts on it. The report names the
//! engine whose work was running ([`CURRENT`]), or 0 when that is unknown.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use wasm_bindgen::prelude::*;

thread_local! {
    static HANDLER: RefCell<Option<js_sys::Function>> = const { RefCell::new(None) };
    /// The engine whose code runs right now (0: none).
    static CURRENT: Cell<u32> = const { Cell::new(0) };
}

/// Installs the wrapper's `handler(message, engineId)`. The handler must not call back into the
/// module synchronously (it runs just before a trap).
pub fn set_handler(handler: js_sys::Function) {
    HANDLER.with(|h| *h.borrow_mut() = Some(handler));
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        // Only the location: formatting the panic's message would pull every panic message's
        // formatting code into the module.
        std::panic::set_hook(Box::new(|info| {
            let at = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            report(&format!("micro-sync engine panicked{at}"));
        }));
    });
}

fn report(message: &str) {
    let id = CURRENT.with(Cell::get);
    // `try_with`/`try_borrow`: never panic here, whatever state the trap left.
    let _ = HANDLER.try_with(|h| {
        if let Ok(h) = h.try_borrow() {
            if let Some(f) = h.as_ref() {
                let _ = f.call2(
                    &JsValue::NULL,
                    &JsValue::from_str(message),
                    &JsValue::from(id),
                );
            }
        }
    });
}

/// Runs `f` as engine `id`'s code (for sync exports).
pub fn as_engine<T>(id: u32, f: impl FnOnce() -> T) -> T {
    CURRENT.with(|c| c.set(id));
    let out = f();
    CURRENT.with(|c| c.set(0));
    out
}

/// A future whose polls run as engine `id`'s code.
pub struct Tagged<F: ?Sized> {
    pub id: u32,
    pub fut: Pin<Box<F>>,
}

impl<F: Future + ?Sized> Future for Tagged<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let id = self.id;
        as_engine(id, || self.fut.as_mut().poll(cx))
    }
}

/// The system allocator, reporting a failed allocation before Rust aborts on it (which traps
/// without running the panic hook).
pub struct ReportingAllocator;

unsafe impl GlobalAlloc for ReportingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if p.is_null() {
            out_of_memory();
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if p.is_null() {
            out_of_memory();
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if p.is_null() {
            out_of_memory();
        }
        p
    }
}

#[cold]
fn out_of_memory() {
    // No formatting: nothing here may allocate.
    report("micro-sync engine ran out of WebAssembly memory");
}

#[global_allocator]
static ALLOCATOR: ReportingAllocator = ReportingAllocator;
