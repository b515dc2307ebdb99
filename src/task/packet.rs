//! The task block: one allocation holding the scheduler's `Core`, the
//! typed result slot and, until the first run, the task's closure — with
//! the vtable that finishes and frees it for its types.
#![allow(unsafe_code)]

use std::alloc::Layout;
use std::cell::UnsafeCell;
use std::io::Write;
use std::ptr::NonNull;

use super::core::Core;
use super::join_state::Completion;
use super::park::Unparker;
use super::{JoinHandle, TaskRef, Vtable, alloc};
use crate::error::JoinError;

/// A whole task in one allocation: the scheduler's `Core` (header, coroutine,
/// local state) first, then the typed result. `repr(C)` keeps `core` at
/// offset 0, so a `Core` pointer is also a pointer to the block.
#[repr(C)]
pub(crate) struct Packet<T> {
    pub(crate) core: Core,
    result: UnsafeCell<Option<Result<T, JoinError>>>,
}

// SAFETY: the result slot is written once, by the task on its own thread,
// before COMPLETE is set (Release), and read only after observing COMPLETE
// (Acquire) by the single owner of the join interest (the JoinHandle, or the
// task itself when DETACHED was already set). A `T` is only ever dropped or
// handed out on the thread that holds the JoinHandle or on the task's own
// thread; for `T: !Send` the JoinHandle is `!Send`, so both are the task's
// thread. `Core` upholds its own thread rules (see `super::core::Core`).
unsafe impl<T> Sync for Packet<T> {}
// SAFETY: as above.
unsafe impl<T> Send for Packet<T> {}

/// A task block as allocated: the packet, then the task's closure, kept
/// there until the task first runs — only then are its coroutine made and
/// its stack taken (see `stack::take`).
#[repr(C)]
pub(crate) struct Launch<T, F> {
    packet: Packet<T>,
    body: UnsafeCell<Option<F>>,
}

impl<T, F: FnOnce() -> T> Launch<T, F> {
    const VTABLE: Vtable = Vtable {
        complete_cancelled: Packet::<T>::vt_complete_cancelled,
        complete_not_started: Packet::<T>::vt_complete_not_started,
        destroy: Self::vt_destroy,
        start: super::core::start_task::<T, F>,
        drop_body: Self::vt_drop_body,
    };

    /// Takes the closure, the first time the task runs.
    ///
    /// # Safety
    ///
    /// `core` is the core of a live block of this type, on the task's
    /// runtime thread (which alone touches the closure).
    pub(crate) unsafe fn take_body(core: NonNull<Core>) -> Option<F> {
        // SAFETY: per the contract; `core` is at offset 0 of the block.
        unsafe { (*core.cast::<Launch<T, F>>().as_ref().body.get()).take() }
    }

    unsafe fn vt_drop_body(core: NonNull<Core>) {
        // SAFETY: the vtable is only installed in blocks of this type, and
        // the scheduler calls it on the task's thread.
        drop(unsafe { Self::take_body(core) });
    }

    unsafe fn vt_destroy(core: NonNull<Core>) {
        let block = core.cast::<Launch<T, F>>();
        // SAFETY: the last reference is gone and the block is of this type.
        unsafe {
            block.drop_in_place();
            alloc::release(block.cast(), Layout::new::<Launch<T, F>>());
        }
    }
}

impl<T> Packet<T> {
    /// Puts a new task block for `body` in (recycled) memory, with two
    /// references: one for the scheduler's registry, one for the
    /// `JoinHandle`.
    ///
    /// `core` makes the core in place, given the block's vtable for its
    /// header (a task block is a few hundred bytes: built elsewhere and
    /// moved, it cost a copy per spawn).
    #[inline(always)]
    pub(crate) fn allocate<F: FnOnce() -> T>(
        core: impl FnOnce(&'static Vtable) -> Core,
        body: F,
    ) -> (TaskRef, JoinHandle<T>) {
        let block = alloc::allocate(Layout::new::<Launch<T, F>>()).cast::<Launch<T, F>>();
        // SAFETY: `block` is fresh memory of this layout.
        unsafe {
            block.write(Launch {
                packet: Packet {
                    core: core(&const { Launch::<T, F>::VTABLE }),
                    result: UnsafeCell::new(None),
                },
                body: UnsafeCell::new(Some(body)),
            })
        };
        let core = block.cast::<Core>();
        // SAFETY: the block is live and holds two counts, one for each.
        unsafe {
            (
                TaskRef::from_counted(core),
                JoinHandle::new(TaskRef::from_counted(core)),
            )
        }
    }

    /// The packet behind a task reference of this type.
    ///
    /// # Safety
    ///
    /// `task` is a block made by `Packet::<T>::allocate`.
    pub(crate) unsafe fn of(task: &TaskRef) -> &Packet<T> {
        // SAFETY: `core` is at offset 0 of the `repr(C)` packet.
        unsafe { &*task.as_ptr().cast::<Packet<T>>() }
    }

    unsafe fn vt_complete_cancelled(core: NonNull<Core>) {
        // SAFETY: the vtable is only installed in blocks of this type.
        let packet = unsafe { core.cast::<Packet<T>>().as_ref() };
        if !packet.core.header.is_complete() {
            packet.complete(Err(JoinError::cancelled(packet.core.header.describe())));
        }
    }

    unsafe fn vt_complete_not_started(core: NonNull<Core>, error: crate::error::Error) {
        // SAFETY: the vtable is only installed in blocks of this type.
        let packet = unsafe { core.cast::<Packet<T>>().as_ref() };
        if packet.core.header.is_complete() {
            return;
        }
        let describe = packet.core.header.describe();
        if packet.is_detached() {
            // Nobody will read the error: say it here.
            let _ = writeln!(
                std::io::stderr(),
                "corio: {describe} could not start: {error}"
            );
        }
        packet.complete(Err(JoinError::not_started(describe, error)));
    }

    /// Whether the `JoinHandle` is gone (nobody will take the result).
    pub(crate) fn is_detached(&self) -> bool {
        self.core.header.join.is_detached()
    }

    /// Stores the task's result and wakes its joiner. Runs once, on the
    /// task's thread. If the handle was already dropped, the result is
    /// dropped right here instead — under `catch_unwind`: this may run on
    /// the scheduler's stack, which a panic must not reach.
    pub(crate) fn complete(&self, result: Result<T, JoinError>) {
        // SAFETY: COMPLETE is not set yet, so nobody else reads the slot
        // (see the `Sync` impl).
        unsafe { *self.result.get() = Some(result) };
        match self.core.header.join.complete() {
            Completion::Detached => {
                // SAFETY: the handle is gone, so we own the slot again.
                let result = unsafe { (*self.result.get()).take() };
                super::core::drop_caught(&self.core.header, result, "its result");
            }
            // A waker is foreign code, which may panic.
            Completion::Wake(Some(w @ Unparker::Waker(_))) => {
                let woken =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || w.unpark()));
                if let Err(p) = woken {
                    super::core::report_caught(
                        &self.core.header,
                        "while waking the waker that awaits it",
                        p,
                    );
                }
            }
            Completion::Wake(Some(w)) => w.unpark(),
            Completion::Wake(None) => {}
        }
    }

    /// Takes the result. Only the join-interest owner calls it, after
    /// observing COMPLETE.
    pub(super) fn take_result(&self) -> Option<Result<T, JoinError>> {
        debug_assert!(self.core.header.is_complete());
        // SAFETY: COMPLETE was observed with Acquire; see the `Sync` impl.
        unsafe { (*self.result.get()).take() }
    }

    /// The handle is dropped: drop the result if it is there.
    pub(super) fn detach(&self) {
        if self.core.header.join.detach() {
            drop(self.take_result());
        }
    }
}
