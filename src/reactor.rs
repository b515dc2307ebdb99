//! The reactor: one [`Poller`](crate::poller) per runtime (epoll on Linux,
//! the `polling` crate elsewhere), the sources registered with it, and the
//! tasks waiting on each source.
//!
//! # Rules
//!
//! 1. A file descriptor is registered once (edge-triggered, both
//!    directions) by the first blocking operation a task runs on it —
//!    `io_op*`, `wait_ready` or a `select` readiness arm, before it tries
//!    the syscall, not only once it meets `WouldBlock` — with both
//!    readiness bits set, so that first try still goes straight to the
//!    syscall. A non-blocking `try_op` and any call outside a runtime never
//!    register. It is deleted from the poller before it is closed (the IO
//!    types drop their [`Registration`] before their fd).
//! 2. Each source keeps a readiness word: a "readable" and a "writable" bit
//!    and a tick counted up by every event. IO is tried while the bit is set;
//!    a `WouldBlock` clears it — but only if no event arrived since the try
//!    (same tick), so an edge is never lost. An operation that can tell it
//!    drained the fd (a short stream read or write) clears it the same way,
//!    saving the `WouldBlock` syscall — except a read once the read side is
//!    closed: a "closed" bit, set by an event reporting the peer's FIN
//!    (`EPOLLRDHUP`), a hang-up or an error, is never cleared, because a
//!    FIN that came with the last data gives no later edge to wait for.
//! 3. Readers and writers wait in separate lists, so one task can read while
//!    another writes the same socket. A waiter registers, re-checks the
//!    readiness bit, and only then parks. The lists belong to the runtime
//!    thread: only its tasks wait on the source (`LazyRegistration::get_in`
//!    refuses others) and only it dispatches events, so they need no lock.
//!    They hold uncounted task pointers: a waiter removes its own entry when
//!    it leaves the wait by any path, unwinding included, unless the
//!    dispatch that woke it already did.
//! 4. Poller keys carry the slab index and a generation: an event for a
//!    source that was removed (and whose slot was reused) is ignored.
//! 5. Only the runtime thread calls `wait`; other threads only `notify`.
#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use slab::Slab;

pub(crate) use crate::poller::Events;
use crate::poller::Poller;

use crate::task::context::Shared;
use crate::task::core::Core;

mod lazy;
use crate::task::{Direction, WaitReason};

const READ: u32 = 1;
const WRITE: u32 = 2;
/// The read side is closed for good (rule 2).
const CLOSED: u32 = 4;
const TICK_SHIFT: u32 = 3;

/// Whether the poller reports the read side closing, which makes clearing
/// read readiness after a short read safe (rule 2).
pub(crate) const DRAIN_READS: bool = crate::poller::REPORTS_CLOSED;

fn bit(dir: Direction) -> u32 {
    match dir {
        Direction::Read => READ,
        Direction::Write => WRITE,
    }
}

/// The per-runtime reactor (lives in the runtime's `Shared`).
pub(crate) struct Reactor {
    poller: Poller,
    sources: Mutex<Slab<Arc<Source>>>,
    count: AtomicUsize,
    next_generation: AtomicUsize,
}

/// A registered file descriptor.
pub(crate) struct Source {
    fd: RawFd,
    /// The poller key: slab index in the low 32 bits, generation above.
    key: usize,
    /// Readiness bits and the event tick (rule 2).
    readiness: AtomicU32,
    /// Only the runtime thread touches it (rule 3); see [`Source::waiters`].
    waiters: UnsafeCell<Waiters>,
}

// SAFETY: `Source` is shared between the runtime thread and whichever thread
// drops the last `Registration`; the only non-`Sync` part, `waiters`, is only
// touched on the runtime thread (rule 3), and its pointers are never
// dereferenced anywhere else (dropping them is a no-op).
unsafe impl Send for Source {}
// SAFETY: as above.
unsafe impl Sync for Source {}

/// The tasks waiting on a source, by direction: uncounted pointers to the
/// `Core`s of tasks of the source's runtime (rule 3).
#[derive(Default)]
struct Waiters {
    read: Vec<NonNull<Core>>,
    write: Vec<NonNull<Core>>,
}

impl Waiters {
    fn list(&mut self, dir: Direction) -> &mut Vec<NonNull<Core>> {
        match dir {
            Direction::Read => &mut self.read,
            Direction::Write => &mut self.write,
        }
    }
}

impl Source {
    /// The waiter lists.
    ///
    /// # Safety
    ///
    /// Only on the runtime thread that registered the source (rule 3), and
    /// the reference must be dropped before anything that could reach the
    /// lists again (a park, an unpark that runs tasks).
    #[allow(clippy::mut_from_ref)]
    unsafe fn waiters(&self) -> &mut Waiters {
        // SAFETY: per the contract, the only reference, on the only thread.
        unsafe { &mut *self.waiters.get() }
    }
}

/// Removes a waiting task's entry from a source's list when the wait ends
/// by any path (rule 3).
struct Enlisted<'a> {
    source: &'a Source,
    dir: Direction,
    core: NonNull<Core>,
}

impl Drop for Enlisted<'_> {
    fn drop(&mut self) {
        // SAFETY: on the runtime thread (the waiting task runs there); the
        // reference lives only in this block.
        let list = unsafe { self.source.waiters() }.list(self.dir);
        if let Some(i) = list.iter().position(|&c| c == self.core) {
            list.swap_remove(i);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Reactor {
    pub(crate) fn new() -> io::Result<Reactor> {
        Ok(Reactor {
            poller: Poller::new()?,
            sources: Mutex::new(Slab::new()),
            count: AtomicUsize::new(0),
            next_generation: AtomicUsize::new(1),
        })
    }

    /// Wakes the runtime thread out of `wait` (from any thread).
    pub(crate) fn notify(&self) {
        let _ = self.poller.notify();
    }

    /// Whether any fd is registered (if not, a zero-timeout poll is skipped).
    pub(crate) fn has_sources(&self) -> bool {
        self.count.load(Ordering::Relaxed) > 0
    }

    /// Waits for events; only the runtime thread calls this (rule 5).
    pub(crate) fn wait(&self, events: &mut Events, timeout: Option<Duration>) {
        if let Err(e) = self.poller.wait(events, timeout) {
            // EINTR returns no events; anything else means the epoll fd is
            // broken, which we cannot recover from silently.
            panic!("corio reactor: Poller::wait failed: {e}");
        }
    }

    /// Marks sources ready and wakes their waiters with `wake`. Only the
    /// runtime thread calls this (rule 5).
    pub(crate) fn dispatch(&self, events: &Events, mut wake: impl FnMut(NonNull<Core>)) {
        if events.is_empty() {
            return;
        }
        let sources = lock(&self.sources);
        for ev in events.iter() {
            let Some(source) = sources.get(ev.key & 0xffff_ffff) else {
                continue;
            };
            if source.key != ev.key {
                continue; // rule 4: a stale event for a reused slot
            }
            let mut bits = 0;
            if ev.readable {
                bits |= READ;
            }
            if ev.writable {
                bits |= WRITE;
            }
            if ev.closed {
                bits |= CLOSED;
            }
            source.set_ready(bits);
            // SAFETY: on the runtime thread (rule 5); `wake` only queues
            // tasks, it does not run them.
            let waiters = unsafe { source.waiters() };
            if bits & READ != 0 {
                waiters.read.drain(..).for_each(&mut wake);
            }
            if bits & WRITE != 0 {
                waiters.write.drain(..).for_each(&mut wake);
            }
        }
    }

    fn register(&self, fd: BorrowedFd<'_>) -> io::Result<Arc<Source>> {
        let mut sources = lock(&self.sources);
        let entry = sources.vacant_entry();
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed) & 0xffff_ffff;
        let key = entry.key() | (generation << 32);
        let source = Arc::new(Source {
            fd: fd.as_raw_fd(),
            key,
            readiness: AtomicU32::new(READ | WRITE),
            waiters: UnsafeCell::new(Waiters::default()),
        });
        // SAFETY: `Poller::add` requires the fd to be deleted from the poller
        // before it is closed. The fd is owned by the IO object that owns the
        // returned `Registration`, and those objects drop the registration
        // (which calls `deregister` → `Poller::delete`) before their fd (rule 1).
        unsafe { self.poller.add(fd.as_raw_fd(), key)? };
        entry.insert(Arc::clone(&source));
        self.count.fetch_add(1, Ordering::Relaxed);
        Ok(source)
    }

    fn deregister(&self, source: &Source) {
        // SAFETY: the fd is still open (rule 1), so this is the fd that was
        // registered.
        let fd = unsafe { BorrowedFd::borrow_raw(source.fd) };
        let _ = self.poller.delete(fd);
        let mut sources = lock(&self.sources);
        let index = source.key & 0xffff_ffff;
        if sources.get(index).is_some_and(|s| s.key == source.key) {
            sources.remove(index);
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Source {
    fn set_ready(&self, bits: u32) {
        let mut cur = self.readiness.load(Ordering::Acquire);
        loop {
            let tick = (cur >> TICK_SHIFT).wrapping_add(1);
            let new = (tick << TICK_SHIFT) | (cur & (READ | WRITE | CLOSED)) | bits;
            match self.readiness.compare_exchange_weak(
                cur,
                new,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }
}

/// An fd's registration with the reactor of the runtime it was first waited
/// on from. Dropping it removes the fd from the poller; the owner must drop
/// it before closing the fd.
pub(crate) struct Registration {
    source: Arc<Source>,
    runtime: Arc<Shared>,
}

/// A token saying "the fd was ready at this tick" (rule 2).
#[derive(Clone, Copy)]
pub(crate) struct ReadyTick(u32);

impl Registration {
    /// Registers `fd` with the current runtime's reactor; `Ok(None)` outside
    /// a runtime.
    pub(crate) fn new(fd: BorrowedFd<'_>) -> io::Result<Option<Registration>> {
        let runtime = crate::task::context::with_scheduler(|s| Arc::clone(&s.shared));
        let Some(runtime) = runtime else {
            return Ok(None);
        };
        let source = runtime.reactor.register(fd)?;
        Ok(Some(Registration { source, runtime }))
    }

    /// `Some` if the last known readiness for `dir` is set.
    pub(crate) fn ready(&self, dir: Direction) -> Option<ReadyTick> {
        let r = self.source.readiness.load(Ordering::Acquire);
        (r & bit(dir) != 0).then_some(ReadyTick(r >> TICK_SHIFT))
    }

    /// Clears readiness for `dir` after a `WouldBlock`, unless an event came
    /// in after `tick` was read.
    pub(crate) fn clear(&self, dir: Direction, tick: ReadyTick) {
        let mut cur = self.source.readiness.load(Ordering::Acquire);
        while cur >> TICK_SHIFT == tick.0 && cur & bit(dir) != 0 {
            match self.source.readiness.compare_exchange_weak(
                cur,
                cur & !bit(dir),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Clears readiness for `dir` after an operation drained the fd (rule 2):
    /// like [`clear`](Self::clear), but read readiness stays once the read
    /// side is closed.
    pub(crate) fn clear_drained(&self, dir: Direction, tick: ReadyTick) {
        let closed = self.source.readiness.load(Ordering::Acquire) & CLOSED != 0;
        if !(closed && dir == Direction::Read) {
            self.clear(dir, tick);
        }
    }

    /// Suspends the current task until `dir` may be ready, the deadline
    /// passes, or the task is cancelled.
    pub(crate) fn wait(&self, dir: Direction, deadline: Option<Instant>) -> io::Result<()> {
        self.wait_as(dir, deadline, None)
    }

    /// Like [`wait`](Self::wait), showing `reason` (if given) as the task's
    /// wait reason instead of `Io`.
    fn wait_as(
        &self,
        dir: Direction,
        deadline: Option<Instant>,
        reason: Option<WaitReason>,
    ) -> io::Result<()> {
        let core = crate::task::park::current_core().expect("reactor waits happen in tasks");
        {
            // SAFETY: the caller is a task of the source's runtime (its
            // registration came from `LazyRegistration::get_in`), so this is
            // the runtime thread; released before the park.
            let list = unsafe { self.source.waiters() }.list(dir);
            // Not there already: every wait removes its entry on the way out.
            debug_assert!(!list.contains(&core));
            list.push(core);
        }
        let _enlisted = Enlisted {
            source: &self.source,
            dir,
            core,
        };
        if self.ready(dir).is_some() {
            return Ok(());
        }
        let reason = reason.unwrap_or(WaitReason::Io {
            fd: self.source.fd,
            direction: dir,
        });
        crate::task::park::park(reason, deadline).map_err(io::Error::from)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.runtime.reactor.deregister(&self.source);
    }
}

/// A lazily made [`Registration`], for IO objects that may be created outside
/// a runtime and used inside one.
#[derive(Default)]
pub(crate) struct LazyRegistration(OnceLock<Registration>);

impl LazyRegistration {
    pub(crate) fn new() -> Self {
        Self(OnceLock::new())
    }

    /// The registration with `runtime` (the caller's, as returned by
    /// `crate::task::park::check_current_runtime`), made now if there is none.
    ///
    /// Only the runtime that registered the fd polls it: a task of another
    /// runtime would wait for events nobody delivers to it, and its entry
    /// in the source's waiter lists would be touched from two threads
    /// (rule 3). So whichever registration ends up stored — ours, or that
    /// of a task of another runtime that registered the same fd at the same
    /// time and won the race — must be the caller's runtime's, or the
    /// caller gets [`Error::WrongRuntime`](crate::Error::WrongRuntime).
    #[inline]
    fn get_in(&self, fd: BorrowedFd<'_>, runtime: *const Shared) -> io::Result<&Registration> {
        let registered = lazy::get_or_make(
            &self.0,
            |r| ptr::eq(Arc::as_ptr(&r.runtime), runtime),
            || Registration::new(fd).map(|r| r.expect("a task runs inside its runtime")),
        )?;
        registered.ok_or_else(|| crate::Error::WrongRuntime.into())
    }

    /// Drops the registration now (before the fd it watches is closed).
    pub(crate) fn take(&mut self) {
        self.0.take();
    }

    /// Lists the calling task as a waiter for `dir` on `fd` (registered
    /// with the caller's runtime first if need be), as a wait does before
    /// it parks, and returns the entry, which the caller must remove with
    /// [`delist`](Self::delist) before it leaves its wait by any path
    /// (rule 3). For a `select` readiness arm: the task parks on its own
    /// waiter, and any event for `dir` wakes it to re-check its arms.
    /// [`Error::NoRuntime`](crate::Error::NoRuntime) outside a task.
    pub(crate) fn enlist(&self, fd: BorrowedFd<'_>, dir: Direction) -> io::Result<NonNull<Core>> {
        let (Some(core), Some(runtime)) = (
            crate::task::park::current_core(),
            crate::task::context::with_scheduler(|s| Arc::as_ptr(&s.shared)),
        ) else {
            return Err(crate::Error::NoRuntime.into());
        };
        let reg = self.get_in(fd, runtime)?;
        // SAFETY: `reg` belongs to the runtime of the calling task (checked
        // by `get_in`), so this is its runtime thread; released at once.
        let list = unsafe { reg.source.waiters() }.list(dir);
        // Two arms of one select may watch the same fd and direction.
        if !list.contains(&core) {
            list.push(core);
        }
        Ok(core)
    }

    /// Removes the entry `enlist` made, unless an event's dispatch already
    /// did.
    ///
    /// # Safety
    ///
    /// `core` was returned by `enlist` on this registration, for `dir`, on
    /// the calling thread (a task stays on its runtime's thread).
    pub(crate) unsafe fn delist(&self, dir: Direction, core: NonNull<Core>) {
        if let Some(reg) = self.0.get() {
            // SAFETY: `enlist` succeeded on this thread, so `reg` is the
            // registration of this thread's runtime (rule 3); released at
            // once.
            let list = unsafe { reg.source.waiters() }.list(dir);
            if let Some(i) = list.iter().position(|&c| c == core) {
                list.swap_remove(i);
            }
        }
    }
}

/// Whether `fd` is ready for `dir` right now (or has an error or hang-up
/// pending), by a zero-timeout `poll(2)`: exact, unlike the readiness bit,
/// which lags until the loop dispatches the next event and stays set until
/// an operation meets `WouldBlock`. Works outside a runtime too.
pub(crate) fn ready_now(fd: BorrowedFd<'_>, dir: Direction) -> io::Result<bool> {
    poll_once(fd, dir, 0)
}

/// Runs the non-blocking operation `op` on `fd` until it does not return
/// `WouldBlock`, suspending the task (or, outside a runtime, blocking the
/// thread in `poll(2)`) while the fd is not ready.
///
/// `deadline` is the operation's own deadline (socket timeouts); enclosing
/// `timeout` scopes and cancellation apply too. Every call is a
/// cancellation point, even when the fd is ready.
pub(crate) fn io_op<R>(
    fd: BorrowedFd<'_>,
    reg: &LazyRegistration,
    dir: Direction,
    deadline: Option<Instant>,
    op: impl FnMut() -> io::Result<R>,
) -> io::Result<R> {
    io_op_drain(fd, reg, dir, deadline, op, |_| false)
}

/// [`io_op`] for operations that can tell from their result that they
/// drained the fd: when `drained(&result)` is true, readiness for `dir` is
/// cleared as if the next try had returned `WouldBlock` (rule 2, with the
/// tick read before `op`), which saves that syscall. Stream sockets use it
/// for short reads and writes: a read that returns fewer bytes than asked
/// emptied the receive buffer, a write that took fewer filled the send
/// buffer.
pub(crate) fn io_op_drain<R>(
    fd: BorrowedFd<'_>,
    reg: &LazyRegistration,
    dir: Direction,
    deadline: Option<Instant>,
    op: impl FnMut() -> io::Result<R>,
    drained: impl Fn(&R) -> bool,
) -> io::Result<R> {
    io_op_inner(fd, reg, dir, deadline, None, op, drained)
}

/// Like [`io_op`], but a waiting task shows `reason` instead of
/// `WaitReason::Io`: for fds that stand for something else (a child
/// process's pidfd, a signal self-pipe), so that `corio::tasks()` says what
/// the task really waits for.
pub(crate) fn io_op_as<R>(
    fd: BorrowedFd<'_>,
    reg: &LazyRegistration,
    dir: Direction,
    deadline: Option<Instant>,
    reason: WaitReason,
    op: impl FnMut() -> io::Result<R>,
) -> io::Result<R> {
    io_op_inner(fd, reg, dir, deadline, Some(reason), op, |_| false)
}

fn io_op_inner<R>(
    fd: BorrowedFd<'_>,
    reg: &LazyRegistration,
    dir: Direction,
    deadline: Option<Instant>,
    reason: Option<WaitReason>,
    mut op: impl FnMut() -> io::Result<R>,
    drained: impl Fn(&R) -> bool,
) -> io::Result<R> {
    let registration = match crate::task::park::check_current_runtime(deadline)? {
        Some(runtime) => Some(reg.get_in(fd, runtime)?),
        None => None,
    };
    match registration {
        Some(reg) => loop {
            if let Some(tick) = reg.ready(dir) {
                match op() {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => reg.clear(dir, tick),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Ok(r) => {
                        if drained(&r) {
                            reg.clear_drained(dir, tick);
                        }
                        return Ok(r);
                    }
                    r => return r,
                }
            }
            reg.wait_as(dir, deadline, reason)?;
        },
        None => loop {
            match op() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => poll_fd(fd, dir, deadline)?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r,
            }
        },
    }
}

/// Runs `op` once, without waiting: the `try_read`/`try_write` half of the
/// readiness API. A `WouldBlock` (or a result for which `drained` is true)
/// clears readiness for `dir` with the tick read before `op` ran, so an
/// event that arrived meanwhile is kept (rule 2) and the next
/// [`wait_ready`] waits for a new one.
pub(crate) fn try_op<R>(
    fd: BorrowedFd<'_>,
    reg: &LazyRegistration,
    dir: Direction,
    mut op: impl FnMut() -> io::Result<R>,
    drained: impl Fn(&R) -> bool,
) -> io::Result<R> {
    let _ = fd;
    let Some(r) = reg.0.get() else {
        return op();
    };
    let tick = r.ready(dir);
    let result = op();
    if let Some(tick) = tick {
        match &result {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => r.clear(dir, tick),
            Ok(v) if drained(v) => r.clear_drained(dir, tick),
            _ => {}
        }
    }
    result
}

/// Waits for `fd` to become ready in `dir` without running `op`: the
/// readiness API (`readable()`/`writable()`).
pub(crate) fn wait_ready(
    fd: BorrowedFd<'_>,
    reg: &LazyRegistration,
    dir: Direction,
    deadline: Option<Instant>,
) -> io::Result<()> {
    let registration = match crate::task::park::check_current_runtime(deadline)? {
        Some(runtime) => Some(reg.get_in(fd, runtime)?),
        None => None,
    };
    match registration {
        Some(reg) => loop {
            match reg.ready(dir) {
                // Tick 0: no event yet, the bit is only the optimistic
                // guess made at registration (which lets the first IO try
                // at once). A waiter asked for real readiness: check.
                Some(tick) if tick.0 == 0 && !poll_once(fd, dir, 0)? => reg.clear(dir, tick),
                Some(_) => return Ok(()),
                None => {}
            }
            reg.wait(dir, deadline)?;
        },
        None => poll_fd(fd, dir, deadline),
    }
}

/// Blocks the thread until `fd` is ready in `dir` or the deadline passes.
fn poll_fd(fd: BorrowedFd<'_>, dir: Direction, deadline: Option<Instant>) -> io::Result<()> {
    let deadline = match (deadline, crate::task::park::current_deadline()) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    loop {
        let timeout_ms = match deadline {
            None => -1,
            Some(at) => {
                let now = Instant::now();
                let left = at.saturating_duration_since(now);
                if left.is_zero() {
                    return Err(io::Error::from(crate::task::park::timed_out_at(now)));
                }
                left.as_millis().clamp(1, i32::MAX as u128) as i32
            }
        };
        if poll_once(fd, dir, timeout_ms)? {
            return Ok(());
        }
    }
}

/// One `poll(2)` of `fd` for `dir`: whether it is ready (or has an error
/// or hang-up pending) within `timeout_ms`. A signal counts as "not yet".
fn poll_once(fd: BorrowedFd<'_>, dir: Direction, timeout_ms: i32) -> io::Result<bool> {
    let events = match dir {
        Direction::Read => libc::POLLIN,
        Direction::Write => libc::POLLOUT,
    };
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    };
    // SAFETY: `pfd` is one valid pollfd for the duration of the call.
    let rc = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(e);
    }
    Ok(rc > 0)
}
