//! The inject queue: how a thread hands a woken task to a runtime thread
//! that may be about to sleep in its poller (rule 2 of the park/unpark
//! protocol, in `task::park`).
//!
//! Both flags live in one atomic word, changed only by read-modify-writes,
//! which are totally ordered: the producer raises `PENDING` and learns
//! whether `SLEEPING` was up (then it wakes the poller); the consumer raises
//! `SLEEPING` and learns whether `PENDING` was up (then it does not block).
//! Whichever of the two comes second sees the other's bit, so a wakeup is
//! never slept through. (Two flags with `SeqCst` stores and loads are
//! correct as well, but that argument needs the single total order of
//! `SeqCst`, which loom does not model; this one needs none.)
//!
//! Model checked by `tests/loom.rs` (it includes this file): it uses
//! nothing of the crate but `crate::loom`.

use crate::loom::{AtomicU8, Mutex, Ordering};

/// Something was pushed since the consumer last took.
const PENDING: u8 = 1;
/// The consumer is (about to be) blocked in its poller.
const SLEEPING: u8 = 2;

pub(crate) struct Inject<T> {
    queue: Mutex<Vec<T>>,
    /// `PENDING | SLEEPING`.
    state: AtomicU8,
}

impl<T> Inject<T> {
    pub(crate) fn new() -> Self {
        Inject {
            queue: Mutex::new(Vec::new()),
            state: AtomicU8::new(0),
        }
    }

    /// Queues `item`. `true`: the consumer may be asleep, wake its poller.
    pub(crate) fn push(&self, item: T) -> bool {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(item);
        // The queue's lock publishes the item; the word only says to look.
        self.state.fetch_or(PENDING, Ordering::AcqRel) & SLEEPING != 0
    }

    /// Queues every item of `items` under one lock; as [`push`](Self::push).
    pub(crate) fn push_all(&self, items: impl IntoIterator<Item = T>) -> bool {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(items);
        self.state.fetch_or(PENDING, Ordering::AcqRel) & SLEEPING != 0
    }

    /// Takes what was pushed, if the flag says anything was (one atomic
    /// instruction when nothing was: the consumer calls it at every poll).
    pub(crate) fn take(&self) -> Vec<T> {
        if self.state.fetch_and(!PENDING, Ordering::AcqRel) & PENDING == 0 {
            return Vec::new();
        }
        self.take_queued()
    }

    /// Takes whatever is queued, whatever the flag says.
    pub(crate) fn take_unflagged(&self) -> Vec<T> {
        self.state.fetch_and(!PENDING, Ordering::AcqRel);
        self.take_queued()
    }

    fn take_queued(&self) -> Vec<T> {
        std::mem::take(&mut *self.queue.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The consumer is about to block. `false`: something was pushed since
    /// its last take, so it must not block (it polls without waiting).
    pub(crate) fn sleep(&self) -> bool {
        self.state.fetch_or(SLEEPING, Ordering::AcqRel) & PENDING == 0
    }

    /// The consumer is back from its poller.
    pub(crate) fn awake(&self) {
        self.state.fetch_and(!SLEEPING, Ordering::AcqRel);
    }
}
