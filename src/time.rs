//! Time: sleeping, deadlines and intervals.
//!
//! [`sleep`] suspends the calling task (not the thread) on a timer of its
//! runtime. [`timeout`] runs a closure with a deadline: from the deadline on,
//! every corio blocking operation inside it fails with
//! [`io::ErrorKind::TimedOut`] (calls with no
//! error to return, like `sleep` and `JoinHandle::join`, unwind to the
//! `timeout` instead), and `timeout` returns `Err(Elapsed)` — if the
//! deadline did interrupt an operation; a closure that finished without
//! being interrupted returns its value, even after the deadline, so no
//! data an operation took is lost.
//!
//! Every deadline here reads corio's clock, [`now`]: the real time, or the
//! virtual time inside a [`sim`](crate::sim) simulation. `Instant` is
//! std's; code meant to run in a simulation takes its instants from
//! [`now`] rather than `Instant::now()`.

use std::fmt;
use std::io;
use std::panic::{self, AssertUnwindSafe};

pub use std::time::{Duration, Instant};

mod interval;
pub use interval::{Interval, MissedTickBehavior, interval, interval_at};

use crate::task::WaitReason;
use crate::task::park::{Interrupt, TimeoutUnwind};

/// The time by corio's clock: inside a [`sim`](crate::sim) simulation the
/// virtual time, elsewhere `Instant::now()`.
///
/// Every deadline corio computes (`sleep`, `timeout`, socket timeouts,
/// intervals) reads this clock. Code meant to run in a simulation reads
/// it too, and measures with `now() - start` (or
/// `now().duration_since(start)`) rather than `Instant::elapsed`, which
/// reads the real clock. Outside a simulation it costs one relaxed atomic
/// load more than `Instant::now()`.
///
/// ```
/// use std::time::Duration;
///
/// let mut sim = corio::sim::Builder::new().build();
/// sim.client("c", || {
///     let start = corio::time::now();
///     corio::time::sleep(Duration::from_secs(60));
///     assert_eq!(corio::time::now() - start, Duration::from_secs(60));
///     Ok(())
/// });
/// sim.run().unwrap();
/// ```
#[inline]
pub fn now() -> Instant {
    crate::task::driver::now()
}

/// Suspends the current task for at least `dur` (outside a task, sleeps the
/// thread).
///
/// A cancellation point: if the task is cancelled it unwinds from here, and
/// inside an expired [`timeout`] it unwinds to that `timeout`.
///
/// ```
/// use std::time::{Duration, Instant};
/// corio::run(|| {
///     let t = Instant::now();
///     corio::time::sleep(Duration::from_millis(20));
///     assert!(t.elapsed() >= Duration::from_millis(20));
/// });
/// ```
pub fn sleep(dur: Duration) {
    match crate::time::now().checked_add(dur) {
        Some(at) => sleep_until(at),
        None => sleep_until_or_forever(None),
    }
}

/// Suspends the current task until `deadline`.
pub fn sleep_until(deadline: Instant) {
    sleep_until_or_forever(Some(deadline))
}

fn sleep_until_or_forever(deadline: Option<Instant>) {
    match pause_until(deadline, WaitReason::Timer) {
        Ok(()) => {}
        // Cannot suspend while unwinding: return early.
        Err(Interrupt::Unwinding) => {}
        Err(i) => crate::task::park::unwind_for(i),
    }
}

/// The one timed wait every sleep-like call runs (`sleep`, and the pauses
/// of the IO layer, which show `wait` in the task table): suspends the task
/// (or thread) until `at` — for ever with `None` — and returns `Ok` once it
/// has passed. Returns early only with an interrupt: a cancellation, the
/// thread unwinding, or an enclosing `timeout` that expires first
/// (`TimedOut`, recorded as that scope's by the caller's
/// [`unwind_for`](crate::task::park::unwind_for) or
/// [`timed_out_at`](crate::task::park::timed_out_at)).
pub(crate) fn pause_until(at: Option<Instant>, wait: WaitReason) -> Result<(), Interrupt> {
    loop {
        if at.is_some_and(|at| crate::time::now() >= at) {
            return Ok(());
        }
        match crate::task::park::park(wait, at) {
            Ok(()) => {}
            // Our own deadline: the pause is over.
            Err(Interrupt::TimedOut)
                if at.is_some_and(|at| crate::time::now() >= at)
                    && crate::task::park::current_deadline()
                        .is_none_or(|d| crate::time::now() < d) =>
            {
                return Ok(());
            }
            Err(i) => return Err(i),
        }
    }
}

/// The deadline `timeout` from now; `None` (never) if it overflows: how
/// every `*_timeout` call turns its duration into a deadline.
pub(crate) fn deadline_after(timeout: Duration) -> Option<Instant> {
    crate::time::now().checked_add(timeout)
}

/// The error of a [`timeout`] whose deadline passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elapsed(());

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for io::Error {
    fn from(e: Elapsed) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, e)
    }
}

/// Runs `f` with a deadline `dur` from now.
///
/// From the deadline on, every corio blocking operation inside `f` fails with
/// `io::ErrorKind::TimedOut` (or unwinds, for calls without an error), so
/// `f` comes back quickly. Nested timeouts take the earliest deadline.
///
/// `timeout` returns `Err(Elapsed)` if and only if the deadline interrupted
/// `f`: an operation inside failed with `TimedOut` or unwound because this
/// scope's deadline passed — even if `f` swallowed that error. Such an
/// operation consumed nothing (no bytes read, no message received), so
/// dropping what `f` returned loses no data. Otherwise `timeout` returns
/// `Ok` with what `f` returned, even if `f` finished after the deadline:
/// an operation that completed — a read that took bytes, a receive that
/// took a message — always delivers its result. An operation failing for
/// its own deadline (a socket timeout, `recv_timeout`) does not count; nor
/// does an enclosing scope's earlier deadline, which that scope reports.
///
/// Inside a task, operations compare the deadline with the runtime loop's
/// clock, which it reads whenever it polls for events (and every few dozen
/// checks in between): an operation that can complete without waiting may
/// still do so a moment after the deadline. One that waits fails when the
/// deadline passes.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use corio::time::{sleep, timeout};
///
/// corio::run(|| {
///     assert!(timeout(Duration::from_millis(10), || sleep(Duration::from_secs(10))).is_err());
///     assert_eq!(timeout(Duration::from_secs(10), || 5), Ok(5));
///     // Nothing inside was interrupted: the value comes back, late or not.
///     let late = timeout(Duration::from_millis(1), || {
///         std::thread::sleep(Duration::from_millis(5));
///         6
///     });
///     assert_eq!(late, Ok(6));
/// });
/// ```
pub fn timeout<T>(dur: Duration, f: impl FnOnce() -> T) -> Result<T, Elapsed> {
    let Some(deadline) = crate::time::now().checked_add(dur) else {
        return Ok(f());
    };
    timeout_at(deadline, f)
}

/// Like [`timeout`], with a deadline given as an instant. `Err(Elapsed)`
/// under the same rule: only if the deadline interrupted `f`.
pub fn timeout_at<T>(deadline: Instant, f: impl FnOnce() -> T) -> Result<T, Elapsed> {
    let (result, interrupted) =
        crate::task::park::with_deadline(deadline, || panic::catch_unwind(AssertUnwindSafe(f)));
    match result {
        Ok(v) if !interrupted => Ok(v),
        Ok(_) => Err(Elapsed(())),
        Err(p) if interrupted && p.is::<TimeoutUnwind>() => Err(Elapsed(())),
        Err(p) => panic::resume_unwind(p),
    }
}
