//! The part of a [`Scope`](super::Scope)'s bookkeeping that children on
//! other workers touch: made when the scope spawns its first such child, so
//! a scope whose children all stay on the parent's worker never pays for it.
//!
//! A child that may run on another thread (`Scope::spawn_on` another worker,
//! `Scope::spawn_send`) counts itself finished here with an atomic, reports
//! a failure under a `Mutex`, and cancels its siblings through a copy of the
//! scope's list of children kept here.
#![allow(unsafe_code)]

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use super::builder::Options;
use super::{Scope, ScopedJoinHandle};
use crate::error::Error;
use crate::stack;
use crate::task::TaskRef;
use crate::task::park::{self, CancelUnwind, Unparker};

/// How long a scope that its runtime's shutdown unwinds blocks its thread
/// for children on other workers (which that shutdown unwinds too) before
/// it gives up and leaks its stack instead: two such scopes on two workers,
/// each waiting for a child on the other's, would otherwise wait forever.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(1);

/// What a scope shares with its children that may run on other threads.
pub(super) struct Remote {
    /// Such children whose closure has not finished (or been dropped).
    running: AtomicUsize,
    /// Who to wake when `running` reaches 0: the parent task, or its thread
    /// while it blocks (it cannot suspend: see `wait_blocking`).
    waiter: Mutex<Option<Unparker>>,
    /// Every child of the scope, local or not, by spawn order: a copy of
    /// the scope's own list, for a failing child on another thread to cancel
    /// its siblings.
    children: Mutex<Vec<TaskRef>>,
    /// Child indices, in the order they failed; once this exists, every
    /// failure of the scope is recorded here (the earlier ones are moved
    /// in when it is made).
    failures: Mutex<Vec<usize>>,
}

/// Locks `m`; a poisoned lock still holds consistent data (every critical
/// section here is a push, a take or a clone).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Remote {
    /// The shared part of a scope that has spawned `children` and recorded
    /// `failures` so far.
    pub(super) fn new(children: Vec<TaskRef>, failures: Vec<usize>) -> Arc<Remote> {
        Arc::new(Remote {
            running: AtomicUsize::new(0),
            waiter: Mutex::new(None),
            children: Mutex::new(children),
            failures: Mutex::new(failures),
        })
    }

    /// Counts a child about to be spawned; its [`RemoteRunning`] guard
    /// counts it finished.
    pub(super) fn start(self: &Arc<Self>) -> RemoteRunning {
        self.running.fetch_add(1, Ordering::Relaxed);
        RemoteRunning(Arc::clone(self))
    }

    /// Whether some child counted here has not finished.
    pub(super) fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire) > 0
    }

    pub(super) fn running(&self) -> usize {
        self.running.load(Ordering::Acquire)
    }

    pub(super) fn push_child(&self, child: TaskRef) {
        lock(&self.children).push(child);
    }

    pub(super) fn failures(&self) -> Vec<usize> {
        lock(&self.failures).clone()
    }

    pub(super) fn has_failed(&self) -> bool {
        !lock(&self.failures).is_empty()
    }

    /// Records the failure of child `index`; `true` if it is the scope's
    /// first (the caller then cancels the siblings).
    pub(super) fn record_failure(&self, index: usize) -> bool {
        let mut failures = lock(&self.failures);
        failures.push(index);
        failures.len() == 1
    }

    /// A child on any thread failed: records it and, if it is the first
    /// failure, cancels every sibling (rule 3 of `Scope`).
    pub(super) fn fail(&self, index: usize) {
        if self.record_failure(index) {
            // Cancelled outside the lock: a cancel wakes tasks, which may
            // run code of ours on this thread.
            let children = lock(&self.children).clone();
            for (i, child) in children.iter().enumerate() {
                if i != index {
                    crate::task::cancel(child);
                }
            }
        }
    }

    /// Sets the task (or thread) to wake when the count reaches 0, then
    /// says whether it must still wait. Set before the count is read, so
    /// that a child finishing in between finds the waiter.
    pub(super) fn register(&self, waiter: Unparker) -> bool {
        *lock(&self.waiter) = Some(waiter);
        self.is_running()
    }

    /// Forgets the waiter once the wait is over.
    pub(super) fn unregister(&self) {
        lock(&self.waiter).take();
    }

    /// Blocks the calling thread until every child counted here has
    /// finished: for a parent that cannot suspend (rule 4 of `Scope`), after
    /// it cancelled them. With `bounded` (the runtime's shutdown unwinds the
    /// parent), gives up after [`SHUTDOWN_WAIT`] and returns `false`: the
    /// caller then leaks its stack rather than leave it.
    pub(super) fn wait_blocking(&self, bounded: bool) -> bool {
        let until = Instant::now() + SHUTDOWN_WAIT;
        while self.register(Unparker::Thread(thread::current())) {
            if bounded {
                let now = Instant::now();
                if now >= until {
                    self.unregister();
                    return false;
                }
                thread::park_timeout(until - now);
            } else {
                thread::park();
            }
        }
        self.unregister();
        true
    }
}

/// Counts a child on another thread finished when dropped: at the end of
/// its closure — after everything else the closure owned, its result
/// included, was dropped — or with the closure if it never ran.
pub(super) struct RemoteRunning(Arc<Remote>);

impl RemoteRunning {
    pub(super) fn remote(&self) -> &Remote {
        &self.0
    }
}

impl Drop for RemoteRunning {
    fn drop(&mut self) {
        // `Release`: everything the child did with the parent's data comes
        // before the parent's `Acquire` read of 0 (`is_running`).
        if self.0.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The waiter is read after the count, under the lock that
            // `register` writes it with before it reads the count: either it
            // saw 0, or we see it.
            let waiter = lock(&self.0.waiter).take();
            if let Some(w) = waiter {
                w.unpark();
            }
        }
    }
}

/// Where a `Send` child of a scope goes.
#[derive(Clone, Copy)]
pub(super) enum Place {
    /// On this worker, for good.
    Worker(usize),
    /// On the parent's worker, from which an idle one may take it before it
    /// starts.
    Movable,
}

/// The closure of a child that may run on another thread. Fields drop in
/// order: `running`, last, counts the child finished only once the rest —
/// which may borrow the parent's stack — is gone, whether the closure ran
/// or was dropped unrun.
struct RemoteChild<F, T> {
    f: F,
    slot: Arc<Mutex<Option<T>>>,
    index: usize,
    running: RemoteRunning,
}

impl<F: FnOnce() -> T, T> RemoteChild<F, T> {
    fn run(self) {
        // Declared first, dropped last, on return and on unwind alike.
        let running = self.running;
        let slot = self.slot;
        match panic::catch_unwind(AssertUnwindSafe(self.f)) {
            Ok(v) => *lock(&slot) = Some(v),
            Err(payload) => {
                let cancelled = payload.is::<CancelUnwind>()
                    || park::is_forcing_current()
                    || park::current_cancel_observed();
                if !cancelled {
                    running.remote().fail(self.index);
                }
                panic::resume_unwind(payload)
            }
        }
    }
}

impl<'scope, E> Scope<'scope, '_, E> {
    /// Spawns a `Send` child that may run on another worker: on worker `w`
    /// ([`Place::Worker`]), or movable; one that cannot leave the parent's
    /// worker anyway (that worker, or a runtime of one) is a local child.
    #[track_caller]
    pub(super) fn spawn_elsewhere<F, T>(
        &'scope self,
        f: F,
        place: Place,
        options: Options,
    ) -> Result<ScopedJoinHandle<'scope, T>, Error>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        let location = std::panic::Location::caller();
        let (here, workers, target) = crate::task::context::with_scheduler(|s| {
            let workers = s.group.get().map(|g| g.workers.clone());
            (s.shared.index, workers, s.multi.get())
        })
        .map(|(here, workers, multi)| {
            let n = workers.as_ref().map_or(1, Vec::len);
            let target = match place {
                Place::Worker(w) => {
                    assert!(
                        w < n,
                        "corio::Scope::spawn_on: worker {w} is out of range (the runtime has \
                         {n} workers)"
                    );
                    (w != here).then_some(w)
                }
                Place::Movable => multi.then_some(here),
            };
            (here, workers, target)
        })
        .expect("a scope lives in a task of a running runtime");
        let Some(target) = target else {
            return self.spawn_inner(f, |_: &T| false, |v: T| Ok(v), options);
        };
        let stack_size = options.stack_size.map(stack::checked_size).transpose()?;
        let state = &self.state;
        let remote = state.remote();
        let index = state.children.borrow().len();
        state.errors.borrow_mut().push(None);
        let slot: Arc<Mutex<Option<T>>> = Arc::new(Mutex::new(None));
        let child = RemoteChild {
            f,
            slot: Arc::clone(&slot),
            index,
            running: remote.start(),
        };
        let body: Box<dyn FnOnce() + Send + 'scope> = Box::new(move || child.run());
        // SAFETY: only the lifetime changes. `body` borrows data that
        // outlives 'scope, and may run on another thread, which `F: Send`
        // and `T: Send` allow. The scope function does not return or resume
        // an unwind before `remote` counts every such child finished
        // (`finish`, rules 1, 2 and 4: it waits parked, or blocks its thread,
        // or suspends for good and leaks its stack), and the scope cannot be
        // leaked. A child counts itself finished last, after its closure,
        // its result and its slot were dropped (`RemoteChild`'s field order
        // and `run`), so nothing of 'scope is touched after that; its task
        // then holds only `'static` data (its `()` result, a panic payload).
        let body: Box<dyn FnOnce() + Send + 'static> = unsafe {
            std::mem::transmute::<Box<dyn FnOnce() + Send + 'scope>, Box<dyn FnOnce() + Send>>(body)
        };
        let name = options.name.map(Arc::<str>::from);
        let spawned = crate::task::context::with_scheduler(|s| {
            let size = stack_size.unwrap_or_else(|| s.default_stack_size());
            if target == here {
                s.spawn_send(body, name, size, location)
            } else {
                let workers = workers.expect("a runtime of several workers has a group");
                Ok(crate::task::worker::spawn_remote(
                    &workers[target],
                    body,
                    name,
                    size,
                    false,
                    location,
                ))
            }
        })
        .expect("a scope lives in a task of a running runtime");
        // A failed spawn dropped `body`, whose guard counted the child
        // finished again.
        let handle = spawned?;
        Ok(state.register(handle, Box::new(move || lock(&slot).take())))
    }
}
