//! The blocking-IO loop every fd-backed type runs (sockets, process pipes
//! and pidfds, the signal pipe): try the non-blocking syscall; on
//! `WouldBlock`, wait for readiness — list the task as a waiter on the
//! fd's reactor source and park it, or outside a runtime block the thread
//! in `poll(2)` — and retry. It sits between the task layer (park, the
//! runtime's context) and the [`reactor`](crate::reactor), which knows
//! only fds, readiness and opaque waiter tokens.
//!
//! The one owner of "fd + registration" is [`Registered`]: its `Drop`
//! deletes the fd from the poller before it closes the fd (reactor rule 1).
#![allow(unsafe_code)]

use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, BorrowedFd};
use std::ptr::{self, NonNull};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use crate::reactor::{ReadyTick, Source, lazy, poll_once};
use crate::task::context::Shared;
use crate::task::core::Core;
use crate::task::{Direction, WaitReason};

/// A waiting task as the reactor holds it: an opaque token, made from and
/// turned back into the task's `Core` only here and in the loop's dispatch.
fn token(core: NonNull<Core>) -> NonNull<()> {
    core.cast()
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
        if let Some(i) = list.iter().position(|&c| c == token(self.core)) {
            list.swap_remove(i);
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

impl Registration {
    /// Registers `fd` with the current runtime's reactor; `Ok(None)` outside
    /// a runtime.
    pub(crate) fn new(fd: BorrowedFd<'_>) -> io::Result<Option<Registration>> {
        let runtime = crate::task::context::with_scheduler(|s| Arc::clone(&s.shared));
        let Some(runtime) = runtime else {
            return Ok(None);
        };
        let source = runtime.driver.register(fd)?;
        Ok(Some(Registration { source, runtime }))
    }

    /// `Some` if the last known readiness for `dir` is set.
    #[inline]
    pub(crate) fn ready(&self, dir: Direction) -> Option<ReadyTick> {
        self.source.ready(dir)
    }

    /// See [`Source::clear`].
    #[inline]
    pub(crate) fn clear(&self, dir: Direction, tick: ReadyTick) {
        self.source.clear(dir, tick)
    }

    /// See [`Source::clear_drained`].
    #[inline]
    pub(crate) fn clear_drained(&self, dir: Direction, tick: ReadyTick) {
        self.source.clear_drained(dir, tick)
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
            debug_assert!(!list.contains(&token(core)));
            list.push(token(core));
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
            fd: self.source.fd(),
            direction: dir,
        });
        crate::task::park::park(reason, deadline).map_err(io::Error::from)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.runtime.driver.deregister(&self.source);
    }
}

/// An fd and its registration, owned together: the one owner of "fd +
/// registration" that sockets, process pipes, the pidfd and the signal
/// pipe use. Its `Drop` deletes the fd from the poller before it drops
/// (closes) the fd, and [`into_inner`](Self::into_inner) does the same
/// before handing the fd back (reactor rule 1), whatever the field order
/// of the type that holds it.
pub(crate) struct Registered<F: AsFd> {
    reg: LazyRegistration,
    fd: ManuallyDrop<F>,
}

impl<F: AsFd> Registered<F> {
    /// `fd` (already `O_NONBLOCK`), registered at its first blocking call
    /// in a task.
    pub(crate) fn new(fd: F) -> Registered<F> {
        Registered {
            reg: LazyRegistration::new(),
            fd: ManuallyDrop::new(fd),
        }
    }

    /// The fd's owner.
    #[inline]
    pub(crate) fn get(&self) -> &F {
        &self.fd
    }

    /// Its registration, for the blocking-IO loop.
    #[inline]
    pub(crate) fn reg(&self) -> &LazyRegistration {
        &self.reg
    }

    /// The fd and its registration, for a `select` readiness arm.
    pub(crate) fn source(&self) -> (BorrowedFd<'_>, &LazyRegistration) {
        (self.fd.as_fd(), &self.reg)
    }

    /// Drops the registration if it is with another worker than the
    /// calling task's, so that the next wait registers with the caller's:
    /// `&mut self` proves that no task waits on it meanwhile. `true` if it
    /// did.
    pub(crate) fn rebind(&mut self) -> bool {
        let elsewhere = self.reg.registered_elsewhere();
        if elsewhere {
            self.reg.take();
        }
        elsewhere
    }

    /// The fd, deregistered from the reactor first.
    pub(crate) fn into_inner(self) -> F {
        let mut this = ManuallyDrop::new(self);
        this.reg.take();
        // SAFETY: `this` is never dropped, so each field is moved out once:
        // the (now empty) registration is dropped, the fd returned.
        unsafe {
            drop(ptr::read(&this.reg));
            ManuallyDrop::take(&mut this.fd)
        }
    }
}

impl<F: AsFd> Drop for Registered<F> {
    fn drop(&mut self) {
        // Deregister first (reactor rule 1), then close.
        self.reg.take();
        // SAFETY: dropped once, here; `fd` is not used after.
        unsafe { ManuallyDrop::drop(&mut self.fd) }
    }
}

/// The error for a task that uses an fd registered with `r`'s runtime,
/// not its own: [`WrongWorker`](crate::Error::WrongWorker) if that is
/// another worker of the caller's runtime.
#[cold]
fn wrong_owner(r: Option<&Registration>) -> crate::Error {
    let sibling = r.and_then(|r| {
        crate::task::context::with_scheduler(|s| {
            let group = s.group.get()?;
            group
                .workers
                .iter()
                .any(|w| Arc::ptr_eq(w, &r.runtime))
                .then_some(crate::Error::WrongWorker {
                    registered: r.runtime.index,
                    current: s.shared.index,
                })
        })
        .flatten()
    });
    sibling.unwrap_or(crate::Error::WrongRuntime)
}

/// Whether `e` is [`Error::WrongWorker`](crate::Error::WrongWorker): the
/// owned `Read`/`Write` of a stream then re-registers it and retries.
#[cold]
pub(crate) fn is_wrong_worker(e: &io::Error) -> bool {
    e.get_ref()
        .and_then(|e| e.downcast_ref::<crate::Error>())
        .is_some_and(|e| matches!(e, crate::Error::WrongWorker { .. }))
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
        // The path of every operation on a registered fd, inlined; making
        // the registration and the error stay out of line.
        match self.0.get() {
            Some(r) if ptr::eq(Arc::as_ptr(&r.runtime), runtime) => Ok(r),
            _ => self.get_in_slow(fd, runtime),
        }
    }

    #[cold]
    #[inline(never)]
    fn get_in_slow(&self, fd: BorrowedFd<'_>, runtime: *const Shared) -> io::Result<&Registration> {
        let registered = lazy::get_or_make(
            &self.0,
            |r| ptr::eq(Arc::as_ptr(&r.runtime), runtime),
            || {
                // A simulation never polls the OS: a wait on a real fd
                // would never end.
                if crate::task::driver::simulated() {
                    return Err(crate::Error::NotSimulated {
                        operation: "IO on a real file descriptor (Unix sockets, pipes)",
                    }
                    .into());
                }
                Registration::new(fd).map(|r| r.expect("a task runs inside its runtime"))
            },
        )?;
        registered.ok_or_else(|| wrong_owner(self.0.get()).into())
    }

    /// Whether the fd is registered with a worker other than the calling
    /// task's; `false` outside a runtime or when not registered.
    fn registered_elsewhere(&self) -> bool {
        let Some(r) = self.0.get() else { return false };
        crate::task::context::with_scheduler(|s| !Arc::ptr_eq(&s.shared, &r.runtime))
            .unwrap_or(false)
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
        if !list.contains(&token(core)) {
            list.push(token(core));
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
            if let Some(i) = list.iter().position(|&c| c == token(core)) {
                list.swap_remove(i);
            }
        }
    }
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
                Some(tick) if tick.is_initial() && !poll_once(fd, dir, 0)? => reg.clear(dir, tick),
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
    let deadline = crate::task::park::earliest(deadline, crate::task::park::current_deadline());
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
