//! The scheduler's part of a task block ([`Core`]: the thread-safe
//! `Header`, the coroutine, and the [`LocalState`] only the task's thread
//! touches; `task::Packet` puts it at offset 0 of every task allocation),
//! and the body every task runs on its own stack.
#![allow(unsafe_code)]

use std::cell::{Cell, RefCell, UnsafeCell};
use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::{self, NonNull};
use std::sync::Arc;
use std::time::Instant;

use corosensei::{Coroutine, Yielder};

use super::context::{Scheduler, with_scheduler};
use super::park::CancelUnwind;
use crate::error::JoinError;
use crate::stack::PooledStack;
use crate::task::{Header, Outcome, Packet, TaskState, Transition};

/// A task's coroutine. It suspends with `()`: before suspending, the task
/// itself records its transition (`Running → Ready` and back in the run
/// queue for a yield, `Running → Waiting` for a park), so the scheduler has
/// nothing to decode when it gets control back.
pub(crate) type Coro = Coroutine<(), (), Outcome, PooledStack>;

/// The scheduler's part of a task, at the start of every task allocation
/// (see `task::Packet`).
///
/// # Thread rules
///
/// `header` is thread-safe. `coroutine` and `local` are touched only by the
/// thread of the runtime that spawned the task: the scheduler reaches them
/// through its registry, run queue and `current` pointer, which never leave
/// that thread, and a `TaskRef` held elsewhere only ever reads `header`. The
/// coroutine is dropped by the scheduler, on that thread, before it releases
/// its registry reference, so the last `TaskRef` (which may be dropped on any
/// thread) never owns a coroutine.
///
/// `coroutine` is only borrowed by `run_task`/`abandon` (for the whole
/// resume). `local` is all `Cell`s, reached through [`Core::local`] with the
/// owning scheduler as the proof of being on its thread: no `unsafe` at the
/// places that use it, and no borrow of it that a resume could overlap.
pub(crate) struct Core {
    pub(crate) header: Header,
    pub(crate) coroutine: UnsafeCell<Option<Coro>>,
    pub(crate) local: ThreadOwned,
}

/// Per-task state only the thread of the task's runtime reads and writes.
///
/// Every field is a `Cell` (or a `RefCell`), so code on that thread may read
/// and write it through shared references without any borrow outliving a
/// statement, and [`Core::local`] hands it out only against the runtime's
/// own [`Scheduler`], which never leaves its thread.
pub(crate) struct LocalState {
    pub(crate) state: Cell<TaskState>,
    pub(crate) since: Cell<Instant>,
    pub(crate) yielder: Cell<*const Yielder<(), ()>>,
    /// The earliest deadline of the `timeout` scopes the task is in.
    pub(crate) deadline: Cell<Option<Instant>>,
    /// The scope deadline that interrupted an operation of the task, until
    /// the `timeout` scope it belongs to ends (see `park::with_deadline`).
    pub(crate) fired: Cell<Option<Instant>>,
    /// Nesting depth of `shield`: cancellation is ignored while > 0.
    pub(crate) shield: Cell<u32>,
    /// A blocking call reported the cancellation to the task.
    pub(crate) cancel_observed: Cell<bool>,
    /// An unpark came while the task was not waiting (park protocol rule 1, in `task::park`).
    pub(crate) notified: Cell<bool>,
    /// The task's entry in the timers, if any. It outlives the park that
    /// made it (see `prepare_timed_park`) and goes when it fires, when an
    /// earlier deadline replaces it, or when the task ends.
    pub(crate) timer: Cell<Option<(Instant, u64)>>,
    /// Its `task_local!` values.
    pub(crate) locals: RefCell<crate::task::local::Locals>,
    /// The frame (generator) the task executes innermost, null if none;
    /// see `task::frame`.
    pub(crate) frame: Cell<*const super::frame::Frame>,
    /// What it waits on beyond its `WaitReason` (`corio::inspect`).
    pub(crate) wait: Cell<crate::task::diag::WaitObj>,
}

impl LocalState {
    /// The state of a task spawned at `since`.
    pub(crate) fn new(since: Instant) -> LocalState {
        LocalState {
            state: Cell::new(TaskState::Ready),
            since: Cell::new(since),
            yielder: Cell::new(ptr::null()),
            deadline: Cell::new(None),
            fired: Cell::new(None),
            shield: Cell::new(0),
            cancel_observed: Cell::new(false),
            notified: Cell::new(false),
            timer: Cell::new(None),
            locals: RefCell::default(),
            frame: Cell::new(ptr::null()),
            wait: Cell::default(),
        }
    }

    /// Moves the lifecycle state machine one step (`TaskState::next`).
    #[inline(always)]
    pub(crate) fn advance(&self, t: Transition) {
        self.state.set(self.state.get().next(t));
    }
}

impl Core {
    /// The task's thread-owned state, for the scheduler `owner` of the
    /// runtime that spawned it.
    ///
    /// A `&Scheduler` exists only on its runtime's thread (`Scheduler` is
    /// neither `Send` nor `Sync`), and every `Core` the runtime code handles
    /// comes from that scheduler's own registry, run queue, timers, reactor
    /// tokens or `current` pointer; a `TaskRef` held on another thread is
    /// only ever used for its header (wakes from there go through the
    /// runtime's inject queue, see `park::UnparkRef`). The debug assertion
    /// checks that rule where tests run.
    #[inline(always)]
    pub(crate) fn local<'a>(&'a self, owner: &'a Scheduler) -> &'a LocalState {
        debug_assert!(
            self.header.is_on(Arc::as_ptr(&owner.shared)),
            "a task's local state reached from another runtime"
        );
        &self.local.0
    }
}

/// [`LocalState`] inside a task block that other threads share.
pub(crate) struct ThreadOwned(LocalState);

impl ThreadOwned {
    pub(crate) fn new(state: LocalState) -> ThreadOwned {
        ThreadOwned(state)
    }
}

// SAFETY: `LocalState` is `!Sync` only because of its `Cell`s. The one way
// to it is `Core::local`, which takes the owning runtime's `Scheduler`; a
// reference to that exists only on the thread that runs the runtime (it is
// `!Sync`, and the runtime moves threads only whole, with no borrow live),
// so all accesses to one task's cells come from one thread at a time.
unsafe impl Sync for ThreadOwned {}

/// A pointer moved into a task's body closure.
struct SendPtr<T>(*const T);

/// Makes the coroutine of a task that is about to run for the first time,
/// on `stack`, from the closure kept in its block (`Vtable::start`).
///
/// # Safety
///
/// `core` is a live block made by `Packet::<T>::allocate` for an `F`, on its
/// runtime thread, whose closure is still there. Its data outlives the
/// coroutine, as `spawn_unchecked` requires of its caller.
pub(crate) unsafe fn start_task<T, F: FnOnce() -> T>(
    core: NonNull<Core>,
    stack: PooledStack,
) -> Coro {
    // SAFETY: per the contract.
    let f = unsafe { crate::task::Launch::<T, F>::take_body(core) }.expect("a task starts once");
    // The coroutine lives inside the block it points to; the block
    // outlives it (the registry reference is dropped after it).
    let raw = SendPtr(core.as_ptr().cast::<Packet<T>>().cast_const());
    let body = move |yielder: &Yielder<(), ()>, ()| -> Outcome {
        // SAFETY: see above: the packet outlives its coroutine, and `core`
        // is at offset 0 of the `repr(C)` packet.
        run_body(yielder, f, unsafe { &*raw.0 })
    };
    // A closure bigger than 1 KiB would make corosensei panic; box it.
    if std::mem::size_of_val(&body) <= 512 {
        // SAFETY: see this function's contract.
        unsafe { Coro::with_stack_unchecked(stack, body) }
    } else {
        let boxed = Box::new(body);
        // SAFETY: as above.
        unsafe { Coro::with_stack_unchecked(stack, move |y: &Yielder<(), ()>, ()| (*boxed)(y, ())) }
    }
}

/// The body of every task, running on its own stack. Never unwinds
/// (park protocol rule 6, in `task::park`): whatever the task does, and the drops of what it leaves,
/// stay under `catch_unwind`.
fn run_body<F, T>(yielder: &Yielder<(), ()>, f: F, packet: &Packet<T>) -> Outcome
where
    F: FnOnce() -> T,
{
    let core = &packet.core;
    with_scheduler(|s| core.local(s).yielder.set(yielder));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    let describe = || core.header.describe();
    let (forcing, observed) = with_scheduler(|s| {
        (
            ptr::eq(s.forcing.get(), core),
            core.local(s).cancel_observed.get(),
        )
    })
    .expect("a task runs inside its runtime");
    let (result, mut outcome) = match result {
        Err(payload) if forcing || observed || payload.is::<CancelUnwind>() => {
            drop_caught(&core.header, payload, "the payload of its unwind");
            (Err(JoinError::cancelled(describe())), Outcome::Cancelled)
        }
        Err(payload) => (
            Err(JoinError::panicked(describe(), payload)),
            Outcome::Panicked,
        ),
        Ok(value) if observed => {
            drop_caught(
                &core.header,
                value,
                "the value it returned after its cancellation",
            );
            (Err(JoinError::cancelled(describe())), Outcome::Cancelled)
        }
        Ok(value) => (Ok(value), Outcome::Returned),
    };
    let mut result = Some(result);
    // Nobody will take the result of a detached task: drop it now, while
    // its task-locals (which its destructor may read) are still there.
    if packet.is_detached()
        && let Some(r) = result.take()
    {
        packet.complete(r);
    }
    // Task-local values are destroyed when the task ends, on its own stack,
    // whichever way it ends. A panic in one of their destructors is the
    // task's panic if it had returned; the others are destroyed still.
    let any_locals = with_scheduler(|s| core.local(s).locals.borrow_mut().begin_destroy())
        .expect("a task runs inside its runtime");
    if any_locals {
        loop {
            let destroyed = panic::catch_unwind(|| drop(crate::task::local::DestroyOnExit));
            let Err(payload) = destroyed else { break };
            if outcome == Outcome::Returned {
                outcome = Outcome::Panicked;
            }
            match &result {
                Some(Ok(_)) => {
                    drop_caught(&core.header, result.take(), "its result");
                    result = Some(Err(JoinError::panicked(describe(), payload)));
                }
                _ => drop_caught(&core.header, payload, "the payload of a panic"),
            }
        }
    }
    if let Some(r) = result {
        packet.complete(r);
    }
    outcome
}

/// Drops `v`, catching a panic of its destructor and reporting it on
/// stderr: for what a task leaves behind that nobody else will drop (its
/// result when detached, an unwind payload), where a panic would otherwise
/// unwind into the scheduler (park protocol rule 6, in `task::park`).
#[inline(never)]
pub(crate) fn drop_caught<V>(header: &Header, v: V, what: &str) {
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(move || drop(v))) {
        report_caught(header, &format!("while dropping {what}"), payload);
    }
}

/// Reports a panic caught `when` ("while dropping its result") for the task
/// `header`, then drops its payload (whose own destructor may panic: then
/// it is leaked).
#[cold]
pub(crate) fn report_caught(header: &Header, when: &str, payload: Box<dyn std::any::Any + Send>) {
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a non-string payload");
    let _ = writeln!(
        std::io::stderr(),
        "corio: {}: a panic {when} was caught: {message}",
        header.describe()
    );
    if let Err(again) = panic::catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(again);
    }
}

/// The stack-overflow report for tasks (an `overflow::Reporter`): the task
/// running on this thread, if `fault_addr` is in its guard page.
pub(crate) fn report_overflow(fault_addr: usize) -> bool {
    use crate::overflow::{write_stderr, write_u64};
    // SAFETY: the header of the task running on this thread, alive while it
    // runs (the scheduler holds a reference); only immutable fields are read.
    let Some(h) = (unsafe { running_task_header().as_ref() }) else {
        return false;
    };
    let guard = h.stack_guard();
    if guard.1 == 0 || fault_addr < guard.0 || fault_addr >= guard.1 {
        return false;
    }
    write_stderr(b"\ncorio: task ");
    write_u64(h.id.as_u64());
    if let Some(name) = &h.name {
        write_stderr(b" '");
        write_stderr(name.as_bytes());
        write_stderr(b"'");
    }
    write_stderr(b" overflowed its stack of ");
    write_u64(h.stack_size as u64);
    write_stderr(
        b" bytes; give it a bigger stack with corio::Builder::stack_size \
          (or corio::runtime::Builder::stack_size for every task)\n",
    );
    true
}

/// The task running on this thread (null if none), for the stack-overflow
/// report (async-signal-safe: plain loads).
fn running_task_header() -> *const Header {
    let p = super::context::CONTEXT.with(Cell::get);
    if p.is_null() {
        return ptr::null();
    }
    // SAFETY: as in `with_scheduler`.
    let core = unsafe { (*p).current.get() };
    if core.is_null() {
        ptr::null()
    } else {
        // SAFETY: `current` points to a live task while it runs.
        unsafe { &(*core).header }
    }
}
