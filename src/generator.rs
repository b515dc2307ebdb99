//! Generators: coroutines that yield values to whoever resumes them.
//!
//! A [`Generator<Y, R>`] runs a closure on its own (pooled) stack. The closure
//! receives a [`Yielder`]; each [`Yielder::yield_`] suspends it and hands a
//! `Y` to the caller of [`Generator::resume`], which gets
//! [`GeneratorState::Yielded`]. When the closure returns, `resume` gives
//! [`GeneratorState::Complete`] with its `R`. No runtime is needed.
//!
//! The generator's [`Status`] is an explicit state machine:
//! `Created → Running → (Suspended → Running)* → Completed`.
//!
//! # Examples
//!
//! ```
//! use corio::generator::{Generator, GeneratorState};
//!
//! let mut g = Generator::new(|y| {
//!     y.yield_(1);
//!     y.yield_(2);
//!     "done"
//! });
//! assert_eq!(g.resume(), GeneratorState::Yielded(1));
//! assert_eq!(g.resume(), GeneratorState::Yielded(2));
//! assert_eq!(g.resume(), GeneratorState::Complete("done"));
//!
//! // A generator that returns `()` is an iterator.
//! let squares = Generator::new(|y| (1..=3).for_each(|i| y.yield_(i * i)));
//! assert_eq!(squares.collect::<Vec<_>>(), [1, 4, 9]);
//! ```

use std::fmt;

use corosensei::{Coroutine, CoroutineResult};

use crate::error::Error;
use crate::overflow;
use crate::stack::{self, PooledStack};

/// What [`Generator::resume`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GeneratorState<Y, R> {
    /// The generator yielded a value and is suspended.
    Yielded(Y),
    /// The generator's closure returned.
    Complete(R),
}

/// Where a generator is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// Made but never resumed.
    Created,
    /// Suspended at a `yield_`.
    Suspended,
    /// Running (inside `resume`).
    Running,
    /// Returned or panicked; it cannot be resumed again.
    Completed,
}

/// The handle a generator's closure uses to yield values.
pub struct Yielder<'a, Y> {
    inner: &'a corosensei::Yielder<(), Y>,
}

impl<Y> Yielder<'_, Y> {
    /// Suspends the generator, handing `value` to the caller of
    /// [`Generator::resume`]. Returns when the generator is resumed again.
    pub fn yield_(&self, value: Y) {
        self.inner.suspend(value)
    }
}

/// A coroutine that yields `Y`s and returns an `R`. See the
/// [module docs](self).
///
/// Dropping a generator that has not completed unwinds its stack, running
/// the destructors of everything on it.
pub struct Generator<Y, R> {
    coroutine: Coroutine<(), Y, R, PooledStack>,
    status: Status,
    stack: overflow::StackInfo,
}

impl<Y: 'static, R: 'static> Generator<Y, R> {
    /// Makes a generator running `f` on a stack of the default size
    /// ([`DEFAULT_STACK_SIZE`](crate::stack::DEFAULT_STACK_SIZE)).
    ///
    /// # Panics
    ///
    /// If no stack can be mapped; [`Generator::with_stack_size`] returns the
    /// error instead.
    pub fn new<F>(f: F) -> Self
    where
        F: FnOnce(&Yielder<'_, Y>) -> R + 'static,
    {
        match Self::with_stack_size(stack::DEFAULT_STACK_SIZE, f) {
            Ok(g) => g,
            Err(e) => panic!("corio: cannot create a generator: {e}"),
        }
    }

    /// Makes a generator running `f` on a stack of `stack_size` bytes.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidStackSize`] for a size out of range;
    /// [`Error::MapLimit`] or [`Error::OutOfMemory`] if the stack cannot be
    /// mapped.
    pub fn with_stack_size<F>(stack_size: usize, f: F) -> Result<Self, Error>
    where
        F: FnOnce(&Yielder<'_, Y>) -> R + 'static,
    {
        let stack_size = stack::checked_size(stack_size)?;
        let stack = stack::take(stack_size)?;
        let guard = stack.guard_range();
        let body = move |y: &corosensei::Yielder<(), Y>, ()| f(&Yielder { inner: y });
        let coroutine = if std::mem::size_of_val(&body) <= 512 {
            Coroutine::with_stack(stack, body)
        } else {
            let boxed = Box::new(body);
            Coroutine::with_stack(stack, move |y: &corosensei::Yielder<(), Y>, ()| {
                (*boxed)(y, ())
            })
        };
        Ok(Generator {
            coroutine,
            status: Status::Created,
            stack: overflow::StackInfo {
                guard,
                size: stack_size,
            },
        })
    }
}

impl<Y, R> Generator<Y, R> {
    /// Runs the generator until it yields or returns.
    ///
    /// # Panics
    ///
    /// If the generator has completed. A panic inside the generator
    /// propagates to the caller of `resume` (and the generator is then
    /// completed).
    #[inline]
    pub fn resume(&mut self) -> GeneratorState<Y, R> {
        assert!(
            self.status != Status::Completed,
            "resumed a generator that has completed"
        );
        /// Restores the overflow handler's view of what runs, however
        /// `resume` ends.
        struct Leave(*const overflow::StackInfo);
        impl Drop for Leave {
            #[inline]
            fn drop(&mut self) {
                overflow::leave(self.0);
            }
        }
        // `Running` cannot be observed from outside (we hold `&mut self`);
        // if the body panics through `resume`, the generator stays completed.
        self.status = Status::Completed;
        let _leave = Leave(overflow::enter(&self.stack));
        let result = self.coroutine.resume(());
        match result {
            CoroutineResult::Yield(y) => {
                self.status = Status::Suspended;
                GeneratorState::Yielded(y)
            }
            CoroutineResult::Return(r) => {
                self.status = Status::Completed;
                GeneratorState::Complete(r)
            }
        }
    }

    /// The generator's current status.
    pub fn state(&self) -> Status {
        self.status
    }

    /// Whether the generator has completed.
    pub fn is_complete(&self) -> bool {
        self.status == Status::Completed
    }
}

impl<Y> Iterator for Generator<Y, ()> {
    type Item = Y;

    fn next(&mut self) -> Option<Y> {
        if self.is_complete() {
            return None;
        }
        match self.resume() {
            GeneratorState::Yielded(y) => Some(y),
            GeneratorState::Complete(()) => None,
        }
    }
}

impl<Y, R> fmt::Debug for Generator<Y, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Generator")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}
