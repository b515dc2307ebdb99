//! [`JoinSet`]: a group of tasks joined in the order they finish, and
//! [`CancelHandle`]: the right to cancel a task without the right to join
//! it.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use super::park::{self, Unparker};
use super::{JoinHandle, TaskId, TaskRef, WaitReason};
use crate::error::JoinError;

/// Cancels a task, like [`JoinHandle::cancel`], without owning its result.
/// `Send`, `Sync` and cheap to clone, so it can go to whoever decides when
/// the task should stop (a [`CancellationToken`](crate::sync::CancellationToken),
/// a watchdog thread, a signal handler task).
///
/// ```
/// use std::time::Duration;
/// corio::run(|| {
///     let h = corio::spawn(|| corio::time::sleep(Duration::from_secs(3600)));
///     let canceller = h.cancel_handle();
///     std::thread::spawn(move || canceller.cancel());
///     assert!(h.join().unwrap_err().is_cancelled());
/// });
/// ```
#[derive(Clone)]
pub struct CancelHandle {
    task: TaskRef,
}

impl CancelHandle {
    /// Cancels the task (see [`JoinHandle::cancel`]); nothing happens if it
    /// has finished.
    pub fn cancel(&self) {
        super::cancel(&self.task);
    }

    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.task.header().id
    }

    /// Whether the task has finished.
    pub fn is_finished(&self) -> bool {
        self.task.header().is_complete()
    }
}

impl fmt::Debug for CancelHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelHandle")
            .field("id", &self.id())
            .finish_non_exhaustive()
    }
}

impl<T> JoinHandle<T> {
    /// A [`CancelHandle`] for this task.
    pub fn cancel_handle(&self) -> CancelHandle {
        CancelHandle {
            task: self.task_ref(),
        }
    }
}

/// Where finished members of a set announce themselves, in the order they
/// finish.
#[derive(Default)]
struct Finished {
    state: Mutex<FinishedState>,
}

#[derive(Default)]
struct FinishedState {
    keys: VecDeque<u64>,
    /// The `join_next` waiting for a key, if one waits.
    waiter: Option<Unparker>,
}

impl Finished {
    fn lock(&self) -> std::sync::MutexGuard<'_, FinishedState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Owned by each member's closure; its drop — when the closure returns,
/// unwinds, or is dropped without ever running — tells the set.
struct Announce {
    finished: Arc<Finished>,
    key: u64,
}

impl Drop for Announce {
    fn drop(&mut self) {
        let waiter = {
            let mut state = self.finished.lock();
            state.keys.push_back(self.key);
            state.waiter.take()
        };
        // Never waits, so this is safe while the task unwinds.
        if let Some(waiter) = waiter {
            waiter.unpark();
        }
    }
}

/// A set of tasks whose results are taken in the order they finish — the
/// `asyncio.as_completed` / `TaskGroup` pattern, shaped like tokio's
/// `JoinSet`.
///
/// Dropping the set cancels every task still in it (they unwind, running
/// their destructors, without being waited for).
///
/// ```
/// use corio::task::JoinSet;
/// use std::time::Duration;
///
/// corio::run(|| {
///     let mut set = JoinSet::new();
///     for ms in [30, 10, 20] {
///         set.spawn(move || {
///             corio::time::sleep(Duration::from_millis(ms));
///             ms
///         });
///     }
///     let mut order = Vec::new();
///     while let Some(result) = set.join_next() {
///         order.push(result.unwrap());
///     }
///     assert_eq!(order, [10, 20, 30]); // completion order
/// });
/// ```
pub struct JoinSet<T> {
    tasks: HashMap<u64, JoinHandle<T>>,
    finished: Arc<Finished>,
    next_key: u64,
}

impl<T> JoinSet<T> {
    /// An empty set.
    pub fn new() -> JoinSet<T> {
        JoinSet {
            tasks: HashMap::new(),
            finished: Arc::default(),
            next_key: 0,
        }
    }

    /// How many tasks are in the set (finished ones not yet joined count).
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether the set holds no task.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    fn announce(&mut self) -> Announce {
        self.next_key += 1;
        Announce {
            finished: Arc::clone(&self.finished),
            key: self.next_key,
        }
    }

    fn insert(&mut self, key: u64, handle: JoinHandle<T>) -> CancelHandle {
        let canceller = handle.cancel_handle();
        self.tasks.insert(key, handle);
        canceller
    }

    /// Spawns `f` as a task in the set (see [`corio::spawn`](crate::spawn)).
    ///
    /// # Panics
    ///
    /// As [`corio::spawn`](crate::spawn): outside a runtime, or if no stack
    /// can be had.
    #[track_caller]
    pub fn spawn<F>(&mut self, f: F) -> CancelHandle
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let announce = self.announce();
        let key = announce.key;
        let handle = super::spawn_or_panic(move || {
            let _announce = announce;
            f()
        });
        self.insert(key, handle)
    }

    /// Spawns `f` as a task in the set on the current thread, for closures
    /// and results that are not `Send` (see
    /// [`corio::spawn_local`](crate::spawn_local)).
    ///
    /// # Panics
    ///
    /// As [`corio::spawn_local`](crate::spawn_local).
    #[track_caller]
    pub fn spawn_local<F>(&mut self, f: F) -> CancelHandle
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        let announce = self.announce();
        let key = announce.key;
        let handle = super::spawn_local_or_panic(move || {
            let _announce = announce;
            f()
        });
        self.insert(key, handle)
    }

    /// Waits for the next task of the set to finish and returns its result;
    /// `None` when the set is empty. A cancellation point.
    pub fn join_next(&mut self) -> Option<Result<T, JoinError>> {
        self.join_next_with_id().map(|(_, result)| result)
    }

    /// Like [`join_next`](Self::join_next), with the finished task's id.
    pub fn join_next_with_id(&mut self) -> Option<(TaskId, Result<T, JoinError>)> {
        loop {
            if let Some(done) = self.try_join_next_with_id() {
                return Some(done);
            }
            if self.tasks.is_empty() {
                return None;
            }
            {
                let mut state = self.finished.lock();
                if !state.keys.is_empty() {
                    continue;
                }
                state.waiter = Some(Unparker::current());
            }
            // The key's announcement unparks us; a spurious return loops.
            if let Err(i) = park::park(WaitReason::Event, None) {
                self.finished.lock().waiter = None;
                park::unwind_for_call(i, "corio::task::JoinSet::join_next");
            }
        }
    }

    /// The result of a task of the set that has finished, if any; never
    /// waits.
    pub fn try_join_next(&mut self) -> Option<Result<T, JoinError>> {
        self.try_join_next_with_id().map(|(_, result)| result)
    }

    fn try_join_next_with_id(&mut self) -> Option<(TaskId, Result<T, JoinError>)> {
        loop {
            let key = self.finished.lock().keys.pop_front()?;
            // A key of a task detached from the set since has no handle.
            if let Some(handle) = self.tasks.remove(&key) {
                let id = handle.id();
                // Its closure has ended; the task is at most a step from
                // finished, so this join does not wait for its work.
                return Some((id, handle.join()));
            }
        }
    }

    /// Cancels every task in the set. They stay in it: [`join_next`](Self::join_next)
    /// returns their results (cancelled, or what they finished with first).
    pub fn cancel_all(&mut self) {
        for handle in self.tasks.values() {
            handle.cancel();
        }
    }

    /// Cancels every task and waits for all of them to end, dropping their
    /// results.
    pub fn shutdown(&mut self) {
        self.cancel_all();
        while self.join_next().is_some() {}
    }

    /// Removes every task from the set without cancelling it: they run on,
    /// detached.
    pub fn detach_all(&mut self) {
        self.tasks.clear();
    }

    /// Waits for every task and returns their values in the order they
    /// finished.
    ///
    /// # Panics
    ///
    /// If a task panicked (its panic is resumed here) or was cancelled; the
    /// other tasks are cancelled first.
    pub fn join_all(mut self) -> Vec<T> {
        let mut values = Vec::with_capacity(self.len());
        while let Some(result) = self.join_next() {
            match result {
                Ok(value) => values.push(value),
                Err(e) => {
                    self.cancel_all();
                    match e.try_into_panic() {
                        Ok(payload) => std::panic::resume_unwind(payload),
                        Err(e) => panic!("corio::task::JoinSet::join_all: {e}"),
                    }
                }
            }
        }
        values
    }
}

impl<T> Default for JoinSet<T> {
    fn default() -> Self {
        JoinSet::new()
    }
}

impl<T> Drop for JoinSet<T> {
    fn drop(&mut self) {
        self.cancel_all();
    }
}

impl<T> fmt::Debug for JoinSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinSet")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}
