//! Model checks (loom) of the protocols between threads: every interleaving
//! of a few threads, and the memory orderings, are explored, so a lost
//! wakeup shows as a deadlock, a missing happens-before as a data race on a
//! `loom::cell::UnsafeCell`, and a broken invariant as an assertion.
//!
//! The protocols are the library's own files, included here with a
//! `crate::loom` module that gives them loom's atomics and locks instead of
//! std's (they use nothing else of the crate):
//!
//! * the inject queue and the "sleeping" flag of a runtime, with a model of
//!   the poller's coalesced `notify` (`src/scheduler/inject.rs`);
//! * the join state of a task: result slot, join waiter, detach
//!   (`src/task/join_state.rs`);
//! * the waiter state of `corio::sync`: the select CAS and the
//!   single-queue hand-over (`src/sync/waiter/state.rs`);
//! * lazy registration of an fd with the first runtime that waits on it
//!   (`src/reactor/lazy.rs`);
//! * the hand-over of a task that never ran from its home worker to an idle
//!   one, with a cancel racing it (a model of `src/task/worker.rs`'s rules,
//!   on the inject queue above: that file uses the whole task layer).
//!
//! `cargo test` runs them with at most 2 preemptions per execution unless
//! `LOOM_MAX_PREEMPTIONS` says otherwise; CI runs them again with 3, and
//! its long run without a bound (`CORIO_LOOM_EXHAUSTIVE=1`, in release
//! mode; see docs/testing.md).

use std::sync::Arc as StdArc;

use ::loom::cell::UnsafeCell;
use ::loom::sync::atomic::{AtomicBool, Ordering};
use ::loom::sync::{Arc, Condvar, Mutex};
use ::loom::thread;

/// What the included files see as `crate::loom`.
mod loom {
    pub(crate) use ::loom::sync::Mutex;
    pub(crate) use ::loom::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

    pub(crate) use super::once::OnceLock;
}

/// `std::sync::OnceLock`, which loom lacks, on loom's primitives: readers
/// take the value with an `Acquire` load, the first initializer publishes it
/// with a `Release` store under a lock, later ones drop their closure.
mod once {
    use ::loom::sync::Mutex;
    use ::loom::sync::atomic::{AtomicPtr, Ordering};

    pub(crate) struct OnceLock<T> {
        value: AtomicPtr<T>,
        init: Mutex<()>,
    }

    impl<T> OnceLock<T> {
        pub(crate) fn new() -> Self {
            OnceLock {
                value: AtomicPtr::new(std::ptr::null_mut()),
                init: Mutex::new(()),
            }
        }

        pub(crate) fn get(&self) -> Option<&T> {
            // SAFETY: non-null only once set, to a box freed in `drop`.
            unsafe { self.value.load(Ordering::Acquire).as_ref() }
        }

        pub(crate) fn get_or_init(&self, f: impl FnOnce() -> T) -> &T {
            if let Some(v) = self.get() {
                return v;
            }
            let _init = self.init.lock().unwrap();
            if let Some(v) = self.get() {
                return v;
            }
            let p = Box::into_raw(Box::new(f()));
            self.value.store(p, Ordering::Release);
            // SAFETY: just made; freed only in `drop`.
            unsafe { &*p }
        }
    }

    impl<T> Drop for OnceLock<T> {
        fn drop(&mut self) {
            let p = self.value.load(Ordering::Acquire);
            if !p.is_null() {
                // SAFETY: made by `Box::into_raw` in `get_or_init`.
                drop(unsafe { Box::from_raw(p) });
            }
        }
    }
}

#[allow(dead_code)]
#[path = "../src/task/inject.rs"]
mod inject;
#[allow(dead_code)]
#[path = "../src/task/join_state.rs"]
mod join_state;
#[allow(dead_code)]
#[path = "../src/reactor/lazy.rs"]
mod lazy;
#[allow(dead_code)]
#[path = "../src/sync/waiter/state.rs"]
mod waiter_state;

use inject::Inject;
use join_state::{Completion, JoinState};
use waiter_state::WaiterState;

/// Runs `f` under loom, with at most 2 preemptions per execution unless
/// `LOOM_MAX_PREEMPTIONS` is set, or `CORIO_LOOM_EXHAUSTIVE` (no bound:
/// every interleaving).
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = ::loom::model::Builder::new();
    if std::env::var_os("LOOM_MAX_PREEMPTIONS").is_none()
        && std::env::var_os("CORIO_LOOM_EXHAUSTIVE").is_none()
    {
        builder.preemption_bound = Some(2);
    }
    builder.check(f);
}

// ---------------------------------------------------------------------------
// Inject queue, sleeping flag, notify.

/// The Linux poller (`src/poller.rs`) as far as wakeups go: `notify` writes
/// the eventfd only if no notification is pending; a `wait` returns once an
/// eventfd edge arrived (edge-triggered) and then clears `notified`. It
/// waits without a timeout: the runtime's periodic recheck is left out, so
/// that a lost wakeup is a deadlock here, not a one-second stall.
struct Poller {
    notified: AtomicBool,
    /// Eventfd writes not yet reported by a `wait`.
    edges: Mutex<usize>,
    edge: Condvar,
}

impl Poller {
    fn new() -> Poller {
        Poller {
            notified: AtomicBool::new(false),
            edges: Mutex::new(0),
            edge: Condvar::new(),
        }
    }

    fn notify(&self) {
        if !self.notified.swap(true, Ordering::AcqRel) {
            *self.edges.lock().unwrap() += 1;
            self.edge.notify_one();
        }
    }

    fn wait(&self) {
        let mut edges = self.edges.lock().unwrap();
        while *edges == 0 {
            edges = self.edge.wait(edges).unwrap();
        }
        *edges = 0;
        drop(edges);
        self.notified.swap(false, Ordering::AcqRel);
    }
}

/// One idle `Scheduler::poll_events`: take what was injected; if nothing
/// was, announce the sleep, block unless something came meanwhile, and take
/// again (flagged, then unflagged). Returns how many items it took.
fn poll_idle(inject: &Inject<usize>, poller: &Poller) -> usize {
    let woke = inject.take().len();
    if woke > 0 {
        return woke;
    }
    if inject.sleep() {
        poller.wait();
    }
    inject.awake();
    match inject.take().len() {
        0 => inject.take_unflagged().len(),
        n => n,
    }
}

#[test]
fn inject_wakes_a_sleeping_runtime() {
    model(|| {
        let inject = Arc::new(Inject::new());
        let poller = Arc::new(Poller::new());
        let producers: Vec<_> = (0..2)
            .map(|i| {
                let (inject, poller) = (inject.clone(), poller.clone());
                thread::spawn(move || {
                    if inject.push(i) {
                        poller.notify();
                    }
                })
            })
            .collect();
        let mut taken = 0;
        while taken < 2 {
            taken += poll_idle(&inject, &poller);
        }
        assert_eq!(taken, 2);
        for p in producers {
            p.join().unwrap();
        }
    });
}

// ---------------------------------------------------------------------------
// Join state.

/// A task's result slot and its join state, as in `task::Packet`.
struct Packet {
    result: UnsafeCell<Option<Value>>,
    join: JoinState<thread::Thread>,
}

/// A result that counts its drops.
struct Value(u32, StdArc<std::sync::atomic::AtomicUsize>);

impl Drop for Value {
    fn drop(&mut self) {
        self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Packet {
    fn new() -> Packet {
        Packet {
            result: UnsafeCell::new(None),
            join: JoinState::new(),
        }
    }

    /// `Packet::complete`: store, then publish.
    fn complete(&self, v: Value) {
        self.result.with_mut(|r| unsafe { *r = Some(v) });
        match self.join.complete() {
            Completion::Detached => drop(self.take()),
            Completion::Wake(Some(t)) => t.unpark(),
            Completion::Wake(None) => {}
        }
    }

    fn take(&self) -> Option<Value> {
        self.result.with_mut(|r| unsafe { (*r).take() })
    }

    /// `JoinHandle::join` outside a task: check, register, park.
    fn join(&self) -> Value {
        loop {
            if self.join.is_complete() {
                return self.take().expect("a result after COMPLETE");
            }
            if !self.join.set_waiter(thread::current()) {
                continue;
            }
            thread::park();
        }
    }
}

#[test]
fn join_state_join_sees_the_result() {
    model(|| {
        let drops = StdArc::new(std::sync::atomic::AtomicUsize::new(0));
        let packet = Arc::new(Packet::new());
        let task = {
            let (packet, drops) = (packet.clone(), drops.clone());
            thread::spawn(move || packet.complete(Value(7, drops)))
        };
        let v = packet.join();
        assert_eq!(v.0, 7);
        task.join().unwrap();
    });
}

#[test]
fn join_state_detach_drops_the_result_once() {
    model(|| {
        let drops = StdArc::new(std::sync::atomic::AtomicUsize::new(0));
        let packet = Arc::new(Packet::new());
        let task = {
            let (packet, drops) = (packet.clone(), drops.clone());
            thread::spawn(move || packet.complete(Value(7, drops)))
        };
        // The handle is dropped (`Packet::detach`).
        if packet.join.detach() {
            drop(packet.take());
        }
        task.join().unwrap();
        assert_eq!(drops.load(std::sync::atomic::Ordering::Relaxed), 1);
    });
}

#[test]
fn join_state_registered_joiner_then_detach() {
    model(|| {
        let drops = StdArc::new(std::sync::atomic::AtomicUsize::new(0));
        let packet = Arc::new(Packet::new());
        let task = {
            let (packet, drops) = (packet.clone(), drops.clone());
            thread::spawn(move || packet.complete(Value(7, drops)))
        };
        // A joiner registers, gives up (timeout), and drops the handle.
        let _ = packet.join.set_waiter(thread::current());
        if packet.join.detach() {
            drop(packet.take());
        }
        task.join().unwrap();
        assert_eq!(drops.load(std::sync::atomic::Ordering::Relaxed), 1);
    });
}

// ---------------------------------------------------------------------------
// Waiter state.

/// An owner's packet for one arm: where a waker hands over its message.
struct Slot(UnsafeCell<Option<u32>>);

impl Slot {
    fn put(&self, v: Option<u32>) {
        self.0.with_mut(|s| unsafe { *s = v });
    }
    fn take(&self) -> Option<u32> {
        self.0.with_mut(|s| unsafe { (*s).take() })
    }
}

/// A waiter on its owner's stack, with one packet per arm.
struct Owner {
    state: WaiterState,
    slots: [Slot; 2],
}

/// A waker of `queue` (a lock holding whether the owner's entry for `arm`
/// is queued): pops the entry, hands over its message, selects the owner,
/// or takes the message back if the owner no longer waits (waiter rule 2).
/// Returns whether its message was delivered.
fn wake_arm(owner: &Owner, queue: &Mutex<bool>, arm: usize) -> bool {
    let mut queued = queue.lock().unwrap();
    if !std::mem::take(&mut *queued) {
        return false;
    }
    owner.slots[arm].put(Some(arm as u32 + 10));
    if owner.state.try_select(arm) {
        return true;
    }
    assert_eq!(owner.slots[arm].take(), Some(arm as u32 + 10));
    false
}

/// A `select` over two queues whose owner gives up (a timeout) while both
/// wakers run: exactly one arm completes, or none and the owner's abort
/// succeeded; a selected arm's message is there for the owner to read.
#[test]
fn waiter_select_against_abort() {
    model(|| {
        let owner = Arc::new(Owner {
            state: WaiterState::new(true),
            slots: [Slot(UnsafeCell::new(None)), Slot(UnsafeCell::new(None))],
        });
        let queues = Arc::new([Mutex::new(true), Mutex::new(true)]);
        let wakers: Vec<_> = (0..2)
            .map(|arm| {
                let (owner, queues) = (owner.clone(), queues.clone());
                thread::spawn(move || wake_arm(&owner, &queues[arm], arm))
            })
            .collect();
        let received = match owner.state.abort() {
            Ok(()) => {
                // Remove our entries, under each lock (waiter rule 4).
                for q in queues.iter() {
                    *q.lock().unwrap() = false;
                }
                None
            }
            Err(arm) => Some((arm, owner.slots[arm].take())),
        };
        let delivered: Vec<bool> = wakers.into_iter().map(|w| w.join().unwrap()).collect();
        match received {
            None => assert_eq!(delivered, [false, false]),
            Some((arm, msg)) => {
                assert_eq!(msg, Some(arm as u32 + 10));
                assert!(delivered[arm] && !delivered[1 - arm]);
            }
        }
    });
}

/// A `select` whose owner waits: exactly one arm completes.
#[test]
fn waiter_select_exactly_one_arm() {
    model(|| {
        let owner = Arc::new(Owner {
            state: WaiterState::new(true),
            slots: [Slot(UnsafeCell::new(None)), Slot(UnsafeCell::new(None))],
        });
        let queues = Arc::new([Mutex::new(true), Mutex::new(true)]);
        let wakers: Vec<_> = (0..2)
            .map(|arm| {
                let (owner, queues) = (owner.clone(), queues.clone());
                thread::spawn(move || wake_arm(&owner, &queues[arm], arm))
            })
            .collect();
        let arm = loop {
            if let Some(arm) = owner.state.selected() {
                break arm;
            }
            thread::yield_now();
        };
        assert_eq!(owner.slots[arm].take(), Some(arm as u32 + 10));
        let delivered: Vec<bool> = wakers.into_iter().map(|w| w.join().unwrap()).collect();
        assert!(delivered[arm] && !delivered[1 - arm]);
    });
}

/// A single-queue waiter: the owner checks without the lock (`Acquire`),
/// then aborts under the lock; the waker selects under the lock. The
/// message is read only after a selection was seen.
#[test]
fn waiter_single_queue_hand_over() {
    model(|| {
        let owner = Arc::new(Owner {
            state: WaiterState::new(false),
            slots: [Slot(UnsafeCell::new(None)), Slot(UnsafeCell::new(None))],
        });
        let queue = Arc::new(Mutex::new(true));
        let waker = {
            let (owner, queue) = (owner.clone(), queue.clone());
            thread::spawn(move || wake_arm(&owner, &queue, 0))
        };
        let got = match owner.state.selected() {
            Some(arm) => Some(owner.slots[arm].take()),
            None => {
                let mut queued = queue.lock().unwrap();
                match owner.state.abort() {
                    Ok(()) => {
                        *queued = false;
                        None
                    }
                    Err(arm) => Some(owner.slots[arm].take()),
                }
            }
        };
        let delivered = waker.join().unwrap();
        assert_eq!(got.is_some(), delivered);
        if let Some(msg) = got {
            assert_eq!(msg, Some(10));
        }
    });
}

// ---------------------------------------------------------------------------
// Lazy registration.

/// A registration: which runtime made it.
struct Registration {
    runtime: usize,
}

/// Tasks of two runtimes wait on one fd for the first time at once: each
/// gets a registration of its own runtime, or is refused; never the other
/// runtime's (whose waiter lists it would touch from the wrong thread).
#[test]
fn lazy_registration_race_between_runtimes() {
    model(|| {
        let cell = Arc::new(crate::loom::OnceLock::new());
        let tasks: Vec<_> = (0..2)
            .map(|runtime| {
                let cell = cell.clone();
                thread::spawn(move || {
                    let got = lazy::get_or_make(
                        &cell,
                        |r: &Registration| r.runtime == runtime,
                        || Ok::<_, ()>(Registration { runtime }),
                    )
                    .unwrap();
                    if let Some(r) = got {
                        assert_eq!(r.runtime, runtime, "another runtime's registration");
                    }
                    got.is_some()
                })
            })
            .collect();
        let accepted: Vec<bool> = tasks.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(accepted.iter().filter(|a| **a).count(), 1);
    });
}

// ---------------------------------------------------------------------------
// Hand-over of a task that never ran to another worker (`src/task/worker.rs`,
// rules 1–4), with a cancel from a plain thread racing it.

/// What one worker sends another through its inject queue.
enum Handed {
    Wake,
    Adopt,
}

/// A worker's queue and poller.
struct Worker {
    inject: Inject<Handed>,
    poller: Poller,
}

impl Worker {
    fn new() -> Worker {
        Worker {
            inject: Inject::new(),
            poller: Poller::new(),
        }
    }

    fn push(&self, item: Handed) {
        if self.inject.push(item) {
            self.poller.notify();
        }
    }

    /// An idle poll: take what was pushed, blocking until something is.
    fn poll(&self) -> Vec<Handed> {
        loop {
            let got = self.inject.take();
            if !got.is_empty() {
                return got;
            }
            if self.inject.sleep() {
                self.poller.wait();
            }
            self.inject.awake();
            let got = self.inject.take_unflagged();
            if !got.is_empty() {
                return got;
            }
        }
    }
}

/// A task block: `worker` and `cancelled` are the header's atomics; `local`
/// is its thread-owned state (its `since`, the `notified` token),
/// which loom reports as a data race if two workers touch it unordered.
struct Moving {
    worker: ::loom::sync::atomic::AtomicUsize,
    cancelled: AtomicBool,
    local: UnsafeCell<(bool, bool)>,
}

#[test]
fn a_task_handed_to_another_worker_sees_a_racing_cancel() {
    model(|| {
        let home = Arc::new(Worker::new());
        let target = Arc::new(Worker::new());
        let task = Arc::new(Moving {
            worker: ::loom::sync::atomic::AtomicUsize::new(0),
            cancelled: AtomicBool::new(false),
            // (since: written by the worker it is on, notified)
            local: UnsafeCell::new((true, false)),
        });

        // A plain thread cancels: sets the flag, wakes through the home
        // (`Header::runtime`, the counted pointer).
        let canceller = {
            let (home, task) = (home.clone(), task.clone());
            thread::spawn(move || {
                task.cancelled.store(true, Ordering::Release);
                home.push(Handed::Wake);
            })
        };

        // The target: adopts the task, runs it to its first park, which
        // must see the cancellation or be woken for it.
        let worker_b = {
            let (target, task) = (target.clone(), task.clone());
            thread::spawn(move || {
                let mut adopted = false;
                loop {
                    for item in target.poll() {
                        match item {
                            Handed::Adopt => {
                                // SAFETY: loom's cell checks the access (a
                                // race fails the model).
                                task.local.with_mut(|l| unsafe { (*l).0 = true });
                                adopted = true;
                            }
                            // unpark_local: the task is Ready, so a token.
                            Handed::Wake => {
                                assert_eq!(task.worker.load(Ordering::Relaxed), 1);
                                // SAFETY: as above.
                                task.local.with_mut(|l| unsafe { (*l).1 = true });
                            }
                        }
                    }
                    if !adopted {
                        continue;
                    }
                    // The task runs: its park checks the flag, then the token.
                    if task.cancelled.load(Ordering::Acquire) {
                        return;
                    }
                    // SAFETY: as above.
                    let notified = task
                        .local
                        .with_mut(|l| unsafe { std::mem::replace(&mut (*l).1, false) });
                    if notified && task.cancelled.load(Ordering::Acquire) {
                        return;
                    }
                    // Parked: only a wake can end this (a lost one deadlocks).
                }
            })
        };

        // The home: hands the task over (rule 1–2), then drains its queue,
        // forwarding wakes for the task that left (rule 3).
        // SAFETY: as above.
        task.local.with_mut(|l| unsafe { (*l).0 = false });
        task.worker.store(1, Ordering::Release);
        target.push(Handed::Adopt);
        for item in home.poll() {
            match item {
                Handed::Wake if task.worker.load(Ordering::Acquire) == 0 => {
                    unreachable!("the home moved it")
                }
                Handed::Wake => target.push(Handed::Wake),
                Handed::Adopt => unreachable!(),
            }
        }
        canceller.join().unwrap();
        worker_b.join().unwrap();
    });
}
