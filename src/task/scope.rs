//! Structured concurrency: [`scope`] and [`try_scope`], tasks that may
//! borrow from the task that starts them.
//!
//! The rules are in the docs of [`Scope`].
#![allow(unsafe_code)]

use std::cell::{Cell, RefCell};
use std::convert::Infallible;
use std::fmt;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::Arc;
use std::thread;

use self::builder::Options;
pub use self::builder::ScopedBuilder;
pub use self::error::ScopeError;
use self::shared::{Place, Remote};
use super::park::{CancelUnwind, Interrupt, Unparker};
use super::{JoinHandle, TaskId, TaskRef, WaitReason};
use crate::error::{Error, JoinError};
use crate::stack;

mod builder;
mod error;
mod shared;

/// A child's join handle, shared by the scope and the child's
/// `ScopedJoinHandle`; `None` once joined.
type SharedHandle = Rc<RefCell<Option<JoinHandle<()>>>>;

/// What the children of a scope share with it. Lives on the parent's
/// thread only.
struct State<E> {
    /// Every child, by spawn order.
    children: RefCell<Vec<TaskRef>>,
    /// The children's join handles, shared with their `ScopedJoinHandle`s;
    /// `None` once joined.
    handles: RefCell<Vec<SharedHandle>>,
    /// Errors of `spawn_try` children, by child index; taken by a join.
    errors: RefCell<Vec<Option<E>>>,
    /// Children whose closure has not finished (or been dropped).
    running: Cell<usize>,
    /// The parent, while it waits for `running` to reach 0.
    waiter: RefCell<Option<Unparker>>,
    /// Child indices, in the order they failed (rule 3); moved to
    /// `remote` when that is made.
    failures: RefCell<Vec<usize>>,
    /// What children that may run on other workers share with the scope;
    /// made by the first such child.
    remote: RefCell<Option<Arc<Remote>>>,
}

impl<E> State<E> {
    /// Records a spawned child (and, once children run on other workers,
    /// tells the shared part) and makes its handle; `take` reads its result.
    fn register<'scope, T>(
        &self,
        handle: JoinHandle<()>,
        take: Box<dyn FnMut() -> Option<T> + 'scope>,
    ) -> ScopedJoinHandle<'scope, T> {
        let id = handle.id();
        if let Some(remote) = &*self.remote.borrow() {
            remote.push_child(handle.task_ref());
        }
        self.children.borrow_mut().push(handle.task_ref());
        let shared = Rc::new(RefCell::new(Some(handle)));
        self.handles.borrow_mut().push(Rc::clone(&shared));
        ScopedJoinHandle {
            handle: shared,
            id,
            take,
        }
    }

    /// Cancels every child but `except` (rule 3).
    fn cancel_children(&self, except: Option<usize>) {
        let children = self.children.borrow().clone();
        for (i, child) in children.iter().enumerate() {
            if Some(i) != except {
                super::cancel(child);
            }
        }
    }

    fn fail(&self, index: usize) {
        let remote = self.remote.borrow().clone();
        if let Some(remote) = remote {
            remote.fail(index);
            return;
        }
        let first = self.failures.borrow().is_empty();
        self.failures.borrow_mut().push(index);
        if first {
            self.cancel_children(Some(index));
        }
    }

    /// The failures so far, in order.
    fn failures(&self) -> Vec<usize> {
        match &*self.remote.borrow() {
            Some(remote) => remote.failures(),
            None => self.failures.borrow().clone(),
        }
    }

    /// The shared part, made on first use.
    fn remote(&self) -> Arc<Remote> {
        let mut remote = self.remote.borrow_mut();
        Arc::clone(remote.get_or_insert_with(|| {
            Remote::new(
                self.children.borrow().clone(),
                std::mem::take(&mut *self.failures.borrow_mut()),
            )
        }))
    }
}

/// Counts a child as finished when dropped: at the end of its closure, or
/// with the closure if it never ran (its task was unwound before starting).
struct Running<E>(Rc<State<E>>);

impl<E> Drop for Running<E> {
    fn drop(&mut self) {
        let left = self.0.running.get() - 1;
        self.0.running.set(left);
        if left == 0
            && let Some(w) = self.0.waiter.borrow_mut().take()
        {
            w.unpark();
        }
    }
}

/// A scope to spawn tasks that may borrow from the parent; see [`scope`]
/// and [`try_scope`].
///
/// `E` is the error type of children spawned with
/// [`spawn_try`](Self::spawn_try) ([`Infallible`] for [`scope`]).
///
/// # Rules
///
/// 1. Children are tasks of the parent's runtime: on the parent's worker
///    ([`spawn`](Scope::spawn), whose closure need not be `Send`), or, with
///    `Send` closures, on another worker ([`spawn_on`](Scope::spawn_on)) or
///    on whichever worker takes them first ([`spawn_send`](Scope::spawn_send)).
///    They may borrow anything that outlives the scope, which is why a scope never
///    returns or unwinds past them (design invariant 9): the scope function
///    owns the [`Scope`] and, however its body ends, waits for every child
///    before it returns or resumes an unwind. `mem::forget` cannot skip
///    that: it is a function taking a closure, like `std::thread::scope`.
/// 2. Body ends normally: wait for the children to finish on their own.
///    Body unwinds (panic, or cancellation of the parent), the parent was
///    cancelled, or — in [`try_scope`] — the body returned `Err`: cancel
///    every child first, then wait. The wait never ends early: the parent
///    being cancelled while it waits (unless [`shield`](crate::shield)ed)
///    cancels every child, and so does an enclosing `timeout` expiring; the
///    scope still waits for them all. A scope whose wait was ended by the
///    parent's cancellation is a cancellation point: after the wait it
///    unwinds with the cancellation (rule 5), so the parent's `join`
///    reports it cancelled.
/// 3. A child fails when it panics or — spawned with
///    [`spawn_try`](Scope::spawn_try) — returns `Err`, unless a blocking call
///    of it had failed with its cancellation (then the panic or error is a
///    consequence of the cancellation, not a cause; its `join` reports it
///    cancelled). The first failure cancels every sibling at once (fail
///    fast); the body itself is not cancelled.
/// 4. When the scope cannot suspend to wait — its task is being unwound by
///    its runtime, or the scope runs in a destructor during unwinding — it
///    unwinds each unfinished child of its worker in place instead,
///    synchronously: still none outlives the scope. Children on other
///    workers are cancelled, and the scope blocks its thread until they
///    have ended; at the runtime's shutdown (which unwinds them on their
///    workers), if they have not ended within a second, the parent is given
///    up on instead — suspended for good, its stack leaked, reported on
///    stderr — so that what they borrow stays valid.
/// 5. After the wait: a panic of the body is resumed; else the parent's
///    cancellation, if the wait saw it (rule 2), unwinds the parent; else the
///    first panic of a child nobody joined is resumed; else a child that
///    could not start (no stack could be mapped for its first run; see
///    [`JoinError::start_error`](crate::JoinError::start_error)) panics
///    the scope with that error; else `try_scope`
///    returns the body's value, or a [`ScopeError`] with every error of a failed child that
///    nobody joined (in the order they happened) and the body's own error
///    last. A child that was joined handed its result to the joiner.
pub struct Scope<'scope, 'env: 'scope, E = Infallible> {
    state: Rc<State<E>>,
    /// Invariant in `'scope` and `'env`, as in `std::thread::Scope`.
    scope: PhantomData<&'scope mut &'scope ()>,
    env: PhantomData<&'env mut &'env ()>,
}

/// A handle to join a child of a [`Scope`], like
/// [`std::thread::ScopedJoinHandle`].
pub struct ScopedJoinHandle<'scope, T> {
    handle: SharedHandle,
    id: TaskId,
    take: Box<dyn FnMut() -> Option<T> + 'scope>,
}

/// Runs `f` with a [`Scope`] whose children may borrow the caller's locals,
/// like [`std::thread::scope`]; returns when every child has finished.
///
/// If a child panics, its siblings are cancelled; once all have finished,
/// the panic is resumed here (unless a `join` took it). If the body panics
/// or the calling task is cancelled, every child is cancelled and waited
/// for before the unwind goes on. See the rules in [`Scope`].
///
/// # Panics
///
/// Outside a corio task; if `f` panics; if a child nobody joined panicked
/// or could not start (no stack for its first run).
///
/// # Examples
///
/// ```
/// corio::run(|| {
///     let mut words = vec!["a".to_string(), "b".to_string()];
///     let total = std::cell::Cell::new(0);
///     corio::scope(|s| {
///         for w in &words {
///             s.spawn(|| total.set(total.get() + w.len())); // borrows `words`
///         }
///     });
///     words.push("c".into()); // the borrows ended with the scope
///     assert_eq!(total.get(), 2);
/// });
/// ```
///
/// A child cannot borrow what does not outlive the scope:
///
/// ```compile_fail
/// corio::run(|| {
///     corio::scope(|s| {
///         let local = vec![1];
///         s.spawn(|| local.len()); // `local` dies before the scope ends
///     });
/// });
/// ```
pub fn scope<'env, F, T>(f: F) -> T
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> T,
{
    let scope = Scope::new();
    let body = panic::catch_unwind(AssertUnwindSafe(|| f(&scope)));
    let (value, _) = scope.finish(body, false);
    value
}

/// Like [`scope`], for fallible work: children spawned with
/// [`spawn_try`](Scope::spawn_try) fail by returning `Err`, which cancels
/// their siblings at once; the scope then returns a [`ScopeError`] with
/// every such error (and the body's own, if it returned `Err`). The body
/// returning `Err` also cancels the children.
///
/// # Errors
///
/// [`ScopeError`] if the body or a child nobody joined returned `Err`.
///
/// # Panics
///
/// As [`scope`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// corio::run(|| {
///     let r: Result<(), corio::task::ScopeError<&str>> = corio::try_scope(|s| {
///         s.spawn_try(|| {
///             corio::time::sleep(Duration::from_secs(3600)); // cancelled
///             Ok(())
///         });
///         s.spawn_try(|| Err::<(), _>("no route to host"));
///         Ok(())
///     });
///     assert_eq!(r.unwrap_err().into_errors(), ["no route to host"]);
/// });
/// ```
pub fn try_scope<'env, F, T, E>(f: F) -> Result<T, ScopeError<E>>
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env, E>) -> Result<T, E>,
{
    let scope = Scope::new();
    let body = panic::catch_unwind(AssertUnwindSafe(|| f(&scope)));
    let body_failed = matches!(body, Ok(Err(_)));
    let (value, mut errors) = scope.finish(body, body_failed);
    match value {
        Ok(v) if errors.is_empty() => Ok(v),
        Ok(_) => Err(ScopeError { errors }),
        Err(e) => {
            errors.push(e);
            Err(ScopeError { errors })
        }
    }
}

impl<'scope, 'env, E> Scope<'scope, 'env, E> {
    fn new() -> Self {
        assert!(
            super::park::current_id().is_some(),
            "corio::scope must be called from a corio task (inside corio::run)"
        );
        Scope {
            state: Rc::new(State {
                children: RefCell::new(Vec::new()),
                handles: RefCell::new(Vec::new()),
                errors: RefCell::new(Vec::new()),
                running: Cell::new(0),
                waiter: RefCell::new(None),
                failures: RefCell::new(Vec::new()),
                remote: RefCell::new(None),
            }),
            scope: PhantomData,
            env: PhantomData,
        }
    }

    /// Spawns a child task running `f`, which may borrow from outside the
    /// scope. Its failure is a panic (see [`spawn_try`](Self::spawn_try)
    /// for `Result`s).
    ///
    /// A child that cannot get a stack when it first runs ends without
    /// running, and its `JoinError` names the limit (see
    /// [`Builder::spawn`](crate::Builder::spawn)); unjoined, it panics the
    /// scope with that error.
    #[track_caller]
    pub fn spawn<F, T>(&'scope self, f: F) -> ScopedJoinHandle<'scope, T>
    where
        F: FnOnce() -> T + 'scope,
        T: 'scope,
    {
        self.spawn_inner(f, |_: &T| false, |v: T| Ok(v), Options::default())
            .unwrap_or_else(|e| panic!("corio::Scope::spawn: {e}"))
    }

    /// Spawns a fallible child: returning `Err` counts as a failure, which
    /// cancels its siblings; the error is reported by the scope (see
    /// [`try_scope`]) unless a join takes it. A child that cannot get a
    /// stack is as for [`spawn`](Self::spawn).
    #[track_caller]
    pub fn spawn_try<F, T>(&'scope self, f: F) -> ScopedJoinHandle<'scope, Result<T, E>>
    where
        F: FnOnce() -> Result<T, E> + 'scope,
        T: 'scope,
        E: 'scope,
    {
        self.spawn_try_with(f, Options::default())
            .unwrap_or_else(|e| panic!("corio::Scope::spawn_try: {e}"))
    }

    /// Spawns a child on worker `worker` (`0..workers`) of the runtime, where
    /// it stays, like [`corio::spawn_on`](crate::spawn_on); it may borrow
    /// from outside the scope, which is why `f` and its result must be
    /// `Send`: the borrows cross to that worker's thread. On the parent's
    /// own worker it is a child like those of [`spawn`](Self::spawn).
    ///
    /// The scope waits for it, cancels it and reports its panic as for any
    /// child (the rules above hold across workers). Such a child cannot
    /// spawn siblings: a `Scope` is not `Sync`.
    ///
    /// # Panics
    ///
    /// If `worker` is out of range, or as [`spawn`](Self::spawn).
    ///
    /// A closure that is not `Send` stays on the parent's worker:
    ///
    /// ```compile_fail
    /// corio::run(|| {
    ///     let n = std::cell::Cell::new(0);
    ///     corio::scope(|s| {
    ///         s.spawn_on(0, || n.set(1)); // `&Cell` is not `Send`
    ///     });
    /// });
    /// ```
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = corio::runtime::Builder::new().workers(3).build().unwrap();
    /// rt.block_on(|| {
    ///     let mut data = vec![1, 2, 3, 4];
    ///     let (left, right) = data.split_at_mut(2);
    ///     corio::scope(|s| {
    ///         s.spawn_on(1, || left.iter_mut().for_each(|x| *x *= 10));
    ///         let h = s.spawn_on(2, || {
    ///             right.iter_mut().for_each(|x| *x *= 100);
    ///             corio::runtime::worker_index()
    ///         });
    ///         assert_eq!(h.join().unwrap(), Some(2));
    ///     });
    ///     assert_eq!(data, [10, 20, 300, 400]);
    /// });
    /// ```
    #[track_caller]
    pub fn spawn_on<F, T>(&'scope self, worker: usize, f: F) -> ScopedJoinHandle<'scope, T>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        self.spawn_elsewhere(f, Place::Worker(worker), Options::default())
            .unwrap_or_else(|e| panic!("corio::Scope::spawn_on: {e}"))
    }

    /// Spawns a child that, like one of [`corio::spawn`](crate::spawn), is
    /// queued on the parent's worker and may be handed to an idle worker
    /// before it first runs; once started, it stays where it is. `f` and its
    /// result must be `Send`, as for [`spawn_on`](Self::spawn_on). With one
    /// worker it is a child like those of [`spawn`](Self::spawn), and one
    /// that cannot get a stack is as for that.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = corio::runtime::Builder::new().workers(4).build().unwrap();
    /// rt.block_on(|| {
    ///     let chunks: Vec<Vec<u64>> = (0..16).map(|i| (i * 100..(i + 1) * 100).collect()).collect();
    ///     let sums = corio::scope(|s| {
    ///         let handles: Vec<_> = chunks
    ///             .iter()
    ///             .map(|c| s.spawn_send(move || c.iter().sum::<u64>()))
    ///             .collect();
    ///         handles.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
    ///     });
    ///     assert_eq!(sums, (0..1600).sum());
    /// });
    /// ```
    #[track_caller]
    pub fn spawn_send<F, T>(&'scope self, f: F) -> ScopedJoinHandle<'scope, T>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        self.spawn_elsewhere(f, Place::Movable, Options::default())
            .unwrap_or_else(|e| panic!("corio::Scope::spawn_send: {e}"))
    }

    /// A [`ScopedBuilder`] for a child with a name or a stack size, like
    /// std's `thread::Builder::spawn_scoped`.
    ///
    /// ```
    /// corio::run(|| {
    ///     let mut total = 0;
    ///     corio::scope(|s| {
    ///         s.builder()
    ///             .name("adder")
    ///             .stack_size(64 * 1024)
    ///             .spawn(|| {
    ///                 assert_eq!(corio::current().name(), Some("adder"));
    ///                 total += 1; // borrows the parent's local
    ///             })
    ///             .unwrap();
    ///     });
    ///     assert_eq!(total, 1);
    /// });
    /// ```
    pub fn builder(&'scope self) -> ScopedBuilder<'scope, 'env, E> {
        ScopedBuilder {
            scope: self,
            options: Options::default(),
        }
    }

    #[track_caller]
    fn spawn_try_with<F, T>(
        &'scope self,
        f: F,
        options: Options,
    ) -> Result<ScopedJoinHandle<'scope, Result<T, E>>, Error>
    where
        F: FnOnce() -> Result<T, E> + 'scope,
        T: 'scope,
        E: 'scope,
    {
        let index = self.state.children.borrow().len();
        let state = Rc::clone(&self.state);
        let ScopedJoinHandle {
            handle,
            id,
            take: mut take_ok,
        } = self.spawn_inner(f, Result::is_err, |r: Result<T, E>| r, options)?;
        // The error, if any, went to the scope's list: take it from there.
        Ok(ScopedJoinHandle {
            handle,
            id,
            take: Box::new(move || match state.errors.borrow_mut()[index].take() {
                Some(e) => Some(Err(e)),
                None => take_ok().map(Ok),
            }),
        })
    }

    /// Whether a child has failed (and its siblings were cancelled).
    pub fn has_failed(&self) -> bool {
        match &*self.state.remote.borrow() {
            Some(remote) => remote.has_failed(),
            None => !self.state.failures.borrow().is_empty(),
        }
    }

    #[track_caller]
    fn spawn_inner<F, R, T>(
        &'scope self,
        f: F,
        is_failure: fn(&R) -> bool,
        split: fn(R) -> Result<T, E>,
        options: Options,
    ) -> Result<ScopedJoinHandle<'scope, T>, Error>
    where
        F: FnOnce() -> R + 'scope,
        R: 'scope,
        T: 'scope,
    {
        let location = std::panic::Location::caller();
        // Checked before anything is counted: a bad size spawns nothing.
        let stack_size = options.stack_size.map(stack::checked_size).transpose()?;
        let state = &self.state;
        let index = state.children.borrow().len();
        state.errors.borrow_mut().push(None);
        let slot: Rc<RefCell<Option<T>>> = Rc::new(RefCell::new(None));
        state.running.set(state.running.get() + 1);
        // Created now, so that it counts the child finished even if the
        // closure is dropped without running.
        let running = Running(Rc::clone(state));
        let child_state = Rc::clone(state);
        let child_slot = Rc::clone(&slot);
        let body = move || {
            let _running = running;
            match panic::catch_unwind(AssertUnwindSafe(f)) {
                Ok(r) => {
                    let cancelled = super::park::current_cancel_observed();
                    if is_failure(&r) && !cancelled {
                        child_state.fail(index);
                    }
                    match split(r) {
                        Ok(v) => *child_slot.borrow_mut() = Some(v),
                        Err(e) => child_state.errors.borrow_mut()[index] = Some(e),
                    }
                }
                Err(payload) => {
                    let cancelled = payload.is::<CancelUnwind>()
                        || super::park::is_forcing_current()
                        || super::park::current_cancel_observed();
                    if !cancelled {
                        child_state.fail(index);
                    }
                    panic::resume_unwind(payload)
                }
            }
        };
        let name = options.name.map(Arc::<str>::from);
        let spawned = super::context::with_scheduler(|s| {
            let size = stack_size.unwrap_or_else(|| s.default_stack_size());
            // SAFETY: `body` borrows data that outlives 'scope. The scope
            // function does not return or resume an unwind before every
            // child finished (`finish`, rules 1, 2 and 4) — it waits, or
            // unwinds each child in place — and the scope cannot be leaked,
            // so the task is gone before that data is.
            unsafe { s.spawn_unchecked(body, name, size, location) }
        })
        .expect("a scope lives in a task of a running runtime");
        // A failed spawn dropped `body`, whose `Running` guard counted the
        // child finished again.
        let handle = spawned?;
        Ok(state.register(handle, Box::new(move || slot.borrow_mut().take())))
    }

    /// Waits for every child (rules 2 and 4), then resumes the body's unwind
    /// or the first unjoined child panic, or returns the body's value and
    /// the unjoined children's errors.
    fn finish<R>(&self, body: thread::Result<R>, body_failed: bool) -> (R, Vec<E>) {
        let state = &self.state;
        if body.is_err() || body_failed || super::park::current_cancelled() {
            state.cancel_children(None);
        }
        let cancelled = match panic::catch_unwind(AssertUnwindSafe(|| self.wait_children())) {
            Ok(cancelled) => cancelled,
            Err(payload) => {
                // Unwound while waiting (the runtime is shutting down): the
                // children must still go first (rule 4).
                self.abandon_children();
                panic::resume_unwind(payload);
            }
        };
        let value = match body {
            Ok(v) => v,
            Err(payload) => panic::resume_unwind(payload),
        };
        if cancelled {
            drop(value);
            super::park::unwind_for(Interrupt::Cancelled);
        }
        let failures = state.failures();
        for &i in &failures {
            // Every child has finished: this join does not wait — or, for a
            // child on another thread, only until its worker has stored
            // the outcome of the closure that ended.
            let handle = state.handles.borrow()[i].borrow_mut().take();
            if let Some(Err(e)) = handle.map(|h| super::park::shielded(|| h.join()))
                && e.is_panic()
            {
                panic::resume_unwind(e.into_panic());
            }
        }
        // A child that could not start (no stack for its first run) did
        // not do its part: its error is the scope's, as a panic would be.
        // Nobody can join it any more, so this join takes nothing from
        // anyone (and does not wait: it has finished).
        let unjoined: Vec<SharedHandle> = state.handles.borrow().clone();
        for handle in unjoined {
            let handle = handle.borrow_mut().take();
            if let Some(Err(e)) = handle.map(|h| super::park::shielded(|| h.join()))
                && e.start_error().is_some()
            {
                panic!("corio::scope: {e}");
            }
        }
        let errors = failures
            .iter()
            .filter_map(|&i| state.errors.borrow_mut()[i].take())
            .collect();
        (value, errors)
    }

    /// Waits for every child (rule 2); `true` if the parent's cancellation
    /// was reported to the wait (the children were cancelled for it).
    fn wait_children(&self) -> bool {
        let state = &self.state;
        let remote = state.remote.borrow().clone();
        let busy = || state.running.get() > 0 || remote.as_ref().is_some_and(|r| r.is_running());
        if !busy() {
            return false;
        }
        if thread::panicking() || super::park::is_forcing_current() {
            self.abandon_children();
            return false;
        }
        // Without the enclosing `timeout`s (rule 2): the wait must not end
        // early. An expired `timeout` cancels the children instead, now or
        // when it expires; so does the parent's cancellation, after which
        // the wait is shielded from it (it is sticky: every later park would
        // report it again).
        let mut deadline = super::park::current_deadline();
        let mut cancelled = false;
        super::park::without_deadline(|| {
            while busy() {
                if let Some(at) = deadline
                    && super::driver::now() >= at
                {
                    state.cancel_children(None);
                    // The deadline interrupted the scope's work.
                    super::park::deadline_fired(at);
                    deadline = None;
                }
                let me = Unparker::current();
                // Registered before the count is read again (see
                // `Remote::register`): a child on another thread that ends
                // in between finds it.
                if let Some(r) = &remote
                    && !r.register(me.clone())
                    && state.running.get() == 0
                {
                    break;
                }
                *state.waiter.borrow_mut() = Some(me);
                let reason = self
                    .first_running()
                    .map_or(WaitReason::Event, WaitReason::Join);
                let parked = if cancelled {
                    super::park::shielded(|| super::park::park(reason, deadline))
                } else {
                    super::park::park(reason, deadline)
                };
                // A timeout is handled above; a runtime shutdown unwinds
                // from the park.
                if parked == Err(Interrupt::Cancelled) {
                    cancelled = true;
                    state.cancel_children(None);
                }
            }
        });
        if let Some(r) = &remote {
            r.unregister();
        }
        cancelled
    }

    fn first_running(&self) -> Option<TaskId> {
        self.state
            .children
            .borrow()
            .iter()
            .find(|t| !t.header().is_complete())
            .map(|t| t.header().id)
    }

    /// Rule 4: unwinds every unfinished child in place.
    fn abandon_children(&self) {
        let children = self.state.children.borrow().clone();
        for child in &children {
            super::context::abandon_task(child);
        }
        // Every child on this worker has ended — or, one that kept catching
        // its unwind, was given up on and leaked (never to run again), its
        // count with it. Those on other workers cannot be unwound from here:
        // they are cancelled, and this thread blocks until they end.
        let remote = self.state.remote.borrow().clone();
        if let Some(r) = remote
            && r.is_running()
        {
            self.state.cancel_children(None);
            // Runtime shutdown unwinds other workers' tasks too, but two
            // parents blocked on each other's worker would wait forever:
            // after a while, this task suspends for good and is leaked,
            // stack and all, so that what the children borrow stays valid.
            // Not while the thread panics: suspending would leave the panic
            // count to the tasks that run next on this thread.
            let bounded = super::park::is_forcing_current() && !thread::panicking();
            if !r.wait_blocking(bounded) {
                super::park::give_up_forced();
            }
        }
    }
}

impl<E> fmt::Debug for Scope<'_, '_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("children", &self.state.children.borrow().len())
            .field(
                "running",
                &(self.state.running.get()
                    + self
                        .state
                        .remote
                        .borrow()
                        .as_ref()
                        .map_or(0, |r| r.running())),
            )
            .field("failed", &self.has_failed())
            .finish()
    }
}

impl<T> ScopedJoinHandle<'_, T> {
    /// Waits for the child to finish and returns its value (for
    /// [`spawn_try`](Scope::spawn_try) children, its `Result`), or a
    /// [`JoinError`] if it panicked or was cancelled. A cancellation point,
    /// like [`JoinHandle::join`].
    ///
    /// # Errors
    ///
    /// As [`JoinHandle::join`].
    pub fn join(mut self) -> Result<T, JoinError> {
        let handle = self
            .handle
            .borrow_mut()
            .take()
            .expect("a scoped child is joined once");
        handle.join()?;
        Ok((self.take)().expect("a child that returned stored its value"))
    }

    /// Whether the child has finished.
    pub fn is_finished(&self) -> bool {
        self.handle
            .borrow()
            .as_ref()
            .is_none_or(JoinHandle::is_finished)
    }

    /// The child's task id.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// Cancels the child (see [`JoinHandle::cancel`]).
    pub fn cancel(&self) {
        if let Some(h) = self.handle.borrow().as_ref() {
            h.cancel();
        }
    }
}

impl<T> fmt::Debug for ScopedJoinHandle<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedJoinHandle")
            .field("id", &self.id)
            .field("finished", &self.is_finished())
            .finish()
    }
}
