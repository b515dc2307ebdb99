//! [`Handle`]: spawns onto a runtime from anywhere, and the free functions
//! that place tasks on workers.

use std::sync::Arc;

use crate::JoinHandle;
use crate::error::Error;
use crate::task::context::with_scheduler;
use crate::task::worker::{Group, spawn_remote};

/// A handle to a [`Runtime`](crate::Runtime) that spawns tasks onto it from
/// any thread: a task of the runtime, a plain OS thread, or a task of
/// another runtime. `Send + Sync + Clone`.
///
/// Tasks spawned through a handle run while the runtime's
/// [`block_on`](crate::Runtime::block_on) runs; those still waiting when
/// the runtime is dropped are dropped unrun (their `join` reports them
/// cancelled).
///
/// # Examples
///
/// ```
/// let rt = corio::runtime::Builder::new().workers(2).build().unwrap();
/// let handle = rt.handle();
/// let n = rt.block_on(move || {
///     // A plain thread spawns onto the runtime and waits for the result;
///     // the main task waits on a channel (blocking worker 0's thread
///     // would stall the tasks placed on it).
///     let (tx, rx) = corio::sync::oneshot::channel();
///     std::thread::spawn(move || { let _ = tx.send(handle.spawn(|| 6 * 7).join().unwrap()); });
///     rx.recv().unwrap()
/// });
/// assert_eq!(n, 42);
/// ```
#[derive(Clone)]
pub struct Handle {
    group: Arc<Group>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("workers", &self.workers())
            .finish_non_exhaustive()
    }
}

impl Handle {
    pub(crate) fn new(group: Arc<Group>) -> Handle {
        Handle { group }
    }

    /// The handle of the runtime the caller runs on.
    ///
    /// # Panics
    ///
    /// Outside a runtime; [`try_current`](Self::try_current) returns an
    /// error instead.
    ///
    /// ```
    /// corio::run(|| assert_eq!(corio::runtime::Handle::current().workers(), 1));
    /// ```
    pub fn current() -> Handle {
        Handle::try_current().unwrap_or_else(|_| {
            panic!("corio::runtime::Handle::current called outside of a corio runtime")
        })
    }

    /// The handle of the runtime the caller runs on.
    ///
    /// # Errors
    ///
    /// [`Error::NoRuntime`] outside a runtime.
    ///
    /// ```
    /// assert!(corio::runtime::Handle::try_current().is_err());
    /// ```
    pub fn try_current() -> Result<Handle, Error> {
        with_scheduler(|s| s.group.get().cloned())
            .flatten()
            .map(Handle::new)
            .ok_or(Error::NoRuntime)
    }

    /// How many workers the runtime has.
    pub fn workers(&self) -> usize {
        self.group.workers.len()
    }

    /// Whether the caller runs on a worker of this runtime: its index.
    fn here(&self) -> Option<usize> {
        with_scheduler(|s| {
            s.group
                .get()
                .is_some_and(|g| Arc::ptr_eq(g, &self.group))
                .then_some(s.shared.index)
        })
        .flatten()
    }

    /// Spawns `f` onto the runtime. From one of its tasks, like
    /// [`corio::spawn`](crate::spawn) (on the current worker, which an idle
    /// worker may take it from before it starts); from anywhere else, on an
    /// idle worker if there is one, else on the next worker in turn.
    ///
    /// The task takes its stack when it first runs: if none can be mapped
    /// then, it ends without running and its `JoinError` names the limit
    /// ([`JoinError::start_error`](crate::JoinError::start_error)).
    #[track_caller]
    pub fn spawn<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        if self.here().is_some() {
            return crate::spawn(f);
        }
        let worker = &self.group.workers[self.group.pick()];
        spawn_remote(
            worker,
            f,
            None,
            self.group.stack_size,
            true,
            std::panic::Location::caller(),
        )
    }

    /// Spawns `f` on worker `worker` (`0..workers()`), where it stays.
    ///
    /// # Panics
    ///
    /// If `worker` is out of range. (A stack that cannot be mapped is the
    /// task's error, as for [`spawn`](Self::spawn).)
    ///
    /// ```
    /// let rt = corio::runtime::Builder::new().workers(2).build().unwrap();
    /// let h = rt.handle();
    /// rt.block_on(move || {
    ///     let w = h.spawn_on(1, corio::runtime::worker_index).join().unwrap();
    ///     assert_eq!(w, Some(1));
    /// });
    /// ```
    #[track_caller]
    pub fn spawn_on<F, T>(&self, worker: usize, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let n = self.workers();
        assert!(
            worker < n,
            "corio::spawn_on: worker {worker} is out of range (the runtime has {n} workers)"
        );
        if self.here() == Some(worker) {
            return crate::spawn_local(f);
        }
        spawn_remote(
            &self.group.workers[worker],
            f,
            None,
            self.group.stack_size,
            false,
            std::panic::Location::caller(),
        )
    }
}

/// The index of the worker the caller runs on (`0..workers`; 0 runs
/// `block_on`'s main task), or `None` outside a runtime. A task that has
/// started reports the same index until it ends.
///
/// # Examples
///
/// ```
/// assert_eq!(corio::runtime::worker_index(), None);
/// corio::run(|| assert_eq!(corio::runtime::worker_index(), Some(0)));
/// ```
pub fn worker_index() -> Option<usize> {
    with_scheduler(|s| s.shared.index)
}

/// Spawns `f` on worker `worker` of the current runtime, where it stays
/// (see [`Handle::spawn_on`]).
///
/// # Panics
///
/// Outside a runtime, or if `worker` is out of range.
pub(crate) fn spawn_on<F, T>(worker: usize, f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match Handle::try_current() {
        Ok(h) => h.spawn_on(worker, f),
        Err(_) => {
            panic!("corio::spawn_on called outside of a corio runtime; start one with corio::run")
        }
    }
}
