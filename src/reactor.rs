//! The reactor: one [`Poller`](crate::poller) per runtime (epoll on Linux,
//! the `polling` crate elsewhere), the sources registered with it, their
//! readiness, and the waiters of each source as opaque tokens. A leaf: it
//! knows fds, interest and readiness, nothing of tasks or the scheduler.
//! The blocking-IO loop that registers, waits and retries is
//! [`io_op`](crate::io_op), one layer up; the loop's dispatch turns the
//! tokens it wakes back into tasks.
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
//!    thread: only its tasks wait on the source (`io_op::LazyRegistration::get_in`
//!    refuses others) and only it dispatches events, so they need no lock.
//!    They hold uncounted tokens (task pointers, to `io_op`): a waiter removes its own entry when
//!    it leaves the wait by any path, unwinding included, unless the
//!    dispatch that woke it already did.
//! 4. Poller keys carry the slab index and a generation: an event for a
//!    source that was removed (and whose slot was reused) is ignored.
//! 5. Only the runtime thread calls `wait`; other threads only `notify`.
#![allow(unsafe_code)]

use std::any::Any;
use std::cell::UnsafeCell;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use slab::Slab;

pub(crate) use crate::poller::Events;
use crate::poller::Poller;

pub(crate) mod lazy;
pub(crate) mod network;

/// The direction of an IO wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Waiting for the fd to become readable.
    Read,
    /// Waiting for the fd to become writable.
    Write,
}

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

/// The waiters of a source, by direction: uncounted, opaque tokens for tasks of the source's runtime (rule 3), made and
/// read back by the layer above (`crate::io_op`, the loop's dispatch).
#[derive(Default)]
pub(crate) struct Waiters {
    read: Vec<NonNull<()>>,
    write: Vec<NonNull<()>>,
}

impl Waiters {
    pub(crate) fn list(&mut self, dir: Direction) -> &mut Vec<NonNull<()>> {
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
    #[inline]
    pub(crate) unsafe fn waiters(&self) -> &mut Waiters {
        // SAFETY: per the contract, the only reference, on the only thread.
        unsafe { &mut *self.waiters.get() }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Reactor {
    /// A reactor for a new runtime.
    pub(crate) fn new() -> io::Result<Reactor> {
        Ok(Reactor {
            poller: Poller::new()?,
            sources: Mutex::new(Slab::new()),
            count: AtomicUsize::new(0),
            next_generation: AtomicUsize::new(1),
        })
    }

    /// Wakes the runtime thread out of `wait` (from any thread).
    fn notify(&self) {
        let _ = self.poller.notify();
    }

    /// Whether any fd is registered (if not, a zero-timeout poll is skipped).
    fn has_sources(&self) -> bool {
        self.count.load(Ordering::Relaxed) > 0
    }

    /// Waits for events; only the runtime thread calls this (rule 5).
    fn wait(&self, events: &mut Events, timeout: Option<Duration>) {
        if let Err(e) = self.poller.wait(events, timeout) {
            // EINTR returns no events; anything else means the epoll fd is
            // broken, which we cannot recover from silently.
            panic!("corio reactor: Poller::wait failed: {e}");
        }
    }

    /// Marks sources ready and wakes their waiters with `wake`. Only the
    /// runtime thread calls this (rule 5).
    fn dispatch(&self, events: &Events, mut wake: impl FnMut(NonNull<()>)) {
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

    pub(crate) fn register(&self, fd: BorrowedFd<'_>) -> io::Result<Arc<Source>> {
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

    pub(crate) fn deregister(&self, source: &Source) {
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

/// The seam between the scheduler's loop and what wakes a parked runtime:
/// poll with a timeout, wake a poll from another thread, wake the waiters
/// of what became ready, and tell the time the deadlines read. Object-safe,
/// so that a runtime may run on a driver other than the reactor: the loop
/// reaches its driver only through this trait, statically for the
/// runtime's [`Reactor`] (the first implementation, [`DefaultDriver`]) and
/// as a `dyn Driver` for one installed in its place (the simulation's,
/// `corio::sim`). Registering fds is not part of the seam: it is the
/// reactor's own service to the blocking-IO layer; a driver that stands
/// for the OS offers a [`Network`](network::Network) instead.
pub(crate) trait Driver: Any {
    /// Replaces `events` with what arrives within `timeout` (`None`: no
    /// limit). Only the runtime thread polls (rule 5). A driver without OS
    /// events keeps what it found itself and leaves `events` empty.
    fn poll(&self, events: &mut Events, timeout: Option<Duration>);

    /// Wakes a [`poll`](Self::poll) in progress, from any thread (the
    /// runtime's inject queue calls the reactor's: a driver whose poll
    /// never blocks in real time has nothing to wake).
    fn notify(&self);

    /// Whether a zero-timeout poll can find anything (if not, the loop
    /// skips it).
    fn has_sources(&self) -> bool;

    /// Records what the last poll found and wakes its waiters: `wake` for
    /// opaque tokens the layer above listed with the driver (the reactor's
    /// waiters; nothing else may be passed to `wake`, which reads each as
    /// a task of this runtime), or the driver's own wakers. Only the
    /// runtime thread calls it.
    fn dispatch(&self, events: &Events, wake: &mut dyn FnMut(NonNull<()>));

    /// The time, for the loop's clock, its timers and every deadline.
    #[inline]
    fn now(&self) -> Instant {
        Instant::now()
    }

    /// A task was spawned under registry key `key` (a simulation records
    /// which host it belongs to).
    fn spawned(&self, _key: u32) {}

    /// Whether the driver stands for the OS (a simulation): then nothing
    /// waits on real fds, the blocking pool, processes or signals, and
    /// they fail with `Error::NotSimulated`.
    fn simulated(&self) -> bool {
        false
    }

    /// The network the driver provides in place of the OS's, whose sockets
    /// `corio::net`'s types hold; `None`: real sockets.
    fn network(&self) -> Option<Rc<dyn network::Network>> {
        None
    }

    /// The driver as `Any`, for the layer that installed it to find its own
    /// type again.
    fn as_any(&self) -> &dyn Any;
}

/// The driver every runtime has, and the loop polls unless another one was
/// installed in its place.
pub(crate) type DefaultDriver = Reactor;

impl Driver for Reactor {
    fn poll(&self, events: &mut Events, timeout: Option<Duration>) {
        events.clear();
        self.wait(events, timeout);
    }

    fn notify(&self) {
        Reactor::notify(self)
    }

    fn has_sources(&self) -> bool {
        Reactor::has_sources(self)
    }

    fn dispatch(&self, events: &Events, wake: &mut dyn FnMut(NonNull<()>)) {
        Reactor::dispatch(self, events, wake)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// How many runtimes of the process run on a driver other than their
/// reactor (a simulation's): while none does, corio's clock is
/// `Instant::now()` after one relaxed load, without looking for the
/// thread's runtime.
static INSTALLED: AtomicUsize = AtomicUsize::new(0);

/// Whether any runtime of the process runs on an installed driver (one
/// relaxed load, a plain `mov`).
#[inline]
pub(crate) fn any_installed() -> bool {
    INSTALLED.load(Ordering::Relaxed) != 0
}

/// A driver installed in place of a runtime's reactor, counted in
/// [`any_installed`] while it exists.
pub(crate) struct Installed(pub(crate) Rc<dyn Driver>);

impl Installed {
    pub(crate) fn new(driver: Rc<dyn Driver>) -> Installed {
        INSTALLED.fetch_add(1, Ordering::Relaxed);
        Installed(driver)
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        INSTALLED.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Source {
    /// The registered fd.
    #[inline]
    pub(crate) fn fd(&self) -> RawFd {
        self.fd
    }

    /// `Some` if the last known readiness for `dir` is set.
    #[inline]
    pub(crate) fn ready(&self, dir: Direction) -> Option<ReadyTick> {
        let r = self.readiness.load(Ordering::Acquire);
        (r & bit(dir) != 0).then_some(ReadyTick(r >> TICK_SHIFT))
    }

    /// Clears readiness for `dir` after a `WouldBlock`, unless an event came
    /// in after `tick` was read.
    #[inline]
    pub(crate) fn clear(&self, dir: Direction, tick: ReadyTick) {
        // Inlined: one load and one compare-exchange; a race goes out of line.
        let cur = self.readiness.load(Ordering::Acquire);
        if cur >> TICK_SHIFT != tick.0 || cur & bit(dir) == 0 {
            return;
        }
        if self
            .readiness
            .compare_exchange_weak(cur, cur & !bit(dir), Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            self.clear_contended(dir, tick);
        }
    }

    #[cold]
    #[inline(never)]
    fn clear_contended(&self, dir: Direction, tick: ReadyTick) {
        let mut cur = self.readiness.load(Ordering::Acquire);
        while cur >> TICK_SHIFT == tick.0 && cur & bit(dir) != 0 {
            match self.readiness.compare_exchange_weak(
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
    #[inline]
    pub(crate) fn clear_drained(&self, dir: Direction, tick: ReadyTick) {
        let closed = self.readiness.load(Ordering::Acquire) & CLOSED != 0;
        if !(closed && dir == Direction::Read) {
            self.clear(dir, tick);
        }
    }

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

/// A token saying "the fd was ready at this tick" (rule 2).
#[derive(Clone, Copy)]
pub(crate) struct ReadyTick(u32);

impl ReadyTick {
    /// No event has come yet: the readiness is only the optimistic guess
    /// made at registration (which lets the first IO try at once).
    pub(crate) fn is_initial(self) -> bool {
        self.0 == 0
    }
}

/// Whether `fd` is ready for `dir` right now (or has an error or hang-up
/// pending), by a zero-timeout `poll(2)`: exact, unlike the readiness bit,
/// which lags until the loop dispatches the next event and stays set until
/// an operation meets `WouldBlock`. Works outside a runtime too.
pub(crate) fn ready_now(fd: BorrowedFd<'_>, dir: Direction) -> io::Result<bool> {
    poll_once(fd, dir, 0)
}

/// One `poll(2)` of `fd` for `dir`: whether it is ready (or has an error
/// or hang-up pending) within `timeout_ms`. A signal counts as "not yet".
pub(crate) fn poll_once(fd: BorrowedFd<'_>, dir: Direction, timeout_ms: i32) -> io::Result<bool> {
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
