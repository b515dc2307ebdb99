//! Deadlock detection: the loop found every task waiting, and nothing that
//! could wake one of them.
//!
//! Never a false positive, so the test is conservative. The runtime is
//! deadlocked only when all of these hold after a quiet period:
//!
//! * its run queue and inject queue are empty and every task waits on
//!   another task or on a primitive of `corio::sync` (a join, a lock, a
//!   semaphore, a channel, an event) — not on IO, a timer, the blocking
//!   pool, a `select`, a future, a process or a signal;
//! * no timer is armed and no IO source is registered with its reactor;
//! * with several workers, the same holds of every worker: each, quiet,
//!   flags itself stuck, and worker 0 — once it is stuck too — reads every
//!   worker's tasks (each worker reads its own, after its inject queue) and
//!   checks that no flag was cleared meanwhile;
//! * no other thread exists in the process besides the runtime's workers
//!   and corio's own monitor threads: any other thread — a plain OS
//!   thread, a blocking-pool thread, another runtime — might hold a channel sender, a lock, a `JoinHandle`
//!   to cancel with, or a waker of one of the tasks. (Idle blocking-pool
//!   threads exit after half a second; the check runs again then.)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::find_cycle;
use std::sync::Arc;

use crate::task::context::{Scheduler, Shared};
use crate::task::{TaskState, WaitReason};

/// How long the loop stays quiet before the first check.
pub(crate) const GRACE: Duration = Duration::from_millis(50);

/// corio's own long-lived threads (stall monitor, signal dumper), which
/// never wake a task.
pub(crate) static HELPER_THREADS: AtomicUsize = AtomicUsize::new(0);

/// Whether nothing registered with the loop could wake a task: the cheap
/// half of the test, checked before the loop goes to sleep.
pub(crate) fn quiet(s: &Scheduler) -> bool {
    s.timers.borrow().is_empty() && !s.driver().has_sources()
}

/// Threads in this process, or `None` if that cannot be read.
fn process_threads() -> Option<usize> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces: count from its `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(17)?.parse().ok()
}

/// The full test, after the loop stayed quiet; on a deadlock, prints the
/// report and records the panic message for `block_on`.
pub(crate) fn check(s: &Scheduler) {
    let now = Instant::now();
    match s.diag.quiet_since.get() {
        None => {
            s.diag.quiet_since.set(Some(now));
            return;
        }
        Some(since) if now.duration_since(since) < GRACE => return,
        Some(_) => {}
    }
    let internal = |r: WaitReason| {
        matches!(
            r,
            WaitReason::Join(_)
                | WaitReason::Lock
                | WaitReason::Semaphore
                | WaitReason::Channel
                | WaitReason::Event
        )
    };
    let stuck = |state: TaskState| matches!(state, TaskState::Waiting(r) if internal(r));
    let mine_stuck = s
        .tasks
        .borrow()
        .iter()
        .all(|(_, t)| stuck(t.core().local(s).state.get()));
    let others: Vec<Arc<Shared>> = match s.group.get() {
        Some(g) if s.multi.get() => g
            .workers
            .iter()
            .filter(|w| w.index != s.shared.index)
            .cloned()
            .collect(),
        _ => Vec::new(),
    };
    if !others.is_empty() {
        // Several workers: each says whether it is stuck; worker 0 decides.
        s.shared.stuck.store(mine_stuck, Ordering::Release);
        if s.shared.index != 0 {
            return;
        }
    }
    let helpers = HELPER_THREADS.load(Ordering::Acquire);
    let all_flagged = || others.iter().all(|w| w.stuck.load(Ordering::Acquire));
    if !mine_stuck || process_threads() != Some(1 + others.len() + helpers) || !all_flagged() {
        return;
    }
    let _reporting = s.diag.reporting();
    // Every worker's tasks, each read by its worker after it took what its
    // inject queue held: a wake that was on its way shows as a ready task.
    let (table, silent) = super::gather(s, true);
    // And no worker ran anything since it said it was stuck (it would have
    // polled and cleared its flag): the tables are of one moment.
    if table.is_empty()
        || !silent.is_empty()
        || !table.iter().all(|t| stuck(t.state()))
        || !all_flagged()
    {
        return;
    }
    let cycle = find_cycle(&table).map(|c| {
        let names: Vec<String> = c.iter().map(|&id| super::describe_id(&table, id)).collect();
        format!("{} → {}", names.join(" → "), names[0])
    });
    let head = format!(
        "corio: deadlock: all {} tasks of the runtime are waiting and nothing can wake any of them{}",
        table.len(),
        cycle
            .as_ref()
            .map_or_else(String::new, |c| format!("; cycle: {c}"))
    );
    crate::task::diag::write_stderr(&format!("{head}\n{}", super::render(&table)));
    *s.diag.deadlock_message.borrow_mut() = Some(head);
    s.diag.deadlocked.set(true);
}
