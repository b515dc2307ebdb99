//! [`Runtime`]: one or several workers — each a thread with its own
//! scheduler, reactor and timers — and [`run`], the usual way to start one;
//! [`Handle`], [`worker_index`].

mod handle;
mod workers;

use std::panic;
use std::sync::Arc;
use std::time::Duration;

pub use crate::inspect::metrics::{RuntimeMetrics, WorkerMetrics};

use crate::error::Error;
use crate::stack;
use crate::task::context::{Config, Scheduler};
use crate::task::worker::Group;

pub(crate) use handle::spawn_on;
pub use handle::{Handle, worker_index};

/// A corio runtime: one or several workers, each a thread with its own
/// scheduler, reactor and timers. Worker 0 is the thread that calls
/// [`block_on`](Runtime::block_on); the others (see
/// [`Builder::workers`]) are threads of the runtime.
///
/// Most programs call [`run`] (one worker) instead.
///
/// # Examples
///
/// ```
/// let rt = corio::Runtime::new().unwrap();
/// let n = rt.block_on(|| corio::spawn(|| 1 + 1).join().unwrap());
/// assert_eq!(n, 2);
/// ```
pub struct Runtime {
    scheduler: Scheduler,
    group: Arc<Group>,
    threads: workers::Threads,
    pin: bool,
}

/// Configures a [`Runtime`].
///
/// # Examples
///
/// ```
/// let rt = corio::runtime::Builder::new()
///     .stack_size(128 * 1024)
///     .build()
///     .unwrap();
/// rt.block_on(|| assert_eq!(corio::tasks().len(), 1));
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Builder {
    stack_size: usize,
    event_interval: u32,
    stall_threshold: Option<Duration>,
    workers: usize,
    pin: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            stack_size: stack::DEFAULT_STACK_SIZE,
            event_interval: 128,
            stall_threshold: None,
            workers: 1,
            pin: false,
        }
    }
}

impl Builder {
    /// The default configuration.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// The stack size, in bytes, of tasks spawned without
    /// [`task::Builder::stack_size`](crate::Builder::stack_size), including the
    /// main task. Defaults to [`DEFAULT_STACK_SIZE`](crate::stack::DEFAULT_STACK_SIZE).
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = bytes;
        self
    }

    /// How many tasks run between two checks for IO and timers while the
    /// run queue stays busy (default 128). Lower favours IO latency, higher
    /// favours throughput of busy tasks.
    pub fn event_interval(mut self, tasks: u32) -> Builder {
        self.event_interval = tasks.max(1);
        self
    }

    /// Reports tasks that run longer than `threshold` without switching
    /// (a loop that never yields, a blocking call on the runtime thread):
    /// a monitor thread notices the runtime's worker has not switched tasks
    /// for that long and writes once per stall to stderr the task's id,
    /// name, spawn location and how long it has run; when the task finally
    /// yields, the total time and the backtrace of where it yielded. Off
    /// by default; when on, a task switch costs nothing more than with it
    /// off (the monitor reads the switch counter the metrics keep anyway).
    ///
    /// Without this call, the `CORIO_STALL_MS` environment variable (in
    /// milliseconds) sets it, so an unmodified program can be diagnosed.
    ///
    /// ```
    /// use std::time::Duration;
    /// let rt = corio::runtime::Builder::new()
    ///     .stall_threshold(Duration::from_millis(100))
    ///     .build()
    ///     .unwrap();
    /// rt.block_on(|| {
    ///     // Blocks the thread for 300 ms: stderr gets "corio: stall: task 1 'main' ...",
    ///     // then "corio: stall ended: ... it yielded at:" and a backtrace.
    ///     std::thread::sleep(Duration::from_millis(300));
    ///     corio::yield_now();
    /// });
    /// ```
    pub fn stall_threshold(mut self, threshold: Duration) -> Builder {
        self.stall_threshold = Some(threshold.max(Duration::from_millis(1)));
        self
    }

    /// How many workers the runtime has (default 1; at least 1): threads,
    /// each with its own scheduler, reactor and timers. Worker 0 is the
    /// thread that calls [`Runtime::block_on`]; the others are made by
    /// [`build`](Self::build). [`corio::spawn`](crate::spawn) queues a task
    /// on the current worker, from which an idle worker may take it before
    /// it first runs; a task that has started never changes threads.
    /// [`available_parallelism`](std::thread::available_parallelism) uses
    /// every core.
    ///
    /// ```
    /// let rt = corio::runtime::Builder::new().workers(2).build().unwrap();
    /// let on = rt.block_on(|| corio::spawn_on(1, corio::runtime::worker_index).join().unwrap());
    /// assert_eq!(on, Some(1));
    /// ```
    pub fn workers(mut self, n: usize) -> Builder {
        self.workers = n.max(1);
        self
    }

    /// Pins worker `i` to the `i`-th core the process may use (modulo their
    /// number) — worker 0, the caller of `block_on`, while `block_on` runs.
    /// Off by default.
    pub fn pin_workers(mut self, pin: bool) -> Builder {
        self.pin = pin;
        self
    }

    /// Creates the runtime.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidStackSize`], or [`Error::Io`] if the poller cannot be
    /// created (for example at the open-files limit).
    pub fn build(self) -> Result<Runtime, Error> {
        let stack_size = stack::checked_size(self.stack_size)?;
        crate::task::panic_hook::install();
        let stall_threshold = self.stall_threshold.or_else(|| {
            let ms: u64 = std::env::var("CORIO_STALL_MS").ok()?.trim().parse().ok()?;
            Some(Duration::from_millis(ms.max(1)))
        });
        let config = Config {
            stack_size,
            worker: 0,
            event_interval: self.event_interval,
            stall_threshold,
        };
        let scheduler = Scheduler::new(config).map_err(crate::error::from_io)?;
        let (threads, others) = workers::Threads::spawn(self.workers, config, self.pin)?;
        let mut shared = vec![scheduler.shared.clone()];
        shared.extend(others);
        let group = Arc::new(Group::new(shared, stack_size));
        scheduler.join_group(group.clone());
        threads.join(&group);
        Ok(Runtime {
            scheduler,
            group,
            threads,
            pin: self.pin,
        })
    }
}

impl Runtime {
    /// A runtime with the default configuration.
    ///
    /// # Errors
    ///
    /// As for [`Builder::build`].
    pub fn new() -> Result<Runtime, Error> {
        Builder::new().build()
    }

    /// Runs `f` as the main task of this runtime, on worker 0 (the calling
    /// thread), and returns its value.
    ///
    /// Other tasks run while the main task waits, on every worker. When the
    /// main task returns, tasks still alive on every worker are cancelled:
    /// each is unwound on its own stack, so every destructor runs (like
    /// `asyncio.run`); `block_on` returns once every worker is done. `f` may borrow
    /// from the caller: it is guaranteed to have finished or unwound when
    /// `block_on` returns.
    ///
    /// # Panics
    ///
    /// If `f` panics, the panic resumes in the caller. Panics with a clear
    /// message if a runtime is already running on this thread (spawn a task
    /// instead), or if the main task's stack cannot be mapped.
    ///
    /// Panics with a message that starts `corio: deadlock` when every task
    /// waits and nothing can wake any of them (after printing the dump,
    /// with the cycle of the wait graph, to stderr; see
    /// [`corio::inspect`](crate::inspect) for what counts).
    #[track_caller]
    pub fn block_on<F, T>(&self, f: F) -> T
    where
        F: FnOnce() -> T,
        T: 'static,
    {
        // The stack-overflow report, for the tasks' guard pages.
        crate::overflow::install(crate::task::core::report_overflow);
        let _enter = self.scheduler.enter();
        let counters = &self.scheduler.shared.counters;
        counters.enter();
        let registration = crate::inspect::stall::register(&self.scheduler);
        let _pinned = self.pin.then(|| workers::pin_to_core(0)).flatten();
        let running = self.threads.run(&self.group);
        let handle = self.scheduler.block_on(f);
        drop(running);
        if let Some(old) = &_pinned {
            workers::restore_affinity(old);
        }
        drop(registration);
        counters.leave();
        if self.scheduler.diag.deadlocked.replace(false) {
            let message = self.scheduler.diag.deadlock_message.borrow_mut().take();
            panic!("{}", message.unwrap_or_default());
        }
        match handle.join() {
            Ok(v) => v,
            Err(e) if e.is_panic() => panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("corio: {e}"),
        }
    }
}

impl Runtime {
    /// A [`Handle`] to this runtime, to spawn onto it from other threads.
    pub fn handle(&self) -> Handle {
        Handle::new(self.group.clone())
    }

    /// How many workers the runtime has.
    pub fn workers(&self) -> usize {
        self.group.workers.len()
    }

    /// The counters of this runtime (see [`RuntimeMetrics`]): tasks
    /// spawned, alive, finished by outcome; switches; IO events; timers
    /// fired; blocking-pool jobs; time busy and parked — in total and per
    /// worker. Kept in plain counters of the runtime's thread: reading
    /// them costs nothing until asked.
    ///
    /// ```
    /// let rt = corio::Runtime::new().unwrap();
    /// rt.block_on(|| corio::time::sleep(std::time::Duration::from_millis(5)));
    /// let m = rt.metrics();
    /// assert_eq!(m.tasks_returned, 1);
    /// assert!(m.timers_fired >= 1);
    /// assert!(m.parked > std::time::Duration::ZERO);
    /// ```
    pub fn metrics(&self) -> RuntimeMetrics {
        crate::inspect::metrics::of(&self.scheduler)
    }
}

/// The counters of the runtime running on this thread (see
/// [`Runtime::metrics`]); outside a runtime, all zero and no workers.
///
/// ```
/// corio::run(|| {
///     corio::spawn(|| ()).join().unwrap();
///     let m = corio::runtime::metrics();
///     assert_eq!(m.tasks_spawned, 2);
///     assert_eq!(m.tasks_alive, 1); // the main task
///     assert_eq!(m.workers.len(), 1);
/// });
/// assert!(corio::runtime::metrics().workers.is_empty());
/// ```
pub fn metrics() -> RuntimeMetrics {
    crate::task::context::with_scheduler(crate::inspect::metrics::of).unwrap_or_default()
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").finish_non_exhaustive()
    }
}

/// Runs `f` as the main task of a new runtime on the current thread and
/// returns its value — corio's `asyncio.run`.
///
/// When `f` returns, tasks still alive are cancelled and unwound (every
/// destructor runs). A panic in `f` resumes in the caller.
///
/// # Panics
///
/// If a runtime is already running on this thread (inside a task, spawn
/// instead), or the runtime cannot be created.
///
/// # Examples
///
/// ```
/// let total = corio::run(|| {
///     let handles: Vec<_> = (0..10).map(|i| corio::spawn(move || i * 2)).collect();
///     handles.into_iter().map(|h| h.join().unwrap()).sum::<i32>()
/// });
/// assert_eq!(total, 90);
/// ```
#[track_caller]
pub fn run<F, T>(f: F) -> T
where
    F: FnOnce() -> T,
    T: 'static,
{
    if crate::task::context::in_runtime() {
        panic!("corio::run: {}", Error::NestedRuntime);
    }
    let rt = Runtime::new().unwrap_or_else(|e| panic!("corio::run: cannot start a runtime: {e}"));
    rt.block_on(f)
}
