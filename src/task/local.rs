//! Task-local storage: [`task_local!`](crate::task_local) and [`LocalKey`].
//!
//! Each task has its own value of every key, created on first access from
//! the key's initializer and destroyed when the task ends — on the task's own
//! stack, whether it returns, panics or is cancelled. Code outside any task
//! (a plain thread, `main` before `corio::run`) gets one value per thread,
//! destroyed when the thread exits, like `thread_local!`.
//!
//! A [generator](crate::generator) has no values of its own: it uses those
//! of the task (or thread) that resumes it, which may change from one resume
//! to the next. So it cannot yield inside [`LocalKey::with`] (the yield
//! panics, or `try_yield` fails): the reference could outlive the values.
#![allow(unsafe_code)]

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;

/// The values of one task (or of one plain thread).
#[derive(Default)]
pub(crate) struct Locals {
    /// Key id (the key's address) and its boxed value. Few per task, so a
    /// vector beats a map. A value's box never moves while it is in here.
    values: Vec<(usize, Box<dyn Any>)>,
    /// Set once destruction began: no new values are created.
    destroying: bool,
}

enum Lookup {
    Found(*const dyn Any),
    Missing,
    Destroyed,
}

impl Locals {
    fn lookup(&self, id: usize) -> Lookup {
        match self.values.iter().find(|(k, _)| *k == id) {
            Some((_, v)) => Lookup::Found(&**v as *const dyn Any),
            None if self.destroying => Lookup::Destroyed,
            None => Lookup::Missing,
        }
    }

    /// Inserts `value` unless `id` got one meanwhile (an initializer that
    /// used its own key); returns the value in place and the one not kept.
    fn insert(&mut self, id: usize, value: Box<dyn Any>) -> (*const dyn Any, Option<Box<dyn Any>>) {
        if let Lookup::Found(p) = self.lookup(id) {
            return (p, Some(value));
        }
        let p = &*value as *const dyn Any;
        self.values.push((id, value));
        (p, None)
    }

    /// Starts destruction (no new values from now on); whether there is
    /// anything to destroy.
    pub(crate) fn begin_destroy(&mut self) -> bool {
        self.destroying = true;
        !self.values.is_empty()
    }

    /// Takes the most recently created value out, to be dropped outside any
    /// borrow (its destructor may use other keys).
    fn pop_for_destroy(&mut self) -> Option<Box<dyn Any>> {
        self.destroying = true;
        self.values.pop().map(|(_, v)| v)
    }
}

impl Drop for Locals {
    fn drop(&mut self) {
        self.destroying = true;
        // Destructors of thread-level values run here; each value is popped
        // first so that a destructor does not see itself.
        while let Some((_, v)) = self.values.pop() {
            drop(v);
        }
    }
}

thread_local! {
    /// The values of code running outside any task on this thread.
    static THREAD_LOCALS: RefCell<Locals> = RefCell::new(Locals::default());
}

/// Destroys the running task's values when dropped: held by every task's
/// body, so it runs last, on the task's stack, however the task ends.
pub(crate) struct DestroyOnExit;

impl Drop for DestroyOnExit {
    fn drop(&mut self) {
        while let Some(Some(v)) = super::park::with_task_locals(Locals::pop_for_destroy) {
            drop(v);
        }
    }
}

/// Runs `f` on the storage of the caller: its task's, or its thread's.
fn with_storage<R>(f: impl FnOnce(&mut Locals) -> R) -> Result<R, AccessError> {
    let mut f = Some(f);
    if let Some(r) = super::park::with_task_locals(|l| (f.take().expect("called once"))(l)) {
        return Ok(r);
    }
    let f = f.expect("not called in a task");
    THREAD_LOCALS
        .try_with(|l| match l.try_borrow_mut() {
            Ok(mut l) => Ok(f(&mut l)),
            // Only while a thread-level value is being dropped at thread
            // exit (`Locals::drop` holds the borrow).
            Err(_) => Err(AccessError(())),
        })
        .unwrap_or(Err(AccessError(())))
}

/// A key for task-local storage, declared with
/// [`task_local!`](crate::task_local); like [`std::thread::LocalKey`].
pub struct LocalKey<T: 'static> {
    init: fn() -> T,
}

/// The error of [`LocalKey::try_with`]: the value was already destroyed
/// (accessed from a task-local destructor after its own destruction).
#[derive(Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot access a task-local value during or after destruction")]
pub struct AccessError(());

impl fmt::Debug for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessError").finish()
    }
}

impl<T: 'static> LocalKey<T> {
    #[doc(hidden)]
    pub const fn new(init: fn() -> T) -> LocalKey<T> {
        LocalKey { init }
    }

    fn id(&'static self) -> usize {
        self as *const Self as usize
    }

    /// Runs `f` with a reference to the calling task's value, creating it
    /// with the initializer on first access.
    ///
    /// # Panics
    ///
    /// If the value was destroyed already (from another task-local's
    /// destructor at the end of the task), like `thread_local!`.
    pub fn with<F, R>(&'static self, f: F) -> R
    where
        F: FnOnce(&T) -> R,
    {
        self.try_with(f).expect(
            "cannot access a task-local value during or after destruction \
             (corio::task::LocalKey::with)",
        )
    }

    /// Like [`with`](Self::with), returning an error instead of panicking.
    ///
    /// # Errors
    ///
    /// [`AccessError`] if the value was destroyed already.
    pub fn try_with<F, R>(&'static self, f: F) -> Result<R, AccessError>
    where
        F: FnOnce(&T) -> R,
    {
        let id = self.id();
        let ptr = match with_storage(|l| l.lookup(id))? {
            Lookup::Found(p) => p,
            Lookup::Destroyed => return Err(AccessError(())),
            Lookup::Missing => {
                // The initializer is user code: run it outside the borrow.
                let value: Box<dyn Any> = Box::new((self.init)());
                let (p, unused) = with_storage(|l| l.insert(id, value))?;
                drop(unused);
                p
            }
        };
        // Counted on the generator whose body runs this (if any): it
        // cannot suspend until `f` returns.
        let _borrow = super::frame::LocalBorrow::open();
        // SAFETY: `ptr` points into a box held by the storage of the caller's
        // context — its task, or its thread outside tasks — that is dropped
        // only when that task (or thread) ends. The reference lives until
        // `f` returns, in frames on the caller's stack, which stay part of
        // that context until then:
        // * a task switch (park, yield) keeps the task, so its values, alive;
        // * the caller's stack is the task's (or thread's) own, or that of
        //   the generator the context executes innermost. A generator
        //   suspends only from its own body in the context that resumed it
        //   (`Yielder` checks the context's slot), and never while a borrow
        //   opened in its body is counted (`_borrow`). So the frames holding
        //   the reference are never suspended apart from their context, to be
        //   resumed after it ended or by another task;
        // * generators resumed inside `f` cannot receive the reference: their
        //   closure, inputs and outputs are `'static`; scoped tasks that
        //   borrow it end before their scope, inside `f`.
        // The value under key `id` was created by this key's initializer, so
        // it is a `T`.
        let value = unsafe { &*ptr };
        Ok(f(value
            .downcast_ref::<T>()
            .expect("task-local value has the key's type")))
    }
}

impl<T: 'static> LocalKey<Cell<T>> {
    /// Sets the calling task's value (without running the initializer's
    /// value through any other code than its drop).
    pub fn set(&'static self, value: T) {
        self.with(|c| c.set(value));
    }

    /// A copy of the calling task's value.
    pub fn get(&'static self) -> T
    where
        T: Copy,
    {
        self.with(Cell::get)
    }

    /// Takes the value, leaving `Default::default()`.
    pub fn take(&'static self) -> T
    where
        T: Default,
    {
        self.with(Cell::take)
    }

    /// Replaces the value, returning the old one.
    pub fn replace(&'static self, value: T) -> T {
        self.with(|c| c.replace(value))
    }
}

impl<T: 'static> LocalKey<RefCell<T>> {
    /// Runs `f` with a shared borrow of the value.
    ///
    /// # Panics
    ///
    /// If the value is mutably borrowed.
    pub fn with_borrow<F, R>(&'static self, f: F) -> R
    where
        F: FnOnce(&T) -> R,
    {
        self.with(|c| f(&c.borrow()))
    }

    /// Runs `f` with a mutable borrow of the value.
    ///
    /// # Panics
    ///
    /// If the value is borrowed.
    pub fn with_borrow_mut<F, R>(&'static self, f: F) -> R
    where
        F: FnOnce(&mut T) -> R,
    {
        self.with(|c| f(&mut c.borrow_mut()))
    }

    /// Sets the value.
    ///
    /// # Panics
    ///
    /// If the value is borrowed.
    pub fn set(&'static self, value: T) {
        self.with(|c| *c.borrow_mut() = value);
    }

    /// Takes the value, leaving `Default::default()`.
    ///
    /// # Panics
    ///
    /// If the value is borrowed.
    pub fn take(&'static self) -> T
    where
        T: Default,
    {
        self.with(RefCell::take)
    }

    /// Replaces the value, returning the old one.
    ///
    /// # Panics
    ///
    /// If the value is borrowed.
    pub fn replace(&'static self, value: T) -> T {
        self.with(|c| c.replace(value))
    }
}

impl<T: 'static> fmt::Debug for LocalKey<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalKey").finish_non_exhaustive()
    }
}

/// Declares task-local keys, like [`std::thread_local!`]: each task gets
/// its own value, created by the initializer on first access and destroyed
/// when the task ends. Outside a task, each thread gets one.
///
/// ```
/// use std::cell::{Cell, RefCell};
///
/// corio::task_local! {
///     static REQUEST_ID: Cell<u64> = Cell::new(0);
///     pub static LOG: RefCell<Vec<String>> = RefCell::new(Vec::new());
/// }
///
/// corio::run(|| {
///     let tasks: Vec<_> = (1..=3)
///         .map(|id| corio::spawn(move || {
///             REQUEST_ID.set(id);
///             corio::yield_now(); // the others run and set theirs
///             LOG.with_borrow_mut(|log| log.push(format!("request {}", REQUEST_ID.get())));
///             LOG.with_borrow(|log| log.clone())
///         }))
///         .collect();
///     for (id, t) in (1..=3).zip(tasks) {
///         assert_eq!(t.join().unwrap(), [format!("request {id}")]);
///     }
///     assert_eq!(REQUEST_ID.get(), 0); // the main task's own value
/// });
/// ```
#[macro_export]
macro_rules! task_local {
    () => {};
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = $init:expr; $($rest:tt)*) => {
        $crate::task_local!($(#[$attr])* $vis static $name: $t = $init);
        $crate::task_local!($($rest)*);
    };
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = $init:expr) => {
        $(#[$attr])*
        $vis static $name: $crate::task::LocalKey<$t> = {
            fn __corio_init() -> $t {
                $init
            }
            $crate::task::LocalKey::new(__corio_init)
        };
    };
}
