//! The task lifecycle: one enum ([`TaskState`]), one transition function
//! ([`TaskState::try_next`]); the rules are on [`TaskState`].

use std::fmt;
use std::os::fd::RawFd;

pub use crate::reactor::Direction;
use crate::task::TaskId;

/// Where a task is in its lifecycle.
///
/// # Rules
///
/// 1. A task is created **Ready** and placed on its runtime's run queue.
/// 2. The scheduler takes a Ready task from the queue and resumes it:
///    **Ready → Running**. Only one task per runtime thread is Running.
/// 3. A Running task that calls [`yield_now`](crate::yield_now) goes back to the
///    end of the queue: **Running → Ready**.
/// 4. A Running task whose operation would block suspends:
///    **Running → Waiting(reason)**. The reason says what it waits for
///    (IO on an fd, a timer, another task, a channel, a lock, …).
/// 5. The event it waited for (readiness from the reactor, a timer, an
///    unpark from another task or thread, a cancellation) makes it runnable:
///    **Waiting → Ready**, and it is queued again. Control returns right after
///    the call that suspended.
/// 6. A Running task ends: **Running → Finished(Returned | Panicked |
///    Cancelled)**. `Cancelled` here means the task unwound because of a
///    cancellation error it did not handle, or was unwound by its runtime.
/// 7. When a runtime shuts down, tasks that are still Ready or Waiting are
///    unwound in place: **Ready/Waiting → Finished(Cancelled)**.
/// 8. Finished is final. Every other transition is a bug: debug builds panic
///    on it, and [`TaskState::try_next`] reports it.
///
/// ```text
///          spawn
///            │
///            ▼      Resume                   Finish
///   ┌───── Ready ─────────────▶ Running ─────────────────▶ Finished(Returned|Panicked|Cancelled)
///   │       ▲ ▲                 │     │                         ▲       ▲
///   │       │ └───── Yield ─────┘     │ Block (would block)     │       │
///   │       │                         ▼                         │       │
///   │       └────── Wake ────── Waiting(reason) ─── Abandon ────┘       │
///   │                                                                   │
///   └──────────────────────────── Abandon ──────────────────────────────┘
/// ```
///
/// Every arrow is one [`Transition`]: `Resume` (rule 2), `Yield` (3),
/// `Block` (4), `Wake` (5), `Finish` (6) and `Abandon` (7), which takes a
/// Ready or a Waiting task straight to `Finished(Cancelled)` when its
/// runtime shuts down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskState {
    /// Created or woken, and queued to run.
    Ready,
    /// Running right now on its runtime thread.
    Running,
    /// Suspended until something happens.
    Waiting(WaitReason),
    /// Done, for good.
    Finished(Outcome),
}

/// How a task ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The closure returned a value.
    Returned,
    /// The closure panicked; the panic is on the `JoinHandle`.
    Panicked,
    /// The task was cancelled (or unwound when its runtime ended).
    Cancelled,
}

/// What a waiting task waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitReason {
    /// Readiness of a file descriptor.
    Io {
        /// The file descriptor.
        fd: RawFd,
        /// Read or write readiness.
        direction: Direction,
    },
    /// A timer (`sleep`, or a timeout with nothing else to wait for).
    Timer,
    /// Another task to finish.
    Join(TaskId),
    /// A channel to have room or a message.
    Channel,
    /// A lock (`Mutex`, `RwLock`).
    Lock,
    /// A semaphore permit.
    Semaphore,
    /// A barrier, wait group, condition variable, or notification.
    Event,
    /// A `select!` over several operations.
    Select,
    /// A closure running on the blocking thread pool.
    Blocking,
    /// A `Future` polled by `block_on`.
    Future,
    /// A child process to exit.
    Process,
    /// A signal to arrive.
    Signal,
    /// Something else, named.
    Other(&'static str),
}

/// An event that moves a task from one state to the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// The scheduler resumes the task (rule 2).
    Resume,
    /// The task yields (rule 3).
    Yield,
    /// The task suspends for a reason (rule 4).
    Block(WaitReason),
    /// What the task waited for happened (rule 5).
    Wake,
    /// The task's closure ended (rule 6).
    Finish(Outcome),
    /// The runtime unwinds a task that is not running (rule 7).
    Abandon,
}

/// A transition that the lifecycle does not allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("illegal task transition {transition:?} from {from}")]
pub struct IllegalTransition {
    /// The state the task was in.
    pub from: TaskState,
    /// The transition that was attempted.
    pub transition: Transition,
}

impl TaskState {
    /// The one transition function of the lifecycle: the state after `t`, or
    /// an error if `t` is not allowed from `self`.
    ///
    /// ```
    /// use corio::task::{TaskState, Transition, WaitReason, Outcome};
    /// let s = TaskState::Ready.try_next(Transition::Resume).unwrap();
    /// let s = s.try_next(Transition::Block(WaitReason::Timer)).unwrap();
    /// assert_eq!(s, TaskState::Waiting(WaitReason::Timer));
    /// assert!(s.try_next(Transition::Finish(Outcome::Returned)).is_err());
    /// ```
    pub fn try_next(self, t: Transition) -> Result<TaskState, IllegalTransition> {
        use TaskState::*;
        use Transition::*;
        match (self, t) {
            (Ready, Resume) => Ok(Running),
            (Running, Yield) => Ok(Ready),
            (Running, Block(reason)) => Ok(Waiting(reason)),
            (Waiting(_), Wake) => Ok(Ready),
            (Running, Finish(outcome)) => Ok(Finished(outcome)),
            (Ready | Waiting(_), Abandon) => Ok(Finished(Outcome::Cancelled)),
            (from, transition) => Err(IllegalTransition { from, transition }),
        }
    }

    /// Applies `t`. An illegal transition is a corio bug: debug builds (and
    /// the tests) check every transition against [`try_next`](Self::try_next)
    /// and panic; release builds, on the scheduler's hot path, take the
    /// target state the transition names without re-checking the source.
    #[inline(always)]
    pub(crate) fn next(self, t: Transition) -> TaskState {
        if cfg!(debug_assertions) {
            match self.try_next(t) {
                Ok(s) => s,
                Err(e) => panic!("{e}"),
            }
        } else {
            match t {
                Transition::Resume => TaskState::Running,
                Transition::Yield | Transition::Wake => TaskState::Ready,
                Transition::Block(reason) => TaskState::Waiting(reason),
                Transition::Finish(outcome) => TaskState::Finished(outcome),
                Transition::Abandon => TaskState::Finished(Outcome::Cancelled),
            }
        }
    }

    /// Whether the task has finished.
    pub fn is_finished(self) -> bool {
        matches!(self, TaskState::Finished(_))
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskState::Ready => f.write_str("ready"),
            TaskState::Running => f.write_str("running"),
            TaskState::Waiting(r) => write!(f, "waiting: {r}"),
            TaskState::Finished(Outcome::Returned) => f.write_str("finished: returned"),
            TaskState::Finished(Outcome::Panicked) => f.write_str("finished: panicked"),
            TaskState::Finished(Outcome::Cancelled) => f.write_str("finished: cancelled"),
        }
    }
}

impl fmt::Display for WaitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitReason::Io { fd, direction } => {
                let dir = match direction {
                    Direction::Read => "read",
                    Direction::Write => "write",
                };
                write!(f, "io ({dir} fd {fd})")
            }
            WaitReason::Timer => f.write_str("timer"),
            WaitReason::Join(id) => write!(f, "join (task {id})"),
            WaitReason::Channel => f.write_str("channel"),
            WaitReason::Lock => f.write_str("lock"),
            WaitReason::Semaphore => f.write_str("semaphore"),
            WaitReason::Event => f.write_str("event"),
            WaitReason::Select => f.write_str("select"),
            WaitReason::Blocking => f.write_str("blocking pool"),
            WaitReason::Future => f.write_str("future"),
            WaitReason::Process => f.write_str("process"),
            WaitReason::Signal => f.write_str("signal"),
            WaitReason::Other(s) => f.write_str(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REASON: WaitReason = WaitReason::Timer;

    #[test]
    fn legal_path() {
        let mut s = TaskState::Ready;
        for t in [
            Transition::Resume,
            Transition::Yield,
            Transition::Resume,
            Transition::Block(REASON),
            Transition::Wake,
            Transition::Resume,
            Transition::Finish(Outcome::Returned),
        ] {
            s = s.try_next(t).unwrap();
        }
        assert_eq!(s, TaskState::Finished(Outcome::Returned));
    }

    #[test]
    fn illegal_transitions_are_rejected() {
        let finished = TaskState::Finished(Outcome::Panicked);
        let all = [
            Transition::Resume,
            Transition::Yield,
            Transition::Block(REASON),
            Transition::Wake,
            Transition::Finish(Outcome::Returned),
            Transition::Abandon,
        ];
        for t in all {
            assert!(finished.try_next(t).is_err(), "{t:?} from finished");
        }
        assert!(TaskState::Ready.try_next(Transition::Yield).is_err());
        assert!(TaskState::Ready.try_next(Transition::Wake).is_err());
        assert!(TaskState::Running.try_next(Transition::Resume).is_err());
        assert!(TaskState::Running.try_next(Transition::Abandon).is_err());
        assert!(
            TaskState::Waiting(REASON)
                .try_next(Transition::Resume)
                .is_err()
        );
        assert!(
            TaskState::Waiting(REASON)
                .try_next(Transition::Finish(Outcome::Returned))
                .is_err()
        );
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "illegal task transition")]
    fn next_panics_in_debug() {
        let _ = TaskState::Running.next(Transition::Wake);
    }
}
