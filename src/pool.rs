//! Blocking work on a thread pool: corio's `run_in_executor`.
//!
//! The pool is the `blocking` crate's: threads are started on demand (up to
//! 500 by default, see [`set_max_blocking_threads`]) and exit after half a
//! second idle. A task that hands a closure to the pool parks
//! (`Waiting(Blocking)`); the pool thread wakes it through the runtime's
//! cross-thread wakeup when the closure is done.

use std::io;
use std::num::NonZeroUsize;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::thread;

use crate::future;
use crate::task::WaitReason;
use crate::task::park::Interrupt;

/// Runs the blocking closure `f` on a thread pool and returns its result,
/// suspending the calling task (not the thread) until it is done — corio's
/// `loop.run_in_executor(None, f)`.
///
/// Use it for work that would block the runtime thread: a CPU-heavy
/// computation, a blocking library call, a file system operation ([`fs`]
/// uses it). Outside a task (on a plain thread) it simply runs `f` on the
/// calling thread.
///
/// [`fs`]: crate::fs
///
/// # Panics
///
/// A panic in `f` is caught on the pool thread (the panic hook prints it
/// there, as for any thread) and *resumed in the caller* with the same
/// payload, as if `f` had run inline: in a task it unwinds the task, which
/// then finishes `Panicked` with the original message.
///
/// # Cancellation and timeouts
///
/// A running closure cannot be interrupted. If the calling task is cancelled
/// — or the deadline of an enclosing [`time::timeout`](crate::time::timeout)
/// passes — while it waits, `unblock` does not wait any longer: it unwinds at
/// once (the task finishes cancelled, or `timeout` returns `Err(Elapsed)`).
/// If the pool has not started `f` yet, `f` never runs; if it has, `f` runs to
/// completion on the pool and its result is dropped there. A task that is
/// already cancelled when it calls `unblock` does not submit `f` at all.
/// This is how asyncio treats a cancelled `run_in_executor`.
///
/// While the thread is unwinding (in a destructor during a panic) the task
/// cannot suspend, so `f` runs inline on the runtime thread.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// corio::run(|| {
///     // Runs on a pool thread; other tasks keep running meanwhile.
///     let ticker = corio::spawn(|| {
///         for _ in 0..3 {
///             corio::time::sleep(Duration::from_millis(1));
///         }
///     });
///     let sum = corio::unblock(|| {
///         std::thread::sleep(Duration::from_millis(20)); // a blocking call
///         (1..=100u64).sum::<u64>()
///     });
///     assert_eq!(sum, 5050);
///     ticker.join().unwrap();
/// });
/// ```
pub fn unblock<F, T>(f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // In a simulation: inline, so the run stays on its one thread.
    if !in_task() || crate::task::driver::simulated() {
        return f();
    }
    if let Err(i) = crate::task::park::check_current(None) {
        crate::task::park::unwind_for(i);
    }
    match on_pool(f, WaitReason::Blocking) {
        Ok(Ok(v)) => v,
        Ok(Err(payload)) => panic::resume_unwind(payload),
        Err(i) => crate::task::park::unwind_for(i),
    }
}

/// Sets the largest number of threads the blocking pool (used by
/// [`unblock`], [`fs`](crate::fs) and, where pidfds are missing,
/// [`process`](crate::process)) may start. Process-wide; the default is
/// 500, or the `BLOCKING_MAX_THREADS` environment variable.
///
/// Jobs beyond that many wait in the pool's queue; every one of them runs.
///
/// # Examples
///
/// ```
/// corio::set_max_blocking_threads(std::num::NonZeroUsize::new(8).unwrap());
/// ```
pub fn set_max_blocking_threads(threads: NonZeroUsize) {
    ::blocking::set_max_blocking_threads(threads);
}

/// Whether the caller is a task that may suspend (not a plain thread, not a
/// task that is unwinding).
pub(crate) fn in_task() -> bool {
    crate::task::park::current_id().is_some() && !thread::panicking()
}

/// Runs `f` on the pool and waits for it, parking with `reason`. The inner
/// `Err` is a panic of `f`; the outer one an interruption of the wait (the
/// pool task is then dropped: `f` is cancelled if it has not started).
pub(crate) fn on_pool<F, T>(f: F, reason: WaitReason) -> Result<thread::Result<T>, Interrupt>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    crate::task::diag::count_blocking_job();
    let mut job = ::blocking::unblock(move || panic::catch_unwind(AssertUnwindSafe(f)));
    future::drive(Pin::new(&mut job), reason)
}

/// [`unblock`] for operations that return `io::Result`: an interruption
/// (cancellation, timeout) comes back as the `io::Error` corio uses for it
/// instead of unwinding, so the `fs` functions can report it like any other
/// IO error.
pub(crate) fn unblock_io<F, T>(f: F) -> io::Result<T>
where
    F: FnOnce() -> io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    unblock_io_as(f, WaitReason::Blocking)
}

/// [`unblock_io`] with a chosen wait reason.
pub(crate) fn unblock_io_as<F, T>(f: F, reason: WaitReason) -> io::Result<T>
where
    F: FnOnce() -> io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    if crate::task::driver::simulated() {
        return Err(crate::Error::NotSimulated {
            operation: "the file system (or another blocking-pool operation)",
        }
        .into());
    }
    if !in_task() {
        return f();
    }
    crate::task::park::check_current(None)?;
    match on_pool(f, reason) {
        Ok(Ok(r)) => r,
        Ok(Err(payload)) => panic::resume_unwind(payload),
        Err(i) => Err(i.into()),
    }
}
