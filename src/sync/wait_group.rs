//! [`WaitGroup`]: wait until a group of handles has been dropped.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::spin::SpinLock;
use super::waiter::{self, WaitQueue, Wakes};
use crate::time::deadline_after;

struct State {
    count: usize,
    queue: WaitQueue<()>,
}

/// Waits for a group of tasks to finish their part, like Go's
/// `sync.WaitGroup` (in the style of crossbeam's): every clone is one
/// member; [`wait`](Self::wait) drops the caller's own member and waits
/// until every other clone has been dropped.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use corio::sync::WaitGroup;
///
/// corio::run(|| {
///     let done = Arc::new(AtomicUsize::new(0));
///     let wg = WaitGroup::new();
///     for _ in 0..4 {
///         let (wg, done) = (wg.clone(), Arc::clone(&done));
///         let _detached = corio::spawn(move || {
///             corio::yield_now();
///             done.fetch_add(1, Ordering::SeqCst);
///             drop(wg);
///         });
///     }
///     wg.wait();
///     assert_eq!(done.load(Ordering::SeqCst), 4);
/// });
/// ```
pub struct WaitGroup {
    inner: Arc<SpinLock<State>>,
}

impl WaitGroup {
    /// A group with one member: this handle.
    pub fn new() -> WaitGroup {
        WaitGroup {
            inner: Arc::new(SpinLock::new(State {
                count: 1,
                queue: WaitQueue::new(),
            })),
        }
    }

    /// Drops this member and waits until every other member is dropped. A
    /// cancellation point.
    ///
    /// # Panics
    ///
    /// If it would have to wait while the task is unwinding.
    pub fn wait(self) {
        let inner = Arc::clone(&self.inner);
        drop(self);
        if let Err(i) = Self::wait_zero(&inner, None) {
            waiter::unwind_for(i, "corio::sync::WaitGroup::wait")
        }
    }

    /// Like [`wait`](Self::wait), giving up after `timeout`: then the caller
    /// gets its member back (`Err`).
    ///
    /// # Errors
    ///
    /// The group, with this member counted again, if others remain after
    /// `timeout`.
    pub fn wait_timeout(self, timeout: Duration) -> Result<(), WaitGroup> {
        let inner = Arc::clone(&self.inner);
        drop(self);
        match Self::wait_zero(&inner, deadline_after(timeout)) {
            Ok(()) => Ok(()),
            Err(i) => {
                waiter::timed_out(i);
                inner.lock().count += 1;
                Err(WaitGroup { inner })
            }
        }
    }

    /// The number of members (clones alive).
    pub fn count(&self) -> usize {
        self.inner.lock().count
    }

    fn wait_zero(
        inner: &SpinLock<State>,
        deadline: Option<std::time::Instant>,
    ) -> Result<(), crate::task::park::Interrupt> {
        waiter::wait_event(inner, |st| &mut st.queue, |st| st.count == 0, deadline)
    }
}

impl Default for WaitGroup {
    fn default() -> Self {
        WaitGroup::new()
    }
}

impl Clone for WaitGroup {
    fn clone(&self) -> Self {
        self.inner.lock().count += 1;
        WaitGroup {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl Drop for WaitGroup {
    fn drop(&mut self) {
        let mut st = self.inner.lock();
        st.count -= 1;
        if st.count > 0 {
            return;
        }
        let mut wakes = Wakes::default();
        st.queue.select_all(&mut wakes);
        drop(st);
        wakes.wake();
    }
}

impl fmt::Debug for WaitGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitGroup")
            .field("count", &self.count())
            .finish()
    }
}
