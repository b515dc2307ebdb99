//! [`Semaphore`]: a count of permits that tasks wait for.

use std::fmt;
use std::time::{Duration, Instant};

use super::chan::deadline_after;
use super::spin::SpinLock;
use super::waiter::{self, WaitQueue, Wakes};
use crate::scheduler::Interrupt;
use crate::task::WaitReason;

struct State {
    permits: usize,
    /// Each waiter with the number of permits it asked for.
    queue: WaitQueue<usize>,
}

impl State {
    /// Hands permits to the waiters at the front, in order, while they
    /// last. The first that cannot be served stops the others (FIFO: a
    /// large request is not starved by a stream of small ones).
    fn grant(&mut self) -> Wakes {
        let mut wakes = Wakes::default();
        while let Some(need) = self.queue.peek_live(|_, _, need| need) {
            if need > self.permits {
                break;
            }
            match self.queue.pop_select(|w, arm, _| waiter::select(w, arm)) {
                Some(wake) => {
                    self.permits -= need;
                    wakes.push(wake);
                }
                None => break,
            }
        }
        wakes
    }
}

/// A counting semaphore: [`acquire`](Self::acquire) takes a permit,
/// waiting (suspending the task; state: waiting on a semaphore) while none
/// is left; dropping the [`SemaphorePermit`] gives it back.
///
/// Waiters are served in arrival order. A waiter that times out or is
/// cancelled leaves the queue, and the permits it did not get go to those
/// behind it.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use corio::sync::Semaphore;
///
/// corio::run(|| {
///     let sem = Arc::new(Semaphore::new(2)); // at most two at a time
///     let tasks: Vec<_> = (0..6)
///         .map(|_| {
///             let sem = Arc::clone(&sem);
///             corio::spawn(move || {
///                 let _permit = sem.acquire();
///                 assert!(sem.available_permits() <= 1);
///                 corio::yield_now();
///             })
///         })
///         .collect();
///     for t in tasks {
///         t.join().unwrap();
///     }
///     assert_eq!(sem.available_permits(), 2);
/// });
/// ```
pub struct Semaphore {
    state: SpinLock<State>,
}

/// The message of a count past [`Semaphore::MAX_PERMITS`].
const TOO_MANY: &str = "corio::sync::Semaphore: more than Semaphore::MAX_PERMITS permits";

impl Semaphore {
    /// The most permits a semaphore holds, as tokio's: `usize::MAX >> 3`.
    /// [`new`](Self::new) and [`add_permits`](Self::add_permits) panic
    /// rather than go past it (a count that wrapped around would hand out
    /// permits that were never there).
    pub const MAX_PERMITS: usize = usize::MAX >> 3;

    /// A semaphore with `permits` permits.
    ///
    /// # Panics
    ///
    /// If `permits` is more than [`MAX_PERMITS`](Self::MAX_PERMITS).
    pub const fn new(permits: usize) -> Semaphore {
        assert!(permits <= Self::MAX_PERMITS, "{}", TOO_MANY);
        Semaphore {
            state: SpinLock::new(State {
                permits,
                queue: WaitQueue::new(),
            }),
        }
    }

    /// Takes a permit, waiting while none is available. A cancellation
    /// point.
    ///
    /// # Panics
    ///
    /// If it would have to wait while the task is unwinding.
    pub fn acquire(&self) -> SemaphorePermit<'_> {
        self.acquire_many(1)
    }

    /// Takes `n` permits at once, waiting until that many are available.
    /// A cancellation point.
    ///
    /// # Panics
    ///
    /// If it would have to wait while the task is unwinding.
    pub fn acquire_many(&self, n: usize) -> SemaphorePermit<'_> {
        match self.take(n, None) {
            Ok(()) => SemaphorePermit { sem: self, n },
            Err(i) => waiter::unwind_for(i, "corio::sync::Semaphore::acquire"),
        }
    }

    /// Takes a permit if one is available and nobody waits; never waits
    /// (not a yield point: see [`sync`](crate::sync#calls-that-never-yield)).
    pub fn try_acquire(&self) -> Option<SemaphorePermit<'_>> {
        self.try_acquire_many(1)
    }

    /// Takes `n` permits if available and nobody waits; never waits.
    pub fn try_acquire_many(&self, n: usize) -> Option<SemaphorePermit<'_>> {
        // The permit is made only once the permits are taken, after the
        // lock is released: a permit made eagerly and dropped on failure
        // would give back permits never taken, relocking the held lock.
        let taken = Self::take_now(&mut self.state.lock(), n);
        taken.then(|| SemaphorePermit { sem: self, n })
    }

    /// Like [`acquire`](Self::acquire), giving up (`None`) after `timeout`.
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<SemaphorePermit<'_>> {
        self.acquire_many_timeout(1, timeout)
    }

    /// Like [`acquire_many`](Self::acquire_many), giving up (`None`) after
    /// `timeout`.
    pub fn acquire_many_timeout(&self, n: usize, timeout: Duration) -> Option<SemaphorePermit<'_>> {
        match self.take(n, deadline_after(timeout)) {
            Ok(()) => Some(SemaphorePermit { sem: self, n }),
            Err(i) => {
                waiter::timed_out(i);
                None
            }
        }
    }

    /// Adds `n` permits (waking waiters they satisfy).
    ///
    /// # Panics
    ///
    /// If the semaphore would then hold more than
    /// [`MAX_PERMITS`](Self::MAX_PERMITS) permits; it is left unchanged.
    pub fn add_permits(&self, n: usize) {
        let mut st = self.state.lock();
        match st.permits.checked_add(n) {
            Some(total) if total <= Self::MAX_PERMITS => st.permits = total,
            _ => {
                drop(st);
                panic!("{}", TOO_MANY);
            }
        }
        let wakes = st.grant();
        drop(st);
        wakes.wake();
    }

    /// Permits available now.
    pub fn available_permits(&self) -> usize {
        self.state.lock().permits
    }

    fn take_now(st: &mut State, n: usize) -> bool {
        let ok = st.permits >= n && st.queue.peek_live(|_, _, _| ()).is_none();
        if ok {
            st.permits -= n;
        }
        ok
    }

    fn take(&self, n: usize, deadline: Option<Instant>) -> Result<(), Interrupt> {
        waiter::enter()?;
        let mut st = self.state.lock();
        if Self::take_now(&mut st, n) {
            return Ok(());
        }
        waiter::wait_in(
            &self.state,
            st,
            |st| &mut st.queue,
            n,
            WaitReason::Semaphore,
            deadline,
            || {},
            State::grant,
        )
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("permits", &self.available_permits())
            .finish()
    }
}

/// Permits taken from a [`Semaphore`]; given back when dropped.
#[must_use = "if unused the permit is released at once"]
pub struct SemaphorePermit<'a> {
    sem: &'a Semaphore,
    n: usize,
}

impl SemaphorePermit<'_> {
    /// Keeps the permits taken for good (they are not given back).
    pub fn forget(mut self) {
        self.n = 0;
    }

    /// How many permits this holds.
    pub fn num_permits(&self) -> usize {
        self.n
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        if self.n > 0 {
            self.sem.add_permits(self.n);
        }
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit")
            .field("permits", &self.n)
            .finish()
    }
}
