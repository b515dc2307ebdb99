//! [`ScopeError`]: what a [`try_scope`](super::try_scope) returns when a
//! child or the body failed.

use std::fmt;

/// The error of a [`try_scope`](super::try_scope): every error of a failed child that nobody
/// joined, in the order they happened, then the body's own error.
pub struct ScopeError<E> {
    pub(super) errors: Vec<E>,
}

impl<E> ScopeError<E> {
    /// The errors, in order (never empty).
    pub fn errors(&self) -> &[E] {
        &self.errors
    }

    /// The errors, in order (never empty).
    pub fn into_errors(self) -> Vec<E> {
        self.errors
    }

    /// The first error: usually the cause of the others.
    pub fn first(&self) -> &E {
        &self.errors[0]
    }

    /// The first error, dropping the rest.
    pub fn into_first(self) -> E {
        self.errors
            .into_iter()
            .next()
            .expect("a ScopeError holds at least one error")
    }
}

impl<E: fmt::Debug> fmt::Debug for ScopeError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopeError")
            .field("errors", &self.errors)
            .finish()
    }
}

impl<E: fmt::Display> fmt::Display for ScopeError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.errors.len() {
            1 => write!(f, "a task of the scope failed: {}", self.errors[0]),
            n => write!(
                f,
                "{n} tasks of the scope failed; the first: {}",
                self.errors[0]
            ),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for ScopeError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.errors[0])
    }
}
