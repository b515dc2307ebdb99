//! The state word of a [`Waiter`](super::Waiter): `WAITING`, `ABORTED` or
//! `SELECTED + arm`, left exactly once per round (waiter rule 1). A waiter
//! in several queues (`multi`, a `select`) changes it by compare-and-swap;
//! one in a single queue only under that queue's lock, with plain stores.
//!
//! Model checked by `tests/loom.rs` (it includes this file): it uses
//! nothing of the crate but `crate::loom`.

use crate::loom::{AtomicUsize, Ordering};

const WAITING: usize = 0;
const ABORTED: usize = 1;
const SELECTED: usize = 2;

pub(crate) struct WaiterState {
    state: AtomicUsize,
    /// Registered in several queues at once (a `select`).
    multi: bool,
}

impl WaiterState {
    #[inline]
    pub(crate) fn new(multi: bool) -> WaiterState {
        WaiterState {
            state: AtomicUsize::new(WAITING),
            multi,
        }
    }

    /// Starts a new round. Only when no queue holds an entry of it.
    pub(crate) fn reset(&self) {
        self.state.store(WAITING, Ordering::Relaxed);
    }

    /// The arm it was selected for, if any.
    #[inline]
    pub(crate) fn selected(&self) -> Option<usize> {
        let s = self.state.load(Ordering::Acquire);
        (s >= SELECTED).then(|| s - SELECTED)
    }

    /// Whether it still waits (not yet selected nor aborted).
    pub(crate) fn is_waiting(&self) -> bool {
        self.state.load(Ordering::Acquire) == WAITING
    }

    /// Gives up waiting. `Err(arm)` if a waker selected it first: that arm's
    /// operation completed and must be honoured. A single-queue waiter
    /// must hold its queue's lock.
    #[inline]
    pub(crate) fn abort(&self) -> Result<(), usize> {
        let r = if self.multi {
            self.state
                .compare_exchange(WAITING, ABORTED, Ordering::AcqRel, Ordering::Acquire)
        } else {
            match self.state.load(Ordering::Relaxed) {
                WAITING => {
                    self.state.store(ABORTED, Ordering::Relaxed);
                    Ok(WAITING)
                }
                s => Err(s),
            }
        };
        match r {
            Ok(_) | Err(ABORTED) => Ok(()),
            Err(s) => Err(s - SELECTED),
        }
    }

    /// Selects it for `arm`, after the hand-over; `false` if it no longer
    /// waits. A single-queue waiter: under its queue's lock.
    #[inline]
    pub(crate) fn try_select(&self, arm: usize) -> bool {
        if self.multi {
            self.state
                .compare_exchange(WAITING, SELECTED + arm, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        } else if self.state.load(Ordering::Relaxed) == WAITING {
            // Under the queue's lock; Release publishes the hand-over.
            self.state.store(SELECTED + arm, Ordering::Release);
            true
        } else {
            false
        }
    }
}
