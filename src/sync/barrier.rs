//! [`Barrier`]: wait until a group of tasks has arrived.

use std::fmt;
use std::time::Duration;

use super::spin::SpinLock;
use super::waiter::{self, WaitQueue, Wakes};
use crate::task::WaitReason;
use crate::time::deadline_after;

struct State {
    n: usize,
    arrived: usize,
    queue: WaitQueue<()>,
}

/// Lets `n` tasks (or threads) wait until all of them have arrived, like
/// [`std::sync::Barrier`]; reusable.
///
/// Waiting suspends the task (state: waiting on an event). A waiter that is
/// cancelled or times out withdraws: it no longer counts as arrived.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use corio::sync::Barrier;
///
/// corio::run(|| {
///     let barrier = Arc::new(Barrier::new(3));
///     let tasks: Vec<_> = (0..3)
///         .map(|_| {
///             let b = Arc::clone(&barrier);
///             corio::spawn(move || b.wait().is_leader())
///         })
///         .collect();
///     let leaders = tasks.into_iter().map(|t| t.join().unwrap()).filter(|&l| l).count();
///     assert_eq!(leaders, 1);
/// });
/// ```
pub struct Barrier {
    state: SpinLock<State>,
}

/// Returned by [`Barrier::wait`]: whether this caller was the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarrierWaitResult(bool);

impl BarrierWaitResult {
    /// `true` for exactly one of the tasks released together: the last to
    /// arrive.
    pub fn is_leader(&self) -> bool {
        self.0
    }
}

impl Barrier {
    /// A barrier for `n` tasks (0 and 1 never wait).
    pub const fn new(n: usize) -> Barrier {
        Barrier {
            state: SpinLock::new(State {
                n,
                arrived: 0,
                queue: WaitQueue::new(),
            }),
        }
    }

    /// Waits until `n` callers have called `wait`. A cancellation point.
    ///
    /// # Panics
    ///
    /// If it would have to wait while the task is unwinding.
    pub fn wait(&self) -> BarrierWaitResult {
        match self.arrive(None) {
            Ok(r) => r,
            Err(i) => waiter::unwind_for(i, "corio::sync::Barrier::wait"),
        }
    }

    /// Like [`wait`](Self::wait), giving up (`None`, and withdrawing) after
    /// `timeout`.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<BarrierWaitResult> {
        match self.arrive(deadline_after(timeout)) {
            Ok(r) => Some(r),
            Err(i) => {
                waiter::timed_out(i);
                None
            }
        }
    }

    fn arrive(
        &self,
        deadline: Option<std::time::Instant>,
    ) -> Result<BarrierWaitResult, crate::task::park::Interrupt> {
        waiter::enter()?;
        let mut st = self.state.lock();
        st.arrived += 1;
        if st.arrived >= st.n {
            st.arrived = 0;
            let mut wakes = Wakes::default();
            st.queue.select_all(&mut wakes);
            drop(st);
            wakes.wake();
            return Ok(BarrierWaitResult(true));
        }
        waiter::wait_in(
            &self.state,
            st,
            |st| &mut st.queue,
            (),
            WaitReason::Event,
            deadline,
            || {},
            |st| {
                st.arrived -= 1;
                Wakes::default()
            },
        )
        .map(|_| BarrierWaitResult(false))
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state.lock();
        f.debug_struct("Barrier")
            .field("n", &st.n)
            .field("arrived", &st.arrived)
            .finish()
    }
}
