//! Several workers per runtime: the [`Group`] of a runtime's workers, what
//! one worker hands another ([`Incoming`]), and how a task that never ran
//! moves to an idle worker.
//!
//! # What moves, and what never does
//!
//! A task's coroutine is made when the task first runs (`scheduler`'s
//! `run_task`); until then the task is its closure in its block. A started
//! task never changes threads: its stack holds references to thread-locals
//! of its worker's thread, and `LocalState` is reached only with the
//! worker's own `Scheduler`. A task that never ran, spawned with a `Send`
//! closure (`corio::spawn` or `Scope::spawn_send`, not `spawn_local`,
//! `Scope::spawn` or a main task), waits in its worker's `movable` queue.
//! While a worker is idle, the worker holding that queue (the task's
//! *home*) hands a share of it over at each poll, and during a spawning
//! burst once `event_interval` tasks are queued; each poll also moves the
//! rest into its run queue a batch at a time.
//!
//! # The hand-over protocol
//!
//! A task block names two workers: `Header::runtime`, its home, counted
//! (it keeps the home's `Shared` alive), fixed for the task's life; and
//! `Header::worker`, uncounted, the worker whose thread runs it. They
//! differ only for a task that moved, and a task moves at most once, from
//! its home, so `worker` is written at most once after the block is made:
//!
//! 1. The home, on its thread, takes the task out of its `movable` queue and
//!    registry, and only then stores `worker` = the target (`Release`): the
//!    home touches the task's thread-owned state no more. (The task has no
//!    stack yet: it takes one from the pool of the worker that first runs
//!    it, so moving costs the home no stack and the target no second one.)
//! 2. It pushes `Incoming::Adopt` on the target's inject queue (whose lock
//!    publishes the block); the target registers it under a new key and
//!    queues it.
//! 3. A wake from another thread (a `TaskRef` in an `Unparker`) always goes
//!    to the home's inject queue — `runtime` is the one pointer that is
//!    both fixed and counted. The home, draining it, compares `worker` with
//!    itself: equal, it wakes the task locally; different, it forwards the
//!    wake to the target's queue. It reads its own store of step 1, so a
//!    wake is never delivered locally for a task that left, and never lost.
//! 4. A wake on the task's own thread compares `worker` with that thread's
//!    worker (`Header::is_on`) and wakes locally, as with one worker: the
//!    target adopted the task after step 1's store (through the queue lock
//!    of step 2), so it reads the new value.
//!
//! Who can wake a task that has not started? Nothing it waits on: it has
//! not registered with anything. Only `JoinHandle::cancel` (and the task
//! sets) hold a `TaskRef` from before the move; a cancel sets the sticky
//! `cancelled` flag and wakes. That wake, forwarded (rule 3), may reach the
//! target before the `Adopt` entry does when the forwarder read `worker`
//! before the home's push; the target then sets the task's `notified`
//! token (it is `Ready`), which only makes its first park return at once —
//! a spurious wakeup, harmless by the park protocol's rule 3 — and that
//! write comes after the home's last access (the forwarder's `Acquire` read
//! of `worker` saw step 1's `Release` store). The cancellation itself is
//! the flag, which the target reads at the task's first cancellation
//! point: the queue locks order the cancel's store before it.
//!
//! `tests/loom.rs` model-checks this hand-over with a cancel racing it.
#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use super::context::{Scheduler, Shared};
use super::core::{Core, LocalState, ThreadOwned};
use crate::reactor::Driver;
use crate::task::{Header, JoinHandle, Packet, TaskRef};

/// What another thread hands a worker through its inject queue.
pub(crate) enum Incoming {
    /// Wake this task (it may have moved: see the module docs, rule 3).
    Wake(TaskRef),
    /// Adopt this task, which never ran; `movable`: it may still move on
    /// (it was made for this worker by another thread and never moved).
    Adopt { task: TaskRef, movable: bool },
    /// Run this on the worker's thread, between tasks (what a dump asks of
    /// each worker: its table of tasks, which only its thread may read).
    /// Dropped unrun by a worker that is gone.
    Call(Box<Call>),
}

/// A closure for [`Incoming::Call`] (boxed twice, so that the queue's
/// entries stay two words).
pub(crate) struct Call(pub(crate) Box<dyn FnOnce(&Scheduler) + Send>);

/// The workers of one runtime, shared by their schedulers and the
/// runtime's `Handle`s.
pub(crate) struct Group {
    pub(crate) workers: Vec<Arc<Shared>>,
    /// Which workers are (about to be) blocked with nothing to run.
    idle: Vec<AtomicBool>,
    idle_count: AtomicUsize,
    /// Set when `block_on`'s main task has returned: workers leave their
    /// loop and unwind their tasks.
    pub(crate) stopping: AtomicBool,
    /// The next worker a task spawned from outside the runtime goes to.
    next: AtomicUsize,
    /// The default stack size of the runtime's tasks.
    pub(crate) stack_size: usize,
}

impl Group {
    pub(crate) fn new(workers: Vec<Arc<Shared>>, stack_size: usize) -> Group {
        Group {
            idle: workers.iter().map(|_| AtomicBool::new(false)).collect(),
            workers,
            idle_count: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            next: AtomicUsize::new(0),
            stack_size,
        }
    }

    /// Tells every worker to leave its loop (`block_on`'s main task ended).
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        for w in &self.workers {
            w.driver.notify();
        }
    }

    /// A worker for a task spawned from outside the runtime: an idle one if
    /// any, else the next in turn.
    pub(crate) fn pick(&self) -> usize {
        if self.idle_count.load(Ordering::Relaxed) > 0
            && let Some(i) = self.idle.iter().position(|f| f.load(Ordering::Relaxed))
        {
            return i;
        }
        self.next.fetch_add(1, Ordering::Relaxed) % self.workers.len()
    }

    fn set_idle(&self, worker: usize, idle: bool) {
        if self.idle[worker].swap(idle, Ordering::AcqRel) != idle {
            if idle {
                self.idle_count.fetch_add(1, Ordering::AcqRel);
            } else {
                self.idle_count.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }

    /// Claims up to `max` idle workers other than `me` (clearing their flag,
    /// so that two busy workers do not both feed one).
    fn claim_idle(&self, me: usize, max: usize) -> Vec<usize> {
        let mut claimed = Vec::new();
        for (i, flag) in self.idle.iter().enumerate() {
            if claimed.len() == max {
                break;
            }
            if i != me && flag.swap(false, Ordering::AcqRel) {
                self.idle_count.fetch_sub(1, Ordering::AcqRel);
                claimed.push(i);
            }
        }
        claimed
    }
}

impl Shared {
    /// Runs `f` on this worker's thread, from its loop, between tasks; a
    /// worker that is gone drops it unrun.
    pub(crate) fn call(&self, f: Box<dyn FnOnce(&Scheduler) + Send>) {
        self.hand(vec![Incoming::Call(Box::new(Call(f)))]);
    }

    /// Hands `tasks` (entries of `Incoming::Adopt`, or calls) to this worker
    /// and wakes it if it sleeps. A worker that is gone completes the tasks
    /// cancelled.
    pub(crate) fn hand(&self, tasks: Vec<Incoming>) {
        if !self.alive.load(Ordering::Acquire) {
            tasks.into_iter().for_each(fail_unadopted);
            return;
        }
        if self.inject.push_all(tasks) {
            self.driver.notify();
        }
        // The worker may have been dropped between the check above and the
        // push, after its last drain: then nobody else will take them. (Its
        // drop clears `alive` before it drains, and the queue lock orders
        // that drain and our push: either it took them, or we see `false`.)
        if !self.alive.load(Ordering::Acquire) {
            self.close_inject();
        }
    }

    /// Empties the inject queue of a worker that is shutting down: wakes are
    /// dropped, tasks that were never adopted complete cancelled.
    pub(crate) fn close_inject(&self) {
        self.inject
            .take_unflagged()
            .into_iter()
            .for_each(fail_unadopted);
    }
}

/// Completes a task that no worker will ever run as cancelled, dropping its
/// closure (a wake entry is just dropped).
fn fail_unadopted(item: Incoming) {
    let Incoming::Adopt { task, .. } = item else {
        return;
    };
    let core = NonNull::from(task.core());
    let dropped = panic::catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the task never ran and is registered nowhere, so its closure
        // is still in the block and nothing else drops it; it is `Send` (only
        // tasks spawned with `Send` closures travel between threads).
        unsafe { (task.header().vtable.drop_body)(core) }
    }));
    if let Err(payload) = dropped {
        super::core::report_caught(
            task.header(),
            "while dropping its closure (it never ran)",
            payload,
        );
    }
    task.complete_cancelled();
}

impl Header {
    /// Whether the task runs on the calling thread's worker (outside a
    /// runtime: whether its home worker belongs to the calling thread).
    pub(crate) fn runs_on_current_thread(&self) -> bool {
        super::context::with_scheduler(|s| self.is_on(Arc::as_ptr(&s.shared)))
            .unwrap_or_else(|| self.runtime.is_owned_by_current_thread())
    }
}

impl Scheduler {
    /// Makes this scheduler a worker of `group`.
    pub(crate) fn join_group(&self, group: Arc<Group>) {
        self.multi.set(group.workers.len() > 1);
        if self.group.set(group).is_err() {
            unreachable!("a scheduler joins one group");
        }
    }

    /// Handles one entry of the inject queue; `false` for a call, which
    /// gives the worker no task to run.
    pub(crate) fn receive(&self, item: Incoming) -> bool {
        match item {
            Incoming::Wake(task) => {
                if task.header().is_on(Arc::as_ptr(&self.shared)) {
                    self.unpark_local(task.core());
                } else {
                    self.forward(task);
                }
            }
            Incoming::Adopt { task, movable } => self.adopt(task, movable),
            Incoming::Call(call) => {
                (call.0)(self);
                return false;
            }
        }
        true
    }

    /// Passes a wake on to the worker the task moved to (protocol rule 3).
    #[cold]
    fn forward(&self, task: TaskRef) {
        let to = task.header().worker.load(Ordering::Acquire);
        let target = self
            .group
            .get()
            .and_then(|g| g.workers.iter().find(|w| std::ptr::eq(Arc::as_ptr(w), to)));
        if let Some(target) = target {
            target.inject(task);
        }
    }

    /// Registers and queues a task handed to this worker (protocol rule 2).
    fn adopt(&self, task: TaskRef, movable: bool) {
        let core = task.core();
        core.local(self).since.set(self.tick.get());
        let ptr = NonNull::from(core);
        let mut tasks = self.tasks.borrow_mut();
        let entry = tasks.vacant_entry();
        core.header
            .set_key(u32::try_from(entry.key()).expect("more than 2^32 tasks"));
        let made_here = std::ptr::eq(core.header.runtime.as_ptr(), Arc::as_ptr(&self.shared));
        entry.insert(task);
        drop(tasks);
        let counters = &self.shared.counters;
        if made_here {
            // Made for this worker by another thread (`spawn_remote`).
            counters.spawned.bump();
        } else {
            counters.adopted.bump();
        }
        if movable && self.multi.get() {
            self.movable.push(ptr);
        } else {
            self.run_queue.push(ptr);
        }
    }

    /// Adopts whatever tasks were handed to this worker, dropping wakes (at
    /// shutdown: the tasks are then unwound with the others).
    pub(crate) fn adopt_incoming(&self) {
        for item in self.shared.inject.take_unflagged() {
            if let Incoming::Adopt { task, .. } = item {
                self.adopt(task, false);
            }
        }
    }

    /// At each poll of a worker with movable tasks: hands a share of them to
    /// idle workers, then moves a batch of the rest into the run queue.
    pub(crate) fn balance(&self) {
        if self.movable.is_empty() {
            return;
        }
        self.share_with_idle();
        let batch = (self.config.event_interval as usize).min(self.movable.len());
        for _ in 0..batch {
            if let Some(core) = self.movable.pop() {
                self.run_queue.push(core);
            }
        }
    }

    /// Hands a share of the movable tasks to the workers that are idle, if
    /// any.
    fn share_with_idle(&self) {
        let n = self.movable.len();
        let group = self
            .group
            .get()
            .expect("a worker with movable tasks has a group");
        // Keep the last task if nothing else is queued here: moving it
        // would only move the wait.
        if group.idle_count.load(Ordering::Relaxed) > 0 && n + self.run_queue.len() > 1 {
            let claimed = group.claim_idle(self.shared.index, n);
            let share = (n / (claimed.len() + 1)).max(1);
            for w in claimed {
                let target = &group.workers[w];
                let batch: Vec<Incoming> = (0..share)
                    .map_while(|_| self.movable.with(|q| q.pop_back()))
                    .map(|core| self.hand_over(core, target))
                    .collect();
                target.hand(batch);
            }
        }
    }

    /// After a spawn queued a movable task: once a burst has queued
    /// `event_interval` of them, hands a share to idle workers now rather
    /// than at this worker's next poll, which comes only when the spawning
    /// task parks or has run for a while. A task spawning a million others
    /// thus keeps the other workers busy meanwhile (one worker sat idle
    /// for the 0.4 s such a loop took).
    #[inline]
    pub(crate) fn share_burst(&self) {
        if self.movable.len() >= self.config.event_interval as usize
            && self
                .group
                .get()
                .is_some_and(|g| g.idle_count.load(Ordering::Relaxed) > 0)
        {
            self.share_with_idle();
        }
    }

    /// Takes a movable task off this worker for `target` (protocol rule 1).
    fn hand_over(&self, core: NonNull<Core>, target: &Arc<Shared>) -> Incoming {
        // SAFETY: queued tasks are in the registry, which keeps them alive
        // until the `remove` below hands its reference to `task`.
        let core = unsafe { core.as_ref() };
        let task = self.tasks.borrow_mut().remove(core.header.key());
        self.shared.counters.handed_over.bump();
        core.header
            .worker
            .store(Arc::as_ptr(target).cast_mut(), Ordering::Release);
        Incoming::Adopt {
            task,
            movable: false,
        }
    }

    /// Spawns a task whose closure and result are `Send`: with several
    /// workers, it may move to an idle worker before it first runs.
    pub(crate) fn spawn_send<F, T>(
        &self,
        f: F,
        name: Option<Arc<str>>,
        stack_size: usize,
        location: &'static std::panic::Location<'static>,
    ) -> Result<JoinHandle<T>, crate::error::Error>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        // SAFETY: `F` and `T` are `Send` and `'static`.
        unsafe { self.spawn_placed(f, name, stack_size, true, location) }
    }

    /// Says whether this worker is about to block with nothing to run.
    pub(crate) fn set_idle(&self, idle: bool) {
        if let Some(g) = self.group.get() {
            g.set_idle(self.shared.index, idle);
        }
    }
}

/// Makes a task for worker `target` on the calling thread (any thread) and
/// hands it over; `movable`: the target may hand it on to an idle worker.
pub(crate) fn spawn_remote<F, T>(
    target: &Arc<Shared>,
    f: F,
    name: Option<Arc<str>>,
    stack_size: usize,
    movable: bool,
    location: &'static std::panic::Location<'static>,
) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let runtime = target.counted_ref();
    let (task, handle) = Packet::<T>::allocate(
        |vtable| Core {
            // The key is set when the target adopts it.
            header: Header::new(name, u32::MAX, runtime, stack_size, vtable, location),
            coroutine: UnsafeCell::new(None),
            local: ThreadOwned::new(LocalState::new(Instant::now())),
        },
        f,
    );
    target.hand(vec![Incoming::Adopt { task, movable }]);
    handle
}
