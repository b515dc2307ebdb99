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
//! [`Unparker`] with whatever will make it true, check again, [`park`]. The
//! task header holds a token, `EMPTY`, `NOTIFIED` or `PARKED`:
//!
//! 1. `park` consumes a `NOTIFIED` token and returns at once; otherwise it
//!    sets `PARKED` and suspends the task (`Running → Waiting`).
//! 2. `unpark` swaps in `NOTIFIED`; only the caller that saw `PARKED` queues the
//!    task (`Waiting → Ready`) — on the local run queue from the owning
//!    thread, through the inject queue and `Poller::notify` from any other.
//!    So a task is queued at most once per park, and a wakeup that comes
//!    before the park is not lost (it leaves the token `NOTIFIED`).
//! 3. Wakeups may be spurious (a stale unpark from an earlier wait); every
//!    caller re-checks its condition, so they are harmless.
//! 4. Nothing suspends while the thread is panicking: `park` and `yield_now`
//!    fail or return instead.
#![allow(unsafe_code)]

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::panic::{self, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use corosensei::{Coroutine, CoroutineResult, Yielder};
use slab::Slab;

use crate::error::{Error, JoinError};
use crate::overflow;
use crate::reactor::Reactor;
use crate::stack::{self, PooledStack};
use crate::task::{
    EMPTY, Header, JoinHandle, NOTIFIED, Outcome, PARKED, Packet, Task, TaskId, TaskRef, TaskState,
    Transition, WaitReason,
};

/// What a task hands the scheduler when it suspends.
pub(crate) enum Suspend {
    /// `yield_now`: queue me again at the back.
    Yield,
    /// `park`: I wait for `reason`; someone will unpark me.
    Park(WaitReason),
}

type Coro = Coroutine<(), Suspend, Outcome, PooledStack>;

/// Why a [`park`] returned without a wakeup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Interrupt {
    /// The task was cancelled (and is not shielded).
    Cancelled,
    /// The deadline of the operation or of an enclosing `timeout` passed.
    TimedOut,
    /// The thread is unwinding: suspending now would abort the process.
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
        Interrupt::TimedOut => panic::resume_unwind(Box::new(TimeoutUnwind)),
        Interrupt::Unwinding => panic!("cannot block while unwinding"),
    }
}

/// Something that can be woken: a task (on any runtime) or a plain thread.
#[derive(Clone)]
pub(crate) enum Unparker {
    Task(TaskRef),
    Thread(thread::Thread),
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
            Unparker::Task(task) => {
                let header = task.header();
                if header.park.swap(NOTIFIED, Ordering::AcqRel) != PARKED {
                    return;
                }
                let local = with_scheduler(|s| {
                    if ptr::eq(Arc::as_ptr(&s.shared), Arc::as_ptr(&header.runtime)) {
                        s.schedule(header.key);
                        true
                    } else {
                        false
                    }
                });
                if local != Some(true) {
                    header.runtime.inject(Arc::clone(task));
                }
            }
        }
    }

    /// Whether both wake the same task or thread.
    pub(crate) fn same(&self, other: &Unparker) -> bool {
        match (self, other) {
            (Unparker::Task(a), Unparker::Task(b)) => ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b)),
            (Unparker::Thread(a), Unparker::Thread(b)) => a.id() == b.id(),
            _ => false,
        }
    }
}

/// The part of a runtime that other threads may touch.
pub(crate) struct Shared {
    inject: Mutex<Vec<TaskRef>>,
    has_inject: AtomicBool,
    /// The runtime thread is (about to be) blocked in `Poller::wait`.
    sleeping: AtomicBool,
    /// Cleared when the runtime is dropped: later wakeups are no-ops.
    alive: AtomicBool,
    owner: ThreadId,
    pub(crate) reactor: Reactor,
}

impl Shared {
    fn new() -> std::io::Result<Shared> {
        Ok(Shared {
            inject: Mutex::new(Vec::new()),
            has_inject: AtomicBool::new(false),
            sleeping: AtomicBool::new(false),
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
        self.inject
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(task);
        self.has_inject.store(true, Ordering::SeqCst);
        if self.sleeping.load(Ordering::SeqCst) {
            self.reactor.notify();
        }
    }

    pub(crate) fn is_owned_by_current_thread(&self) -> bool {
        self.owner == thread::current().id()
    }
}

/// A task as its scheduler sees it.
struct LocalTask {
    /// `None` while it runs (the coroutine is moved out so the slab may grow).
    coroutine: Option<Coro>,
    task: TaskRef,
    state: TaskState,
    since: Instant,
    yielder: *const Yielder<(), Suspend>,
    /// The earliest deadline of the `timeout` scopes the task is in.
    deadline: Option<Instant>,
    /// Nesting depth of `shield`: cancellation is ignored while > 0.
    shield: u32,
    /// A blocking call reported the cancellation to the task.
    cancel_observed: bool,
    /// The pending timer of the current park, if any.
    timer: Option<(Instant, u64)>,
    stack_size: usize,
    guard: (usize, usize),
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
    tasks: RefCell<Slab<LocalTask>>,
    run_queue: RefCell<VecDeque<u32>>,
    timers: RefCell<BTreeMap<(Instant, u64), TaskRef>>,
    timer_seq: Cell<u64>,
    /// Key of the running task.
    current: Cell<Option<u32>>,
    current_yielder: Cell<*const Yielder<(), Suspend>>,
    /// Key of the task being force-unwound at shutdown.
    forcing: Cell<Option<u32>>,
    /// Time of the last poll, used for `since` stamps (cheaper than
    /// reading the clock at every transition).
    tick: Cell<Instant>,
    events: RefCell<polling::Events>,
}

thread_local! {
    /// The scheduler running on this thread, while `block_on` runs.
    static CONTEXT: Cell<*const Scheduler> = const { Cell::new(ptr::null()) };
    /// The `timeout` deadline of code running outside any task.
    static THREAD_DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Runs `f` with this thread's scheduler, if a runtime is running here.
pub(crate) fn with_scheduler<R>(f: impl FnOnce(&Scheduler) -> R) -> Option<R> {
    let p = CONTEXT.with(Cell::get);
    if p.is_null() {
        None
    } else {
        // SAFETY: CONTEXT is non-null only while `Scheduler::enter`'s guard is
        // alive, and the scheduler outlives that guard (it is borrowed by it).
        Some(f(unsafe { &*p }))
    }
}

/// Resets CONTEXT when `block_on` ends, however it ends.
pub(crate) struct EnterGuard {
    prev: *const Scheduler,
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        CONTEXT.with(|c| c.set(self.prev));
    }
}

/// Whether a runtime is running on this thread.
pub(crate) fn in_runtime() -> bool {
    !CONTEXT.with(Cell::get).is_null()
}

fn current_task_ref() -> Option<TaskRef> {
    with_scheduler(|s| {
        let key = s.current.get()?;
        Some(Arc::clone(&s.tasks.borrow()[key as usize].task))
    })
    .flatten()
}

/// The running task's identity, if the caller is a task.
pub(crate) fn current_task() -> Option<Task> {
    with_scheduler(|s| {
        let key = s.current.get()?;
        Some(s.tasks.borrow()[key as usize].task.header().task())
    })
    .flatten()
}

impl Scheduler {
    pub(crate) fn new(config: Config) -> std::io::Result<Scheduler> {
        Ok(Scheduler {
            shared: Arc::new(Shared::new()?),
            config,
            tasks: RefCell::new(Slab::new()),
            run_queue: RefCell::new(VecDeque::new()),
            timers: RefCell::new(BTreeMap::new()),
            timer_seq: Cell::new(0),
            current: Cell::new(None),
            current_yielder: Cell::new(ptr::null()),
            forcing: Cell::new(None),
            tick: Cell::new(Instant::now()),
            events: RefCell::new(polling::Events::new()),
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
        EnterGuard { prev }
    }

    pub(crate) fn default_stack_size(&self) -> usize {
        self.config.stack_size
    }

    /// Creates a task running `f` and queues it.
    ///
    /// # Safety
    ///
    /// `f` and `T` may borrow data that must outlive the task: the caller
    /// guarantees the task finishes or is unwound (by `shutdown`) before that
    /// data goes away. With `'static` bounds this always holds.
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
        let stack = stack::take(stack_size)?;
        let guard = stack.guard_range();
        let mut tasks = self.tasks.borrow_mut();
        let entry = tasks.vacant_entry();
        let key = u32::try_from(entry.key()).expect("more than 2^32 tasks");
        let header = Header::new(name, key, Arc::clone(&self.shared));
        let packet: Arc<Packet<T>> = Arc::new(Packet::new(header));
        let erased: TaskRef = packet.clone();
        let body_packet = Arc::clone(&packet);
        let body = move |yielder: &Yielder<(), Suspend>, ()| -> Outcome {
            run_body(key, yielder, f, &body_packet)
        };
        // A closure bigger than 1 KiB would make corosensei panic; box it.
        let coroutine = if std::mem::size_of_val(&body) <= 512 {
            // SAFETY: see this function's contract.
            unsafe { Coro::with_stack_unchecked(stack, body) }
        } else {
            let boxed = Box::new(body);
            // SAFETY: as above.
            unsafe {
                Coro::with_stack_unchecked(stack, move |y: &Yielder<(), Suspend>, ()| {
                    (*boxed)(y, ())
                })
            }
        };
        entry.insert(LocalTask {
            coroutine: Some(coroutine),
            task: erased,
            state: TaskState::Ready,
            since: self.tick.get(),
            yielder: ptr::null(),
            deadline: None,
            shield: 0,
            cancel_observed: false,
            timer: None,
            stack_size,
            guard,
        });
        drop(tasks);
        self.run_queue.borrow_mut().push_back(key);
        Ok(JoinHandle::new(packet))
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
                self.0.shutdown();
            }
        }
        let shutdown = Shutdown(self);
        let size = self.default_stack_size();
        // SAFETY: `f` and `T` may borrow from our caller. The main task either
        // finishes inside `run_until`, or `shutdown` — run by the guard above
        // on every exit path, unwinding included — unwinds it before this
        // function returns.
        let handle = unsafe { self.spawn_unchecked(f, Some("main".into()), size) }
            .unwrap_or_else(|e| panic!("corio: cannot start the main task: {e}"));
        self.run_until(|| handle.is_finished());
        drop(shutdown);
        handle
    }

    /// Queues a waiting task again (`Waiting → Ready`).
    fn schedule(&self, key: u32) {
        let mut tasks = self.tasks.borrow_mut();
        let Some(t) = tasks.get_mut(key as usize) else {
            return;
        };
        t.state = t.state.next(Transition::Wake);
        t.since = self.tick.get();
        drop(tasks);
        self.run_queue.borrow_mut().push_back(key);
    }

    /// Runs tasks until `done()` is true after a task step.
    pub(crate) fn run_until(&self, done: impl Fn() -> bool) {
        let mut budget = self.config.event_interval;
        loop {
            loop {
                let next = self.run_queue.borrow_mut().pop_front();
                let Some(key) = next else { break };
                self.run_task(key);
                if done() {
                    return;
                }
                budget -= 1;
                if budget == 0 {
                    budget = self.config.event_interval;
                    self.poll_events(false);
                }
            }
            if done() {
                return;
            }
            self.poll_events(true);
        }
    }

    /// Resumes one task until it suspends or ends.
    fn run_task(&self, key: u32) {
        let (mut coroutine, yielder, guard, stack_size, header_ptr) = {
            let mut tasks = self.tasks.borrow_mut();
            let Some(t) = tasks.get_mut(key as usize) else {
                return;
            };
            let Some(co) = t.coroutine.take() else {
                return;
            };
            t.state = t.state.next(Transition::Resume);
            let header: *const Header = t.task.header();
            (co, t.yielder, t.guard, t.stack_size, header)
        };
        self.current.set(Some(key));
        self.current_yielder.set(yielder);
        let prev = overflow::enter(guard, stack_size, header_ptr);
        let result = coroutine.resume(());
        overflow::leave(prev);
        self.current.set(None);
        match result {
            CoroutineResult::Yield(suspend) => {
                let mut tasks = self.tasks.borrow_mut();
                let t = &mut tasks[key as usize];
                t.coroutine = Some(coroutine);
                t.since = self.tick.get();
                match suspend {
                    Suspend::Yield => {
                        t.state = t.state.next(Transition::Yield);
                        drop(tasks);
                        self.run_queue.borrow_mut().push_back(key);
                    }
                    Suspend::Park(reason) => {
                        t.state = t.state.next(Transition::Block(reason));
                    }
                }
            }
            CoroutineResult::Return(outcome) => {
                let mut t = self.tasks.borrow_mut().remove(key as usize);
                t.state = t.state.next(Transition::Finish(outcome));
                // Dropped outside the borrow: it may run user destructors.
                drop(t);
            }
        }
    }

    /// Polls for IO events, wakeups from other threads and expired timers.
    /// With `block`, waits until one of them arrives (or the next timer).
    fn poll_events(&self, block: bool) {
        let mut woke = self.drain_inject();
        let idle = block && !woke && self.run_queue.borrow().is_empty();
        let timeout = if idle {
            self.timers
                .borrow()
                .first_key_value()
                .map(|((at, _), _)| at.saturating_duration_since(Instant::now()))
        } else {
            Some(Duration::ZERO)
        };
        if timeout != Some(Duration::ZERO) || self.shared.reactor.has_sources() {
            if timeout != Some(Duration::ZERO) {
                self.shared.sleeping.store(true, Ordering::SeqCst);
            }
            let timeout = if self.shared.has_inject.load(Ordering::SeqCst) {
                Some(Duration::ZERO)
            } else {
                timeout
            };
            let mut events = self.events.borrow_mut();
            events.clear();
            self.shared.reactor.wait(&mut events, timeout);
            self.shared.sleeping.store(false, Ordering::SeqCst);
            self.shared.reactor.dispatch(&events);
            drop(events);
            woke |= self.drain_inject();
        }
        let _ = woke;
        self.tick.set(Instant::now());
        self.fire_timers();
    }

    fn drain_inject(&self) -> bool {
        if !self.shared.has_inject.swap(false, Ordering::SeqCst) {
            return false;
        }
        let woken =
            std::mem::take(&mut *self.shared.inject.lock().unwrap_or_else(|e| e.into_inner()));
        let any = !woken.is_empty();
        for task in woken {
            self.schedule(task.header().key);
        }
        any
    }

    fn fire_timers(&self) {
        let now = self.tick.get();
        loop {
            let expired = {
                let mut timers = self.timers.borrow_mut();
                match timers.first_entry() {
                    Some(e) if e.key().0 <= now => Some(e.remove()),
                    _ => None,
                }
            };
            match expired {
                Some(task) => Unparker::Task(task).unpark(),
                None => break,
            }
        }
    }

    /// Unwinds every task that is still alive, running their destructors
    /// (rule 7 of the lifecycle). Tasks spawned by those destructors are
    /// unwound too.
    pub(crate) fn shutdown(&self) {
        loop {
            let keys: Vec<u32> = self.tasks.borrow().iter().map(|(k, _)| k as u32).collect();
            if keys.is_empty() {
                break;
            }
            for key in keys {
                self.abandon(key);
            }
        }
        self.run_queue.borrow_mut().clear();
        let timers = std::mem::take(&mut *self.timers.borrow_mut());
        drop(timers);
        let inject =
            std::mem::take(&mut *self.shared.inject.lock().unwrap_or_else(|e| e.into_inner()));
        drop(inject);
    }

    fn abandon(&self, key: u32) {
        let (coroutine, guard, stack_size, header_ptr) = {
            let mut tasks = self.tasks.borrow_mut();
            let Some(t) = tasks.get_mut(key as usize) else {
                return;
            };
            let header: *const Header = t.task.header();
            (t.coroutine.take(), t.guard, t.stack_size, header)
        };
        if let Some(mut coroutine) = coroutine {
            self.current.set(Some(key));
            self.current_yielder
                .set(self.tasks.borrow()[key as usize].yielder);
            self.forcing.set(Some(key));
            let prev = overflow::enter(guard, stack_size, header_ptr);
            coroutine.force_unwind();
            overflow::leave(prev);
            self.forcing.set(None);
            self.current.set(None);
            drop(coroutine);
        }
        let mut t = self.tasks.borrow_mut().remove(key as usize);
        t.state = t.state.next(Transition::Abandon);
        t.task.complete_cancelled();
        drop(t);
    }

    /// A snapshot of every live task.
    pub(crate) fn snapshot(&self) -> Vec<crate::inspect::TaskInfo> {
        let now = Instant::now();
        self.tasks
            .borrow()
            .iter()
            .map(|(_, t)| crate::inspect::TaskInfo {
                task: t.task.header().task(),
                state: t.state,
                in_state: now.saturating_duration_since(t.since),
                stack_size: t.stack_size,
            })
            .collect()
    }

    /// Suspends the running task with `s`.
    fn suspend(&self, s: Suspend) {
        let y = self.current_yielder.get();
        debug_assert!(!y.is_null());
        // SAFETY: `current_yielder` is set by `run_task` to the yielder of the
        // task it resumes (stored by `run_body` on that task's own stack,
        // which lives as long as the task), and the caller runs inside that
        // task. The pointer is reloaded by `run_task` before every resume.
        let y = unsafe { &*y };
        y.suspend(s);
        // Back in this task; `run_task` restored current/current_yielder.
    }

    fn with_current<R>(&self, f: impl FnOnce(&mut LocalTask) -> R) -> Option<R> {
        let key = self.current.get()?;
        Some(f(&mut self.tasks.borrow_mut()[key as usize]))
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
                EnterGuard { prev }
            });
            self.shutdown();
        }
    }
}

/// The body of every task, running on its own stack.
fn run_body<F, T>(key: u32, yielder: &Yielder<(), Suspend>, f: F, packet: &Packet<T>) -> Outcome
where
    F: FnOnce() -> T,
{
    with_scheduler(|s| {
        s.tasks.borrow_mut()[key as usize].yielder = yielder;
        s.current_yielder.set(yielder);
    });
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    let describe = || packet.header.describe();
    let (forcing, observed) = with_scheduler(|s| {
        (
            s.forcing.get() == Some(key),
            s.tasks.borrow()[key as usize].cancel_observed,
        )
    })
    .unwrap_or((false, false));
    match result {
        Err(payload) if forcing => {
            // The runtime is unwinding this task: let corosensei finish it.
            packet.complete(Err(JoinError::cancelled(describe())));
            panic::resume_unwind(payload)
        }
        Err(payload) if observed || payload.is::<CancelUnwind>() => {
            drop(payload);
            packet.complete(Err(JoinError::cancelled(describe())));
            Outcome::Cancelled
        }
        Err(payload) => {
            packet.complete(Err(JoinError::panicked(describe(), payload)));
            Outcome::Panicked
        }
        Ok(value) if observed => {
            drop(value);
            packet.complete(Err(JoinError::cancelled(describe())));
            Outcome::Cancelled
        }
        Ok(value) => {
            packet.complete(Ok(value));
            Outcome::Returned
        }
    }
}

/// Suspends the caller until it is unparked, `deadline` (or an enclosing
/// `timeout`) passes, or — in a task — it is cancelled. Outside a task it
/// parks the thread. May return `Ok` spuriously: callers re-check.
pub(crate) fn park(reason: WaitReason, deadline: Option<Instant>) -> Result<(), Interrupt> {
    if thread::panicking() {
        return Err(Interrupt::Unwinding);
    }
    let parked = with_scheduler(|s| {
        let key = s.current.get()?;
        Some(park_task(s, key, reason, deadline))
    })
    .flatten();
    match parked {
        Some(r) => r,
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

fn park_task(
    s: &Scheduler,
    key: u32,
    reason: WaitReason,
    deadline: Option<Instant>,
) -> Result<(), Interrupt> {
    let (task, scope_deadline) = {
        let mut tasks = s.tasks.borrow_mut();
        let t = &mut tasks[key as usize];
        (Arc::clone(&t.task), t.deadline)
    };
    let header = task.header();
    check_interrupt(s, key, header, earliest(deadline, scope_deadline))?;
    // Rule 1: consume a pending notification instead of suspending.
    if header.park.swap(EMPTY, Ordering::AcqRel) == NOTIFIED {
        return Ok(());
    }
    if header
        .park
        .compare_exchange(EMPTY, PARKED, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        header.park.store(EMPTY, Ordering::Release);
        return Ok(());
    }
    let deadline = earliest(deadline, scope_deadline);
    if let Some(at) = deadline {
        let seq = s.timer_seq.get();
        s.timer_seq.set(seq + 1);
        s.timers.borrow_mut().insert((at, seq), Arc::clone(&task));
        s.tasks.borrow_mut()[key as usize].timer = Some((at, seq));
    }
    s.suspend(Suspend::Park(reason));
    // Resumed: whoever queued us swapped in NOTIFIED; consume it.
    header.park.store(EMPTY, Ordering::Release);
    if let Some(timer) = s.tasks.borrow_mut()[key as usize].timer.take() {
        s.timers.borrow_mut().remove(&timer);
    }
    check_interrupt(s, key, header, deadline)
}

fn check_interrupt(
    s: &Scheduler,
    key: u32,
    header: &Header,
    deadline: Option<Instant>,
) -> Result<(), Interrupt> {
    if header.cancelled.load(Ordering::Acquire) {
        let mut tasks = s.tasks.borrow_mut();
        let t = &mut tasks[key as usize];
        if t.shield == 0 {
            t.cancel_observed = true;
            return Err(Interrupt::Cancelled);
        }
    }
    if let Some(at) = deadline {
        if Instant::now() >= at {
            return Err(Interrupt::TimedOut);
        }
    }
    Ok(())
}

fn park_thread(deadline: Option<Instant>) -> Result<(), Interrupt> {
    let deadline = earliest(deadline, THREAD_DEADLINE.with(Cell::get));
    match deadline {
        None => thread::park(),
        Some(at) => {
            let now = Instant::now();
            if now >= at {
                return Err(Interrupt::TimedOut);
            }
            thread::park_timeout(at - now);
            if Instant::now() >= at {
                return Err(Interrupt::TimedOut);
            }
        }
    }
    Ok(())
}

/// Checks for cancellation and an expired `timeout` scope without blocking:
/// the test a non-blocking operation makes before it starts.
pub(crate) fn check_current(deadline: Option<Instant>) -> Result<(), Interrupt> {
    let r = with_scheduler(|s| {
        let key = s.current.get()?;
        let (task, scope) = {
            let tasks = s.tasks.borrow();
            let t = &tasks[key as usize];
            (Arc::clone(&t.task), t.deadline)
        };
        Some(check_interrupt(
            s,
            key,
            task.header(),
            earliest(deadline, scope),
        ))
    })
    .flatten();
    match r {
        Some(r) => r,
        None => match earliest(deadline, THREAD_DEADLINE.with(Cell::get)) {
            Some(at) if Instant::now() >= at => Err(Interrupt::TimedOut),
            _ => Ok(()),
        },
    }
}

/// Yields to the scheduler: the task goes to the back of the run queue.
/// Outside a task it yields the thread.
pub(crate) fn yield_now() {
    if thread::panicking() {
        return;
    }
    let yielded = with_scheduler(|s| {
        if s.current.get().is_some() {
            s.suspend(Suspend::Yield);
            true
        } else {
            false
        }
    });
    if yielded != Some(true) {
        thread::yield_now();
    }
}

/// The earliest `timeout` deadline around the caller.
pub(crate) fn current_deadline() -> Option<Instant> {
    with_scheduler(|s| s.with_current(|t| t.deadline))
        .flatten()
        .unwrap_or_else(|| THREAD_DEADLINE.with(Cell::get))
}

/// Runs `f` with the `timeout` deadline lowered to `deadline` (nested
/// deadlines take the earliest), restoring it afterwards however `f` ends.
pub(crate) fn with_deadline<R>(deadline: Instant, f: impl FnOnce() -> R) -> R {
    fn set(d: Option<Instant>) -> Option<Instant> {
        let in_task =
            with_scheduler(|s| s.with_current(|t| std::mem::replace(&mut t.deadline, d))).flatten();
        match in_task {
            Some(prev) => prev,
            None => THREAD_DEADLINE.with(|c| c.replace(d)),
        }
    }
    struct Restore(Option<Instant>);
    impl Drop for Restore {
        fn drop(&mut self) {
            set(self.0);
        }
    }
    let prev = current_deadline();
    let _restore = Restore(set(earliest(prev, Some(deadline))));
    f()
}

/// Runs `f` with cancellation held off: blocking calls inside do not fail
/// with `Cancelled`. The cancellation stays pending and is reported by the
/// first blocking call after `f` returns.
pub(crate) fn shielded<R>(f: impl FnOnce() -> R) -> R {
    struct Unshield;
    impl Drop for Unshield {
        fn drop(&mut self) {
            with_scheduler(|s| s.with_current(|t| t.shield -= 1));
        }
    }
    let entered = with_scheduler(|s| s.with_current(|t| t.shield += 1)).flatten();
    let _unshield = entered.map(|()| Unshield);
    f()
}

/// The id of the running task, if any.
pub(crate) fn current_id() -> Option<TaskId> {
    with_scheduler(|s| {
        let key = s.current.get()?;
        Some(s.tasks.borrow()[key as usize].task.header().id)
    })
    .flatten()
}
