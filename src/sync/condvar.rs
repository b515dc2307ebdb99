//! [`Condvar`]: wait for a condition on data behind a [`Mutex`].

use std::fmt;
use std::time::{Duration, Instant};

use super::mutex::{Mutex, MutexGuard};
use super::spin::SpinLock;
use super::waiter::{self, WaitQueue, Wake, Wakes};
use crate::task::WaitReason;
use crate::task::park::Interrupt;
use crate::time::deadline_after;

/// A condition variable for corio's [`Mutex`], like
/// [`std::sync::Condvar`]: [`wait`](Self::wait) unlocks the mutex, suspends
/// the task (state: waiting on an event) until notified, and locks it again.
///
/// Waiters are woken in the order they started waiting. Spurious wakeups do
/// not happen, but as with std, re-check the condition
/// ([`wait_while`](Self::wait_while) does).
///
/// # Differences from std
///
/// It works with [`corio::sync::Mutex`](Mutex) (no poisoning, so guards are
/// returned directly), and `wait` is a cancellation point: a cancelled task
/// unwinds from it without the lock.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use corio::sync::{Condvar, Mutex};
///
/// corio::run(|| {
///     let pair = Arc::new((Mutex::new(false), Condvar::new()));
///     let pair2 = Arc::clone(&pair);
///     let setter = corio::spawn(move || {
///         *pair2.0.lock() = true;
///         pair2.1.notify_one();
///     });
///     let (lock, cvar) = &*pair;
///     let ready = cvar.wait_while(lock.lock(), |ready| !*ready);
///     assert!(*ready);
///     drop(ready);
///     setter.join().unwrap();
/// });
/// ```
pub struct Condvar {
    queue: SpinLock<WaitQueue<()>>,
}

/// Whether a timed wait on a [`Condvar`] timed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// `true` if the wait ended because the timeout passed.
    pub fn timed_out(&self) -> bool {
        self.0
    }
}

impl Condvar {
    /// A condition variable with no waiters.
    pub const fn new() -> Condvar {
        Condvar {
            queue: SpinLock::new(WaitQueue::new()),
        }
    }

    /// Unlocks the mutex of `guard`, waits for a notification, and locks it
    /// again. A cancellation point.
    ///
    /// # Panics
    ///
    /// If it would have to wait while the task is unwinding.
    pub fn wait<'a, T: ?Sized>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        let mutex = MutexGuard::mutex(&guard);
        match self.park(guard, None) {
            Ok(()) => mutex.lock(),
            Err(i) => waiter::unwind_for(i, "corio::sync::Condvar::wait"),
        }
    }

    /// Waits while `condition` holds for the data, re-checking after each
    /// notification.
    pub fn wait_while<'a, T: ?Sized>(
        &self,
        mut guard: MutexGuard<'a, T>,
        mut condition: impl FnMut(&mut T) -> bool,
    ) -> MutexGuard<'a, T> {
        while condition(&mut *guard) {
            guard = self.wait(guard);
        }
        guard
    }

    /// Like [`wait`](Self::wait), giving up after `timeout` (the mutex is
    /// locked again either way).
    pub fn wait_timeout<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> (MutexGuard<'a, T>, WaitTimeoutResult) {
        let mutex = MutexGuard::mutex(&guard);
        let r = match deadline_after(timeout) {
            Some(at) => self.park(guard, Some(at)),
            None => self.park(guard, None),
        };
        let timed_out = match r {
            Ok(()) => false,
            Err(i) => {
                waiter::timed_out(i);
                true
            }
        };
        (mutex.lock(), WaitTimeoutResult(timed_out))
    }

    /// Like [`wait_while`](Self::wait_while), giving up after `timeout`.
    pub fn wait_timeout_while<'a, T: ?Sized>(
        &self,
        mut guard: MutexGuard<'a, T>,
        timeout: Duration,
        mut condition: impl FnMut(&mut T) -> bool,
    ) -> (MutexGuard<'a, T>, WaitTimeoutResult) {
        let deadline = deadline_after(timeout);
        while condition(&mut *guard) {
            let left = match deadline {
                Some(at) => at.saturating_duration_since(crate::time::now()),
                None => Duration::MAX,
            };
            if left.is_zero() {
                return (guard, WaitTimeoutResult(true));
            }
            guard = self.wait_timeout(guard, left).0;
        }
        (guard, WaitTimeoutResult(false))
    }

    /// Wakes the oldest waiter, if any.
    pub fn notify_one(&self) {
        let mut q = self.queue.lock();
        let wake = q.pop_select(|w, arm, ()| waiter::select(w, arm));
        drop(q);
        Wake::wake_opt(wake);
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) {
        let mut wakes = Wakes::default();
        let mut q = self.queue.lock();
        q.select_all(&mut wakes);
        drop(q);
        wakes.wake();
    }

    /// Queues the caller, then unlocks the mutex (so a notification sent
    /// after the unlock finds it), then parks.
    fn park<T: ?Sized>(
        &self,
        guard: MutexGuard<'_, T>,
        deadline: Option<Instant>,
    ) -> Result<(), Interrupt> {
        let mutex: &Mutex<T> = MutexGuard::mutex(&guard);
        // Checked before the mutex is given up (the guard drops on `?`).
        waiter::enter()?;
        let q = self.queue.lock();
        // Unlocked by hand once queued, below.
        std::mem::forget(guard);
        waiter::wait_in(
            &self.queue,
            q,
            |q| q,
            (),
            WaitReason::Event,
            deadline,
            || mutex.force_unlock(),
            |_| Wakes::default(),
        )
        .map(|_| ())
    }
}

impl Default for Condvar {
    fn default() -> Self {
        Condvar::new()
    }
}

impl fmt::Debug for Condvar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condvar").finish_non_exhaustive()
    }
}
