//! The join state of a task: who owns its result slot, and who wakes whom.
//!
//! Three bits: `COMPLETE` (the task stored its result), `DETACHED` (its
//! `JoinHandle` is gone), `WAITER` (a joiner registered an unparker).
//!
//! # Rules
//!
//! 1. Each bit is only ever raised (`fetch_or`), never cleared: the word
//!    only moves forward, so a reader that saw a bit may rely on it for
//!    good.
//! 2. The task raises `COMPLETE` once, on its own thread, after writing
//!    the result slot (`AcqRel`: whoever sees `COMPLETE` may read the
//!    slot).
//! 3. The handle raises `DETACHED` once, when it is dropped — and not at
//!    all if it already saw `COMPLETE` (it owns the slot then).
//! 4. Whichever of `COMPLETE` and `DETACHED` comes second owns the slot and
//!    drops the result: the task if the handle was gone (`Detached`), the
//!    handle if the task had finished (`detach` returns `true`).
//! 5. A joiner stores its unparker under the mutex *before* raising
//!    `WAITER`; the task takes it under the mutex *after* raising
//!    `COMPLETE`. So a joiner that raised `WAITER` before `COMPLETE` is
//!    always woken, and one that raised it after sees `COMPLETE` in the
//!    value `fetch_or` returns and does not wait. A joiner may register
//!    again (a spurious wakeup); the newest unparker wins.
//!
//! ```text
//!              set_waiter                   (again: the newest one wins)
//!   {} ─────────────────────▶ {W} ◀──┐
//!   │ │                        │ │ ──┘
//!   │ │ complete               │ │ complete: take the unparker, wake it
//!   │ ▼                        │ ▼
//!   │ {C} ─── set_waiter ──────┼─▶ {C,W}   (set_waiter returns false: no wait)
//!   │  └──────────┬────────────┼────┘
//!   │             │ detach     │           (no bit raised: the handle owns
//!   │             ▼            │            the slot and drops the result)
//!   │ detach                   │ detach
//!   ▼                          ▼
//!  {D}                       {D,W}
//!   └──────── complete ────────┴──▶ {C,D} / {C,D,W}
//!              (Completion::Detached: the task drops the result)
//! ```
//!
//! Model checked by `tests/loom.rs` (it includes this file): it uses
//! nothing of the crate but `crate::loom`.

use crate::loom::{AtomicU8, Mutex, Ordering};

const COMPLETE: u8 = 1;
const DETACHED: u8 = 2;
const WAITER: u8 = 4;

pub(crate) struct JoinState<W> {
    /// `COMPLETE | DETACHED | WAITER` bits.
    bits: AtomicU8,
    waiter: Mutex<Option<W>>,
}

/// What the task must do after it stored its result.
pub(crate) enum Completion<W> {
    /// The handle is gone: drop the result now.
    Detached,
    /// Wake the joiner, if it registered one.
    Wake(Option<W>),
}

impl<W> JoinState<W> {
    pub(crate) fn new() -> Self {
        JoinState {
            bits: AtomicU8::new(0),
            waiter: Mutex::new(None),
        }
    }

    /// Whether the task stored its result (`Acquire`: the slot may be read).
    pub(crate) fn is_complete(&self) -> bool {
        self.bits.load(Ordering::Acquire) & COMPLETE != 0
    }

    /// Whether the handle was dropped before the task completed (nobody
    /// will take the result).
    pub(crate) fn is_detached(&self) -> bool {
        self.bits.load(Ordering::Acquire) & DETACHED != 0
    }

    /// Registers `waiter` to be unparked when the task completes. Returns
    /// `false` (and will wake nobody) if it has already completed.
    pub(crate) fn set_waiter(&self, waiter: W) -> bool {
        *self.waiter.lock().unwrap_or_else(|e| e.into_inner()) = Some(waiter);
        self.bits.fetch_or(WAITER, Ordering::AcqRel) & COMPLETE == 0
    }

    /// The task stored its result (on its own thread, once).
    pub(crate) fn complete(&self) -> Completion<W> {
        let prev = self.bits.fetch_or(COMPLETE, Ordering::AcqRel);
        if prev & DETACHED != 0 {
            Completion::Detached
        } else if prev & WAITER != 0 {
            Completion::Wake(self.waiter.lock().unwrap_or_else(|e| e.into_inner()).take())
        } else {
            Completion::Wake(None)
        }
    }

    /// The handle is dropped. `true`: the task has completed, so the caller
    /// owns the slot and drops the result.
    pub(crate) fn detach(&self) -> bool {
        // Done already: no need to tell the task we left.
        self.is_complete() || self.bits.fetch_or(DETACHED, Ordering::AcqRel) & COMPLETE != 0
    }
}
