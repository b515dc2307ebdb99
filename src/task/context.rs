//! The per-thread context of a runtime: the state the task layer runs on
//! (the task registry, run queue, timers, the running task, the loop's
//! clock) and the thread-local that finds it; spawning, waking on the
//! owning thread, and unwinding tasks at shutdown. The loop that drives it
//! is `crate::scheduler`.
//!
//! State is split by who touches it (as in tokio's current-thread runtime):
//!
//! * [`Scheduler`]: owned by the runtime thread — the task slab with every
//!   coroutine, the run queue, the timers. Never touched from another thread.
//! * [`Shared`]: behind an `Arc`, touched by any thread — the inject queue for
//!   wakeups from other threads, the "sleeping in `wait`" flag, the poller and
//!   its registered sources.
//!
//! # Shutdown
//!
//! When `block_on`'s main task returns, every other task is unwound on its
//! own stack (`abandon`): it is marked cancelled, the `FORCED` bit of its
//! probe byte is set, and it is resumed with the scheduler's `forcing`
//! pointing at it. Suspended in a park, it unwinds from there (the check a
//! park makes when resumed sees the cancellation); suspended in
//! `yield_now`, from the test of the probe byte a yield makes when resumed.
//! From then on it never waits: every park or cancellation check unwinds it
//! again (`CancelUnwind`, shielded or not), and a yield suspends it only
//! for `abandon` to resume it at once, and it unwinds from there, so a task
//! that catches the unwind cannot loop. After
//! `FORCE_ATTEMPTS` such unwinds it suspends for good instead, and is given
//! up on: reported on stderr and leaked — its stack and everything on it
//! stay allocated and are never dropped — so that no pointer into it can
//! dangle.
#![allow(unsafe_code)]

use std::cell::{Cell, RefCell, UnsafeCell};
use std::collections::BTreeMap;
use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::{self, NonNull};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, ThreadId};
use std::time::Instant;

use corosensei::CoroutineResult;
use slab::Slab;

use super::core::{Core, LocalState, ThreadOwned, report_caught};
use super::inject::Inject;
pub(crate) use super::run_queue::RunQueue;
use super::runtime_ref::{RUNTIME_REF_BLOCK, RuntimeRef, release_runtime_refs};
use super::worker::Incoming;
use crate::error::Error;
use crate::reactor::{DefaultDriver, Driver, Events, Installed};
use crate::stack;
use crate::task::{Header, JoinHandle, Outcome, Packet, Task, TaskRef, TaskState, Transition};

/// A runtime that held this many tasks at once trims the C heap when it is
/// dropped (see `Drop for Scheduler`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_AFTER_TASKS: usize = 4096;

/// Deadline checks between two reads of the real clock while the loop does
/// not poll (see `Scheduler::deadline_clock`).
const CLOCK_CHECKS: u32 = 64;

/// How many times a task that shutdown unwinds may catch that unwind and
/// try to suspend or wait again before the runtime gives up on it (see the
/// module docs, "Shutdown"). Cleanup that catches the unwind and waits once
/// or twice needs a few.
pub(crate) const FORCE_ATTEMPTS: u32 = 100;

/// The part of a runtime that other threads may touch.
pub(crate) struct Shared {
    /// Wakeups from other threads and tasks handed to this worker, and
    /// whether the worker thread is (about to be) blocked in `Poller::wait`.
    pub(crate) inject: Inject<Incoming>,
    /// The worker's index in its runtime (0 runs `block_on`'s main task).
    pub(crate) index: usize,
    /// Cleared when the runtime is dropped: later wakeups are no-ops.
    pub(crate) alive: AtomicBool,
    pub(crate) owner: ThreadId,
    /// The runtime's reactor: polled by the loop (unless a driver was
    /// installed in its place, `Scheduler::installed`), notified by
    /// `inject`, and where `io_op` registers fds.
    pub(crate) driver: DefaultDriver,
    /// The [`RuntimeRef`]s in existence plus the scheduler's reserve of
    /// them; while non-zero, they hold one strong count of this `Arc`.
    pub(crate) runtime_refs: AtomicUsize,
    /// The worker's metrics (written by its thread only).
    pub(crate) counters: crate::task::diag::Counters,
    /// Set by a worker of a runtime of several that stayed quiet with every
    /// task of its own waiting on another task or a `sync` primitive;
    /// cleared when it is not (the deadlock check, `corio::inspect`).
    pub(crate) stuck: AtomicBool,
}

impl Shared {
    pub(crate) fn new(index: usize) -> std::io::Result<Shared> {
        Ok(Shared {
            index,
            runtime_refs: AtomicUsize::new(0),
            inject: Inject::new(),
            alive: AtomicBool::new(true),
            owner: thread::current().id(),
            driver: DefaultDriver::new()?,
            counters: Default::default(),
            stuck: AtomicBool::new(false),
        })
    }

    /// Queues a task woken from another thread and wakes the loop if it sleeps.
    pub(crate) fn inject(&self, task: TaskRef) {
        if !self.alive.load(Ordering::Acquire) {
            return;
        }
        if self.inject.push(Incoming::Wake(task)) {
            self.driver.notify();
        }
    }

    /// A counted reference to this runtime, taken with an atomic add (for
    /// tasks made off the worker's thread, see `task::worker`).
    pub(crate) fn counted_ref(self: &Arc<Shared>) -> RuntimeRef {
        if self.runtime_refs.fetch_add(1, Ordering::Relaxed) == 0 {
            // The references' strong count (see `RuntimeRef`); `self` holds
            // another, so the count cannot reach zero meanwhile.
            // SAFETY: `self` is a live `Arc`.
            unsafe { Arc::increment_strong_count(Arc::as_ptr(self)) };
        }
        RuntimeRef(NonNull::from(&**self))
    }

    pub(crate) fn is_owned_by_current_thread(&self) -> bool {
        self.owner == thread::current().id()
    }
}

/// Tunables of a scheduler, set by `runtime::Builder`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Config {
    pub(crate) stack_size: usize,
    /// The worker's index in its runtime.
    pub(crate) worker: usize,
    /// Tasks run between two zero-timeout polls when the queue stays busy.
    pub(crate) event_interval: u32,
    /// Report tasks that run longer than this without switching.
    pub(crate) stall_threshold: Option<std::time::Duration>,
}

/// The thread-owned part of a runtime.
pub(crate) struct Scheduler {
    pub(crate) shared: Arc<Shared>,
    pub(crate) config: Config,
    /// Every live task; holding a reference here keeps the pointers in
    /// `run_queue` and `current` valid.
    pub(crate) tasks: RefCell<Slab<TaskRef>>,
    pub(crate) run_queue: RunQueue,
    /// Ready tasks that never ran and may move to an idle worker (only
    /// with several workers; see `task::worker`).
    pub(crate) movable: RunQueue,
    /// The runtime's workers, and whether there is more than one.
    pub(crate) group: std::cell::OnceCell<Arc<super::worker::Group>>,
    pub(crate) multi: Cell<bool>,
    pub(crate) timers: RefCell<BTreeMap<(Instant, u64), TaskRef>>,
    pub(crate) timer_seq: Cell<u64>,
    /// The running task (null between tasks).
    pub(crate) current: crate::task::diag::CurrentTask,
    /// The task being force-unwound at shutdown.
    pub(crate) forcing: Cell<*const Core>,
    /// How many times it caught that unwind (see `forced_unwind`).
    pub(crate) forced_unwinds: Cell<u32>,
    /// The main task of `block_on` (`run_task` says when it finished).
    pub(crate) main: Cell<*const Core>,
    /// The loop's clock: the time of the last poll (or of the last
    /// re-read by [`deadline_clock`](Self::deadline_clock)), used for
    /// `since` stamps and deadline checks in tasks — cheaper than reading
    /// the clock at every transition and every operation.
    pub(crate) tick: Cell<Instant>,
    /// Deadline checks made against `tick` since it was last read.
    pub(crate) clock_checks: Cell<u32>,
    /// Runtime references taken and not yet handed out (see `RuntimeRef`).
    pub(crate) runtime_reserve: Cell<usize>,
    pub(crate) events: RefCell<Events>,
    /// The driver the loop polls and the clock reads in place of the
    /// reactor (`None`: the reactor, `Shared::driver`), such as a
    /// simulation's. See [`driver`](Self::driver).
    pub(crate) installed: Option<Installed>,
    /// Metrics, and the state of dumps, stall and deadlock reports.
    pub(crate) diag: crate::task::diag::RuntimeDiag,
}

thread_local! {
    /// The scheduler running on this thread, while `block_on` runs.
    pub(crate) static CONTEXT: Cell<*const Scheduler> = const { Cell::new(ptr::null()) };
    /// The `timeout` deadline of code running outside any task.
    pub(crate) static THREAD_DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
    /// What `LocalState::fired` is to a task, for code outside any task.
    pub(crate) static THREAD_FIRED: Cell<Option<Instant>> = const { Cell::new(None) };
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
pub(crate) fn current_task_ptrs() -> Option<(NonNull<Scheduler>, NonNull<Core>)> {
    let s = NonNull::new(CONTEXT.with(Cell::get).cast_mut())?;
    // SAFETY: CONTEXT is non-null only while the scheduler is alive (see
    // `with_scheduler`).
    let core = NonNull::new(unsafe { s.as_ref() }.current.get().cast_mut())?;
    Some((s, core))
}

/// Runs `f` with the scheduler and the running task, if the caller is a task.
#[inline(always)]
pub(crate) fn with_current<R>(f: impl FnOnce(&Scheduler, &Core) -> R) -> Option<R> {
    let (s, core) = current_task_ptrs()?;
    // SAFETY: valid while the task runs, which it does until `f` returns.
    Some(f(unsafe { s.as_ref() }, unsafe { core.as_ref() }))
}

/// Resets CONTEXT when `block_on` ends, however it ends.
pub(crate) struct EnterGuard {
    prev: *const Scheduler,
    /// The thread's frame slot when the runtime started.
    frame: *const super::frame::Frame,
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        CONTEXT.with(|c| c.set(self.prev));
        super::frame::leave_runtime(self.frame);
    }
}

/// Whether a runtime is running on this thread.
pub(crate) fn in_runtime() -> bool {
    !CONTEXT.with(Cell::get).is_null()
}

pub(crate) fn current_task_ref() -> Option<TaskRef> {
    with_current(|s, core| s.tasks.borrow()[core.header.key()].clone())
}

/// The running task's identity, if the caller is a task.
pub(crate) fn current_task() -> Option<Task> {
    with_current(|_, core| core.header.task())
}

impl Scheduler {
    pub(crate) fn new(config: Config) -> std::io::Result<Scheduler> {
        Ok(Scheduler {
            shared: Arc::new(Shared::new(config.worker)?),
            config,
            tasks: RefCell::new(Slab::new()),
            run_queue: RunQueue::default(),
            movable: RunQueue::default(),
            group: std::cell::OnceCell::new(),
            multi: Cell::new(false),
            timers: RefCell::new(BTreeMap::new()),
            timer_seq: Cell::new(0),
            current: crate::task::diag::CurrentTask::new(ptr::null()),
            forcing: Cell::new(ptr::null()),
            forced_unwinds: Cell::new(0),
            main: Cell::new(ptr::null()),
            tick: Cell::new(Instant::now()),
            clock_checks: Cell::new(0),
            runtime_reserve: Cell::new(0),
            events: RefCell::new(Events::new()),
            installed: None,
            diag: crate::task::diag::RuntimeDiag::new(config.stall_threshold),
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
        EnterGuard {
            prev,
            frame: super::frame::enter_runtime(),
        }
    }

    /// A counted reference to this runtime for a new task.
    pub(crate) fn runtime_ref(&self) -> RuntimeRef {
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
        location: &'static std::panic::Location<'static>,
    ) -> Result<JoinHandle<T>, Error>
    where
        F: FnOnce() -> T,
        T: 'static,
    {
        // SAFETY: the caller's contract.
        unsafe { self.spawn_placed(f, name, stack_size, false, location) }
    }

    /// [`spawn_unchecked`](Self::spawn_unchecked); with `movable`, the task
    /// may move to an idle worker before it first runs.
    ///
    /// # Safety
    ///
    /// As for `spawn_unchecked`; with `movable`, `F` and `T` are also `Send`
    /// and `'static`.
    #[inline(always)]
    pub(crate) unsafe fn spawn_placed<F, T>(
        &self,
        f: F,
        name: Option<Arc<str>>,
        stack_size: usize,
        movable: bool,
        location: &'static std::panic::Location<'static>,
    ) -> Result<JoinHandle<T>, Error>
    where
        F: FnOnce() -> T,
        T: 'static,
    {
        let mut tasks = self.tasks.borrow_mut();
        let entry = tasks.vacant_entry();
        let key = u32::try_from(entry.key()).expect("more than 2^32 tasks");
        let runtime = self.runtime_ref();
        let since = self.tick.get();
        let (task, handle) = Packet::<T>::allocate(
            |vtable| Core {
                header: Header::new(name, key, runtime, stack_size, vtable, location),
                coroutine: UnsafeCell::new(None),
                local: ThreadOwned::new(LocalState::new(since)),
            },
            f,
        );
        let core = NonNull::from(task.core());
        entry.insert(task);
        drop(tasks);
        if let Some(installed) = &self.installed {
            installed.0.spawned(key);
        }
        self.shared.counters.spawned.bump();
        // SAFETY: the registry holds the task.
        crate::task::trace::spawned(self, unsafe { core.as_ref() });
        if movable && self.multi.get() {
            self.movable.push(core);
            self.share_burst();
        } else {
            self.run_queue.push(core);
        }
        Ok(handle)
    }

    /// Creates a task running the `'static` closure `f` and queues it.
    pub(crate) fn spawn<F, T>(
        &self,
        f: F,
        name: Option<Arc<str>>,
        stack_size: usize,
        location: &'static std::panic::Location<'static>,
    ) -> Result<JoinHandle<T>, Error>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        // SAFETY: `F` and `T` are 'static, so nothing they borrow can go away.
        unsafe { self.spawn_unchecked(f, name, stack_size, location) }
    }

    /// Wakes a task of this runtime, on this thread (park protocol rule 2, in `task::park`): a waiting task
    /// is queued, any other keeps a token for its next park.
    pub(crate) fn unpark_local(&self, core: &Core) {
        let local = core.local(self);
        match local.state.get() {
            TaskState::Waiting(_) => self.schedule(core),
            TaskState::Finished(_) => {}
            _ => local.notified.set(true),
        }
    }

    /// Queues a waiting task again (`Waiting → Ready`).
    pub(crate) fn schedule(&self, core: &Core) {
        let local = core.local(self);
        local.advance(Transition::Wake);
        local.since.set(self.tick.get());
        self.run_queue.push(NonNull::from(core));
        crate::task::trace::woken(self, core);
    }

    /// Drops a finished or abandoned task's coroutine (returning its stack to
    /// the pool) and then its registry entry, in that order.
    pub(crate) fn retire(&self, core: &Core) {
        crate::task::diag::before_free(self, core);
        // SAFETY: the coroutine is not running (it returned or was unwound).
        let coroutine = unsafe { (*core.coroutine.get()).take() };
        let never_ran = coroutine.is_none();
        drop(coroutine);
        let timer = core.local(self).timer.take();
        // A task that never ran (it has no coroutine: one given up on at
        // shutdown has none either, and no closure left): drop its closure,
        // which may borrow from a scope or `block_on`'s caller — now, not
        // whenever the last reference goes.
        if never_ran {
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
        let task = self.tasks.borrow_mut().remove(core.header.key());
        // Dropped outside the borrow: it may run user destructors (`T`).
        drop(task);
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
    pub(crate) fn deadline_clock(&self) -> Instant {
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
    pub(crate) fn refresh_clock(&self) -> Instant {
        let now = self.clock_now();
        self.tick.set(now);
        self.clock_checks.set(0);
        now
    }

    /// The time: the driver's clock (virtual in a simulation). Out of
    /// line so that `refresh_clock`, inlined into the deadline checks, keeps
    /// the shape it had with one clock (the branch inline cost a timed park
    /// 4 instructions, callgrind `sync_count pingpong_timeout`).
    #[inline(never)]
    pub(crate) fn clock_now(&self) -> Instant {
        match &self.installed {
            Some(installed) => installed.0.now(),
            None => self.shared.driver.now(),
        }
    }

    /// Runs this runtime on `driver` instead of its reactor: its loop polls
    /// it, its clock reads it, and the layers above reach it through
    /// `task::driver`. Before the runtime runs.
    pub(crate) fn install_driver(&mut self, driver: std::rc::Rc<dyn Driver>) {
        self.installed = Some(Installed::new(driver));
    }

    /// The driver the loop polls: the installed one, or the reactor.
    #[inline]
    pub(crate) fn driver(&self) -> &dyn Driver {
        match &self.installed {
            Some(installed) => &*installed.0,
            None => &self.shared.driver,
        }
    }

    /// Unwinds every task that is still alive, running their destructors
    /// (rule 7 of the lifecycle). Tasks spawned by those destructors are
    /// unwound too.
    pub(crate) fn shutdown(&self) {
        self.run_queue.clear();
        self.movable.clear();
        loop {
            self.adopt_incoming();
            let tasks: Vec<TaskRef> = self.tasks.borrow().iter().map(|(_, t)| t.clone()).collect();
            if tasks.is_empty() {
                break;
            }
            for task in tasks {
                self.abandon(&task);
            }
            self.run_queue.clear();
            self.movable.clear();
        }
        let timers = std::mem::take(&mut *self.timers.borrow_mut());
        drop(timers);
        self.shared.close_inject();
    }

    /// Unwinds `task` on its own stack, or gives up on it (see the module
    /// docs, "Shutdown"), and removes it.
    pub(crate) fn abandon(&self, task: &TaskRef) {
        let core = task.core();
        // SAFETY: `task` is not running: shutdown runs between tasks, and
        // `abandon_task` refuses the running task (it may run nested inside
        // another task, whose `current`/`forcing` it saves and restores).
        let slot = unsafe { &mut *core.coroutine.get() };
        let mut outcome = None;
        if let Some(coroutine) = slot.as_mut().filter(|c| !c.done()) {
            // Its cancellation checks unwind it from now on (`report_cancel`),
            // and so do its yields (`suspend`, through its probe byte).
            core.header.cancelled.store(true, Ordering::Release);
            let saved = (
                self.current.get(),
                self.forcing.get(),
                self.forced_unwinds.replace(0),
            );
            self.current.set(core);
            self.forcing.set(core);
            let local = core.local(self);
            // What a yield tests when resumed (`park::suspend`).
            core.header
                .probe
                .0
                .fetch_or(crate::task::diag::FORCED, Ordering::AcqRel);
            loop {
                // Straight to running, whether it waited or was ready: it is
                // resumed only to unwind (not a lifecycle step of its own).
                local.state.set(TaskState::Running);
                // It returns, or suspends for good (`forced_unwind`, still
                // `Running`), or — having caught the unwind — yields, and is
                // resumed again, to unwind from the test after its switch.
                match coroutine.resume(()) {
                    CoroutineResult::Return(o) => {
                        outcome = Some(o);
                        break;
                    }
                    CoroutineResult::Yield(()) if local.state.get() == TaskState::Ready => {
                        // The yield queued it last; it will not run from there.
                        self.run_queue.with(|q| {
                            if q.back() == Some(&NonNull::from(core)) {
                                q.pop_back();
                            }
                        });
                    }
                    CoroutineResult::Yield(()) => break,
                }
            }
            let gave_up = self.forced_unwinds.get() == super::park::GAVE_UP;
            self.forced_unwinds.set(saved.2);
            self.forcing.set(saved.1);
            self.current.set(saved.0);
            if outcome.is_none() {
                let why = if gave_up {
                    "waited in a scope for children on other workers that did not end".to_string()
                } else {
                    format!(
                        "caught the unwind of the runtime's shutdown {FORCE_ATTEMPTS} times \
                         and went on"
                    )
                };
                let _ = writeln!(
                    std::io::stderr(),
                    "corio: {}: {why}; given up on: its stack and everything on it are \
                     leaked, never dropped",
                    core.header.describe()
                );
                // Leaked, not freed: wait queues and the reactor may still
                // hold pointers into its stack and to its block.
                std::mem::forget(slot.take());
                std::mem::forget(task.clone());
            }
        }
        let state = &core.local(self).state;
        state.set(match (state.get(), outcome) {
            (TaskState::Finished(o), _) => TaskState::Finished(o),
            (s @ TaskState::Running, Some(o)) => s.next(Transition::Finish(o)),
            // Resumed and suspended again, or never resumed.
            (s @ (TaskState::Ready | TaskState::Waiting(_)), _) => s.next(Transition::Abandon),
            // Only if a panic escaped its coroutine (a corio bug): do not
            // add a second panic to that unwind.
            (TaskState::Running, None) => TaskState::Finished(Outcome::Cancelled),
        });
        if let TaskState::Finished(o) = core.local(self).state.get() {
            crate::task::diag::count_finish(self, o);
            crate::task::trace::finished(self, core, o);
        }
        task.complete_cancelled();
        // Not retired already (a nested `abandon_task` may have, and a new
        // task may have taken its key since).
        let registered = self
            .tasks
            .borrow()
            .get(core.header.key())
            .is_some_and(|t| ptr::eq(t.core(), core));
        if registered {
            self.retire(core);
        }
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
                    frame: super::frame::enter_runtime(),
                }
            });
            self.shutdown();
        }
        // Tasks handed to this worker that it will never run.
        self.shared.close_inject();
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

/// Unwinds `task` — a task of this thread's runtime that is not running —
/// in place, now, running its destructors, and removes it; it finishes
/// cancelled. For scopes that must not outlive their children but cannot
/// suspend to wait for them (their own task is unwinding). A no-op for a
/// finished task, the running one, or one of another runtime.
pub(crate) fn abandon_task(task: &TaskRef) {
    with_scheduler(|s| {
        let core = task.core();
        if !core.header.is_on(Arc::as_ptr(&s.shared)) || ptr::eq(s.current.get(), core) {
            return;
        }
        let local = core.local(s);
        let (state, timer) = (local.state.get(), local.timer.take());
        match state {
            TaskState::Finished(_) | TaskState::Running => return,
            // Its run-queue entry is an uncounted pointer: remove it before
            // the task goes.
            TaskState::Ready => {
                for q in [&s.run_queue, &s.movable] {
                    q.with(|q| q.retain(|c| !ptr::eq(c.as_ptr(), core)));
                }
            }
            TaskState::Waiting(_) => {}
        }
        if let Some(timer) = timer {
            s.timers.borrow_mut().remove(&timer);
        }
        s.abandon(task);
    });
}
