//! Tasks: scheduled coroutines with an id, an optional name, a lifecycle
//! state, a result slot and a [`JoinHandle`].
//!
//! A task's memory is split by who may touch it:
//!
//! * the `Header` and result slot live in one counted block shared with the
//!   `JoinHandle` and with whoever may wake the task (any thread);
//! * the coroutine itself, its [`TaskState`] and its timing live in the
//!   scheduler of the thread that spawned it, and never leave that thread
//!   (a coroutine must not migrate: thread-locals would be read from the
//!   wrong thread).
//!
//! Tasks that borrow from their parent come from [`scope`] and
//! [`try_scope`]; per-task storage from [`task_local!`](crate::task_local).
//!
//! # Cancellation
//!
//! [`JoinHandle::cancel`] asks a task to stop. Cancellation is cooperative:
//! it takes effect at the task's current blocking call — or its next one —
//! which fails instead of waiting, and it is sticky: every later blocking
//! call fails again, so it cannot be swallowed by accident. How a call fails
//! depends on what it can return:
//!
//! * **IO** ([`net`](crate::net) reads, writes, accepts, connects, and the
//!   readiness calls) returns [`Error::Cancelled`](crate::Error::Cancelled)
//!   inside an [`io::Error`](std::io::Error) of kind `Other` — never
//!   `Interrupted`, which `read_exact`, `write_all` and `io::copy` retry
//!   (they would spin); test it with
//!   [`Error::is_cancellation`](crate::Error::is_cancellation).
//! * **Everything else** has no error to say "cancelled" in, so it unwinds
//!   with a private payload: [`time::sleep`](crate::time::sleep) and
//!   [`sleep_until`](crate::time::sleep_until); [`JoinHandle::join`] and
//!   [`ScopedJoinHandle::join`] (the awaited task is detached, not
//!   cancelled); in [`sync`](crate::sync): channel `recv`, `recv_timeout`,
//!   `iter`, `send`/`send_timeout` on a bounded channel (an unbounded send
//!   never waits), [`select!`](crate::select!) and the `select` functions,
//!   `Mutex::lock`/`try_lock_for`/`try_lock_until`, `RwLock::read`/`write`
//!   and their timed forms, `Semaphore::acquire*`, `Barrier::wait*`,
//!   `WaitGroup::wait*`, `Notify::wait*`, `Event::wait*`, `Condvar::wait*`.
//!
//! These calls check on entry, even when they would not have to wait (a
//! task reading a channel that never runs dry still stops), except `join` of
//! a task that has already finished, which returns its result. The `try_`
//! forms never wait and are not cancellation points; neither are
//! [`yield_now`](crate::yield_now), unbounded sends or `spawn`.
//!
//! The unwind runs every destructor of the task; `join` then reports
//! [`JoinError::is_cancelled`](crate::JoinError::is_cancelled) — also when
//! the task caught the unwind or the error and returned normally, since a
//! blocking call did report the cancellation to it. A cancellation that
//! arrives just as a call completes (a message handed over, a lock granted)
//! lets that call complete: the next one fails. Cancelling a finished task
//! does nothing.
//!
//! A task that was told of its cancellation and reaches another
//! cancellation point — it caught the unwind, or ignored the error — yields
//! to the other tasks before that call fails again: a task that keeps
//! catching its cancellation in a loop wastes its share of the thread but
//! cannot take the others' (it never returns, though; only the runtime's
//! shutdown ends it, see below).
//!
//! A task waiting in [`scope`] for its children when it is cancelled
//! cancels them, still waits for all of them (they may borrow its stack),
//! then unwinds with the cancellation (see [`Scope`], rule 2).
//!
//! # Cleanup while unwinding
//!
//! Cleanup that must block (flush a buffer, say goodbye on a socket) runs
//! in [`shield`](crate::shield), where blocking calls ignore the pending
//! cancellation. Destructors that run *during* an unwind (a panic, a
//! cancellation, an expired `timeout`) may call corio, with one limit: the
//! task cannot suspend (a suspended unwind would leak the thread's panic
//! state into other tasks). So there:
//!
//! * a call that can complete without waiting completes, even though the
//!   task is cancelled or past its deadline: an uncontended
//!   `Mutex::lock`, a `recv` with a message ready, `Event::wait` on a set
//!   event, a `send` with room, IO that is ready;
//! * a call that would have to wait fails at once with its error: IO with
//!   an `io::Error` (of kind `Other`), channel `recv`/`send` with their
//!   disconnected errors, `try_` and timed forms with "not acquired" or
//!   "timed out"; [`time::sleep`](crate::time::sleep) returns early;
//!   [`JoinHandle::join`] of a task of the same runtime gives up on it —
//!   cancels it and returns a cancelled `JoinError` — and, of a task on
//!   another thread, blocks the thread until it ends;
//!   [`block_on`](crate::block_on) blocks the thread;
//! * a call with no error to fail with (`Mutex::lock`, `RwLock::read` and
//!   `write`, `Semaphore::acquire`, `Condvar::wait`, `Barrier::wait`,
//!   `WaitGroup::wait`, `Notify::wait`, `Event::wait`, `select`) panics
//!   with a message naming the call. Rust aborts the process when a panic
//!   leaves a destructor that runs during an unwind, so such a destructor
//!   must use the `try_` form, or catch the panic itself. Blocking the
//!   thread instead would hang it for good whenever what it waits for
//!   belongs to another task of the same thread.
//!
//! To run cleanup that must wait, catch the unwind first:
//!
//! ```
//! use std::panic::{self, AssertUnwindSafe};
//! use std::time::Duration;
//!
//! corio::run(|| {
//!     let h = corio::spawn(|| {
//!         let r = panic::catch_unwind(AssertUnwindSafe(|| {
//!             corio::time::sleep(Duration::from_secs(3600)) // cancelled here
//!         }));
//!         corio::shield(|| corio::time::sleep(Duration::from_millis(1))); // cleanup
//!         if let Err(unwind) = r {
//!             panic::resume_unwind(unwind); // carry on unwinding
//!         }
//!     });
//!     corio::yield_now();
//!     h.cancel();
//!     assert!(h.join().unwrap_err().is_cancelled());
//! });
//! ```
//!
//! # Panics stay in their task
//!
//! A panic never unwinds into the scheduler. The task's own panic is
//! reported by its [`JoinHandle::join`]. A panic while its result is
//! dropped by corio — the result of a detached task (dropped on the task's
//! own stack, before its task-locals go, so its destructor may read them),
//! a value returned after a cancellation, an unwind payload, the closure of
//! a task that never ran — is caught and reported on stderr as
//! `corio: task N 'name': a panic while dropping ... was caught: ...`; the
//! runtime runs on.
//!
//! # Shutdown
//!
//! When the main task of [`run`](crate::run) returns, every task still
//! alive is cancelled and unwound on its own stack, so every destructor
//! runs: a task waiting in a blocking call (shielded or not) unwinds from
//! it, one suspended in [`yield_now`](crate::yield_now) from that yield.
//! From then on the task cannot wait: a task that catches that unwind is
//! unwound again by its next blocking call, yield or cancellation check. After 100 such unwinds the runtime gives up
//! on it, writes `corio: task N 'name': caught the unwind of the runtime's
//! shutdown 100 times ...` to stderr, and leaks it: its stack and
//! everything on it are never freed nor dropped (nothing that points into
//! them can dangle), and its `join` reports it cancelled. So it does, with
//! its own line, to a task whose [`scope`] still waits a second into the
//! shutdown for children on other workers.
mod alloc;
pub(crate) mod backtrace;
mod builder;
pub(crate) mod context;
pub(crate) mod core;
pub(crate) mod diag;
pub(crate) mod driver;
pub(crate) mod frame;
mod inject;
mod join;
mod join_set;
mod join_state;
pub(crate) mod local;
mod packet;
pub(crate) mod panic_hook;
pub(crate) mod park;
mod run_queue;
pub(crate) mod runtime_ref;
mod scope;
mod state;
pub(crate) mod trace;
pub(crate) mod worker;

use std::fmt;
use std::num::NonZeroU64;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

pub(crate) use alloc::{TaskRef, Vtable};
pub use builder::Builder;
pub(crate) use builder::{spawn_local_or_panic, spawn_or_panic};
pub use join::JoinHandle;
pub use join_set::{CancelHandle, JoinSet};
pub use local::{AccessError, LocalKey};
pub(crate) use packet::{Launch, Packet};
pub use scope::{Scope, ScopeError, ScopedBuilder, ScopedJoinHandle, scope, try_scope};
pub use state::{Direction, IllegalTransition, Outcome, TaskState, Transition, WaitReason};

use self::context::Shared;
use self::park::Unparker;
use self::runtime_ref::RuntimeRef;
use join_state::JoinState;

/// A unique identifier of a task, never reused within a process.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct TaskId(NonZeroU64);

impl TaskId {
    /// A fresh id. Each thread takes ids from the global counter in blocks
    /// of `BLOCK`, so a spawn costs no atomic instruction for its id; ids
    /// stay unique, and increase within a thread.
    fn next() -> TaskId {
        const BLOCK: u64 = 1024;
        static NEXT: AtomicU64 = AtomicU64::new(1);
        thread_local! {
            /// The next id of this thread's block, and the end of the block.
            static LOCAL: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
        }
        let id = LOCAL.with(|c| {
            let (mut next, mut end) = c.get();
            if next == end {
                next = NEXT.fetch_add(BLOCK, Ordering::Relaxed);
                end = next + BLOCK;
            }
            c.set((next + 1, end));
            next
        });
        TaskId(NonZeroU64::new(id).expect("task ids overflowed"))
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

/// The thread-safe part of a task.
pub(crate) struct Header {
    pub(crate) id: TaskId,
    pub(crate) name: Option<Arc<str>>,
    /// Key of the task in its worker's registry. Read and written only by
    /// the thread of the worker the task is on (`worker`); set again when a
    /// task that never ran moves to another worker (`task::worker`).
    key: AtomicU32,
    /// The guard page of the task's stack (start, end; zero until the task
    /// first runs and gets its stack), for stack-overflow reports.
    stack_guard: AtomicUsize,
    /// The usable size of its stack.
    pub(crate) stack_size: usize,
    /// The worker the task was made on (its home), counted: it keeps that
    /// worker's shared state alive. Wakes from other threads go through it;
    /// it forwards those for a task that moved (`task::worker`).
    pub(crate) runtime: RuntimeRef,
    /// The worker whose thread runs the task (uncounted). Equal to
    /// `runtime` unless the task moved, which only a task that never ran
    /// does, once, written by its home before it hands the task over.
    pub(crate) worker: AtomicPtr<Shared>,
    /// References to the task block (`TaskRef`s and the `JoinHandle`).
    pub(crate) refs: AtomicUsize,
    /// How to finish and free the block for its result type.
    pub(crate) vtable: &'static Vtable,
    /// Set by `JoinHandle::cancel` (and by scopes); sticky.
    pub(crate) cancelled: AtomicBool,
    /// Who owns the result slot, and the joiner to wake.
    join: JoinState<Unparker>,
    /// Where the task was spawned (`#[track_caller]` on every spawn
    /// function), for `corio::inspect` and the stall monitor.
    pub(crate) location: &'static std::panic::Location<'static>,
    /// Requests of `corio::inspect` (stall monitor, dumper) to the task.
    pub(crate) probe: crate::task::diag::Probe,
}

impl Header {
    /// The header of a new task block with `vtable`, holding its first two
    /// references (the registry's and the `JoinHandle`'s; see
    /// `Packet::allocate`).
    #[inline(always)]
    pub(crate) fn new(
        name: Option<Arc<str>>,
        key: u32,
        runtime: RuntimeRef,
        stack_size: usize,
        vtable: &'static Vtable,
        location: &'static std::panic::Location<'static>,
    ) -> Header {
        Header {
            id: TaskId::next(),
            name,
            key: AtomicU32::new(key),
            stack_guard: AtomicUsize::new(0),
            stack_size,
            worker: AtomicPtr::new(runtime.as_ptr().cast_mut()),
            runtime,
            refs: AtomicUsize::new(2),
            vtable,
            cancelled: AtomicBool::new(false),
            join: JoinState::new(),
            location,
            probe: crate::task::diag::Probe::new(),
        }
    }

    /// The task's key in its worker's registry (on that worker's thread).
    #[inline(always)]
    pub(crate) fn key(&self) -> usize {
        self.key.load(Ordering::Relaxed) as usize
    }

    /// Gives the task its key in a new worker's registry (on that worker's
    /// thread, when it adopts the task).
    pub(crate) fn set_key(&self, key: u32) {
        self.key.store(key, Ordering::Relaxed);
    }

    /// Whether the task runs on the worker whose shared state is `shared`.
    #[inline(always)]
    pub(crate) fn is_on(&self, shared: *const Shared) -> bool {
        std::ptr::eq(self.worker.load(Ordering::Relaxed), shared)
    }

    /// Records the guard page of the stack the task got (first run).
    /// (Its start only: a guard is one page.)
    pub(crate) fn set_stack_guard(&self, (start, _end): (usize, usize)) {
        self.stack_guard.store(start, Ordering::Relaxed);
    }

    /// The guard page of the task's stack; `(0, 0)` before it first runs.
    /// Plain loads: the stack-overflow handler calls it (the page size was
    /// read when the stack was made, so it is a load too).
    pub(crate) fn stack_guard(&self) -> (usize, usize) {
        match self.stack_guard.load(Ordering::Relaxed) {
            0 => (0, 0),
            start => (start, start + crate::stack::page_size()),
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
        self.join.is_complete()
    }

    /// Registers `waiter` to be unparked when the task completes. Returns
    /// `false` (and registers nothing) if it has already completed.
    pub(crate) fn set_join_waiter(&self, waiter: Unparker) -> bool {
        self.join.set_waiter(waiter)
    }
}

/// Requests cancellation of `task` and wakes it so that its current blocking
/// operation notices. A no-op once the task has completed.
pub(crate) fn cancel(task: &TaskRef) {
    let header = task.header();
    if header.is_complete() || header.cancelled.swap(true, Ordering::AcqRel) {
        return;
    }
    Unparker::Task(task.clone()).unpark();
}
