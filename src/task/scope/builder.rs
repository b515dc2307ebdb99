//! [`ScopedBuilder`]: a child of a scope with a name or a stack size.

use std::fmt;

use super::shared::Place;
use super::{Scope, ScopedJoinHandle};
use crate::error::Error;

/// The name and stack size of a child, before [`Scope::builder`] spawns it.
#[derive(Default)]
pub(super) struct Options {
    pub(super) name: Option<String>,
    pub(super) stack_size: Option<usize>,
}

/// Configures a child of a [`Scope`] before spawning it, like
/// [`corio::Builder`](crate::Builder) for free tasks; made by
/// [`Scope::builder`].
#[must_use = "a ScopedBuilder does nothing until spawn is called"]
pub struct ScopedBuilder<'scope, 'env, E> {
    pub(super) scope: &'scope Scope<'scope, 'env, E>,
    pub(super) options: Options,
}

impl<'scope, E> ScopedBuilder<'scope, '_, E> {
    /// Names the child; the name shows in [`tasks`](crate::tasks), in
    /// `JoinError` messages, panic reports and stack-overflow reports.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.options.name = Some(name.into());
        self
    }

    /// Sets the child's stack size in bytes (rounded up to whole pages).
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.options.stack_size = Some(bytes);
        self
    }

    /// Spawns the child, as [`Scope::spawn`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidStackSize`](crate::Error::InvalidStackSize): nothing
    /// is spawned then. A child that cannot get a stack when it first runs
    /// ends without running, and its `JoinError` names the limit
    /// ([`JoinError::start_error`](crate::JoinError::start_error)).
    #[track_caller]
    pub fn spawn<F, T>(self, f: F) -> Result<ScopedJoinHandle<'scope, T>, Error>
    where
        F: FnOnce() -> T + 'scope,
        T: 'scope,
    {
        self.scope
            .spawn_inner(f, |_: &T| false, |v: T| Ok(v), self.options)
    }

    /// Spawns a fallible child, as [`Scope::spawn_try`].
    ///
    /// # Errors
    ///
    /// As [`spawn`](Self::spawn).
    #[track_caller]
    pub fn spawn_try<F, T>(self, f: F) -> Result<ScopedJoinHandle<'scope, Result<T, E>>, Error>
    where
        F: FnOnce() -> Result<T, E> + 'scope,
        T: 'scope,
        E: 'scope,
    {
        self.scope.spawn_try_with(f, self.options)
    }

    /// Spawns the child on worker `worker`, as [`Scope::spawn_on`].
    ///
    /// # Errors
    ///
    /// As [`spawn`](Self::spawn) (a stack that the target worker cannot
    /// map is reported on stderr there, and the child is cancelled).
    ///
    /// # Panics
    ///
    /// If `worker` is out of range.
    #[track_caller]
    pub fn spawn_on<F, T>(self, worker: usize, f: F) -> Result<ScopedJoinHandle<'scope, T>, Error>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        self.scope
            .spawn_elsewhere(f, Place::Worker(worker), self.options)
    }

    /// Spawns a child that may move to an idle worker before it starts, as
    /// [`Scope::spawn_send`].
    ///
    /// # Errors
    ///
    /// As [`spawn`](Self::spawn).
    #[track_caller]
    pub fn spawn_send<F, T>(self, f: F) -> Result<ScopedJoinHandle<'scope, T>, Error>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        self.scope.spawn_elsewhere(f, Place::Movable, self.options)
    }
}

impl<E> fmt::Debug for ScopedBuilder<'_, '_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedBuilder")
            .field("name", &self.options.name)
            .field("stack_size", &self.options.stack_size)
            .finish_non_exhaustive()
    }
}
