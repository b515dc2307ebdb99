//! The park/unpark/deadline/cancel API every blocking call uses: [`park`],
//! [`Unparker`] and [`UnparkRef`], [`yield_now`], the cancellation and
//! deadline checks, `timeout` and `shield` scopes. It runs on the per-thread
//! context ([`context`](super::context)); the loop that resumes parked tasks
//! is `crate::scheduler`, which this module never calls.
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
#![allow(unsafe_code)]

use std::cell::Cell;
use std::panic;
use std::ptr::{self, NonNull};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::Instant;

use super::context::{
    FORCE_ATTEMPTS, Scheduler, Shared, THREAD_DEADLINE, THREAD_FIRED, current_task_ptrs,
    current_task_ref, with_current, with_scheduler,
};
use super::core::Core;
use crate::error::Error;
use crate::task::{TaskId, TaskRef, Transition, WaitReason};

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

/// Unwinds the current task for `i`, for the blocking call `what`, which has
/// no error to report it with (`lock`, `acquire`, `wait`): unwinds on
/// cancellation or an expired enclosing `timeout`, and panics, naming the
/// call, when the task is unwinding already (it cannot suspend; see the
/// cancellation docs of `corio::task`).
pub(crate) fn unwind_for_call(i: Interrupt, what: &str) -> ! {
    match i {
        Interrupt::Unwinding => panic!(
            "{what}: cannot wait while the task is unwinding (in a destructor during a \
             panic, cancellation or timeout); use the try_ form there, or catch this panic \
             in the destructor (uncaught, it aborts the process)"
        ),
        i => unwind_for(i),
    }
}

/// Unwinds the caller for an interrupt of a blocking call that has no
/// error to report it with (see [`unwind_for_call`] for the calls that may
/// also be made while unwinding).
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
                    let local = header.is_on(Arc::as_ptr(&s.shared));
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

/// Records the running task's transition `t` (`Yield`, which also queues it
/// again, or `Block`) and suspends it: the scheduler, when it gets control
/// back, has nothing left to do for it.
///
/// The task's probe byte (`task::diag`) is tested once per yield, after the
/// switch, and twice per park, before and after it. A park reports the end
/// of a stall where it parks (it may wait long), and must see a trace
/// request when resumed. A yield sees everything there is to see when it
/// runs again, which it does at once: a trace request, the end of a stall,
/// the unwinding of shutdown (`context` module docs, "Shutdown").
#[inline(always)]
pub(crate) fn suspend(s: &Scheduler, core: &Core, t: Transition) {
    let local = core.local(s);
    let y = local.yielder.get();
    let yielding = matches!(t, Transition::Yield);
    if !yielding && core.header.probe.is_set() {
        crate::task::diag::probed(s, core);
    }
    local.advance(t);
    local.since.set(s.tick.get());
    if yielding {
        s.run_queue.push(NonNull::from(core));
    }
    crate::task::trace::suspending(t);
    debug_assert!(!y.is_null());
    // SAFETY: `yielder` was stored by `run_body` on this task's own stack,
    // which lives as long as the task, and the caller runs inside the task.
    unsafe { &*y }.suspend(());
    crate::task::diag::after_resume(core, yielding);
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

#[inline]
pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
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
    let local = core.local(s);
    let scope_deadline = local.deadline.get();
    if deadline.is_some()
        || scope_deadline.is_some()
        || core.header.cancelled.load(Ordering::Relaxed)
    {
        let deadline = earliest(deadline, scope_deadline);
        if !prepare_timed_park(s, core, deadline)? {
            return Ok(());
        }
        suspend(s, core, Transition::Block(reason));
        local.notified.set(false);
        // Against the loop's clock, read when it last polled (just before it
        // resumed us, or a few tasks earlier), not a fresh `Instant::now()`:
        // if the deadline has just passed but the loop has not seen it yet,
        // this returns as a spurious wakeup, and the caller's next park arms
        // a timer in the past that fires at the next poll.
        return check_interrupt_at(core, deadline, s.tick.get(), true);
    }
    // Rule 1: consume a pending notification instead of suspending.
    if local.notified.replace(false) {
        return Ok(());
    }
    suspend(s, core, Transition::Block(reason));
    // Resumed. Unparks that came while we sat in the run queue are covered
    // by the caller's re-check: drop their token.
    local.notified.set(false);
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
    let local = core.local(s);
    if local.notified.replace(false) {
        return Ok(false);
    }
    if let Some(at) = deadline {
        let armed = local.timer.get();
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
                let task = s.tasks.borrow()[core.header.key()].clone();
                timers.insert((at, seq), task);
                local.timer.set(Some((at, seq)));
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
        let local = core.local(s);
        if local.shield.get() > 0 {
            return Ok(());
        }
        if local.cancel_observed.get() && !suspended {
            // Unwinds when resumed if shutdown began meanwhile (`suspend`).
            suspend(s, core, Transition::Yield);
        }
        local.cancel_observed.set(true);
        Err(Interrupt::Cancelled)
    })
    .expect("only a running task reports its cancellation")
}

/// The running task `core` is being unwound by its runtime (shutdown) and
/// reached a cancellation check or a yield: it unwinds from here instead,
/// shielded or not, and never suspends. Once it has caught that unwind
/// `FORCE_ATTEMPTS` times, it suspends for good instead, and the runtime
/// gives up on it (`context` module docs, "Shutdown").
#[cold]
#[inline(never)]
pub(crate) fn forced_unwind(s: &Scheduler, core: &Core) -> ! {
    let n = s.forced_unwinds.get() + 1;
    s.forced_unwinds.set(n);
    let local = core.local(s);
    local.cancel_observed.set(true);
    if n <= FORCE_ATTEMPTS {
        panic::resume_unwind(Box::new(CancelUnwind));
    }
    let y = local.yielder.get();
    loop {
        // SAFETY: `yielder` lives on this task's stack, which outlives the
        // task, and we run inside the task. `abandon` never resumes it.
        unsafe { &*y }.suspend(());
    }
}

/// What `forced_unwinds` reads after [`give_up_forced`]: the task gave up
/// on its own, it did not catch the unwind `FORCE_ATTEMPTS` times.
pub(crate) const GAVE_UP: u32 = u32::MAX;

/// The running task, which its runtime's shutdown unwinds, cannot finish
/// unwinding without leaving memory that others still use (a scope whose
/// children on other workers did not end): it suspends for good, and the
/// runtime gives up on it and leaks its stack, as after `FORCE_ATTEMPTS`
/// caught unwinds (`context` module docs, "Shutdown").
#[cold]
pub(crate) fn give_up_forced() -> ! {
    let (s, core) = current_task_ptrs().expect("only a task is unwound by shutdown");
    // SAFETY: see `current_task_ptrs`; the task runs until it suspends.
    let (s, core) = unsafe { (s.as_ref(), core.as_ref()) };
    debug_assert!(ptr::eq(s.forcing.get(), core));
    // `forced_unwind` adds one: past `FORCE_ATTEMPTS`, it suspends for good.
    s.forced_unwinds.set(GAVE_UP - 1);
    forced_unwind(s, core)
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

/// [`check_current`], also returning the running task (null outside
/// tasks; for comparisons only) from the same thread-local lookup: what a
/// lock records as its holder.
#[inline]
pub(crate) fn check_current_task(deadline: Option<Instant>) -> Result<*const (), Interrupt> {
    match with_current(|s, core| {
        check_task(s, core, deadline).map(|()| std::ptr::from_ref(core).cast::<()>())
    }) {
        Some(r) => r,
        None => check_thread_deadline(deadline).map(|()| std::ptr::null()),
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
    let scope = core.local(s).deadline.get();
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
    scope_cells(|scope, _| scope.get())
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
    scope_cells(|_, fired| fired.set(Some(at)));
}

/// Takes back what a deadline check recorded for an operation that
/// completed anyway (a waker handed it its value just as the deadline
/// passed): nothing was interrupted. Forgetting the record outright is
/// exact because a scope's deadline, once passed, fails the entry check of
/// every later operation in it (deadline checks compare with a clock that
/// never goes back): an operation that got as far as waiting cannot follow
/// an interrupted one in the same scope.
pub(crate) fn unobserve_timeout() {
    scope_cells(|_, fired| fired.set(None));
}

/// Runs `f` with the `timeout` deadline lowered to `deadline` (nested
/// deadlines take the earliest), restoring it afterwards however `f` ends.
/// Also returns whether `deadline` interrupted an operation in `f` — an
/// operation failed or unwound because this deadline passed (not an
/// enclosing scope's earlier one, not the operation's own). A record of an
/// enclosing scope's deadline is passed on to that scope.
pub(crate) fn with_deadline<R>(deadline: Instant, f: impl FnOnce() -> R) -> (R, bool) {
    /// Leaves the scope: restores the enclosing `(deadline, fired)`, and
    /// says whether the record is `own`'s; one that is not stays for the
    /// enclosing scopes.
    #[inline]
    fn leave(outer: (Option<Instant>, Option<Instant>), own: Option<Instant>) -> bool {
        scope_cells(|scope, fired| {
            let now_fired = fired.get();
            let mine = own.is_some() && now_fired == own;
            scope.set(outer.0);
            fired.set(if mine { outer.1 } else { now_fired.or(outer.1) });
            mine
        })
    }
    struct Restore((Option<Instant>, Option<Instant>));
    impl Drop for Restore {
        fn drop(&mut self) {
            leave(self.0, None);
        }
    }
    let outer = scope_cells(|scope, fired| {
        let outer = (scope.get(), fired.get());
        scope.set(earliest(outer.0, Some(deadline)));
        fired.set(None);
        outer
    });
    let restore = Restore(outer);
    let r = f();
    std::mem::forget(restore);
    (r, leave(outer, Some(deadline)))
}

/// Runs `use_cells` on the running task's `timeout` state — its scope
/// deadline and the record of a deadline that fired — or, outside a task,
/// on the thread's: what `with_deadline`, `current_deadline`,
/// `deadline_fired` and `unobserve_timeout` read and write. Inlined: a
/// `timeout` enters and leaves a scope around every operation it guards.
#[inline(always)]
fn scope_cells<T>(
    use_cells: impl FnOnce(&Cell<Option<Instant>>, &Cell<Option<Instant>>) -> T,
) -> T {
    match current_task_ptrs() {
        Some((s, core)) => {
            // SAFETY: see `current_task_ptrs`; the task runs until
            // `use_cells` returns (it does not park).
            let local = unsafe { core.as_ref() }.local(unsafe { s.as_ref() });
            use_cells(&local.deadline, &local.fired)
        }
        None => THREAD_DEADLINE.with(|scope| THREAD_FIRED.with(|fired| use_cells(scope, fired))),
    }
}

/// Runs `f` with cancellation held off: blocking calls inside do not fail
/// with `Cancelled`. The cancellation stays pending and is reported by the
/// first blocking call after `f` returns.
pub(crate) fn shielded<R>(f: impl FnOnce() -> R) -> R {
    struct Unshield;
    impl Drop for Unshield {
        fn drop(&mut self) {
            with_current(|s, core| core.local(s).shield.update(|n| n - 1));
        }
    }
    let entered = with_current(|s, core| core.local(s).shield.update(|n| n + 1));
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
    with_current(|s, core| core.local(s).cancel_observed.get()).unwrap_or(false)
}

/// Un-marks a cancellation that `park` reported but the caller did not:
/// its operation completed anyway (a waker handed it a value just as the
/// cancellation came), so the cancellation stays pending for the next call.
/// Only right after such a `park`: the cancellation cannot have been
/// reported before, or the operation would have failed on entry.
pub(crate) fn unobserve_cancel() {
    with_current(|s, core| core.local(s).cancel_observed.set(false));
}

/// Whether the running task is being unwound by its runtime (shutdown):
/// it must not suspend (each attempt unwinds it again, see "Shutdown").
pub(crate) fn is_forcing_current() -> bool {
    with_current(|s, core| ptr::eq(s.forcing.get(), core)).unwrap_or(false)
}

/// Runs `f` with the enclosing `timeout` deadlines lifted, restoring them
/// afterwards however `f` ends: for waits that must complete even after the
/// deadline (a scope waiting for its children).
pub(crate) fn without_deadline<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Option<Instant>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(d) = self.0 {
                with_current(|s, core| core.local(s).deadline.set(d));
            }
        }
    }
    let prev = with_current(|s, core| core.local(s).deadline.take());
    let _restore = Restore(prev);
    f()
}

/// Runs `f` with the running task's task-local storage (`None` outside a
/// task). `f` must not run user code (nor reach the task's state again).
pub(crate) fn with_task_locals<R>(
    f: impl FnOnce(&mut crate::task::local::Locals) -> R,
) -> Option<R> {
    with_current(|s, core| f(&mut core.local(s).locals.borrow_mut()))
}

/// The running task's frame slot (see `task::frame`), if the caller is a
/// task: valid while the task lives.
#[inline(always)]
pub(crate) fn current_frame_slot() -> Option<*mut *const super::frame::Frame> {
    with_current(|s, core| core.local(s).frame.as_ptr())
}

/// The running task's core, if the caller is a task.
#[inline]
pub(crate) fn current_core() -> Option<NonNull<Core>> {
    with_current(|_, core| NonNull::from(core))
}

/// The id of the running task, if any.
pub(crate) fn current_id() -> Option<TaskId> {
    with_current(|_, core| core.header.id)
}
