//! The run queue of a worker: ready tasks in FIFO order, touched only by
//! the worker's own thread.
#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::ptr::NonNull;

use super::core::Core;

/// The run queue: tasks that are `Ready`, in FIFO order.
///
/// Not a `RefCell`: it is the hottest structure of the scheduler (a push and
/// a pop per yield), it is only touched by the scheduler's own thread, and
/// its methods never call out while borrowing, so borrows never overlap.
#[derive(Default)]
pub(crate) struct RunQueue(UnsafeCell<VecDeque<NonNull<Core>>>);

impl RunQueue {
    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut VecDeque<NonNull<Core>>) -> R) -> R {
        // SAFETY: see the type's docs: one thread, and the closures passed
        // below only call `VecDeque` methods.
        f(unsafe { &mut *self.0.get() })
    }

    #[inline]
    pub(crate) fn push(&self, core: NonNull<Core>) {
        self.with(|q| q.push_back(core))
    }

    #[inline]
    pub(crate) fn pop(&self) -> Option<NonNull<Core>> {
        self.with(|q| q.pop_front())
    }

    pub(crate) fn len(&self) -> usize {
        self.with(|q| q.len())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.with(|q| q.is_empty())
    }

    pub(crate) fn clear(&self) {
        self.with(|q| q.clear())
    }
}
