//! Runtime metrics: counters the runtime's thread keeps in plain cells,
//! read into a snapshot by [`Runtime::metrics`](crate::Runtime::metrics)
//! and [`runtime::metrics`](crate::runtime::metrics).

use std::time::Duration;

use crate::task::Outcome;
use crate::task::context::Scheduler;
use crate::task::diag::{Counter, Counters};

/// The counters of one worker (thread) of a runtime.
///
/// New counters may be added in minor releases (`#[non_exhaustive]`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerMetrics {
    /// Tasks this worker created.
    pub tasks_spawned: u64,
    /// Tasks alive on this worker now (ready, running or waiting).
    pub tasks_alive: u64,
    /// Tasks whose closure returned.
    pub tasks_returned: u64,
    /// Tasks whose closure panicked.
    pub tasks_panicked: u64,
    /// Tasks cancelled, or unwound when their runtime ended.
    pub tasks_cancelled: u64,
    /// Task resumes (switches from the scheduler into a task).
    pub switches: u64,
    /// IO readiness events the reactor delivered.
    pub io_events: u64,
    /// Timers that fired (a sleep ended, a deadline passed).
    pub timers_fired: u64,
    /// Never-started tasks another worker took from this one (always 0
    /// with one worker).
    pub tasks_stolen: u64,
    /// Closures its tasks handed to the blocking pool.
    pub blocking_jobs: u64,
    /// Times the loop polled the reactor.
    pub polls: u64,
    /// Time inside `block_on` not spent parked.
    pub busy: Duration,
    /// Time spent parked in the poller, with nothing to run.
    pub parked: Duration,
}

/// The counters of a runtime: totals over its workers, and each worker's.
///
/// ```
/// let rt = corio::Runtime::new().unwrap();
/// rt.block_on(|| {
///     for i in 0..10 {
///         corio::spawn(move || i).join().unwrap();
///     }
/// });
/// let m = rt.metrics();
/// assert_eq!(m.workers.len(), 1);
/// assert_eq!(m.tasks_spawned, 11); // and the main task
/// assert_eq!(m.tasks_returned, 11);
/// assert_eq!(m.tasks_alive, 0);
/// assert!(m.switches >= 11);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RuntimeMetrics {
    /// Tasks created (the main task of each `block_on` included).
    pub tasks_spawned: u64,
    /// Tasks alive now.
    pub tasks_alive: u64,
    /// Tasks whose closure returned.
    pub tasks_returned: u64,
    /// Tasks whose closure panicked.
    pub tasks_panicked: u64,
    /// Tasks cancelled, or unwound when their runtime ended.
    pub tasks_cancelled: u64,
    /// Task resumes.
    pub switches: u64,
    /// IO readiness events.
    pub io_events: u64,
    /// Timers fired.
    pub timers_fired: u64,
    /// Never-started tasks taken by another worker.
    pub tasks_stolen: u64,
    /// Closures handed to the blocking pool.
    pub blocking_jobs: u64,
    /// Reactor polls.
    pub polls: u64,
    /// Time busy, summed over workers.
    pub busy: Duration,
    /// Time parked, summed over workers.
    pub parked: Duration,
    /// Each worker's counters, indexed by worker number.
    pub workers: Vec<WorkerMetrics>,
}

impl RuntimeMetrics {
    pub(crate) fn from_workers(workers: Vec<WorkerMetrics>) -> RuntimeMetrics {
        let mut m = RuntimeMetrics::default();
        for w in &workers {
            m.tasks_spawned += w.tasks_spawned;
            m.tasks_alive += w.tasks_alive;
            m.tasks_returned += w.tasks_returned;
            m.tasks_panicked += w.tasks_panicked;
            m.tasks_cancelled += w.tasks_cancelled;
            m.switches += w.switches;
            m.io_events += w.io_events;
            m.timers_fired += w.timers_fired;
            m.tasks_stolen += w.tasks_stolen;
            m.blocking_jobs += w.blocking_jobs;
            m.polls += w.polls;
            m.busy += w.busy;
            m.parked += w.parked;
        }
        m.workers = workers;
        m
    }
}

/// The counters of the runtime `s` belongs to: every worker's.
pub(crate) fn of(s: &Scheduler) -> RuntimeMetrics {
    let workers = match s.group.get() {
        Some(g) => g.workers.iter().map(|w| worker(&w.counters)).collect(),
        None => vec![worker(&s.shared.counters)],
    };
    RuntimeMetrics::from_workers(workers)
}

/// One worker's counters, read from any thread (relaxed loads: each is
/// exact, a set of them read while the worker runs need not be one
/// instant's).
fn worker(c: &Counters) -> WorkerMetrics {
    let finished: u64 = c.finished.iter().map(Counter::get).sum();
    let active = c.active();
    let parked = Duration::from_nanos(c.parked.get());
    WorkerMetrics {
        tasks_spawned: c.spawned.get(),
        // Tasks that started here or came here, less those that ended here
        // or left (a task finishes on the worker that adopted it).
        tasks_alive: (c.spawned.get() + c.adopted.get())
            .saturating_sub(c.handed_over.get() + finished),
        tasks_returned: c.finished[Outcome::Returned as usize].get(),
        tasks_panicked: c.finished[Outcome::Panicked as usize].get(),
        tasks_cancelled: c.finished[Outcome::Cancelled as usize].get(),
        switches: c.switches.get(),
        io_events: c.io_events.get(),
        timers_fired: c.timers_fired.get(),
        tasks_stolen: c.handed_over.get(),
        blocking_jobs: c.blocking_jobs.get(),
        polls: c.polls.get(),
        busy: active.saturating_sub(parked),
        parked,
    }
}
