//! [`Builder`]: spawn a task with a name or a stack size.

use std::sync::Arc;

use super::JoinHandle;
use crate::error::Error;
use crate::stack;

/// Configures a task before spawning it, like [`std::thread::Builder`].
///
/// # Examples
///
/// ```
/// corio::run(|| {
///     let h = corio::Builder::new()
///         .name("worker")
///         .stack_size(64 * 1024)
///         .spawn(|| corio::current().name().map(String::from))
///         .unwrap();
///     assert_eq!(h.join().unwrap().as_deref(), Some("worker"));
/// });
/// ```
#[derive(Debug, Default, Clone)]
#[must_use]
pub struct Builder {
    name: Option<String>,
    stack_size: Option<usize>,
}

impl Builder {
    /// A builder with no name and the runtime's default stack size.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the task; the name shows in [`tasks`](crate::tasks), in
    /// `JoinError` messages and in stack-overflow reports.
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(name.into());
        self
    }

    /// Sets the task's stack size in bytes (rounded up to whole pages).
    /// Only the pages the task touches cost memory.
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = Some(bytes);
        self
    }

    /// Spawns a task running `f` on the current worker of the current
    /// thread's runtime. With several workers, an idle worker may take the
    /// task before it first runs; once started, it runs on one thread until
    /// it ends (its thread-locals stay valid across every suspension).
    ///
    /// # Errors
    ///
    /// [`Error::NoRuntime`] outside a runtime; [`Error::InvalidStackSize`].
    /// The task takes its stack when it first runs, on the worker that
    /// runs it: if none can be mapped then, the task ends without running
    /// and its `JoinError` carries [`Error::MapLimit`] or
    /// [`Error::OutOfMemory`], which say which limit was hit and how to
    /// raise it ([`JoinError::start_error`](crate::JoinError::start_error)).
    #[track_caller]
    #[inline]
    pub fn spawn<F, T>(self, f: F) -> Result<JoinHandle<T>, Error>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let name = self.name.map(Arc::<str>::from);
        let location = std::panic::Location::caller();
        super::context::with_scheduler(|s| {
            let size = match self.stack_size {
                Some(bytes) => stack::checked_size(bytes)?,
                None => s.default_stack_size(),
            };
            s.spawn_send(f, name, size, location)
        })
        .unwrap_or(Err(Error::NoRuntime))
    }

    /// Like [`spawn`](Self::spawn), for closures and results that are not
    /// `Send`. The task never leaves the worker that spawned it, so this is
    /// sound; the `JoinHandle` of a `!Send` result stays on this thread.
    ///
    /// # Errors
    ///
    /// As for [`spawn`](Self::spawn).
    #[track_caller]
    #[inline]
    pub fn spawn_local<F, T>(self, f: F) -> Result<JoinHandle<T>, Error>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        let location = std::panic::Location::caller();
        let name = self.name.map(Arc::<str>::from);
        super::context::with_scheduler(|s| {
            // The runtime's default was checked when the runtime was built.
            let size = match self.stack_size {
                Some(bytes) => stack::checked_size(bytes)?,
                None => s.default_stack_size(),
            };
            s.spawn(f, name, size, location)
        })
        .unwrap_or(Err(Error::NoRuntime))
    }
}

/// `corio::spawn`: [`Builder::spawn`] with the defaults, panicking with a
/// message that names the call instead of returning an error.
#[track_caller]
pub(crate) fn spawn_or_panic<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match Builder::new().spawn(f) {
        Ok(h) => h,
        Err(Error::NoRuntime) => {
            panic!("corio::spawn called outside of a corio runtime; start one with corio::run")
        }
        Err(e) => panic!("corio::spawn: {e}"),
    }
}

/// `corio::spawn_local`, as [`spawn_or_panic`].
#[track_caller]
pub(crate) fn spawn_local_or_panic<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + 'static,
    T: 'static,
{
    match Builder::new().spawn_local(f) {
        Ok(h) => h,
        Err(Error::NoRuntime) => {
            panic!(
                "corio::spawn_local called outside of a corio runtime; start one with corio::run"
            )
        }
        Err(e) => panic!("corio::spawn_local: {e}"),
    }
}
