//! The per-thread scheduler: run queue, current task, timers, and the loop
//! that runs ready tasks, polls the reactor and takes wakeups from other
//! threads.
//!
//! State is split by who touches it (as in tokio's current-thread runtime):
//!
//! * [`Scheduler`]: owned by the runtime thread — the task slab with every
//!   coroutine, the run queue, the timers. Never touched from another thread.
//! * [`Shared`]: behind an `Arc`, touched by any thread — the inject queue for
//!   wakeups from other threads, the "sleeping in `wait`" flag, the poller and
//!   its registered sources.
//!
//! # The park/unpark protocol
//!
//! Every blocking operation is a loop: check the condition, register an
//! [`Unparker`] with whatever will make it true, check again, [`park`].
//! Park and unpark are thread-local: the token lives in the task's
//! thread-owned state and only the owning thread touches it, so neither
//! costs an atomic instruction (switching between two tasks of one thread is
//! the hot path of every channel ping-pong):
//!
//! 1. `park` consumes a pending `notified` token and returns at once;
//!    otherwise it suspends the task (`Running → Waiting`).
//! 2. `unpark` on the owning thread queues a `Waiting` task
//!    (`Waiting → Ready`) and sets the token of any other, so a wakeup that
//!    comes before the park is not lost. From any other thread, `unpark`
//!    pushes the task (a counted reference, which keeps it alive) on the
//!    runtime's inject queue and wakes the poller if the loop sleeps; the
//!    loop then unparks it locally. A task is queued at most once per park.
//! 3. Wakeups may be spurious (a stale unpark from an earlier wait); every
//!    caller re-checks its condition, so they are harmless.
//! 4. Nothing suspends while the thread is panicking: `park` and `yield_now`
//!    fail or return instead. Nor does a pending cancellation or an expired
//!    `timeout` fail a call then: cleanup code completes what it can
//!    without waiting, and only a call that would have to wait fails.
//! 5. A task that was told of its cancellation and reaches another
//!    cancellation point (it caught the unwind or ignored the error) yields
//!    before it is told again, so a task that keeps catching its
//!    cancellation still lets the others run.
//! 6. Nothing a task does unwinds into the scheduler: its closure, the drop
//!    of its result or unwind payload, and the drop of a closure that never
//!    ran all run under `catch_unwind`; a panic there is reported on its
//!    `JoinHandle` or on stderr.
//!
//! # Shutdown
//!
//! When `block_on`'s main task returns, every other task is unwound on its
//! own stack (`abandon`): it is marked cancelled, its `yielder` is tagged,
//! and it is resumed once with the scheduler's `forcing` pointing at it.
//! Suspended in a park, it unwinds from there (the check a park makes when
//! resumed sees the cancellation); suspended in `yield_now`, it unwinds
//! from its next park or yield. From then on it never suspends: every park,
//! yield or cancellation check unwinds it again (`CancelUnwind`, shielded
//! or not), so a task that catches the unwind cannot loop. After
//! `FORCE_ATTEMPTS` such unwinds it suspends for good instead, and is given
//! up on: reported on stderr and leaked — its stack and everything on it
//! stay allocated and are never dropped — so that no pointer into it can
//! dangle.
#![allow(unsafe_code)]

use std::cell::{Cell, RefCell, UnsafeCell};
use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::{self, NonNull};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use corosensei::{Coroutine, CoroutineResult, Yielder};
use slab::Slab;

use crate::error::{Error, JoinError};
use crate::overflow;
use crate::reactor::Reactor;
use crate::stack::{self, PooledStack};

mod inject;
use inject::Inject;

use crate::task::{
    Header, JoinHandle, Outcome, Packet, Task, TaskId, TaskRef, TaskState, Transition, WaitReason,
};

/// A task's coroutine. It suspends with `()`: before suspending, the task
/// itself records its transition (`Running → Ready` and back in the run
/// queue for a yield, `Running → Waiting` for a park), so the scheduler has
/// nothing to decode when it gets control back.
pub(crate) type Coro = Coroutine<(), (), Outcome, PooledStack>;

/// A runtime that held this many tasks at once trims the C heap when it is
/// dropped (see `Drop for Scheduler`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_AFTER_TASKS: usize = 4096;

/// The longest an idle loop sleeps without looking at its inject queue.
const IDLE_RECHECK: Duration = Duration::from_secs(1);

/// Deadline checks between two reads of the real clock while the loop does
/// not poll (see `Scheduler::deadline_clock`).
const CLOCK_CHECKS: u32 = 64;

/// How many times a task that shutdown unwinds may catch that unwind and
/// try to suspend or wait again before the runtime gives up on it (see the
/// module docs, "Shutdown"). Cleanup that catches the unwind and waits once
/// or twice needs a few.
const FORCE_ATTEMPTS: u32 = 100;

/// The low bit of a task's `yielder` pointer while shutdown unwinds it: a
/// yield looks at the pointer anyway, so it notices for the cost of a test
/// (see `suspend`). A `Yielder` is word-aligned, so the bit is free.
const FORCED_TAG: usize = 1;

/// Why a [`park`] returned without a wakeup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Interrupt {
    /// The task was cancelled (and is not shielded).
    Cancelled,
    /// The deadline of the operation or of an enclosing `timeout` passed.
    TimedOut,
    /// The thread is unwinding and the call would have to wait: suspending
    /// now would leak the unwind into other tasks. (A call that can complete
    /// without waiting does, even in a cancelled task or past a deadline.)
    Unwinding,
}

impl From<Interrupt> for std::io::Error {
    fn from(i: Interrupt) -> std::io::Error {
        match i {
            Interrupt::Cancelled => Error::Cancelled.into(),
            Interrupt::TimedOut => {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "corio operation timed out")
            }
            Interrupt::Unwinding => std::io::Error::other(
                "cannot block in a corio task while it is unwinding from a panic or cancellation",
            ),
        }
    }
}

/// The payload a blocking call that has no error to return (like
/// `JoinHandle::join`) unwinds with when its task is cancelled. Caught at the
/// task boundary and reported as a cancellation.
pub(crate) struct CancelUnwind;

/// The payload such a call unwinds with when an enclosing `timeout` expires;
/// caught by `time::timeout`.
pub(crate) struct TimeoutUnwind;

/// Unwinds the current task for `i`, for calls that cannot return an error.
pub(crate) fn unwind_for(i: Interrupt) -> ! {
    match i {
        Interrupt::Cancelled => panic::resume_unwind(Box::new(CancelUnwind)),
        Interrupt::TimedOut => {
            // Calls that unwind have no deadline of their own (or, like
            // `sleep`, return when it is theirs): this is the scope's.
            if let Some(at) = current_deadline() {
                deadline_fired(at);
            }
            panic::resume_unwind(Box::new(TimeoutUnwind))
        }
        Interrupt::Unwinding => panic!("cannot block while unwinding"),
    }
}

/// Something that can be woken: a task (on any runtime), a plain thread, or
/// a `std::task::Waker` (async code awaiting a corio primitive, such as a
/// `JoinHandle` used as a `Future`).
#[derive(Clone)]
pub(crate) enum Unparker {
    Task(TaskRef),
    Thread(thread::Thread),
    Waker(std::task::Waker),
}

impl Unparker {
    /// The unparker of the caller: its task, or its thread outside a task.
    pub(crate) fn current() -> Unparker {
        match current_task_ref() {
            Some(t) => Unparker::Task(t),
            None => Unparker::Thread(thread::current()),
        }
    }

    /// Wakes the task or thread (see the module's protocol, rule 2).
    pub(crate) fn unpark(&self) {
        match self {
            Unparker::Thread(t) => t.unpark(),
            Unparker::Waker(w) => w.wake_by_ref(),
            Unparker::Task(task) => {
                let header = task.header();
                let local = with_scheduler(|s| {
                    let local = ptr::eq(Arc::as_ptr(&s.shared), header.runtime.as_ptr());
                    if local {
                        s.unpark_local(task.core());
                    }
                    local
                });
                if local != Some(true) {
                    header.runtime.inject(task.clone());
                }
            }
        }
    }
}

/// The calling task or thread, to be woken later — an [`Unparker`] without
/// the reference count, for waiters that live on the caller's own stack
/// (`corio::sync`): one is made and dropped per blocking call, so counting
/// would cost two atomic instructions each time.
pub(crate) struct UnparkRef(UnparkRefInner);

enum UnparkRefInner {
    /// The running task, borrowed: alive as long as it has not finished,
    /// which it cannot while it waits in the call that made this.
    Task {
        core: NonNull<Core>,
        runtime: *const Shared,
    },
    Other(Unparker),
}

// SAFETY: the task pointer is only dereferenced under the contract of
// `unpark_local_if`/`to_unparker` (the task is alive), and then only its thread-safe
// header is read off the owning thread; the local path runs on the owner.
unsafe impl Send for UnparkRef {}
// SAFETY: as above.
unsafe impl Sync for UnparkRef {}

impl UnparkRef {
    /// The caller's: its task, or its thread outside a task.
    #[inline]
    pub(crate) fn current() -> UnparkRef {
        let task = with_current(|s, core| UnparkRefInner::Task {
            core: NonNull::from(core),
            runtime: Arc::as_ptr(&s.shared),
        });
        UnparkRef(task.unwrap_or_else(|| UnparkRefInner::Other(Unparker::current())))
    }

    /// If it wakes a task of the runtime running on this thread: runs
    /// `claim` and, if that returns `true`, unparks the task — with one
    /// look-up of the scheduler. `None` (and `claim` not run) otherwise.
    ///
    /// # Safety
    ///
    /// The task it names (if a task) has not finished — e.g. the waiter
    /// holding this is still registered, so its owner is still waiting.
    #[inline]
    pub(crate) unsafe fn unpark_local_if(&self, claim: impl FnOnce() -> bool) -> Option<bool> {
        match self.0 {
            UnparkRefInner::Task { core, runtime } => with_scheduler(|s| {
                if !ptr::eq(Arc::as_ptr(&s.shared), runtime) {
                    return None;
                }
                let claimed = claim();
                if claimed {
                    // SAFETY: alive per the contract; on its own thread.
                    s.unpark_local(unsafe { core.as_ref() });
                }
                Some(claimed)
            })
            .flatten(),
            UnparkRefInner::Other(_) => None,
        }
    }

    /// An owned, counted [`Unparker`] for the same task or thread.
    ///
    /// # Safety
    ///
    /// As for [`unpark_local_if`](Self::unpark_local_if).
    pub(crate) unsafe fn to_unparker(&self) -> Unparker {
        match &self.0 {
            UnparkRefInner::Task { core, .. } => {
                // SAFETY: alive per the contract (its registry entry holds a
                // count), so a new count can be taken.
                let task = unsafe { TaskRef::clone_raw(*core) };
                Unparker::Task(task)
            }
            UnparkRefInner::Other(u) => u.clone(),
        }
    }
}

/// The part of a runtime that other threads may touch.
pub(crate) struct Shared {
    /// Wakeups from other threads, and whether the runtime thread is
    /// (about to be) blocked in `Poller::wait`.
    inject: Inject<TaskRef>,
    /// Cleared when the runtime is dropped: later wakeups are no-ops.
    alive: AtomicBool,
    owner: ThreadId,
    pub(crate) reactor: Reactor,
    /// The [`RuntimeRef`]s in existence plus the scheduler's reserve of
    /// them; while non-zero, they hold one strong count of this `Arc`.
    runtime_refs: AtomicUsize,
}

impl Shared {
    fn new() -> std::io::Result<Shared> {
        Ok(Shared {
            runtime_refs: AtomicUsize::new(0),
            inject: Inject::new(),
            alive: AtomicBool::new(true),
            owner: thread::current().id(),
            reactor: Reactor::new()?,
        })
    }

    /// Queues a task woken from another thread and wakes the loop if it sleeps.
    fn inject(&self, task: TaskRef) {
        if !self.alive.load(Ordering::Acquire) {
            return;
        }
        if self.inject.push(task) {
            self.reactor.notify();
        }
    }

    pub(crate) fn is_owned_by_current_thread(&self) -> bool {
        self.owner == thread::current().id()
    }
}

/// A task's counted reference to its runtime's [`Shared`] (for wakeups from
/// other threads, which may come after the runtime is gone).
///
/// Counting it with an `Arc` clone cost an atomic increment per spawn and
/// a decrement per task end — a tenth of a spawn + join. Instead the
/// scheduler takes references from `Shared::runtime_refs` in blocks (one
/// atomic add per `RUNTIME_REF_BLOCK` spawns) and hands them out from its
/// reserve; a reference dropped on the runtime's own thread while the
/// scheduler runs goes back to the reserve, any other is given back with an
/// atomic decrement. The references together hold one strong count of the
/// `Arc`, taken when their count leaves zero and released when it returns
/// to zero, so `Shared` lives as long as the last of them.
pub(crate) struct RuntimeRef(NonNull<Shared>);

/// How many runtime references the scheduler takes at a time.
const RUNTIME_REF_BLOCK: usize = 1024;

// SAFETY: it only gives shared access to `Shared`, which is `Sync`, and its
// count is atomic (or, for the reserve, touched only by the owning thread).
unsafe impl Send for RuntimeRef {}
// SAFETY: as above.
unsafe impl Sync for RuntimeRef {}

impl std::ops::Deref for RuntimeRef {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        // SAFETY: the references hold a strong count of the `Arc` (see the
        // type's docs).
        unsafe { self.0.as_ref() }
    }
}

impl RuntimeRef {
    pub(crate) fn as_ptr(&self) -> *const Shared {
        self.0.as_ptr()
    }
}

impl Drop for RuntimeRef {
    fn drop(&mut self) {
        let returned = with_scheduler(|s| {
            let mine = ptr::eq(Arc::as_ptr(&s.shared), self.as_ptr());
            if mine {
                s.runtime_reserve.set(s.runtime_reserve.get() + 1);
            }
            mine
        });
        if returned != Some(true) {
            // SAFETY: `self` holds one of the counted references.
            unsafe { release_runtime_refs(self.0, 1) };
        }
    }
}

/// Gives back `n` runtime references; the last one releases the strong
/// count they held.
///
/// # Safety
///
/// The caller owns `n` counted references to `shared`.
unsafe fn release_runtime_refs(shared: NonNull<Shared>, n: usize) {
    // SAFETY: the references keep `Shared` alive until this returns.
    let refs = unsafe { &shared.as_ref().runtime_refs };
    if refs.fetch_sub(n, Ordering::Release) == n {
        std::sync::atomic::fence(Ordering::Acquire);
        // SAFETY: the references held this strong count (type docs).
        unsafe { Arc::decrement_strong_count(shared.as_ptr()) };
    }
}

/// The run queue: tasks that are `Ready`, in FIFO order.
///
/// Not a `RefCell`: it is the hottest structure of the scheduler (a push and
/// a pop per yield), it is only touched by the scheduler's own thread, and
/// its methods never call out while borrowing, so borrows never overlap.
#[derive(Default)]
struct RunQueue(UnsafeCell<VecDeque<NonNull<Core>>>);

impl RunQueue {
    #[inline]
    fn with<R>(&self, f: impl FnOnce(&mut VecDeque<NonNull<Core>>) -> R) -> R {
        // SAFETY: see the type's docs: one thread, and the closures passed
        // below only call `VecDeque` methods.
        f(unsafe { &mut *self.0.get() })
    }

    #[inline]
    fn push(&self, core: NonNull<Core>) {
        self.with(|q| q.push_back(core))
    }

    #[inline]
    fn pop(&self) -> Option<NonNull<Core>> {
        self.with(|q| q.pop_front())
    }

    fn is_empty(&self) -> bool {
        self.with(|q| q.is_empty())
    }

    fn clear(&self) {
        self.with(|q| q.clear())
    }
}

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
/// resume), `local` only briefly and never across a resume, so the two
/// borrows never overlap.
pub(crate) struct Core {
    pub(crate) header: Header,
    coroutine: UnsafeCell<Option<Coro>>,
    local: UnsafeCell<LocalState>,
}

/// Per-task state only the scheduler's thread reads and writes.
struct LocalState {
    state: TaskState,
    since: Instant,
    yielder: *const Yielder<(), ()>,
    /// The earliest deadline of the `timeout` scopes the task is in.
    deadline: Option<Instant>,
    /// The scope deadline that interrupted an operation of the task, until
    /// the `timeout` scope it belongs to ends (see [`with_deadline`]).
    fired: Option<Instant>,
    /// Nesting depth of `shield`: cancellation is ignored while > 0.
    shield: u32,
    /// A blocking call reported the cancellation to the task.
    cancel_observed: bool,
    /// An unpark came while the task was not waiting (rule 1).
    notified: bool,
    /// The task's entry in the timers, if any. It outlives the park that
    /// made it (see `prepare_timed_park`) and goes when it fires, when an
    /// earlier deadline replaces it, or when the task ends.
    timer: Option<(Instant, u64)>,
    /// Its `task_local!` values.
    locals: crate::task::local::Locals,
    /// The stack promised at spawn, until the first run takes it.
    stack: Option<stack::Reservation>,
    /// The generator the task executes innermost (null if none); see
    /// `generator::Info`.
    generator: *const crate::generator::Info,
}

impl Core {
    /// The local state.
    ///
    /// # Safety
    ///
    /// Only on the task's runtime thread, and the returned reference must not
    /// be held across a resume or a call that may reach `local` again.
    #[allow(clippy::mut_from_ref)]
    unsafe fn local(&self) -> &mut LocalState {
        // SAFETY: per the contract, this is the only live reference.
        unsafe { &mut *self.local.get() }
    }
}

/// Tunables of a scheduler, set by `runtime::Builder`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Config {
    pub(crate) stack_size: usize,
    /// Tasks run between two zero-timeout polls when the queue stays busy.
    pub(crate) event_interval: u32,
}

/// The thread-owned part of a runtime.
pub(crate) struct Scheduler {
    pub(crate) shared: Arc<Shared>,
    config: Config,
    /// Every live task; holding a reference here keeps the pointers in
    /// `run_queue` and `current` valid.
    tasks: RefCell<Slab<TaskRef>>,
    run_queue: RunQueue,
    timers: RefCell<BTreeMap<(Instant, u64), TaskRef>>,
    timer_seq: Cell<u64>,
    /// The running task (null between tasks).
    current: Cell<*const Core>,
    /// The task being force-unwound at shutdown.
    forcing: Cell<*const Core>,
    /// How many times it caught that unwind (see `forced_unwind`).
    forced_unwinds: Cell<u32>,
    /// The main task of `block_on`, and whether it has finished.
    main: Cell<*const Core>,
    main_done: Cell<bool>,
    /// The loop's clock: the time of the last poll (or of the last
    /// re-read by [`deadline_clock`](Self::deadline_clock)), used for
    /// `since` stamps and deadline checks in tasks — cheaper than reading
    /// the clock at every transition and every operation.
    tick: Cell<Instant>,
    /// Deadline checks made against `tick` since it was last read.
    clock_checks: Cell<u32>,
    /// Runtime references taken and not yet handed out (see `RuntimeRef`).
    runtime_reserve: Cell<usize>,
    events: RefCell<crate::reactor::Events>,
}

thread_local! {
    /// The scheduler running on this thread, while `block_on` runs.
    static CONTEXT: Cell<*const Scheduler> = const { Cell::new(ptr::null()) };
    /// The `timeout` deadline of code running outside any task.
    static THREAD_DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
    /// What `LocalState::fired` is to a task, for code outside any task.
    static THREAD_FIRED: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Runs `f` with this thread's scheduler, if a runtime is running here.
#[inline(always)]
pub(crate) fn with_scheduler<R>(f: impl FnOnce(&Scheduler) -> R) -> Option<R> {
    let p = CONTEXT.with(Cell::get);
    if p.is_null() {
        None
    } else {
        // SAFETY: CONTEXT is non-null only while an `EnterGuard` is alive,
        // and the scheduler outlives its guard (the guard borrows it).
        Some(f(unsafe { &*p }))
    }
}

/// The scheduler and the running task, if the caller is a task: as
/// pointers, valid while the task runs (`current` points to a task in the
/// scheduler's registry, and the scheduler outlives its `CONTEXT` entry).
///
/// No closure: `park` and `yield_now` switch stacks right after this, and
/// the switch must end up inlined in their caller (see `yield_now`); a
/// closure passed through here was measured not to be (a channel round trip
/// went from 57 to 109 ns).
#[inline(always)]
fn current_task_ptrs() -> Option<(NonNull<Scheduler>, NonNull<Core>)> {
    let s = NonNull::new(CONTEXT.with(Cell::get).cast_mut())?;
    // SAFETY: CONTEXT is non-null only while the scheduler is alive (see
    // `with_scheduler`).
    let core = NonNull::new(unsafe { s.as_ref() }.current.get().cast_mut())?;
    Some((s, core))
}

/// Runs `f` with the scheduler and the running task, if the caller is a task.
#[inline(always)]
fn with_current<R>(f: impl FnOnce(&Scheduler, &Core) -> R) -> Option<R> {
    let (s, core) = current_task_ptrs()?;
    // SAFETY: valid while the task runs, which it does until `f` returns.
    Some(f(unsafe { s.as_ref() }, unsafe { core.as_ref() }))
}

/// The guard page and stack size of the task running on this thread, read
/// by the stack-overflow handler (async-signal-safe: plain loads).
pub(crate) fn running_task_header() -> *const Header {
    let p = CONTEXT.with(Cell::get);
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

/// Resets CONTEXT when `block_on` ends, however it ends.
pub(crate) struct EnterGuard {
    prev: *const Scheduler,
    /// The thread's running generator when the runtime started.
    generator: *const crate::generator::Info,
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        CONTEXT.with(|c| c.set(self.prev));
        crate::generator::leave_runtime(self.generator);
    }
}

/// Whether a runtime is running on this thread.
pub(crate) fn in_runtime() -> bool {
    !CONTEXT.with(Cell::get).is_null()
}

fn current_task_ref() -> Option<TaskRef> {
    with_current(|s, core| s.tasks.borrow()[core.header.key as usize].clone())
}

/// The running task's identity, if the caller is a task.
pub(crate) fn current_task() -> Option<Task> {
    with_current(|_, core| core.header.task())
}

impl Scheduler {
    pub(crate) fn new(config: Config) -> std::io::Result<Scheduler> {
        Ok(Scheduler {
            shared: Arc::new(Shared::new()?),
            config,
            tasks: RefCell::new(Slab::new()),
            run_queue: RunQueue::default(),
            timers: RefCell::new(BTreeMap::new()),
            timer_seq: Cell::new(0),
            current: Cell::new(ptr::null()),
            forcing: Cell::new(ptr::null()),
            forced_unwinds: Cell::new(0),
            main: Cell::new(ptr::null()),
            main_done: Cell::new(false),
            tick: Cell::new(Instant::now()),
            clock_checks: Cell::new(0),
            runtime_reserve: Cell::new(0),
            events: RefCell::new(crate::reactor::Events::new()),
        })
    }

    /// Makes this the thread's running scheduler until the guard drops.
    ///
    /// # Panics
    ///
    /// If a runtime is already running on this thread.
    pub(crate) fn enter(&self) -> EnterGuard {
        let prev = CONTEXT.with(|c| c.replace(self as *const Scheduler));
        if !prev.is_null() {
            CONTEXT.with(|c| c.set(prev));
            panic!("{}", Error::NestedRuntime);
        }
        overflow::install();
        EnterGuard {
            prev,
            generator: crate::generator::enter_runtime(),
        }
    }

    /// A counted reference to this runtime for a new task.
    fn runtime_ref(&self) -> RuntimeRef {
        let mut reserve = self.runtime_reserve.get();
        if reserve == 0 {
            let prev = self
                .shared
                .runtime_refs
                .fetch_add(RUNTIME_REF_BLOCK, Ordering::Relaxed);
            if prev == 0 {
                // The references' strong count (see `RuntimeRef`).
                // SAFETY: `self.shared` is a live `Arc`.
                unsafe { Arc::increment_strong_count(Arc::as_ptr(&self.shared)) };
            }
            reserve = RUNTIME_REF_BLOCK;
        }
        self.runtime_reserve.set(reserve - 1);
        RuntimeRef(NonNull::from(&*self.shared))
    }

    pub(crate) fn default_stack_size(&self) -> usize {
        self.config.stack_size
    }

    /// Creates a task running `f` and queues it.
    ///
    /// # Safety
    ///
    /// `f` may borrow data that must outlive the task: the caller guarantees
    /// the task finishes or is unwound (by `shutdown`) before that data goes
    /// away. With a `'static` closure this always holds.
    pub(crate) unsafe fn spawn_unchecked<F, T>(
        &self,
        f: F,
        name: Option<Arc<str>>,
        stack_size: usize,
    ) -> Result<JoinHandle<T>, Error>
    where
        F: FnOnce() -> T,
        T: 'static,
    {
        let reservation = stack::reserve(stack_size)?;
        let mut tasks = self.tasks.borrow_mut();
        let entry = tasks.vacant_entry();
        let key = u32::try_from(entry.key()).expect("more than 2^32 tasks");
        let runtime = self.runtime_ref();
        let since = self.tick.get();
        let (task, handle) = Packet::<T>::allocate(
            |vtable| Core {
                header: Header::new(name, key, runtime, stack_size, vtable),
                coroutine: UnsafeCell::new(None),
                local: UnsafeCell::new(LocalState {
                    state: TaskState::Ready,
                    since,
                    yielder: ptr::null(),
                    deadline: None,
                    fired: None,
                    shield: 0,
                    cancel_observed: false,
                    notified: false,
                    timer: None,
                    locals: Default::default(),
                    stack: Some(reservation),
                    generator: ptr::null(),
                }),
            },
            f,
        );
        let core = NonNull::from(task.core());
        entry.insert(task);
        drop(tasks);
        self.run_queue.push(core);
        Ok(handle)
    }

    /// Creates a task running the `'static` closure `f` and queues it.
    pub(crate) fn spawn<F, T>(
        &self,
        f: F,
        name: Option<Arc<str>>,
        stack_size: usize,
    ) -> Result<JoinHandle<T>, Error>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        // SAFETY: `F` and `T` are 'static, so nothing they borrow can go away.
        unsafe { self.spawn_unchecked(f, name, stack_size) }
    }

    /// Runs `f` as the main task until it finishes, then unwinds every other
    /// task; returns the main task's handle (finished).
    pub(crate) fn block_on<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T,
        T: 'static,
    {
        struct Shutdown<'a>(&'a Scheduler);
        impl Drop for Shutdown<'_> {
            fn drop(&mut self) {
                self.0.main.set(ptr::null());
                self.0.shutdown();
            }
        }
        let shutdown = Shutdown(self);
        let size = self.default_stack_size();
        // SAFETY: `f` and `T` may borrow from our caller. The main task either
        // finishes inside `run_until_main`, or `shutdown` — run by the guard
        // above on every exit path, unwinding included — unwinds it before
        // this function returns.
        let handle = unsafe { self.spawn_unchecked(f, Some("main".into()), size) }
            .unwrap_or_else(|e| panic!("corio: cannot start the main task: {e}"));
        self.main_done.set(false);
        self.main.set(handle.core_ptr());
        self.run_until_main();
        drop(shutdown);
        handle
    }

    /// Wakes a task of this runtime, on this thread (rule 2): a waiting task
    /// is queued, any other keeps a token for its next park.
    fn unpark_local(&self, core: &Core) {
        // SAFETY: on the runtime thread; read and released at once.
        let state = unsafe { core.local().state };
        match state {
            TaskState::Waiting(_) => self.schedule(core),
            TaskState::Finished(_) => {}
            // SAFETY: as above.
            _ => unsafe { core.local().notified = true },
        }
    }

    /// Queues a waiting task again (`Waiting → Ready`).
    fn schedule(&self, core: &Core) {
        // SAFETY: on the runtime thread; not held across anything.
        let local = unsafe { core.local() };
        local.state = local.state.next(Transition::Wake);
        local.since = self.tick.get();
        self.run_queue.push(NonNull::from(core));
    }

    /// Runs tasks until the main task has finished.
    fn run_until_main(&self) {
        let mut budget = self.config.event_interval;
        loop {
            loop {
                let next = self.run_queue.pop();
                let Some(core) = next else { break };
                // SAFETY: queued tasks are in `tasks` (they are removed only
                // when finished, and a finished task is never queued; shutdown
                // clears the queue).
                self.run_task(unsafe { core.as_ref() });
                if self.main_done.get() {
                    return;
                }
                budget -= 1;
                if budget == 0 {
                    budget = self.config.event_interval;
                    self.poll_events(false);
                }
            }
            self.poll_events(true);
        }
    }

    /// Resumes one task until it suspends or ends.
    fn run_task(&self, core: &Core) {
        {
            // SAFETY: on the runtime thread; released before the resume.
            let local = unsafe { core.local() };
            local.state = local.state.next(Transition::Resume);
        }
        self.current.set(core);
        // SAFETY: only `run_task` and `abandon` borrow the coroutine, never
        // both at once (the running task cannot reach its own coroutine).
        let slot = unsafe { &mut *core.coroutine.get() };
        let coroutine = match slot {
            Some(coroutine) => coroutine,
            None => {
                // First run: take the stack promised at spawn and make the
                // coroutine on it. (A finished task, whose coroutine is
                // gone, is never queued.)
                // SAFETY: on the runtime thread; released at once.
                let reservation = unsafe { core.local().stack.take() }
                    .expect("a task that has not run holds its stack reservation");
                let stack = reservation.take();
                core.header.set_stack_guard(stack.guard_range());
                // SAFETY: the vtable belongs to this block, which has not run.
                slot.insert(unsafe { (core.header.vtable.start)(NonNull::from(core), stack) })
            }
        };
        let result = coroutine.resume(());
        self.current.set(ptr::null());
        match result {
            // The task recorded its own transition before suspending.
            CoroutineResult::Yield(()) => {}
            CoroutineResult::Return(outcome) => {
                // SAFETY: on the runtime thread; the task has finished.
                let local = unsafe { core.local() };
                local.state = local.state.next(Transition::Finish(outcome));
                if ptr::eq(core, self.main.get()) {
                    self.main_done.set(true);
                }
                self.retire(core);
            }
        }
    }

    /// Drops a finished or abandoned task's coroutine (returning its stack to
    /// the pool) and then its registry entry, in that order.
    fn retire(&self, core: &Core) {
        // SAFETY: the coroutine is not running (it returned or was unwound).
        let coroutine = unsafe { (*core.coroutine.get()).take() };
        drop(coroutine);
        // SAFETY: on the runtime thread; released at once.
        let (stack, timer) = unsafe {
            let local = core.local();
            (local.stack.take(), local.timer.take())
        };
        // A task that never ran (it still holds its stack promise): release
        // the promise and drop its closure, which may borrow from a scope or
        // `block_on`'s caller — now, not whenever the last reference goes.
        if let Some(stack) = stack {
            drop(stack);
            // May run on the scheduler's stack: a panic must stop here.
            let dropped = panic::catch_unwind(AssertUnwindSafe(|| {
                // SAFETY: the vtable belongs to this block; on its thread.
                unsafe { (core.header.vtable.drop_body)(NonNull::from(core)) }
            }));
            if let Err(payload) = dropped {
                report_caught(
                    &core.header,
                    "while dropping its closure (it never ran)",
                    payload,
                );
            }
        }
        // Its lazily kept timer entry, which holds a reference to it.
        let timer = timer.and_then(|t| self.timers.borrow_mut().remove(&t));
        drop(timer);
        let task = self.tasks.borrow_mut().remove(core.header.key as usize);
        // Dropped outside the borrow: it may run user destructors (`T`).
        drop(task);
    }

    /// Polls for IO events, wakeups from other threads and expired timers.
    /// With `block`, waits until one of them arrives (or the next timer).
    fn poll_events(&self, block: bool) {
        let woke = self.drain_inject();
        let idle = block && !woke && self.run_queue.is_empty();
        let timeout = if idle {
            // Never sleep unboundedly: an idle loop looks at its inject queue
            // at least every IDLE_RECHECK even without a notify. A defence
            // only (one hang of an fs test, a task waiting on the blocking
            // pool, was seen once in CI and not reproduced since); it costs
            // one wakeup per second of idleness.
            let next_timer = self
                .timers
                .borrow()
                .first_key_value()
                .map(|((at, _), _)| at.saturating_duration_since(Instant::now()));
            Some(next_timer.map_or(IDLE_RECHECK, |t| t.min(IDLE_RECHECK)))
        } else {
            Some(Duration::ZERO)
        };
        if timeout != Some(Duration::ZERO) || self.shared.reactor.has_sources() {
            // Rule 2's other half: a wakeup injected after our drain but
            // before `sleeping` was set must not be slept through.
            let timeout = if timeout == Some(Duration::ZERO) || self.shared.inject.sleep() {
                timeout
            } else {
                Some(Duration::ZERO)
            };
            let mut events = self.events.borrow_mut();
            events.clear();
            self.shared.reactor.wait(&mut events, timeout);
            self.shared.inject.awake();
            self.shared.reactor.dispatch(&events, |core| {
                // SAFETY: a waiter's entry is removed before its task
                // leaves the wait (reactor rule 3), so the task is alive and
                // still in that wait; we are on its runtime thread.
                let core = unsafe { core.as_ref() };
                // SAFETY: as above; read and released at once.
                let finished = unsafe { core.local().state.is_finished() };
                debug_assert!(!finished, "a reactor waiter entry outlived its task");
                self.unpark_local(core)
            });
            drop(events);
            if !self.drain_inject() && idle {
                self.drain_inject_unflagged();
            }
        }
        self.refresh_clock();
        self.fire_timers();
    }

    /// The time deadline checks in tasks compare against: the loop's clock,
    /// read at every poll — every time the run queue empties, and at least
    /// every `event_interval` task runs — and re-read every
    /// `CLOCK_CHECKS`-th check, so that a task that never waits still sees
    /// its deadline pass within that many operations.
    ///
    /// A fresh `Instant::now()` per check cost about 25 ns here, several
    /// times per operation (a channel round trip in a `timeout` scope took
    /// 233 ns against 76 ns without one). What the coarser clock changes:
    /// an operation that completes without waiting may still complete a
    /// little after the deadline; one that waits fails when the loop's
    /// timer fires, as before, and `timeout` itself reads the real clock.
    #[inline]
    fn deadline_clock(&self) -> Instant {
        let checks = self.clock_checks.get();
        if checks < CLOCK_CHECKS {
            self.clock_checks.set(checks + 1);
            self.tick.get()
        } else {
            self.refresh_clock()
        }
    }

    /// Reads the clock into `tick`: at every poll, and from
    /// `deadline_clock` every `CLOCK_CHECKS`-th check. Cold for the sake of
    /// `deadline_clock`, whose callers run per operation: marked
    /// `#[inline(never)]` instead, a channel round trip in a `timeout` ran
    /// 20 more instructions (callgrind, `sync_count pingpong_timeout`); one
    /// call per poll does not care.
    #[cold]
    fn refresh_clock(&self) -> Instant {
        let now = Instant::now();
        self.tick.set(now);
        self.clock_checks.set(0);
        now
    }

    /// Takes whatever is in the inject queue even if the flag says nothing
    /// is (see `IDLE_RECHECK`).
    fn drain_inject_unflagged(&self) {
        for task in self.shared.inject.take_unflagged() {
            self.unpark_local(task.core());
        }
    }

    fn drain_inject(&self) -> bool {
        let woken = self.shared.inject.take();
        let any = !woken.is_empty();
        for task in woken {
            self.unpark_local(task.core());
        }
        any
    }

    fn fire_timers(&self) {
        let now = self.tick.get();
        loop {
            let expired = {
                let mut timers = self.timers.borrow_mut();
                match timers.first_entry() {
                    Some(e) if e.key().0 <= now => Some(e.remove_entry()),
                    _ => None,
                }
            };
            match expired {
                Some((key, task)) => {
                    // SAFETY: on the runtime thread; released at once.
                    let local = unsafe { task.core().local() };
                    if local.timer == Some(key) {
                        local.timer = None;
                    }
                    Unparker::Task(task).unpark();
                }
                None => break,
            }
        }
    }

    /// Unwinds every task that is still alive, running their destructors
    /// (rule 7 of the lifecycle). Tasks spawned by those destructors are
    /// unwound too.
    pub(crate) fn shutdown(&self) {
        self.run_queue.clear();
        loop {
            let tasks: Vec<TaskRef> = self.tasks.borrow().iter().map(|(_, t)| t.clone()).collect();
            if tasks.is_empty() {
                break;
            }
            for task in tasks {
                self.abandon(&task);
            }
            self.run_queue.clear();
        }
        let timers = std::mem::take(&mut *self.timers.borrow_mut());
        drop(timers);
        let inject = self.shared.inject.take_unflagged();
        drop(inject);
    }

    /// Unwinds `task` on its own stack, or gives up on it (see the module
    /// docs, "Shutdown"), and removes it.
    fn abandon(&self, task: &TaskRef) {
        let core = task.core();
        // SAFETY: `task` is not running: shutdown runs between tasks, and
        // `abandon_task` refuses the running task (it may run nested inside
        // another task, whose `current`/`forcing` it saves and restores).
        let slot = unsafe { &mut *core.coroutine.get() };
        let mut outcome = None;
        if let Some(coroutine) = slot.as_mut().filter(|c| !c.done()) {
            // Its cancellation checks unwind it from now on (`report_cancel`),
            // and so do its yields (`suspend`, through the tag).
            core.header.cancelled.store(true, Ordering::Release);
            let saved = (
                self.current.get(),
                self.forcing.get(),
                self.forced_unwinds.replace(0),
            );
            self.current.set(core);
            self.forcing.set(core);
            // SAFETY: on the runtime thread; released before the resume. The
            // task has run, so `yielder` is set.
            unsafe {
                let local = core.local();
                local.yielder = local.yielder.map_addr(|a| a | FORCED_TAG);
                // Straight to running, whether it waited or was ready: it is
                // resumed only to unwind (not a lifecycle step of its own).
                local.state = TaskState::Running;
            }
            // It returns, or suspends for good (`forced_unwind`).
            if let CoroutineResult::Return(o) = coroutine.resume(()) {
                outcome = Some(o);
            }
            self.forced_unwinds.set(saved.2);
            self.forcing.set(saved.1);
            self.current.set(saved.0);
            if outcome.is_none() {
                let _ = writeln!(
                    std::io::stderr(),
                    "corio: {}: caught the unwind of the runtime's shutdown {FORCE_ATTEMPTS} \
                     times and went on; given up on: its stack and everything on it are \
                     leaked, never dropped",
                    core.header.describe()
                );
                // Leaked, not freed: wait queues and the reactor may still
                // hold pointers into its stack and to its block.
                std::mem::forget(slot.take());
                std::mem::forget(task.clone());
            }
        }
        {
            // SAFETY: on the runtime thread; the task is unwound.
            let local = unsafe { core.local() };
            local.state = match (local.state, outcome) {
                (TaskState::Finished(o), _) => TaskState::Finished(o),
                (TaskState::Running, Some(o)) => local.state.next(Transition::Finish(o)),
                // Resumed and suspended again, or never resumed.
                (TaskState::Ready | TaskState::Waiting(_), _) => {
                    local.state.next(Transition::Abandon)
                }
                // Only if a panic escaped its coroutine (a corio bug): do not
                // add a second panic to that unwind.
                (TaskState::Running, None) => TaskState::Finished(Outcome::Cancelled),
            };
        }
        task.complete_cancelled();
        // Not retired already (a nested `abandon_task` may have, and a new
        // task may have taken its key since).
        let registered = self
            .tasks
            .borrow()
            .get(core.header.key as usize)
            .is_some_and(|t| ptr::eq(t.core(), core));
        if registered {
            self.retire(core);
        }
    }

    /// A snapshot of every live task.
    pub(crate) fn snapshot(&self) -> Vec<crate::inspect::TaskInfo> {
        let now = Instant::now();
        self.tasks
            .borrow()
            .iter()
            .map(|(_, t)| {
                let core = t.core();
                // SAFETY: on the runtime thread (the caller is one of its
                // tasks); read and released at once.
                let (state, since) = unsafe {
                    let l = core.local();
                    (l.state, l.since)
                };
                crate::inspect::TaskInfo {
                    task: core.header.task(),
                    state,
                    in_state: now.saturating_duration_since(since),
                    stack_size: core.header.stack_size,
                }
            })
            .collect()
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.shared.alive.store(false, Ordering::Release);
        if !self.tasks.borrow().is_empty() {
            // Tasks spawned but never run by `block_on`: unwind them here, on
            // their own thread, with this scheduler entered.
            let _guard = CONTEXT.with(|c| {
                let prev = c.replace(self as *const Scheduler);
                EnterGuard {
                    prev,
                    generator: crate::generator::enter_runtime(),
                }
            });
            self.shutdown();
        }
        let reserve = self.runtime_reserve.replace(0);
        if reserve > 0 {
            // SAFETY: the reserve is counted references we own.
            unsafe { release_runtime_refs(NonNull::from(&*self.shared), reserve) };
        }
        // Every task's stack is back in the pool: give them back to the
        // system (memory and mappings).
        stack::release_idle();
        // After a burst of tasks the freed task blocks sit in the C heap,
        // which glibc keeps for the process; hand that back too. Only after
        // a burst: trimming walks the heap, and a small runtime has little
        // to give.
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        if self.tasks.borrow().capacity() >= TRIM_AFTER_TASKS {
            // SAFETY: `malloc_trim` only returns free heap memory to the
            // system; it is thread-safe and touches no live allocation.
            unsafe { libc::malloc_trim(0) };
        }
    }
}

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
/// (module rule 6): whatever the task does, and the drops of what it leaves,
/// stay under `catch_unwind`.
fn run_body<F, T>(yielder: &Yielder<(), ()>, f: F, packet: &Packet<T>) -> Outcome
where
    F: FnOnce() -> T,
{
    let core = &packet.core;
    // SAFETY: this task runs on its runtime thread; released at once.
    unsafe { core.local().yielder = yielder };
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    let describe = || core.header.describe();
    let forcing = with_scheduler(|s| ptr::eq(s.forcing.get(), core)).unwrap_or(false);
    // SAFETY: as above.
    let observed = unsafe { core.local().cancel_observed };
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
    // SAFETY: on the runtime thread; released at once.
    let any_locals = unsafe { core.local().locals.begin_destroy() };
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
/// unwind into the scheduler (module rule 6).
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

/// Records the running task's transition `t` (`Yield`, which also queues it
/// again, or `Block`) and suspends it: the scheduler, when it gets control
/// back, has nothing left to do for it.
#[inline(always)]
fn suspend(s: &Scheduler, core: &Core, t: Transition) {
    // SAFETY: on the runtime thread; released before the switch.
    let y = unsafe { core.local().yielder };
    // A task that shutdown unwinds does not yield (module docs, "Shutdown").
    // Parks need no test: theirs is the cancellation check before this.
    if matches!(t, Transition::Yield) && y.addr() & FORCED_TAG != 0 {
        forced_unwind(s, core);
    }
    // SAFETY: as above.
    unsafe {
        let local = core.local();
        local.state = local.state.next(t);
        local.since = s.tick.get();
    }
    if matches!(t, Transition::Yield) {
        s.run_queue.push(NonNull::from(core));
    }
    debug_assert!(!y.is_null());
    // SAFETY: `yielder` was stored by `run_body` on this task's own stack,
    // which lives as long as the task, and the caller runs inside the task.
    unsafe { &*y }.suspend(());
}

/// Suspends the caller until it is unparked, `deadline` (or an enclosing
/// `timeout`) passes, or — in a task — it is cancelled. Outside a task it
/// parks the thread. May return `Ok` spuriously: callers re-check.
///
/// The common case — a task with no deadline and no cancellation — is
/// inlined into the caller down to the stack switch, for the reason given
/// at [`yield_now`].
#[inline(always)]
pub(crate) fn park(reason: WaitReason, deadline: Option<Instant>) -> Result<(), Interrupt> {
    if thread::panicking() {
        return Err(Interrupt::Unwinding);
    }
    match current_task_ptrs() {
        // SAFETY: see `current_task_ptrs`; the task runs until it parks.
        Some((s, core)) => park_task(
            unsafe { s.as_ref() },
            unsafe { core.as_ref() },
            reason,
            deadline,
        ),
        None => park_thread(deadline),
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

#[inline(always)]
fn park_task(
    s: &Scheduler,
    core: &Core,
    reason: WaitReason,
    deadline: Option<Instant>,
) -> Result<(), Interrupt> {
    // SAFETY: on the runtime thread; read and released at once.
    let scope_deadline = unsafe { core.local().deadline };
    if deadline.is_some()
        || scope_deadline.is_some()
        || core.header.cancelled.load(Ordering::Relaxed)
    {
        let deadline = earliest(deadline, scope_deadline);
        if !prepare_timed_park(s, core, deadline)? {
            return Ok(());
        }
        suspend(s, core, Transition::Block(reason));
        // SAFETY: on the runtime thread; released at once.
        unsafe { core.local().notified = false };
        // Against the loop's clock, read when it last polled (just before it
        // resumed us, or a few tasks earlier), not a fresh `Instant::now()`:
        // if the deadline has just passed but the loop has not seen it yet,
        // this returns as a spurious wakeup, and the caller's next park arms
        // a timer in the past that fires at the next poll.
        return check_interrupt_at(core, deadline, s.tick.get(), true);
    }
    // Rule 1: consume a pending notification instead of suspending.
    // SAFETY: on the runtime thread; released at once.
    if std::mem::take(unsafe { &mut core.local().notified }) {
        return Ok(());
    }
    suspend(s, core, Transition::Block(reason));
    // Resumed. Unparks that came while we sat in the run queue are covered
    // by the caller's re-check: drop their token.
    // SAFETY: as above.
    unsafe { core.local().notified = false };
    // Cancelled while we waited (or unwound by shutdown)?
    check_cancelled(core, true)
}

/// The out-of-line half of a park with a deadline or a pending
/// cancellation: reports an interrupt that is already due, consumes a
/// pending notification (`Ok(false)`: do not suspend), and arms the timer.
/// The switch itself stays inlined in the caller (see `yield_now`).
#[inline(never)]
fn prepare_timed_park(
    s: &Scheduler,
    core: &Core,
    deadline: Option<Instant>,
) -> Result<bool, Interrupt> {
    check_interrupt_at(core, deadline, s.deadline_clock(), false)?;
    // SAFETY: on the runtime thread; released at once.
    if std::mem::take(unsafe { &mut core.local().notified }) {
        return Ok(false);
    }
    if let Some(at) = deadline {
        // SAFETY: on the runtime thread; released at once.
        let armed = unsafe { core.local().timer };
        // Timers are lazy: an entry stays armed after the park that made it
        // returns (an IO wakeup usually comes first), and a later park whose
        // deadline is not earlier reuses it — if it fires first, the park
        // returns spuriously, the caller re-checks and parks again with a
        // fresh entry. A connection that waits for each request under a
        // deadline thus inserts about one entry per deadline period, not
        // one insert and one removal per request.
        match armed {
            Some((armed_at, _)) if armed_at <= at => {}
            _ => {
                let mut timers = s.timers.borrow_mut();
                if let Some(old) = armed {
                    timers.remove(&old);
                }
                let seq = s.timer_seq.get();
                s.timer_seq.set(seq + 1);
                let task = s.tasks.borrow()[core.header.key as usize].clone();
                timers.insert((at, seq), task);
                // SAFETY: as above.
                unsafe { core.local().timer = Some((at, seq)) };
            }
        }
    }
    Ok(true)
}

/// [`check_cancelled`], then whether `deadline` has passed at `now`.
/// `suspended`: the task has just been resumed from a park.
fn check_interrupt_at(
    core: &Core,
    deadline: Option<Instant>,
    now: Instant,
    suspended: bool,
) -> Result<(), Interrupt> {
    check_cancelled(core, suspended)?;
    match deadline {
        Some(at) if now >= at => timed_out(now),
        _ => Ok(()),
    }
}

/// A deadline has passed: `TimedOut`, except in cleanup code running in an
/// unwind (module rule 4).
#[cold]
#[inline(never)]
fn timed_out(now: Instant) -> Result<(), Interrupt> {
    if thread::panicking() {
        Ok(())
    } else {
        Err(timed_out_at(now))
    }
}

/// Whether a cancellation of `core` is to be reported (it is not shielded).
/// `suspended`: the task has just been resumed (it let the others run).
#[inline(always)]
fn check_cancelled(core: &Core, suspended: bool) -> Result<(), Interrupt> {
    if core.header.cancelled.load(Ordering::Acquire) {
        return report_cancel(core, suspended);
    }
    Ok(())
}

/// The cancelled half of [`check_cancelled`], for the running task `core`.
///
/// A task told of its cancellation before that reaches a cancellation point
/// again without having suspended since (it caught the unwind, or ignored
/// the error) yields first (module rule 5): else a task that catches its
/// cancellation in a loop would never suspend again and starve its thread.
///
/// A task that shutdown is unwinding unwinds from here, shielded or not.
#[cold]
#[inline(never)]
fn report_cancel(core: &Core, suspended: bool) -> Result<(), Interrupt> {
    // Cleanup code running in an unwind completes what needs no wait
    // (module rule 4); a wait is refused by `park` itself.
    if thread::panicking() {
        return Ok(());
    }
    with_scheduler(|s| {
        if ptr::eq(s.forcing.get(), core) {
            forced_unwind(s, core);
        }
    });
    // SAFETY: on the runtime thread; read and released at once.
    let (shield, observed) = unsafe {
        let local = core.local();
        (local.shield, local.cancel_observed)
    };
    if shield > 0 {
        return Ok(());
    }
    if observed && !suspended {
        // Unwinds instead if shutdown began meanwhile (`suspend`).
        with_scheduler(|s| suspend(s, core, Transition::Yield));
    }
    // SAFETY: as above (the task is running again if it yielded).
    unsafe { core.local().cancel_observed = true };
    Err(Interrupt::Cancelled)
}

/// The running task `core` is being unwound by its runtime (shutdown) and
/// reached a cancellation check or a yield: it unwinds from here instead,
/// shielded or not, and never suspends. Once it has caught that unwind
/// `FORCE_ATTEMPTS` times, it suspends for good instead, and the runtime
/// gives up on it (module docs, "Shutdown").
#[cold]
#[inline(never)]
fn forced_unwind(s: &Scheduler, core: &Core) -> ! {
    let n = s.forced_unwinds.get() + 1;
    s.forced_unwinds.set(n);
    // SAFETY: on the runtime thread; released at once.
    unsafe { core.local().cancel_observed = true };
    if n <= FORCE_ATTEMPTS {
        panic::resume_unwind(Box::new(CancelUnwind));
    }
    // SAFETY: as above. Untagged, it is the pointer `run_body` stored.
    let y = unsafe { core.local().yielder }.map_addr(|a| a & !FORCED_TAG);
    loop {
        // SAFETY: `yielder` lives on this task's stack, which outlives the
        // task, and we run inside the task. `abandon` never resumes it.
        unsafe { &*y }.suspend(());
    }
}

#[inline(never)]
fn park_thread(deadline: Option<Instant>) -> Result<(), Interrupt> {
    let deadline = earliest(deadline, THREAD_DEADLINE.with(Cell::get));
    match deadline {
        None => thread::park(),
        Some(at) => {
            let now = Instant::now();
            if now >= at {
                return Err(timed_out_at(now));
            }
            thread::park_timeout(at - now);
            let now = Instant::now();
            if now >= at {
                return Err(timed_out_at(now));
            }
        }
    }
    Ok(())
}

/// Checks for cancellation and an expired `timeout` scope without blocking:
/// the test a non-blocking operation makes before it starts.
#[inline]
pub(crate) fn check_current(deadline: Option<Instant>) -> Result<(), Interrupt> {
    match with_current(|s, core| check_task(s, core, deadline)) {
        Some(r) => r,
        None => check_thread_deadline(deadline),
    }
}

/// [`check_current`], also returning which runtime the calling task belongs
/// to (`None` outside tasks; the pointer is for comparisons only) — what an
/// IO operation needs next, from the same thread-local lookup.
#[inline]
pub(crate) fn check_current_runtime(
    deadline: Option<Instant>,
) -> Result<Option<*const Shared>, Interrupt> {
    match with_current(|s, core| check_task(s, core, deadline).map(|()| Arc::as_ptr(&s.shared))) {
        Some(r) => r.map(Some),
        None => check_thread_deadline(deadline).map(|()| None),
    }
}

/// The test of [`check_current`] for the running task `core`.
#[inline(always)]
fn check_task(s: &Scheduler, core: &Core, deadline: Option<Instant>) -> Result<(), Interrupt> {
    // SAFETY: on the runtime thread; read and released at once.
    let scope = unsafe { core.local().deadline };
    // Fast path, taken by nearly every call that may wait: nothing to report
    // and no deadline anywhere.
    if deadline.is_none() && scope.is_none() && !core.header.cancelled.load(Ordering::Relaxed) {
        return Ok(());
    }
    check_interrupt_at(core, earliest(deadline, scope), s.deadline_clock(), false)
}

/// The deadline test of code running outside any task.
fn check_thread_deadline(deadline: Option<Instant>) -> Result<(), Interrupt> {
    match earliest(deadline, THREAD_DEADLINE.with(Cell::get)) {
        Some(at) => {
            let now = Instant::now();
            if now >= at && !thread::panicking() {
                Err(timed_out_at(now))
            } else {
                Ok(())
            }
        }
        None => Ok(()),
    }
}

/// Yields to the scheduler: the task goes to the back of the run queue.
/// Outside a task it yields the thread.
///
/// Inlined, down to the stack switch, into the caller (`corio::yield_now` is
/// `#[inline]` too). Corosensei resumes a task with a `call` and suspends it
/// with a `ret`, so every function the task returns from after a resume —
/// having entered it before the suspend — is a return the CPU's return
/// stack predicts wrong, and so is the suspend's own `ret` when the task
/// made calls since it was resumed. With the switch in a separate frame a
/// yield cost 27.6 ns on the benchmark machine; inlined into the
/// benchmark's loop, 4.7 ns (docs/performance.md).
#[inline(always)]
pub(crate) fn yield_now() {
    if thread::panicking() {
        return;
    }
    if with_current(|s, core| suspend(s, core, Transition::Yield)).is_none() {
        thread::yield_now();
    }
}

/// The earliest `timeout` deadline around the caller.
pub(crate) fn current_deadline() -> Option<Instant> {
    // SAFETY: on the runtime thread; read and released at once.
    with_current(|_, core| unsafe { core.local().deadline })
        .unwrap_or_else(|| THREAD_DEADLINE.with(Cell::get))
}

/// `TimedOut`, for a deadline check that failed at `now`: if the enclosing
/// `timeout` deadline has passed too (not only the operation's own), the
/// scope it belongs to learns that it interrupted an operation.
#[cold]
#[inline(never)]
pub(crate) fn timed_out_at(now: Instant) -> Interrupt {
    if let Some(at) = current_deadline()
        && now >= at
    {
        deadline_fired(at);
    }
    Interrupt::TimedOut
}

/// Records that the `timeout` deadline `at` (the earliest around the
/// caller, as [`current_deadline`] says) interrupted an operation: the
/// scope whose deadline it is will report `Elapsed` (see [`with_deadline`]).
#[cold]
pub(crate) fn deadline_fired(at: Instant) {
    // SAFETY: on the runtime thread; released at once.
    let in_task = with_current(|_, core| unsafe { core.local().fired = Some(at) });
    if in_task.is_none() {
        THREAD_FIRED.with(|c| c.set(Some(at)));
    }
}

/// Takes back what a deadline check recorded for an operation that
/// completed anyway (a waker handed it its value just as the deadline
/// passed): nothing was interrupted. Forgetting the record outright is
/// exact because a scope's deadline, once passed, fails the entry check of
/// every later operation in it (deadline checks compare with a clock that
/// never goes back): an operation that got as far as waiting cannot follow
/// an interrupted one in the same scope.
pub(crate) fn unobserve_timeout() {
    // SAFETY: on the runtime thread; released at once.
    let in_task = with_current(|_, core| unsafe { core.local().fired = None });
    if in_task.is_none() {
        THREAD_FIRED.with(|c| c.set(None));
    }
}

/// Runs `f` with the `timeout` deadline lowered to `deadline` (nested
/// deadlines take the earliest), restoring it afterwards however `f` ends.
/// Also returns whether `deadline` interrupted an operation in `f` — an
/// operation failed or unwound because this deadline passed (not an
/// enclosing scope's earlier one, not the operation's own). A record of an
/// enclosing scope's deadline is passed on to that scope.
pub(crate) fn with_deadline<R>(deadline: Instant, f: impl FnOnce() -> R) -> (R, bool) {
    type ScopeState = (Option<Instant>, Option<Instant>);
    /// Replaces the caller's `(deadline, fired)` by what `update` makes of
    /// it, returning what `update` returns.
    fn update<T>(update: impl FnOnce(&mut ScopeState) -> T) -> T {
        match current_core() {
            Some(core) => {
                // SAFETY: the running task's core, on its runtime thread;
                // released at once (`update` does not reach it).
                let local = unsafe { core.as_ref().local() };
                let mut state = (local.deadline, local.fired);
                let r = update(&mut state);
                (local.deadline, local.fired) = state;
                r
            }
            None => {
                let mut state = (THREAD_DEADLINE.get(), THREAD_FIRED.get());
                let r = update(&mut state);
                THREAD_DEADLINE.set(state.0);
                THREAD_FIRED.set(state.1);
                r
            }
        }
    }
    /// Leaves the scope: restores the enclosing `(deadline, fired)`, and
    /// says whether the record is `own`'s; one that is not stays for the
    /// enclosing scopes.
    fn leave(outer: ScopeState, own: Option<Instant>) -> bool {
        update(|state| {
            let mine = own.is_some() && state.1 == own;
            *state = (outer.0, if mine { outer.1 } else { state.1.or(outer.1) });
            mine
        })
    }
    struct Restore(ScopeState);
    impl Drop for Restore {
        fn drop(&mut self) {
            leave(self.0, None);
        }
    }
    let outer = update(|state| {
        let outer = *state;
        *state = (earliest(state.0, Some(deadline)), None);
        outer
    });
    let restore = Restore(outer);
    let r = f();
    std::mem::forget(restore);
    (r, leave(outer, Some(deadline)))
}

/// Runs `f` with cancellation held off: blocking calls inside do not fail
/// with `Cancelled`. The cancellation stays pending and is reported by the
/// first blocking call after `f` returns.
pub(crate) fn shielded<R>(f: impl FnOnce() -> R) -> R {
    struct Unshield;
    impl Drop for Unshield {
        fn drop(&mut self) {
            // SAFETY: on the runtime thread; released at once.
            with_current(|_, core| unsafe { core.local().shield -= 1 });
        }
    }
    // SAFETY: as above.
    let entered = with_current(|_, core| unsafe { core.local().shield += 1 });
    let _unshield = entered.map(|()| Unshield);
    f()
}

/// Whether the running task has been cancelled (shielded or not). `false`
/// outside a task.
pub(crate) fn current_cancelled() -> bool {
    with_current(|_, core| core.header.cancelled.load(Ordering::Acquire)).unwrap_or(false)
}

/// Whether the running task saw a blocking call fail with its cancellation.
pub(crate) fn current_cancel_observed() -> bool {
    // SAFETY: on the runtime thread; read and released at once.
    with_current(|_, core| unsafe { core.local().cancel_observed }).unwrap_or(false)
}

/// Un-marks a cancellation that `park` reported but the caller did not:
/// its operation completed anyway (a waker handed it a value just as the
/// cancellation came), so the cancellation stays pending for the next call.
/// Only right after such a `park`: the cancellation cannot have been
/// reported before, or the operation would have failed on entry.
pub(crate) fn unobserve_cancel() {
    // SAFETY: on the runtime thread; released at once.
    with_current(|_, core| unsafe { core.local().cancel_observed = false });
}

/// Whether the running task is being unwound by its runtime (shutdown):
/// it must not suspend (each attempt unwinds it again, see "Shutdown").
pub(crate) fn is_forcing_current() -> bool {
    with_current(|s, core| ptr::eq(s.forcing.get(), core)).unwrap_or(false)
}

/// Unwinds `task` — a task of this thread's runtime that is not running —
/// in place, now, running its destructors, and removes it; it finishes
/// cancelled. For scopes that must not outlive their children but cannot
/// suspend to wait for them (their own task is unwinding). A no-op for a
/// finished task, the running one, or one of another runtime.
pub(crate) fn abandon_task(task: &TaskRef) {
    with_scheduler(|s| {
        let core = task.core();
        if !ptr::eq(Arc::as_ptr(&s.shared), core.header.runtime.as_ptr())
            || ptr::eq(s.current.get(), core)
        {
            return;
        }
        // SAFETY: on the runtime thread; read and released at once.
        let (state, timer) = unsafe {
            let local = core.local();
            (local.state, local.timer.take())
        };
        match state {
            TaskState::Finished(_) | TaskState::Running => return,
            // Its run-queue entry is an uncounted pointer: remove it before
            // the task goes.
            TaskState::Ready => s
                .run_queue
                .with(|q| q.retain(|c| !ptr::eq(c.as_ptr(), core))),
            TaskState::Waiting(_) => {}
        }
        if let Some(timer) = timer {
            s.timers.borrow_mut().remove(&timer);
        }
        s.abandon(task);
    });
}

/// Runs `f` with the enclosing `timeout` deadlines lifted, restoring them
/// afterwards however `f` ends: for waits that must complete even after the
/// deadline (a scope waiting for its children).
pub(crate) fn without_deadline<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Option<Instant>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(d) = self.0 {
                // SAFETY: on the runtime thread; released at once.
                with_current(|_, core| unsafe { core.local().deadline = d });
            }
        }
    }
    // SAFETY: as above.
    let prev = with_current(|_, core| unsafe { core.local().deadline.take() });
    let _restore = Restore(prev);
    f()
}

/// Runs `f` with the running task's task-local storage (`None` outside a
/// task). `f` must not run user code (nor reach the task's state again).
pub(crate) fn with_task_locals<R>(
    f: impl FnOnce(&mut crate::task::local::Locals) -> R,
) -> Option<R> {
    // SAFETY: on the runtime thread; `f` does not reach `local` again.
    with_current(|_, core| f(unsafe { &mut core.local().locals }))
}

/// The running task's running-generator slot (see `generator::Info`), if
/// the caller is a task: valid while the task lives.
#[inline(always)]
pub(crate) fn current_generator_slot() -> Option<*mut *const crate::generator::Info> {
    let (_, core) = current_task_ptrs()?;
    // SAFETY: the running task's core is live (see `current_task_ptrs`); the
    // field's address is taken without making a reference, so it overlaps no
    // `local()` borrow, and the generator code that uses it never holds one.
    Some(unsafe { &raw mut (*core.as_ref().local.get()).generator })
}

/// The running task's core, if the caller is a task.
pub(crate) fn current_core() -> Option<NonNull<Core>> {
    with_current(|_, core| NonNull::from(core))
}

/// The id of the running task, if any.
pub(crate) fn current_id() -> Option<TaskId> {
    with_current(|_, core| core.header.id)
}
