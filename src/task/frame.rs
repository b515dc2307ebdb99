//! The per-context frame slot: where each execution context — a task, or a
//! thread outside any task — names the [`Frame`] it executes innermost.
//!
//! The layer above (generators) points the slot at the frame of the
//! generator a context resumes, and restores it when that resume ends; the
//! task layer only gives every context its slot and counts task-local
//! borrows on the frame that opened them. A task's slot lives in its
//! thread-owned state, so it switches with the task at no cost.
#![allow(unsafe_code)]

use std::cell::Cell;
use std::ptr;

/// What the task layer knows of a generator executing in a context: the
/// task-local borrows open in its body (the generator refuses to suspend
/// while any is open). The generator layer embeds it in its own record.
#[derive(Debug, Default)]
pub(crate) struct Frame {
    pub(crate) local_borrows: Cell<u32>,
}

thread_local! {
    /// The slot of code outside any task on this thread.
    static THREAD_SLOT: Cell<*const Frame> = const { Cell::new(ptr::null()) };
}

/// The caller's context slot: the running task's, or the thread's. Valid
/// while that task (or thread) lives.
#[inline(always)]
pub(crate) fn slot() -> *mut *const Frame {
    match super::park::current_frame_slot() {
        Some(slot) => slot,
        None => THREAD_SLOT.with(Cell::as_ptr),
    }
}

/// Called when a runtime starts on this thread: its code outside tasks is a
/// new context, not the body of a generator that started the runtime.
/// Returns what [`leave_runtime`] restores.
pub(crate) fn enter_runtime() -> *const Frame {
    THREAD_SLOT.with(|c| c.replace(ptr::null()))
}

/// Restores what [`enter_runtime`] returned.
pub(crate) fn leave_runtime(prev: *const Frame) {
    THREAD_SLOT.with(|c| c.set(prev));
}

/// A task-local borrow, counted on the frame whose body opened it (if any)
/// for as long as it is open.
pub(crate) struct LocalBorrow(*const Frame);

impl LocalBorrow {
    #[inline]
    pub(crate) fn open() -> LocalBorrow {
        // SAFETY: the caller's context slot, read at once.
        let running = unsafe { *slot() };
        // SAFETY: a non-null slot names the frame this context is
        // executing; it stays in place while its resume runs.
        if let Some(frame) = unsafe { running.as_ref() } {
            frame.local_borrows.set(frame.local_borrows.get() + 1);
        }
        LocalBorrow(running)
    }
}

impl Drop for LocalBorrow {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the borrow is opened and closed within one frame on that
        // generator's stack, and the generator cannot suspend while the
        // count is non-zero, so the same resume (or drop) still runs and
        // the frame is still in place.
        if let Some(frame) = unsafe { self.0.as_ref() } {
            frame.local_borrows.set(frame.local_borrows.get() - 1);
        }
    }
}
