//! [`Runtime`]: a scheduler and reactor on the current thread, and
//! [`run`], the usual way to start one.

use std::panic;

use crate::error::Error;
use crate::stack;
use crate::task::context::{Config, Scheduler};

/// A corio runtime: one scheduler and one reactor, running tasks on the
/// thread that calls [`block_on`](Runtime::block_on).
///
/// Most programs call [`run`] instead.
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
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            stack_size: stack::DEFAULT_STACK_SIZE,
            event_interval: 128,
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

    /// Creates the runtime.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidStackSize`], or [`Error::Io`] if the poller cannot be
    /// created (for example at the open-files limit).
    pub fn build(self) -> Result<Runtime, Error> {
        let stack_size = stack::checked_size(self.stack_size)?;
        crate::task::panic_hook::install();
        let scheduler = Scheduler::new(Config {
            stack_size,
            event_interval: self.event_interval,
        })
        .map_err(crate::error::from_io)?;
        Ok(Runtime { scheduler })
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

    /// Runs `f` as the main task of this runtime and returns its value.
    ///
    /// Other tasks run while the main task waits. When the main task
    /// returns, tasks still alive are cancelled: each is unwound on its own
    /// stack, so every destructor runs (like `asyncio.run`). `f` may borrow
    /// from the caller: it is guaranteed to have finished or unwound when
    /// `block_on` returns.
    ///
    /// # Panics
    ///
    /// If `f` panics, the panic resumes in the caller. Panics with a clear
    /// message if a runtime is already running on this thread (spawn a task
    /// instead), or if the main task's stack cannot be mapped.
    pub fn block_on<F, T>(&self, f: F) -> T
    where
        F: FnOnce() -> T,
        T: 'static,
    {
        // The stack-overflow report, for the tasks' guard pages.
        crate::overflow::install(crate::task::context::report_overflow);
        let _enter = self.scheduler.enter();
        let handle = self.scheduler.block_on(f);
        match handle.join() {
            Ok(v) => v,
            Err(e) if e.is_panic() => panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("corio: {e}"),
        }
    }
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
