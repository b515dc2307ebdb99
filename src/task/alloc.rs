//! Task memory: one allocation per task, counted by hand and recycled
//! through a per-thread free list.
//!
//! `malloc`/`free` of the task block was about a quarter of the instructions
//! of a spawn + join (glibc's per-size cache holds 7 blocks, and a batch of
//! spawns overflows it), so finished task blocks are kept for the next
//! spawn. A block freed on another thread (its last reference dropped there)
//! goes to that thread's list: memory is memory.
//!
//! [`TaskRef`] is the counted, type-erased reference (an `Arc<dyn …>` with a
//! thin pointer and a hand-made vtable): the scheduler's registry, timers,
//! wakers and `JoinHandle`s each hold one.
#![allow(unsafe_code)]

use std::alloc::{self, Layout};
use std::cell::RefCell;
use std::ptr::NonNull;
use std::sync::atomic::{Ordering, fence};

use super::core::Core;
use crate::task::Header;

/// Blocks kept per layout and thread; more are returned to the allocator.
const MAX_FREE: usize = 4096;
/// Bytes kept per layout and thread: a block holds the task's closure until
/// it first runs, so a closure that captured a big value makes big blocks,
/// of which fewer are kept.
const MAX_FREE_BYTES: usize = 1 << 20;

struct FreeLists(Vec<(Layout, Vec<NonNull<u8>>)>);

impl Drop for FreeLists {
    fn drop(&mut self) {
        for (layout, blocks) in self.0.drain(..) {
            for b in blocks {
                // SAFETY: every block on a list was allocated with `layout`
                // by `allocate` and is not in use.
                unsafe { alloc::dealloc(b.as_ptr(), layout) };
            }
        }
    }
}

thread_local! {
    static FREE: RefCell<FreeLists> = const { RefCell::new(FreeLists(Vec::new())) };
}

/// Allocates a block for `layout` (non-zero size), recycled if possible.
pub(crate) fn allocate(layout: Layout) -> NonNull<u8> {
    let recycled = FREE
        .try_with(|f| {
            let mut f = f.borrow_mut();
            f.0.iter_mut()
                .find(|(l, _)| *l == layout)
                .and_then(|(_, blocks)| blocks.pop())
        })
        .ok()
        .flatten();
    if let Some(b) = recycled {
        return b;
    }
    // SAFETY: task layouts are never zero-sized (they hold a header).
    let p = unsafe { alloc::alloc(layout) };
    NonNull::new(p).unwrap_or_else(|| alloc::handle_alloc_error(layout))
}

/// Gives back a block made by [`allocate`] with the same `layout`.
///
/// # Safety
///
/// `block` came from `allocate(layout)` and is no longer used.
pub(crate) unsafe fn release(block: NonNull<u8>, layout: Layout) {
    let kept = FREE
        .try_with(|f| {
            let mut f = f.borrow_mut();
            let i = match f.0.iter().position(|(l, _)| *l == layout) {
                Some(i) => i,
                None => {
                    f.0.push((layout, Vec::new()));
                    f.0.len() - 1
                }
            };
            let blocks = &mut f.0[i].1;
            if blocks.len() < MAX_FREE.min(MAX_FREE_BYTES / layout.size()) {
                blocks.push(block);
                true
            } else {
                false
            }
        })
        .unwrap_or(false);
    if !kept {
        // SAFETY: per the contract.
        unsafe { alloc::dealloc(block.as_ptr(), layout) };
    }
}

/// What the scheduler and a `TaskRef` need to know about the task's result
/// and closure types.
pub(crate) struct Vtable {
    /// Completes the task as cancelled unless it already completed.
    pub(crate) complete_cancelled: unsafe fn(NonNull<Core>),
    /// Completes a task that could not start (no stack for its first run)
    /// with that error.
    pub(crate) complete_not_started: unsafe fn(NonNull<Core>, crate::error::Error),
    /// Drops the block's contents and releases it (last reference gone).
    pub(crate) destroy: unsafe fn(NonNull<Core>),
    /// Makes the task's coroutine on `stack` from its closure (first run).
    pub(crate) start: unsafe fn(NonNull<Core>, crate::stack::PooledStack) -> super::core::Coro,
    /// Drops the closure of a task that never ran.
    pub(crate) drop_body: unsafe fn(NonNull<Core>),
}

/// A counted reference to a task, usable from any thread to wake it.
///
/// # Invariant
///
/// The pointer is to the `Core` at offset 0 of a live task block whose
/// header's `refs` counts this reference.
pub(crate) struct TaskRef(NonNull<Core>);

// SAFETY: a `TaskRef` only gives access to the task's thread-safe `Header`
// (the thread-owned parts of `Core` are reached by the owning scheduler
// alone), and the count is atomic. The task's `T` is dropped by `destroy`
// only as `JoinHandle`/`Packet` rules allow (see `Packet`'s `Sync` impl).
unsafe impl Send for TaskRef {}
// SAFETY: as above.
unsafe impl Sync for TaskRef {}

impl TaskRef {
    /// Adopts a reference already counted in the header.
    ///
    /// # Safety
    ///
    /// `core` is a live task block and one of its counts is handed over.
    pub(crate) unsafe fn from_counted(core: NonNull<Core>) -> TaskRef {
        TaskRef(core)
    }

    /// Makes a new counted reference from a pointer to a live task.
    ///
    /// # Safety
    ///
    /// `core` is a live task block (someone else holds a count on it).
    pub(crate) unsafe fn clone_raw(core: NonNull<Core>) -> TaskRef {
        // SAFETY: live per the contract.
        unsafe { core.as_ref() }
            .header
            .refs
            .fetch_add(1, Ordering::Relaxed);
        TaskRef(core)
    }

    pub(crate) fn core(&self) -> &Core {
        // SAFETY: live while this reference exists (invariant).
        unsafe { self.0.as_ref() }
    }

    pub(crate) fn header(&self) -> &Header {
        &self.core().header
    }

    pub(crate) fn as_ptr(&self) -> *const Core {
        self.0.as_ptr()
    }

    pub(crate) fn complete_cancelled(&self) {
        // SAFETY: the vtable belongs to this block's type.
        unsafe { (self.header().vtable.complete_cancelled)(self.0) }
    }
}

impl Clone for TaskRef {
    fn clone(&self) -> TaskRef {
        // Relaxed, as `Arc`: a new count is made from an existing one.
        self.header().refs.fetch_add(1, Ordering::Relaxed);
        TaskRef(self.0)
    }
}

impl Drop for TaskRef {
    fn drop(&mut self) {
        if self.header().refs.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        // As `Arc`: every use of the block happens before its destruction.
        fence(Ordering::Acquire);
        // SAFETY: this was the last reference; the vtable matches the block.
        unsafe { (self.header().vtable.destroy)(self.0) }
    }
}
