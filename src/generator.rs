//! Generators: coroutines that yield values to whoever resumes them, and
//! take values back in.
//!
//! A [`Generator<Y, R, I>`] runs a closure on its own (pooled) stack. The
//! closure receives a [`Yielder`]; each [`Yielder::yield_`] suspends it and
//! hands a `Y` to the caller of [`Generator::resume`] (or
//! [`resume_with`](Generator::resume_with)), which gets
//! [`GeneratorState::Yielded`]. When the closure returns, the resume gives
//! [`GeneratorState::Complete`] with its `R`. No runtime is needed.
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
//!
//! # Sending values in
//!
//! The third type parameter `I` (default `()`) is what the generator takes
//! in, like corosensei's `Coroutine<Input, Yield, Return>` or Python's
//! `generator.send(x)`. [`Generator::new_with_input`] makes one; its closure
//! gets the input of the first [`resume_with`](Generator::resume_with), and
//! each [`yield_`](Yielder::yield_) returns the input of the next one.
//! [`resume`](Generator::resume) sends `I::default()`, as Python's
//! `next(gen)` sends `None`. `yield_` needs `I: Default` too, for the one
//! case where it cannot suspend and must still return (a yield while the
//! thread unwinds, see [Rules](#rules)); an input type without a default
//! uses [`try_yield`](Yielder::try_yield), which never needs one, or comes
//! wrapped in an `Option`.
//!
//! ```
//! use corio::generator::{Generator, GeneratorState};
//!
//! // A running average: send numbers in, get the average so far out.
//! let mut avg = Generator::<f64, (), f64>::new_with_input(|y, first| {
//!     let (mut sum, mut n) = (first, 1.0);
//!     loop {
//!         let next = y.yield_(sum / n);
//!         sum += next;
//!         n += 1.0;
//!     }
//! });
//! assert_eq!(avg.resume_with(10.0), GeneratorState::Yielded(10.0));
//! assert_eq!(avg.resume_with(20.0), GeneratorState::Yielded(15.0));
//! assert_eq!(avg.resume_with(60.0), GeneratorState::Yielded(30.0));
//! ```
//!
//! # Rules
//!
//! * A [`Yielder`] only suspends its own generator, from inside the body
//!   that the generator's resume is running. Used elsewhere — from a task
//!   spawned by a [`scope`](crate::scope) inside the body, or from a runtime
//!   ([`corio::run`](crate::run)) started inside the body — it does not
//!   switch stacks: `yield_` panics and [`try_yield`](Yielder::try_yield)
//!   returns [`YieldErrorKind::NotRunningHere`].
//! * A generator belongs to no task: it runs in the task (or thread) that
//!   resumes it, and sees that task's [`task_local!`](crate::task_local)
//!   values. So it cannot suspend while it borrows one (inside
//!   [`LocalKey::with`](crate::task::LocalKey::with)): a later resume may come
//!   from another task, or after the first one ended and freed its values.
//!   `yield_` panics, `try_yield` returns
//!   [`YieldErrorKind::TaskLocalBorrowed`].
//! * Nothing suspends while the thread unwinds from a panic: a yield then
//!   returns at once without switching (`yield_` drops the value and returns
//!   `I::default()`; `try_yield` returns [`YieldErrorKind::Unwinding`]). A
//!   destructor that yields during its generator's unwinding is harmless;
//!   a generator resumed from a destructor during a panic runs to its end
//!   without suspending.
//! * A stack overflow inside a generator is reported with where the
//!   generator was created and its stack size, instead of a bare
//!   "Segmentation fault" (runtime or not).
//!
//! # Status
//!
//! The generator's [`Status`] is `Created → Suspended* → Completed`. There is
//! no "running" status: while the body runs, its generator is borrowed by
//! the resume, so nothing can ask.
#![allow(unsafe_code)]

use std::fmt;
use std::panic::Location;

use corosensei::{Coroutine, CoroutineResult};

use crate::error::Error;
use crate::overflow;
use crate::stack::{self, PooledStack};
use crate::task::frame::{self, Frame};

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
    /// Returned or panicked; it cannot be resumed again.
    Completed,
}

/// Why [`Yielder::try_yield`] did not suspend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum YieldErrorKind {
    /// The thread is unwinding from a panic.
    #[error("the thread is unwinding from a panic, and a generator never suspends then")]
    Unwinding,
    /// The Yielder's generator is not the one running in this task or
    /// thread: the Yielder was used from a scoped task, or from a runtime
    /// started inside its generator.
    #[error(
        "this Yielder's generator is not the one running here (a Yielder used \
         from a scoped task, or from a runtime started inside its generator)"
    )]
    NotRunningHere,
    /// A task-local value is borrowed inside the generator.
    #[error(
        "a task-local value is borrowed (inside LocalKey::with): a generator \
         cannot suspend holding a reference into the task-locals of whoever \
         resumed it"
    )]
    TaskLocalBorrowed,
}

/// The error of [`Yielder::try_yield`]: why it did not suspend, and the
/// value it was given.
#[derive(thiserror::Error)]
#[error("cannot yield: {kind}")]
pub struct YieldError<Y> {
    kind: YieldErrorKind,
    value: Y,
}

impl<Y> YieldError<Y> {
    /// Why the yield did not suspend.
    pub fn kind(&self) -> YieldErrorKind {
        self.kind
    }

    /// The value that was not yielded.
    pub fn into_value(self) -> Y {
        self.value
    }
}

impl<Y> fmt::Debug for YieldError<Y> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("YieldError")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// A generator as its execution context sees it while it runs.
///
/// Every execution context — a task, or a thread outside any task — has a
/// slot (`task::frame`) naming the frame it resumed innermost (null if
/// none). A resume points its context's slot at its generator's `Info` (its
/// `frame` is the first field) and restores it after; since resumes within
/// one context nest, the slot always names the generator whose body that
/// context is executing. Being per context, it switches with tasks at no
/// cost.
#[repr(C)]
pub(crate) struct Info {
    /// What the task layer sees: task-local borrows open in its body. First,
    /// so that a slot's `*const Frame` is also the `*const Info` of the
    /// generator that set it (every frame in a slot is a generator's).
    frame: Frame,
    /// The guard page of its stack. Its start also identifies the
    /// generator: no two live generators share a stack.
    pub(crate) guard: (usize, usize),
    /// Its usable stack size.
    pub(crate) size: usize,
    /// Where it was made, for the overflow report.
    pub(crate) created_at: &'static Location<'static>,
}

/// The generator the caller's context executes innermost (null if none).
#[inline(always)]
fn running_info() -> *const Info {
    // SAFETY: the caller's context slot, read at once. Only `Running` writes
    // a non-null value, the address of an `Info`, whose first field
    // (`repr(C)`) is the frame.
    unsafe { *frame::slot() }.cast::<Info>()
}

/// The generator the running context is executing (null if none), for the
/// stack-overflow handler: plain loads only.
pub(crate) fn running_for_signal() -> *const Info {
    // SAFETY: as in `running_info`; a volatile read, as the interrupted code
    // may have been writing the slot.
    unsafe { frame::slot().read_volatile() }.cast::<Info>()
}

/// The stack-overflow report for generators (an `overflow::Reporter`): the
/// generator the interrupted context executes, if `fault_addr` is in its
/// guard page.
fn report_overflow(fault_addr: usize) -> bool {
    // SAFETY: a non-null slot names the generator the interrupted context
    // executes, whose resume (or drop) keeps it in place until it resets
    // the slot; only plain fields are read.
    let Some(g) = (unsafe { running_for_signal().as_ref() }) else {
        return false;
    };
    if g.guard.1 == 0 || fault_addr < g.guard.0 || fault_addr >= g.guard.1 {
        return false;
    }
    overflow::write_stderr(b"\ncorio: the generator created at ");
    overflow::write_stderr(g.created_at.file().as_bytes());
    overflow::write_stderr(b":");
    overflow::write_u64(u64::from(g.created_at.line()));
    overflow::write_stderr(b":");
    overflow::write_u64(u64::from(g.created_at.column()));
    overflow::write_stderr(b" overflowed its stack of ");
    overflow::write_u64(g.size as u64);
    overflow::write_stderr(
        b" bytes; give it a bigger stack with \
          corio::generator::Generator::with_stack_size\n",
    );
    true
}

/// Points the caller's context slot at a generator until dropped.
struct Running {
    slot: *mut *const Frame,
    prev: *const Frame,
}

impl Running {
    #[inline(always)]
    fn enter(info: &Info) -> Running {
        let slot = frame::slot();
        // SAFETY: the slot of the calling task (or thread), which outlives
        // this call, made and ended inside it.
        let prev = unsafe { slot.replace(&info.frame) };
        Running { slot, prev }
    }
}

impl Drop for Running {
    #[inline(always)]
    fn drop(&mut self) {
        // SAFETY: as in `enter`: still the same context, still alive.
        unsafe { self.slot.write(self.prev) };
    }
}

/// The handle a generator's closure uses to yield values (and receive the
/// next input, `I`).
pub struct Yielder<'a, Y, I = ()> {
    inner: &'a corosensei::Yielder<I, Y>,
    /// Its generator's identity (`Info::guard.0`).
    id: usize,
}

impl<Y, I> Yielder<'_, Y, I> {
    /// Suspends the generator, handing `value` to the caller of
    /// [`Generator::resume`]; returns the input of the next resume when the
    /// generator is resumed again.
    ///
    /// While the thread unwinds from a panic it does not suspend: it drops
    /// `value` and returns `I::default()` at once (that is why it needs
    /// `I: Default`; [`try_yield`](Self::try_yield) does not).
    ///
    /// # Panics
    ///
    /// If called from outside its generator's running body (a scoped task, a
    /// runtime started inside the generator) or inside a task-local borrow;
    /// see the [module docs](self). It then does not suspend.
    #[inline]
    #[track_caller]
    pub fn yield_(&self, value: Y) -> I
    where
        I: Default,
    {
        match self.try_yield(value) {
            Ok(input) => input,
            Err(e) => refused(e),
        }
    }

    /// Like [`yield_`](Self::yield_), returning an error (with the value)
    /// instead of panicking or, while the thread unwinds, returning a
    /// default.
    ///
    /// # Errors
    ///
    /// A [`YieldError`] whose [`kind`](YieldError::kind) says why the
    /// generator did not suspend.
    #[inline]
    pub fn try_yield(&self, value: Y) -> Result<I, YieldError<Y>> {
        match self.refusal() {
            None => Ok(self.inner.suspend(value)),
            Some(kind) => Err(YieldError { kind, value }),
        }
    }

    /// Why this yield must not suspend, if it must not.
    #[inline(always)]
    fn refusal(&self) -> Option<YieldErrorKind> {
        if std::thread::panicking() {
            return Some(YieldErrorKind::Unwinding);
        }
        // SAFETY: a non-null slot names the generator this context is
        // executing, whose `Info` stays in place while its resume runs.
        match unsafe { running_info().as_ref() } {
            // The context executes our generator's body: the caller runs on
            // its stack (a task or a runtime inside it is another context),
            // and corosensei's yielder switches back to that resume.
            Some(info) if info.guard.0 == self.id => {
                (info.frame.local_borrows.get() != 0).then_some(YieldErrorKind::TaskLocalBorrowed)
            }
            _ => Some(YieldErrorKind::NotRunningHere),
        }
    }
}

/// The slow path of `yield_`.
#[cold]
#[inline(never)]
#[track_caller]
fn refused<Y, I: Default>(e: YieldError<Y>) -> I {
    match e.kind {
        YieldErrorKind::Unwinding => I::default(),
        kind => panic!("corio: cannot yield: {kind}"),
    }
}

impl<Y, I> fmt::Debug for Yielder<'_, Y, I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Yielder").finish_non_exhaustive()
    }
}

/// A coroutine that yields `Y`s, takes `I`s in and returns an `R`. See the
/// [module docs](self).
///
/// Dropping a generator that has not completed unwinds its stack, running
/// the destructors of everything on it.
pub struct Generator<Y, R, I = ()> {
    coroutine: Coroutine<I, Y, R, PooledStack>,
    status: Status,
    info: Info,
}

impl<Y: 'static, R: 'static> Generator<Y, R> {
    /// Makes a generator running `f` on a stack of the default size
    /// ([`DEFAULT_STACK_SIZE`](crate::stack::DEFAULT_STACK_SIZE)).
    ///
    /// # Panics
    ///
    /// If no stack can be mapped; [`Generator::with_stack_size`] returns the
    /// error instead.
    #[track_caller]
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
    #[track_caller]
    pub fn with_stack_size<F>(stack_size: usize, f: F) -> Result<Self, Error>
    where
        F: FnOnce(&Yielder<'_, Y>) -> R + 'static,
    {
        Self::build(stack_size, Location::caller(), move |y, ()| f(y))
    }
}

impl<Y: 'static, R: 'static, I: 'static> Generator<Y, R, I> {
    /// Makes a generator that takes inputs: `f` gets the input of the first
    /// [`resume_with`](Self::resume_with), and each
    /// [`yield_`](Yielder::yield_) returns the input of the next. The stack
    /// has the default size.
    ///
    /// ```
    /// use corio::generator::{Generator, GeneratorState};
    ///
    /// // Echoes each input back, upper-cased, until it gets "bye".
    /// let mut echo = Generator::new_with_input(|y, mut line: String| {
    ///     while line != "bye" {
    ///         line = y.yield_(line.to_uppercase());
    ///     }
    ///     "closed"
    /// });
    /// assert_eq!(echo.resume_with("hi".into()), GeneratorState::Yielded("HI".to_string()));
    /// assert_eq!(echo.resume_with("bye".into()), GeneratorState::Complete("closed"));
    /// ```
    ///
    /// # Panics
    ///
    /// If no stack can be mapped; [`Generator::with_stack_size_and_input`]
    /// returns the error instead.
    #[track_caller]
    pub fn new_with_input<F>(f: F) -> Self
    where
        F: FnOnce(&Yielder<'_, Y, I>, I) -> R + 'static,
    {
        match Self::with_stack_size_and_input(stack::DEFAULT_STACK_SIZE, f) {
            Ok(g) => g,
            Err(e) => panic!("corio: cannot create a generator: {e}"),
        }
    }

    /// Like [`new_with_input`](Self::new_with_input), on a stack of
    /// `stack_size` bytes.
    ///
    /// # Errors
    ///
    /// As [`Generator::with_stack_size`].
    #[track_caller]
    pub fn with_stack_size_and_input<F>(stack_size: usize, f: F) -> Result<Self, Error>
    where
        F: FnOnce(&Yielder<'_, Y, I>, I) -> R + 'static,
    {
        Self::build(stack_size, Location::caller(), f)
    }

    fn build<F>(
        stack_size: usize,
        created_at: &'static Location<'static>,
        f: F,
    ) -> Result<Self, Error>
    where
        F: FnOnce(&Yielder<'_, Y, I>, I) -> R + 'static,
    {
        // Overflows are reported even if no runtime ever runs.
        overflow::install(report_overflow);
        let stack_size = stack::checked_size(stack_size)?;
        let stack = stack::take(stack_size)?;
        let guard = stack.guard_range();
        let id = guard.0;
        let body =
            move |y: &corosensei::Yielder<I, Y>, input: I| f(&Yielder { inner: y, id }, input);
        let coroutine = if std::mem::size_of_val(&body) <= 512 {
            Coroutine::with_stack(stack, body)
        } else {
            let boxed = Box::new(body);
            Coroutine::with_stack(stack, move |y: &corosensei::Yielder<I, Y>, input: I| {
                (*boxed)(y, input)
            })
        };
        Ok(Generator {
            coroutine,
            status: Status::Created,
            info: Info {
                frame: Frame::default(),
                guard,
                size: stack_size,
                created_at,
            },
        })
    }
}

impl<Y, R, I> Generator<Y, R, I> {
    /// Runs the generator until it yields or returns, handing it `input`:
    /// the first resume passes it to the closure, later ones return it from
    /// the [`yield_`](Yielder::yield_) the generator is suspended in. Like
    /// Python's `generator.send(input)`.
    ///
    /// # Panics
    ///
    /// If the generator has completed. A panic inside the generator
    /// propagates to the caller of `resume_with` (and the generator is then
    /// completed).
    #[inline]
    pub fn resume_with(&mut self, input: I) -> GeneratorState<Y, R> {
        assert!(
            self.status != Status::Completed,
            "resumed a generator that has completed"
        );
        // If the body panics through here, the generator stays completed.
        self.status = Status::Completed;
        let _running = Running::enter(&self.info);
        match self.coroutine.resume(input) {
            CoroutineResult::Yield(y) => {
                self.status = Status::Suspended;
                GeneratorState::Yielded(y)
            }
            CoroutineResult::Return(r) => GeneratorState::Complete(r),
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

impl<Y, R, I: Default> Generator<Y, R, I> {
    /// Runs the generator until it yields or returns:
    /// [`resume_with`](Self::resume_with) with `I::default()` (nothing, for
    /// the usual `I = ()`; `None` for an `Option`, like Python's
    /// `next(gen)`).
    ///
    /// # Panics
    ///
    /// As [`resume_with`](Self::resume_with).
    #[inline]
    pub fn resume(&mut self) -> GeneratorState<Y, R> {
        self.resume_with(I::default())
    }
}

impl<Y, R, I> Drop for Generator<Y, R, I> {
    fn drop(&mut self) {
        if self.status != Status::Completed {
            // The destructors on its stack run as its body: they see it as
            // the running generator (overflow reports, task-local borrows).
            let _running = Running::enter(&self.info);
            self.coroutine.force_unwind();
        }
    }
}

impl<Y, I: Default> Iterator for Generator<Y, (), I> {
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

impl<Y, R, I> fmt::Debug for Generator<Y, R, I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Generator")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}
