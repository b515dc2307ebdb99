//! [`Notify`] and [`Event`]: waking tasks that wait for something to
//! happen.

use std::fmt;
use std::time::{Duration, Instant};

use super::spin::SpinLock;
use super::waiter::{self, WaitQueue, Wake, Wakes};
use crate::task::park::Interrupt;
use crate::time::deadline_after;

struct NotifyState {
    permit: bool,
    queue: WaitQueue<()>,
}

/// Wakes one waiting task at a time, like tokio's `Notify`.
///
/// [`notify_one`](Self::notify_one) wakes the oldest waiter, or — if none
/// waits — stores one permit that the next [`wait`](Self::wait) consumes at
/// once (so a notification sent just before the wait is not lost).
/// [`notify_waiters`](Self::notify_waiters) wakes every current waiter and
/// stores nothing. A waiter that is cancelled or times out before it is
/// woken leaves the queue, so the notification goes to the next one; one
/// woken just as it timed out counts as notified.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use corio::sync::Notify;
///
/// corio::run(|| {
///     let notify = Arc::new(Notify::new());
///     let n = Arc::clone(&notify);
///     let waiter = corio::spawn(move || n.wait());
///     notify.notify_one();
///     waiter.join().unwrap();
/// });
/// ```
pub struct Notify {
    state: SpinLock<NotifyState>,
}

impl Notify {
    /// A `Notify` with no stored permit.
    pub const fn new() -> Notify {
        Notify {
            state: SpinLock::new(NotifyState {
                permit: false,
                queue: WaitQueue::new(),
            }),
        }
    }

    /// Wakes the oldest waiter, or stores a permit if none waits.
    pub fn notify_one(&self) {
        let mut st = self.state.lock();
        let wake = st.queue.pop_select(|w, arm, ()| waiter::select(w, arm));
        if wake.is_none() {
            st.permit = true;
        }
        drop(st);
        Wake::wake_opt(wake);
    }

    /// Wakes every task waiting now; stores no permit.
    pub fn notify_waiters(&self) {
        let mut wakes = Wakes::default();
        let mut st = self.state.lock();
        st.queue.select_all(&mut wakes);
        drop(st);
        wakes.wake();
    }

    /// Waits for a notification (or consumes the stored permit). A
    /// cancellation point.
    ///
    /// # Panics
    ///
    /// If it would have to wait while the task is unwinding.
    pub fn wait(&self) {
        if let Err(i) = self.wait_until(None) {
            waiter::unwind_for(i, "corio::sync::Notify::wait")
        }
    }

    /// Like [`wait`](Self::wait), giving up after `timeout`; `true` if
    /// notified.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        waiter::woken_in_time(self.wait_until(deadline_after(timeout)))
    }

    fn wait_until(&self, deadline: Option<Instant>) -> Result<(), Interrupt> {
        waiter::wait_event(
            &self.state,
            |st| &mut st.queue,
            |st| std::mem::take(&mut st.permit),
            deadline,
        )
    }
}

impl Default for Notify {
    fn default() -> Self {
        Notify::new()
    }
}

impl fmt::Debug for Notify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notify")
            .field("permit", &self.state.lock().permit)
            .finish_non_exhaustive()
    }
}

struct EventState {
    set: bool,
    queue: WaitQueue<()>,
}

/// A flag that tasks can wait for, like Python's `asyncio.Event`:
/// [`wait`](Self::wait) returns once the event is [`set`](Self::set), and at
/// once while it stays set; [`clear`](Self::clear) resets it.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use corio::sync::Event;
///
/// corio::run(|| {
///     let ready = Arc::new(Event::new());
///     let waiters: Vec<_> = (0..3)
///         .map(|_| {
///             let ready = Arc::clone(&ready);
///             corio::spawn(move || ready.wait())
///         })
///         .collect();
///     corio::yield_now();
///     ready.set(); // wakes all three
///     for w in waiters {
///         w.join().unwrap();
///     }
///     assert!(ready.is_set());
/// });
/// ```
pub struct Event {
    state: SpinLock<EventState>,
}

impl Event {
    /// An event that is not set.
    pub const fn new() -> Event {
        Event {
            state: SpinLock::new(EventState {
                set: false,
                queue: WaitQueue::new(),
            }),
        }
    }

    /// Sets the event, waking every waiter.
    pub fn set(&self) {
        let mut wakes = Wakes::default();
        let mut st = self.state.lock();
        st.set = true;
        st.queue.select_all(&mut wakes);
        drop(st);
        wakes.wake();
    }

    /// Clears the event: later `wait`s wait again.
    pub fn clear(&self) {
        self.state.lock().set = false;
    }

    /// Whether the event is set.
    pub fn is_set(&self) -> bool {
        self.state.lock().set
    }

    /// Waits until the event is set. A cancellation point.
    ///
    /// # Panics
    ///
    /// If it would have to wait while the task is unwinding.
    pub fn wait(&self) {
        if let Err(i) = self.wait_until(None) {
            waiter::unwind_for(i, "corio::sync::Event::wait")
        }
    }

    /// Like [`wait`](Self::wait), giving up after `timeout`; `true` if the
    /// event was set.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        waiter::woken_in_time(self.wait_until(deadline_after(timeout)))
    }

    fn wait_until(&self, deadline: Option<Instant>) -> Result<(), Interrupt> {
        waiter::wait_event(&self.state, |st| &mut st.queue, |st| st.set, deadline)
    }
}

impl Default for Event {
    fn default() -> Self {
        Event::new()
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.is_set())
            .finish_non_exhaustive()
    }
}
