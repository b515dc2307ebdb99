//! Tasks: scheduled coroutines with an id, an optional name, a lifecycle
//! state, a result slot and a [`JoinHandle`].
//!
//! A task's memory is split by who may touch it:
//!
//! * the [`Header`] and result slot live in one `Arc` shared with the
//!   `JoinHandle` and with whoever may wake the task (any thread);
//! * the coroutine itself, its [`TaskState`] and its timing live in the
//!   scheduler of the thread that spawned it, and never leave that thread
//!   (a coroutine must not migrate: thread-locals would be read from the
//!   wrong thread).
#![allow(unsafe_code)]

mod builder;
mod join;
mod state;

use std::cell::UnsafeCell;
use std::fmt;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub use builder::Builder;
pub use join::JoinHandle;
pub use state::{Direction, IllegalTransition, Outcome, TaskState, Transition, WaitReason};

use crate::error::JoinError;
use crate::scheduler::{Core, Shared, Unparker};

/// A unique identifier of a task, never reused within a process.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct TaskId(NonZeroU64);

impl TaskId {
    fn next() -> TaskId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        TaskId(NonZeroU64::new(NEXT.fetch_add(1, Ordering::Relaxed)).expect("task ids overflowed"))
    }

    /// The id as a number.
    pub fn as_u64(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A handle to a task's identity, returned by [`current`](crate::current).
///
/// Like [`std::thread::Thread`], it names a task without owning it.
#[derive(Clone)]
pub struct Task {
    id: TaskId,
    name: Option<Arc<str>>,
}

impl Task {
    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// The task's name, if it was given one with [`Builder::name`].
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

impl fmt::Debug for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("id", &self.id)
            .field("name", &self.name())
            .finish()
    }
}

/// Join-state bits.
const COMPLETE: u8 = 1;
const DETACHED: u8 = 2;
const WAITER: u8 = 4;

/// The thread-safe part of a task.
pub(crate) struct Header {
    pub(crate) id: TaskId,
    pub(crate) name: Option<Arc<str>>,
    /// Key of the task in its scheduler's registry.
    pub(crate) key: u32,
    /// The guard page of the task's stack and its usable size, for
    /// stack-overflow reports.
    pub(crate) stack_guard: (usize, usize),
    pub(crate) stack_size: usize,
    /// The runtime that owns the task; wakes from other threads go through it.
    pub(crate) runtime: Arc<Shared>,
    /// The task's own `Arc` pointer (set once at spawn), so an uncounted
    /// reference can be turned back into a counted one.
    pub(crate) this: std::cell::Cell<*const dyn RawTask>,
    /// Set by `JoinHandle::cancel` (and by scopes); sticky.
    pub(crate) cancelled: AtomicBool,
    /// `COMPLETE | DETACHED | WAITER` bits.
    join_state: AtomicU8,
    join_waiter: Mutex<Option<Unparker>>,
}

impl Header {
    pub(crate) fn new(
        name: Option<Arc<str>>,
        key: u32,
        runtime: Arc<Shared>,
        stack_guard: (usize, usize),
        stack_size: usize,
    ) -> Header {
        Header {
            id: TaskId::next(),
            name,
            key,
            stack_guard,
            stack_size,
            runtime,
            this: std::cell::Cell::new(std::ptr::null::<Packet<()>>()),
            cancelled: AtomicBool::new(false),
            join_state: AtomicU8::new(0),
            join_waiter: Mutex::new(None),
        }
    }

    pub(crate) fn task(&self) -> Task {
        Task {
            id: self.id,
            name: self.name.clone(),
        }
    }

    /// "task 7 'worker'" or "task 7", for messages.
    pub(crate) fn describe(&self) -> String {
        match &self.name {
            Some(n) => format!("task {} '{n}'", self.id),
            None => format!("task {}", self.id),
        }
    }

    pub(crate) fn is_complete(&self) -> bool {
        self.join_state.load(Ordering::Acquire) & COMPLETE != 0
    }

    /// Registers `waiter` to be unparked when the task completes. Returns
    /// `false` (and registers nothing) if it has already completed.
    pub(crate) fn set_join_waiter(&self, waiter: Unparker) -> bool {
        *self.join_waiter.lock().unwrap_or_else(|e| e.into_inner()) = Some(waiter);
        self.join_state.fetch_or(WAITER, Ordering::AcqRel) & COMPLETE == 0
    }
}

/// A type-erased task: the header plus a typed result slot.
pub(crate) trait RawTask: Send + Sync {
    fn core(&self) -> &Core;
    fn header(&self) -> &Header {
        &self.core().header
    }
    /// Completes the task as cancelled unless it already completed (used when
    /// the runtime unwinds a task that never reached its end).
    fn complete_cancelled(&self);
}

/// A counted reference to a task, usable from any thread to wake it.
pub(crate) type TaskRef = Arc<dyn RawTask>;

/// A whole task in one allocation: the scheduler's `Core` (header, coroutine,
/// local state) first, then the typed result. `repr(C)` keeps `core` at
/// offset 0, so the scheduler's run queue can hold thin `Core` pointers.
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
// thread. `Core` upholds its own thread rules (see `scheduler::Core`); the
// header's `this` cell is written once, by the spawning thread, before the
// packet is shared, and only read afterwards.
unsafe impl<T> Sync for Packet<T> {}
// SAFETY: as above.
unsafe impl<T> Send for Packet<T> {}

impl<T> RawTask for Packet<T> {
    fn core(&self) -> &Core {
        &self.core
    }

    fn complete_cancelled(&self) {
        if !self.core.header.is_complete() {
            self.complete(Err(JoinError::cancelled(self.core.header.describe())));
        }
    }
}

impl<T> Packet<T> {
    pub(crate) fn new(core: Core) -> Packet<T> {
        Packet {
            core,
            result: UnsafeCell::new(None),
        }
    }

    /// Stores the task's result and wakes its joiner. Runs once, on the
    /// task's thread. If the handle was already dropped, the result is
    /// dropped right here instead.
    pub(crate) fn complete(&self, result: Result<T, JoinError>) {
        // SAFETY: COMPLETE is not set yet, so nobody else reads the slot
        // (see the `Sync` impl).
        unsafe { *self.result.get() = Some(result) };
        let prev = self
            .core
            .header
            .join_state
            .fetch_or(COMPLETE, Ordering::AcqRel);
        if prev & DETACHED != 0 {
            // SAFETY: the handle is gone, so we own the slot again.
            drop(unsafe { (*self.result.get()).take() });
        } else if prev & WAITER != 0 {
            let waiter = self
                .core
                .header
                .join_waiter
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if let Some(w) = waiter {
                w.unpark();
            }
        }
    }

    /// Takes the result. Only the join-interest owner calls it, after
    /// observing COMPLETE.
    fn take_result(&self) -> Option<Result<T, JoinError>> {
        debug_assert!(self.core.header.is_complete());
        // SAFETY: COMPLETE was observed with Acquire; see the `Sync` impl.
        unsafe { (*self.result.get()).take() }
    }

    /// The handle is dropped: drop the result if it is there.
    fn detach(&self) {
        let prev = self
            .core
            .header
            .join_state
            .fetch_or(DETACHED, Ordering::AcqRel);
        if prev & COMPLETE != 0 {
            drop(self.take_result());
        }
    }
}

/// Requests cancellation of `task` and wakes it so that its current blocking
/// operation notices. A no-op once the task has completed.
pub(crate) fn cancel(task: &TaskRef) {
    let header = task.header();
    if header.is_complete() || header.cancelled.swap(true, Ordering::AcqRel) {
        return;
    }
    Unparker::Task(Arc::clone(task)).unpark();
}
