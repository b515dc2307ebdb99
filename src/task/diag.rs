//! The task layer's side of the diagnostics: what the scheduler keeps for
//! them ([`RuntimeDiag`], one per runtime; [`Probe`] in every task's header;
//! [`WaitObj`] in every task's local state; [`LockOwner`] in every lock,
//! [`PermitHolders`] in every semaphore),
//! the checks the hot path makes for them, and what a task does when one
//! of them asks something of it (trace its stack, report the end of its
//! stall). The reports themselves — dumps, the deadlock check, the stall
//! monitor, metrics snapshots — are `corio::inspect`'s, one layer up: they
//! read this state, and nothing here calls them.
//!
//! # The probe byte
//!
//! Each task's header has a [`Probe`] byte, zero unless somebody wants
//! something from the task. A park tests it right before the task suspends
//! and right after it is resumed; a yield only after it is resumed (it runs
//! again soon, and its hot path has room for one test): one load and test
//! each, on a line the task touches anyway. Four bits use it:
//!
//! * `PROBED`: set by the stall monitor on the running task; cleared by
//!   the task's next park, or when it runs again after a yield. Still set
//!   a threshold later, with the same task running, the task has run all
//!   that time without switching: the monitor reports a stall and sets
//!   `STALLED`.
//! * `STALLED`: the task's next park, or its next run after a yield,
//!   reports the end of the stall: how long it ran (after a yield, its wait
//!   in the run queue included), and the backtrace of where it parks or
//!   yields (captured right there, on its stack).
//! * `TRACE`: the dumper wants the backtrace of a suspended task (waiting,
//!   or ready after a park or a yield). It sets the bit and resumes that
//!   task (and only that one); the task sees it right after its switch,
//!   captures its own stack, stores it, clears the bit and suspends again
//!   — its state, its wakeup token, its place in the run queue untouched.
//!   A wakeup that came meanwhile is where it was.
//! * `FORCED`: the runtime's shutdown unwinds the task; a yield unwinds
//!   when resumed (`task::context`, "Shutdown").
#![allow(unsafe_code)]

use std::backtrace::Backtrace;
use std::cell::{Cell, RefCell};
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU8, Ordering, fence};
use std::time::{Duration, Instant};

use corosensei::CoroutineResult;

use super::context::Scheduler;
use super::core::Core;
use super::{Outcome, TaskState};

pub(crate) const PROBED: u8 = 1;
pub(crate) const STALLED: u8 = 2;
pub(crate) const TRACE: u8 = 4;
/// Set by the runtime's shutdown on a task it unwinds: a yield unwinds the
/// task when resumed (`task::context`, "Shutdown"). Never cleared.
pub(crate) const FORCED: u8 = 8;

/// A task's probe byte (module docs).
pub(crate) struct Probe(pub(crate) AtomicU8);

impl Probe {
    pub(crate) const fn new() -> Probe {
        Probe(AtomicU8::new(0))
    }

    /// Whether anything is asked of the task (a relaxed load: a plain move).
    #[inline(always)]
    pub(crate) fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed) != 0
    }
}

/// The running task of a runtime: `Scheduler::current`. An atomic only so
/// that the stall monitor may read it from its own thread; the runtime's
/// relaxed loads and stores compile to the plain moves a `Cell` would.
pub(crate) struct CurrentTask(AtomicPtr<Core>);

impl CurrentTask {
    pub(crate) const fn new(p: *const Core) -> CurrentTask {
        CurrentTask(AtomicPtr::new(p.cast_mut()))
    }

    #[inline(always)]
    pub(crate) fn get(&self) -> *const Core {
        self.0.load(Ordering::Relaxed)
    }

    #[inline(always)]
    pub(crate) fn set(&self, p: *const Core) {
        self.0.store(p.cast_mut(), Ordering::Relaxed)
    }
}

/// What a waiting task waits on, beyond its `WaitReason`: recorded by the
/// primitive just before it parks (its slow path only), read only when
/// someone dumps. One word, so that a spawn initialises one: the address of
/// the lock's [`LockOwner`] or of the semaphore's [`PermitHolders`], tagged
/// in its low bits with the kind of primitive (0: nothing recorded).
#[derive(Clone, Copy)]
pub(crate) struct WaitObj(*const ());

impl Default for WaitObj {
    fn default() -> WaitObj {
        WaitObj(ptr::null())
    }
}

const TAG_MUTEX: usize = 1;
const TAG_RWLOCK: usize = 2;
const TAG_SEMAPHORE: usize = 3;
const TAGS: usize = 3;

/// What a [`WaitObj`] says of the primitive a task waits to take.
pub(crate) struct Held {
    /// What the task does: "lock", "acquire".
    pub(crate) verb: &'static str,
    /// "Mutex", "RwLock", "Semaphore".
    pub(crate) kind: &'static str,
    /// The primitive's identity: the address of its holder record.
    pub(crate) addr: *const (),
    /// The recorded holders (tasks' `Core`s, for comparisons only; null:
    /// a thread outside any task). A lock has one; a semaphore those of
    /// its permits that are traced (see [`PermitHolders`]), perhaps none.
    pub(crate) holders: Vec<*const ()>,
}

impl WaitObj {
    pub(crate) fn mutex(owner: &LockOwner) -> WaitObj {
        WaitObj(
            ptr::from_ref(owner)
                .cast::<()>()
                .map_addr(|a| a | TAG_MUTEX),
        )
    }

    pub(crate) fn rwlock(owner: &LockOwner) -> WaitObj {
        WaitObj(
            ptr::from_ref(owner)
                .cast::<()>()
                .map_addr(|a| a | TAG_RWLOCK),
        )
    }

    pub(crate) fn semaphore(holders: &PermitHolders) -> WaitObj {
        WaitObj(
            ptr::from_ref(holders)
                .cast::<()>()
                .map_addr(|a| a | TAG_SEMAPHORE),
        )
    }

    /// The primitive and its holders, if one was recorded.
    ///
    /// # Safety
    ///
    /// The task that recorded this object still waits in the call that
    /// recorded it (a park with `WaitReason::Lock` or
    /// `WaitReason::Semaphore`: every such park records its object first),
    /// which borrows the primitive: the record is alive.
    pub(crate) unsafe fn held(self) -> Option<Held> {
        let addr = self.0.map_addr(|a| a & !TAGS);
        let lock = |verb, kind| {
            // SAFETY: alive, per the contract; tagged as a lock's owner.
            let holder = unsafe { &*addr.cast::<LockOwner>() }.get();
            Some(Held {
                verb,
                kind,
                addr,
                holders: vec![holder],
            })
        };
        match self.0.addr() & TAGS {
            TAG_MUTEX => lock("lock", "Mutex"),
            TAG_RWLOCK => lock("lock", "RwLock"),
            TAG_SEMAPHORE => {
                // SAFETY: alive, per the contract; tagged as a semaphore's.
                let holders = unsafe { &*addr.cast::<PermitHolders>() }.holders();
                Some(Held {
                    verb: "acquire",
                    kind: "Semaphore",
                    addr,
                    holders,
                })
            }
            _ => None,
        }
    }
}

/// Who holds a lock: the `Core` of the task that took it last (null for a
/// thread outside any task). Only ever compared with the registry's tasks,
/// never dereferenced, so a stale value cannot do harm; it is meaningful
/// while the lock is held (every acquisition overwrites it).
#[repr(align(8))]
pub(crate) struct LockOwner(AtomicPtr<()>);

impl LockOwner {
    pub(crate) const fn new() -> LockOwner {
        LockOwner(AtomicPtr::new(ptr::null_mut()))
    }

    /// Records the caller as the holder.
    #[inline(always)]
    pub(crate) fn claim(&self) {
        self.0.store(current_holder().cast_mut(), Ordering::Relaxed);
    }

    /// Records `holder` (the caller, as a lock's entry check found it:
    /// `waiter::enter_as_holder`), saving the lookup `claim` makes.
    #[inline(always)]
    pub(crate) fn set(&self, holder: *const ()) {
        self.0.store(holder.cast_mut(), Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> *const () {
        self.0.load(Ordering::Relaxed)
    }
}

/// The caller as a holder record names it: its task's `Core`, or null
/// outside any task.
#[inline(always)]
pub(crate) fn current_holder() -> *const () {
    super::context::current_task_ptrs().map_or(ptr::null(), |(_, core)| core.as_ptr().cast::<()>())
}

/// A semaphore's traced permit holders: a slot per traced acquisition (not
/// per permit), naming the task that acquired (its `Core`, compared with
/// the registry's tasks, never dereferenced). A holder takes a free slot
/// when it acquires, under the semaphore's lock (which orders the claims:
/// plain loads and stores), and empties it, lock or not, when its permit
/// goes: a slot is only ever emptied by the permit that claimed it. The
/// permit keeps a ticket for it, the slot's index: 1 to [`MAX_TICKET`], or
/// 0 for an acquisition that has none (every slot taken, or a permit the
/// semaphore does not trace) — slot 0 is never claimed, so emptying it is
/// harmless and a permit's release needs no test. Read by dumps without
/// the lock: a holder that acquired or released meanwhile may be seen or
/// not.
#[repr(align(8))]
pub(crate) struct PermitHolders([AtomicPtr<()>; 8]);

/// The largest ticket [`PermitHolders::claim`] returns: seven holders are
/// traced at once.
pub(crate) const MAX_TICKET: usize = 7;

impl PermitHolders {
    pub(crate) const fn new() -> PermitHolders {
        PermitHolders([const { AtomicPtr::new(ptr::null_mut()) }; 8])
    }

    /// Records `holder` (null: a thread, not traced) in a free slot, and
    /// returns its ticket (0: none); the caller holds the semaphore's lock.
    #[inline(always)]
    pub(crate) fn claim(&self, holder: *const ()) -> usize {
        // The common case inline: one holder at a time.
        if !holder.is_null() && self.0[1].load(Ordering::Relaxed).is_null() {
            self.0[1].store(holder.cast_mut(), Ordering::Relaxed);
            return 1;
        }
        self.claim_other(holder)
    }

    #[cold]
    #[inline(never)]
    fn claim_other(&self, holder: *const ()) -> usize {
        if holder.is_null() {
            return 0;
        }
        for (i, slot) in self.0.iter().enumerate().skip(2) {
            if slot.load(Ordering::Relaxed).is_null() {
                slot.store(holder.cast_mut(), Ordering::Relaxed);
                return i;
            }
        }
        0
    }

    /// Empties the slot of `ticket` (at most [`MAX_TICKET`]), which the
    /// caller's permit claimed (0: none, slot 0 stays empty).
    #[inline(always)]
    pub(crate) fn release(&self, ticket: usize) {
        self.0[ticket & MAX_TICKET].store(ptr::null_mut(), Ordering::Relaxed);
    }

    fn holders(&self) -> Vec<*const ()> {
        self.0[1..]
            .iter()
            .map(|s| s.load(Ordering::Relaxed).cast_const())
            .filter(|p| !p.is_null())
            .collect()
    }
}

/// Records what the running task is about to wait on (before its park).
pub(crate) fn note_wait(obj: WaitObj) {
    super::context::with_current(|s, core| core.local(s).wait.set(obj));
}

/// A counter that its worker's thread alone writes and any thread may read
/// (`Runtime::metrics` reads every worker's): a relaxed load and store, no
/// read-modify-write — the same plain moves a `Cell` compiles to.
#[derive(Default)]
pub(crate) struct Counter(std::sync::atomic::AtomicU64);

impl Counter {
    #[inline(always)]
    pub(crate) fn add(&self, n: u64) {
        let v = self.0.load(Ordering::Relaxed);
        self.0.store(v.wrapping_add(n), Ordering::Relaxed);
    }

    #[inline(always)]
    pub(crate) fn bump(&self) {
        self.add(1);
    }

    /// Adds a duration, counted in nanoseconds.
    pub(crate) fn add_duration(&self, d: Duration) {
        self.add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The counters of one worker (see `runtime::WorkerMetrics`), kept in its
/// `Shared` so that the metrics of a runtime can read every worker's.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) spawned: Counter,
    /// Finished tasks by `Outcome` (returned, panicked, cancelled).
    pub(crate) finished: [Counter; 3],
    pub(crate) io_events: Counter,
    pub(crate) timers_fired: Counter,
    pub(crate) blocking_jobs: Counter,
    pub(crate) polls: Counter,
    /// Never-started tasks this worker took from another, and handed to
    /// another (`task::worker`).
    pub(crate) adopted: Counter,
    pub(crate) handed_over: Counter,
    /// Task runs, counted from the loop's budget each time it is reset (at
    /// every poll): the loop counts its budget down anyway, so a switch
    /// costs no counter of its own.
    pub(crate) switches: Counter,
    /// Nanoseconds blocked in the poller.
    pub(crate) parked: Counter,
    /// Nanoseconds running the loop before the current run, and when the
    /// current run began (start and end of a run only: a lock is cheap).
    pub(crate) active: Counter,
    pub(crate) entered: std::sync::Mutex<Option<Instant>>,
}

impl Counters {
    /// The worker starts running its loop.
    pub(crate) fn enter(&self) {
        *self.entered.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    /// The worker leaves its loop.
    pub(crate) fn leave(&self) {
        let at = self
            .entered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(at) = at {
            self.active.add_duration(at.elapsed());
        }
    }

    /// Time running the loop so far.
    pub(crate) fn active(&self) -> Duration {
        let running = self
            .entered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map_or(Duration::ZERO, |at| at.elapsed());
        Duration::from_nanos(self.active.get()) + running
    }
}

/// A stall the monitor saw, for the report when it ends.
pub(crate) struct Stall {
    pub(crate) id: crate::task::TaskId,
    pub(crate) describe: String,
    pub(crate) since: Instant,
}

/// The diagnostics state of one runtime (a field of its `Scheduler`).
pub(crate) struct RuntimeDiag {
    /// A signal asked for a dump (`dump_on_signal`); the loop's next poll
    /// prints it.
    pub(crate) dump_request: std::sync::atomic::AtomicBool,
    /// The task the stall monitor is reading the header of (see
    /// `before_free`).
    pub(crate) hazard: AtomicPtr<Core>,
    /// Whether a stall monitor watches this runtime.
    pub(crate) monitored: Cell<bool>,
    /// The runtime is printing a report of its own (the monitor does not
    /// count that time as a stall).
    pub(crate) reporting: std::sync::atomic::AtomicBool,
    pub(crate) stall_threshold: Option<Duration>,
    pub(crate) trace_out: RefCell<Option<Backtrace>>,
    pub(crate) stall: std::sync::Mutex<Option<Stall>>,
    /// Set by the deadlock check: the loop stops and `block_on` panics
    /// with `deadlock_message`.
    pub(crate) deadlocked: Cell<bool>,
    pub(crate) deadlock_message: RefCell<Option<String>>,
    /// When the loop last found every task waiting with nothing that could
    /// wake them (see `deadlock`).
    pub(crate) quiet_since: Cell<Option<Instant>>,
    #[cfg(feature = "tracing")]
    pub(crate) spans: super::trace::Spans,
}

impl RuntimeDiag {
    pub(crate) fn new(stall_threshold: Option<Duration>) -> RuntimeDiag {
        RuntimeDiag {
            dump_request: std::sync::atomic::AtomicBool::new(false),
            hazard: AtomicPtr::new(ptr::null_mut()),
            monitored: Cell::new(false),
            reporting: std::sync::atomic::AtomicBool::new(false),
            stall_threshold,
            trace_out: RefCell::new(None),
            stall: std::sync::Mutex::new(None),
            deadlocked: Cell::new(false),
            deadlock_message: RefCell::new(None),
            quiet_since: Cell::new(None),
            #[cfg(feature = "tracing")]
            spans: Default::default(),
        }
    }

    /// Marks the runtime as busy with a report of its own until the guard
    /// drops.
    pub(crate) fn reporting(&self) -> impl Drop + '_ {
        struct Done<'a>(&'a RuntimeDiag);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.reporting.store(false, Ordering::Release);
            }
        }
        self.reporting.store(true, Ordering::Release);
        Done(self)
    }
}

/// The test right after a yield's or a park's switch (module docs).
#[inline(always)]
pub(crate) fn after_resume(core: &Core, yielded: bool) {
    if core.header.probe.is_set() {
        probed_after_resume(core, yielded);
    }
}

/// The task `core` (running) is about to park with its probe set: a
/// monitor's probe (cleared), the end of a stall (reported).
#[cold]
#[inline(never)]
pub(crate) fn probed(s: &Scheduler, core: &Core) {
    let was = core
        .header
        .probe
        .0
        .fetch_and(!(PROBED | STALLED), Ordering::AcqRel);
    if was & STALLED != 0 {
        report_end(s, core, false);
    }
}

/// The task `core` was resumed in a yield or a park with its probe set: a
/// trace request (captured, then back to the dumper), a monitor's probe
/// (cleared); after a yield, also the end of a stall (reported) and the
/// unwinding of shutdown (`context` module docs, "Shutdown").
#[cold]
#[inline(never)]
fn probed_after_resume(core: &Core, yielded: bool) {
    while core.header.probe.0.load(Ordering::Acquire) & TRACE != 0 {
        let bt = super::backtrace::capture_here(core);
        super::context::with_scheduler(|s| *s.diag.trace_out.borrow_mut() = bt);
        core.header.probe.0.fetch_and(!TRACE, Ordering::AcqRel);
        // It is the pointer `run_body` stored, on this task's own stack,
        // which outlives it; we run inside the task.
        let y = super::context::with_scheduler(|s| core.local(s).yielder.get())
            .expect("a task runs inside its runtime");
        // Back to the dumper, in the state we were in: nothing of ours
        // changed.
        // SAFETY: as above.
        unsafe { &*y }.suspend(());
    }
    if !yielded {
        core.header.probe.0.fetch_and(!PROBED, Ordering::AcqRel);
        return;
    }
    let was = core
        .header
        .probe
        .0
        .fetch_and(!(PROBED | STALLED), Ordering::AcqRel);
    super::context::with_scheduler(|s| {
        if was & STALLED != 0 {
            report_end(s, core, false);
        }
        if was & FORCED != 0 {
            super::park::forced_unwind(s, core);
        }
    });
}

/// The task `core` finished (its closure returned) with its probe set.
#[inline(always)]
pub(crate) fn on_finish(s: &Scheduler, core: &Core) {
    if core.header.probe.is_set() {
        finished_probed(s, core);
    }
}

#[cold]
#[inline(never)]
fn finished_probed(s: &Scheduler, core: &Core) {
    let was = core.header.probe.0.fetch_and(FORCED, Ordering::AcqRel);
    if was & STALLED != 0 {
        report_end(s, core, true);
    }
}

/// The backtrace of `core`, a suspended task of `s` (waiting, or ready
/// after a park or a yield): it is resumed just long enough to capture its
/// own stack (see the module docs). `None` if it cannot be traced now.
pub(crate) fn trace_task(s: &Scheduler, core: &Core) -> Option<Backtrace> {
    if !s.forcing.get().is_null() || ptr::eq(s.current.get(), core) || std::thread::panicking() {
        return None;
    }
    // Suspended in a park or a yield: either way its resumption starts
    // with the look at the probe (`park::suspend`).
    if !matches!(
        core.local(s).state.get(),
        TaskState::Waiting(_) | TaskState::Ready
    ) {
        return None;
    }
    // SAFETY: the task is suspended in a park or a yield (or has not
    // started, and is left alone below), so it is neither running nor
    // being unwound: neither `run_task` nor `abandon` borrows its
    // coroutine; nothing else does.
    let slot = unsafe { &mut *core.coroutine.get() };
    let coroutine = slot.as_mut().filter(|c| c.started() && !c.done())?;
    core.header.probe.0.fetch_or(TRACE, Ordering::AcqRel);
    let saved = s.current.get();
    s.current.set(core);
    let r = coroutine.resume(());
    s.current.set(saved);
    core.header.probe.0.fetch_and(!TRACE, Ordering::AcqRel);
    debug_assert!(
        matches!(r, CoroutineResult::Yield(())),
        "a traced task ran to its end"
    );
    s.diag.trace_out.borrow_mut().take()
}

/// Before the runtime frees the retired task `core` (see the module docs).
#[inline(always)]
pub(crate) fn before_free(s: &Scheduler, core: &Core) {
    if s.diag.monitored.get() {
        wait_hazard(s, core);
    }
}

#[cold]
fn wait_hazard(s: &Scheduler, core: &Core) {
    fence(Ordering::SeqCst);
    while std::ptr::eq(s.diag.hazard.load(Ordering::Acquire), core) {
        std::hint::spin_loop();
    }
}

/// The end of a stall the monitor reported, from the task `core` itself
/// about to suspend (`finished`: it returned instead): how long it ran,
/// and the backtrace of where it yields.
pub(crate) fn report_end(s: &Scheduler, core: &Core, finished: bool) {
    let stall = s
        .diag
        .stall
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    let Some(stall) = stall.filter(|st| st.id == core.header.id) else {
        return;
    };
    let _reporting = s.diag.reporting();
    let total = Instant::now().saturating_duration_since(stall.since);
    let text = if finished {
        format!(
            "corio: stall ended: {} ran for about {total:.3?} without yielding, then finished\n",
            stall.describe
        )
    } else {
        let at = super::backtrace::capture_here(core).map_or_else(
            || "        (no backtrace: too little stack left)\n".to_string(),
            |b| super::backtrace::render(&b, "        "),
        );
        format!(
            "corio: stall ended: {} ran for about {total:.3?} without yielding; it yields at:\n{at}",
            stall.describe
        )
    };
    write_stderr(&text);
}

/// Counts the outcome of a finished task.
#[inline(always)]
pub(crate) fn count_finish(s: &Scheduler, outcome: Outcome) {
    s.shared.counters.finished[outcome as usize].bump();
}

/// Counts a job handed to the blocking pool by a task of this thread's runtime.
pub(crate) fn count_blocking_job() {
    super::context::with_scheduler(|s| {
        s.shared.counters.blocking_jobs.bump();
    });
}

/// Writes `text` to stderr in one call (reports from the loop, the
/// monitor, a signal).
pub(crate) fn write_stderr(text: &str) {
    use std::io::Write as _;
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}
