//! Introspection: a snapshot of every task, with what it waits on.

use std::fmt;
use std::time::Duration;

use crate::task::{Task, TaskId, TaskState};

/// One task as [`tasks`] saw it.
#[derive(Clone, Debug)]
pub struct TaskInfo {
    pub(crate) task: Task,
    pub(crate) state: TaskState,
    pub(crate) in_state: Duration,
    pub(crate) stack_size: usize,
}

impl TaskInfo {
    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.task.id()
    }

    /// The task's name, if it has one.
    pub fn name(&self) -> Option<&str> {
        self.task.name()
    }

    /// Its lifecycle state, with the wait reason when waiting.
    pub fn state(&self) -> TaskState {
        self.state
    }

    /// How long it has been in that state (measured at the scheduler's
    /// last poll, so a few microseconds coarse).
    pub fn in_state(&self) -> Duration {
        self.in_state
    }

    /// The size of its stack in bytes.
    pub fn stack_size(&self) -> usize {
        self.stack_size
    }
}

impl fmt::Display for TaskInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:>6}  {:<16}  {:<28}  {:>10.3?}",
            self.id(),
            self.name().unwrap_or("-"),
            self.state.to_string(),
            self.in_state
        )
    }
}

/// A snapshot of every live task of the current runtime (empty outside
/// one): id, name, lifecycle state with wait reason, and time in that state.
///
/// # Examples
///
/// ```
/// use corio::task::{TaskState, WaitReason};
/// use std::time::Duration;
///
/// corio::run(|| {
///     let sleeper = corio::spawn(|| corio::time::sleep(Duration::from_millis(50)));
///     corio::yield_now(); // let it start and park
///     let table = corio::tasks();
///     let info = table.iter().find(|t| t.id() == sleeper.id()).unwrap();
///     assert_eq!(info.state(), TaskState::Waiting(WaitReason::Timer));
///     sleeper.join().unwrap();
/// });
/// ```
pub fn tasks() -> Vec<TaskInfo> {
    let now = std::time::Instant::now();
    let mut out = Vec::new();
    crate::task::context::with_scheduler(|s| {
        s.for_each_task(|header, state, since| {
            out.push(TaskInfo {
                task: header.task(),
                state,
                in_state: now.saturating_duration_since(since),
                stack_size: header.stack_size,
            })
        })
    });
    out
}

/// The task table as text: one line per task, with a header. Handy for
/// printing from a debug endpoint or a signal handler task.
pub fn dump() -> String {
    let mut out = format!(
        "{:>6}  {:<16}  {:<28}  {:>10}\n",
        "id", "name", "state", "for"
    );
    for t in tasks() {
        out.push_str(&t.to_string());
        out.push('\n');
    }
    out
}
