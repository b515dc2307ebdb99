//! Waiters and wait queues: how every `corio::sync` primitive suspends a
//! caller and hands it a value, a lock or a permit.
//!
//! A caller that cannot proceed puts an entry in the primitive's
//! [`WaitQueue`] and parks. The entry points at a [`Waiter`] that lives on
//! the caller's own stack (no allocation per wait), with an arm number (a
//! `select` has several operations, each its arm) and a *packet*: where the
//! value travels (a channel slot) or what is asked for (permits).
//!
//! # Rules
//!
//! 1. A waiter's state is `WAITING`, `ABORTED` or `SELECTED(arm)`. It leaves
//!    `WAITING` exactly once per round: a waker *selects* it for one arm, or
//!    its owner *aborts* it (timeout, cancellation, or a `select` that found
//!    another arm ready). So exactly one arm of a `select` completes, and a
//!    wakeup is never spent on a waiter that already gave up: the waker sees
//!    it is no longer waiting and moves on to the next entry. A `select`
//!    waiter sits in several queues, under different locks, so both sides
//!    use a compare-and-swap; a single-operation waiter sits in one queue,
//!    and both sides change its state only under that queue's lock, with
//!    plain stores (the owner reads it without the lock, with `Acquire`).
//! 2. Queues are only touched under the primitive's lock. A waker pops
//!    an entry, performs the hand-over through the packet (writes the
//!    message, grants the lock), and only then selects the waiter; if the
//!    selection fails it undoes the hand-over. The release of the waiter
//!    state publishes the hand-over.
//! 3. The owner reads its packets only after it observed `SELECTED(arm)`
//!    (the waker is done with them), or while it holds that primitive's lock
//!    after it aborted (no waker is inside).
//! 4. An entry stays valid while it is in a queue: before its owner returns
//!    or unwinds it removes every entry it still has, under each lock (the
//!    registration guards do it on every exit path). A selected entry was
//!    already popped by its waker.
//! 5. Once a waiter is selected its owner may return at any moment, so the
//!    waker must not touch it after the CAS — except when the waiter is a
//!    task of the caller's own runtime thread, which cannot run before the
//!    caller suspends: such waiters are unparked at once; others get a clone
//!    of their [`Unparker`], unparked after the lock is released ([`Wake`]).
//! 6. Nothing under the lock runs user code: messages that must be dropped
//!    are moved out and dropped after unlocking.
#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::ptr::NonNull;
use std::time::Instant;

use super::spin::{SpinGuard, SpinLock};
use crate::task::WaitReason;
use crate::task::park::{Interrupt, UnparkRef, Unparker};

mod state;
use state::WaiterState;

/// A suspended caller, on its own stack (see the module rules).
///
/// `pub` only so that the sealed `select` traits can name it; not reachable
/// from outside the crate.
pub struct Waiter {
    state: WaiterState,
    unparker: UnparkRef,
}

impl Waiter {
    /// A waiter for one operation of the calling task or thread: its state
    /// changes only under the lock of the one queue it is in (rule 1).
    #[inline]
    pub(crate) fn new() -> Waiter {
        Waiter {
            state: WaiterState::new(false),
            unparker: UnparkRef::current(),
        }
    }

    /// A waiter that may sit in several queues at once (`select`).
    pub(crate) fn new_multi() -> Waiter {
        Waiter {
            state: WaiterState::new(true),
            unparker: UnparkRef::current(),
        }
    }

    /// Starts a new round. Only when no queue holds an entry of it.
    pub(crate) fn reset(&self) {
        self.state.reset();
    }

    /// The arm it was selected for, if any.
    #[inline]
    pub(crate) fn selected(&self) -> Option<usize> {
        self.state.selected()
    }

    /// Whether it still waits (not yet selected nor aborted).
    pub(crate) fn is_waiting(&self) -> bool {
        self.state.is_waiting()
    }

    /// Gives up waiting. `Err(arm)` if a waker selected it first: that arm's
    /// operation completed and must be honoured. A single-operation waiter
    /// must hold its queue's lock (rule 1).
    #[inline]
    pub(crate) fn abort(&self) -> Result<(), usize> {
        self.state.abort()
    }

    #[inline]
    fn try_select(&self, arm: usize) -> bool {
        self.state.try_select(arm)
    }

    /// An owned unparker for the owner's task or thread (for primitives
    /// outside this protocol, like a `JoinHandle`). Only the owner calls it.
    pub(crate) fn owned_unparker(&self) -> Unparker {
        // SAFETY: called by the owner, which is running, so alive.
        unsafe { self.unparker.to_unparker() }
    }

    /// Parks until selected (`Ok(arm)`; its entry is gone) or interrupted
    /// (`Err`; not aborted: its entries may still be queued). Spurious
    /// wakeups are absorbed. Inlined down to the stack switch (see
    /// `crate::task::park::yield_now` for why).
    #[inline(always)]
    pub(crate) fn wait(
        &self,
        reason: WaitReason,
        deadline: Option<Instant>,
    ) -> Result<usize, Interrupt> {
        loop {
            if let Some(arm) = self.selected() {
                return Ok(arm);
            }
            crate::task::park::park(reason, deadline)?;
        }
    }

    /// Parks once: `Ok(Some(arm))` if selected, `Ok(None)` on any other
    /// wakeup (which a `select` re-checks), `Err` if interrupted.
    pub(crate) fn wait_once(
        &self,
        reason: WaitReason,
        deadline: Option<Instant>,
    ) -> Result<Option<usize>, Interrupt> {
        if let Some(arm) = self.selected() {
            return Ok(Some(arm));
        }
        crate::task::park::park(reason, deadline)?;
        Ok(self.selected())
    }
}

/// A wakeup to deliver after the primitive's lock is released (rule 5).
///
/// `pub` only so that the sealed `select` traits can name it; not reachable
/// from outside the crate.
#[must_use = "a Wake must be delivered with `wake()`"]
pub struct Wake(Option<Unparker>);

impl Wake {
    #[inline]
    pub(crate) fn wake_opt(w: Option<Wake>) {
        if let Some(w) = w {
            w.wake();
        }
    }

    #[inline]
    pub(crate) fn wake(self) {
        if let Some(u) = self.0 {
            u.unpark();
        }
    }
}

/// Wakes that several entries collected under one lock (disconnection,
/// `notify_all`), delivered after unlocking.
#[derive(Default)]
#[must_use = "Wakes must be delivered with `wake()`"]
pub(crate) struct Wakes(Vec<Unparker>);

impl Wakes {
    pub(crate) fn push(&mut self, w: Wake) {
        if let Some(u) = w.0 {
            self.0.push(u);
        }
    }

    pub(crate) fn wake(self) {
        for u in self.0 {
            u.unpark();
        }
    }
}

/// Selects `w` for `arm` and wakes it (rules 1 and 5). `None` if it no
/// longer waits. Call with the lock of the queue `w` was popped from held,
/// after the hand-over.
#[inline]
pub(crate) fn select(w: &Waiter, arm: usize) -> Option<Wake> {
    // SAFETY: `w` was queued until now and we hold the lock, so its owner is
    // still waiting (rule 4); a task of this thread stays so after the
    // selection until we suspend (rule 5).
    match unsafe { w.unparker.unpark_local_if(|| w.try_select(arm)) } {
        Some(true) => Some(Wake(None)),
        Some(false) => None,
        None => {
            // SAFETY: as above.
            let u = unsafe { w.unparker.to_unparker() };
            w.try_select(arm).then_some(Wake(Some(u)))
        }
    }
}

struct Entry<P> {
    waiter: NonNull<Waiter>,
    arm: usize,
    packet: P,
}

/// A FIFO of waiters (see the module rules). Lives inside the primitive's
/// lock.
pub(crate) struct WaitQueue<P> {
    entries: VecDeque<Entry<P>>,
}

// SAFETY: the entries' pointers are only dereferenced under the primitive's
// lock while the entry is queued (rules 2–4); the pointees are `Sync`
// (atomics and an `Unparker`), and packets are only used as the primitive's
// protocol allows, whichever thread holds the lock.
unsafe impl<P: Send> Send for WaitQueue<P> {}
// SAFETY: as above; shared access does not touch the entries.
unsafe impl<P: Send> Sync for WaitQueue<P> {}

impl<P> Default for WaitQueue<P> {
    fn default() -> Self {
        WaitQueue {
            entries: VecDeque::new(),
        }
    }
}

impl<P> WaitQueue<P> {
    pub(crate) const fn new() -> WaitQueue<P> {
        WaitQueue {
            entries: VecDeque::new(),
        }
    }
}

impl<P: Copy> WaitQueue<P> {
    /// Queues `waiter` for `arm`.
    ///
    /// # Safety
    ///
    /// `waiter`, and whatever `packet` points to, must stay where they are
    /// until this entry is removed with [`remove`](Self::remove) or popped by
    /// a waker (rule 4).
    pub(crate) unsafe fn push(&mut self, waiter: &Waiter, arm: usize, packet: P) {
        self.entries.push_back(Entry {
            waiter: NonNull::from(waiter),
            arm,
            packet,
        });
    }

    /// Removes the entry of `waiter` for `arm`, if still queued.
    pub(crate) fn remove(&mut self, waiter: &Waiter, arm: usize) -> bool {
        let me = NonNull::from(waiter);
        match self
            .entries
            .iter()
            .position(|e| e.waiter == me && e.arm == arm)
        {
            Some(i) => {
                self.entries.remove(i);
                true
            }
            None => false,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether an entry of another waiter than `me` still waits.
    pub(crate) fn has_live(&self, me: Option<&Waiter>) -> bool {
        let me = me.map(NonNull::from);
        self.entries.iter().any(|e| {
            // SAFETY: queued entries are valid (rule 4) and we hold the lock.
            Some(e.waiter) != me && unsafe { e.waiter.as_ref() }.is_waiting()
        })
    }

    /// Pops entries from the front and offers each to `f` until `f` returns
    /// `Some` (it selected that waiter). Entries `f` declines were dead
    /// (their waiter gave up or was selected elsewhere) and are dropped.
    pub(crate) fn pop_select<R>(
        &mut self,
        mut f: impl FnMut(&Waiter, usize, P) -> Option<R>,
    ) -> Option<R> {
        while let Some(e) = self.entries.pop_front() {
            // SAFETY: the entry was queued until just now and we still hold
            // the lock, so its waiter cannot have left (rule 4).
            let w = unsafe { e.waiter.as_ref() };
            if let Some(r) = f(w, e.arm, e.packet) {
                return Some(r);
            }
        }
        None
    }

    /// The first entry whose waiter still waits, dropping dead ones before
    /// it. For primitives that must look at the request before granting it.
    pub(crate) fn peek_live<R>(&mut self, f: impl FnOnce(&Waiter, usize, P) -> R) -> Option<R> {
        while let Some(e) = self.entries.front() {
            // SAFETY: as in `pop_select`.
            let w = unsafe { e.waiter.as_ref() };
            if w.is_waiting() {
                return Some(f(w, e.arm, e.packet));
            }
            self.entries.pop_front();
        }
        None
    }

    /// Selects every entry whose waiter still waits (each for the arm it
    /// queued for) and pops them all; their wakeups go to `wakes`, to be
    /// delivered once the lock is released (rule 5).
    pub(crate) fn select_all(&mut self, wakes: &mut Wakes) {
        self.drain(|w, arm, _| {
            if let Some(wake) = select(w, arm) {
                wakes.push(wake);
            }
        });
    }

    /// Pops every entry, offering each to `f` (which selects it or not).
    pub(crate) fn drain(&mut self, mut f: impl FnMut(&Waiter, usize, P)) {
        while let Some(e) = self.entries.pop_front() {
            // SAFETY: as in `pop_select`.
            f(unsafe { e.waiter.as_ref() }, e.arm, e.packet);
        }
    }
}

/// Removes a [`wait_in`] caller's entry unless a waker selected it, then
/// runs the primitive's `on_abort` under the lock (waiter rule 4).
struct Queued<'a, S, P: Copy> {
    lock: &'a SpinLock<S>,
    waiter: &'a Waiter,
    queue: fn(&mut S) -> &mut WaitQueue<P>,
    on_abort: fn(&mut S) -> Wakes,
}

impl<S, P: Copy> Drop for Queued<'_, S, P> {
    fn drop(&mut self) {
        let mut st = self.lock.lock();
        let wakes = if self.waiter.abort().is_ok() {
            (self.queue)(&mut st).remove(self.waiter, 0);
            (self.on_abort)(&mut st)
        } else {
            Wakes::default()
        };
        drop(st);
        wakes.wake();
    }
}

/// The blocking path of the lock-like primitives.
///
/// The caller holds `held` (the guard of `lock`) and found it must wait.
/// This queues it with `packet` in the queue `queue` picks, releases the
/// lock, runs `before_wait` (a condition variable unlocks its mutex there),
/// and parks until a waker selects it — `Ok`: what it waited for was handed
/// over (a lock, permits, a notification; `Ok` holds the arm the waker
/// selected it for, 0 unless the primitive uses arms to say what happened)
/// — or it is interrupted — `Err`:
/// it left the queue, and `on_abort` ran under the lock so that those behind
/// it are not held up by a waiter that is gone.
///
/// Never inlined: it is the slow path of every lock-like primitive, and
/// inlined into a fast path (LLVM did so into `Mutex::lock` once other
/// callers changed) it costs that path register saves — 4 instructions per
/// uncontended lock + unlock.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
pub(crate) fn wait_in<S, P: Copy>(
    lock: &SpinLock<S>,
    mut held: SpinGuard<'_, S>,
    queue: fn(&mut S) -> &mut WaitQueue<P>,
    packet: P,
    reason: WaitReason,
    deadline: Option<Instant>,
    before_wait: impl FnOnce(),
    on_abort: fn(&mut S) -> Wakes,
) -> Result<usize, Interrupt> {
    let waiter = Waiter::new();
    // SAFETY: `waiter` lives in this frame, and `Queued` removes the entry
    // on every exit but a selection, which pops it.
    unsafe { queue(&mut held).push(&waiter, 0, packet) };
    drop(held);
    let queued = Queued {
        lock,
        waiter: &waiter,
        queue,
        on_abort,
    };
    before_wait();
    match waiter.wait(reason, deadline) {
        Ok(arm) => {
            // Selected: the waker popped the entry.
            std::mem::forget(queued);
            Ok(arm)
        }
        Err(i) => {
            drop(queued);
            // A waker may have selected us just before we aborted: then the
            // hand-over happened and must be honoured.
            match waiter.selected() {
                Some(arm) => {
                    completed_anyway(i);
                    Ok(arm)
                }
                None => Err(i),
            }
        }
    }
}

/// A wait that `park` interrupted, but whose waiter a waker selected just
/// before it gave up: the operation completed and returns normally, so a
/// cancellation is not reported now — it stays pending, for the next call —
/// and an expired `timeout` scope does not count it as interrupted.
pub(crate) fn completed_anyway(i: Interrupt) {
    match i {
        Interrupt::Cancelled => crate::task::park::unobserve_cancel(),
        Interrupt::TimedOut => crate::task::park::unobserve_timeout(),
        Interrupt::Unwinding => {}
    }
}

/// The blocking path of the event-like primitives (`Notify`, `Event`,
/// `WaitGroup`): a cancellation point that returns at once if `done` finds
/// what it waits for has happened (it may consume it, like a `Notify`
/// permit), and otherwise queues in `queue` and parks until a waker selects
/// it.
pub(crate) fn wait_event<S>(
    lock: &SpinLock<S>,
    queue: fn(&mut S) -> &mut WaitQueue<()>,
    done: impl FnOnce(&mut S) -> bool,
    deadline: Option<Instant>,
) -> Result<(), Interrupt> {
    enter()?;
    let mut held = lock.lock();
    if done(&mut held) {
        return Ok(());
    }
    wait_in(
        lock,
        held,
        queue,
        (),
        crate::task::WaitReason::Event,
        deadline,
        || {},
        |_| Wakes::default(),
    )
    .map(|_| ())
}

/// The result of a `wait_timeout` of an event-like primitive: `true` if it
/// was woken, `false` if its time ran out; a cancellation unwinds.
pub(crate) fn woken_in_time(waited: Result<(), Interrupt>) -> bool {
    match waited {
        Ok(()) => true,
        Err(i) => {
            timed_out(i);
            false
        }
    }
}

/// The check every call that may wait makes on entry, even when it would
/// not have to wait: a pending cancellation (or an expired enclosing
/// `timeout`) fails it, so a task whose channel never runs dry, or whose
/// lock is never contended, still notices it was cancelled.
#[inline]
pub(crate) fn enter() -> Result<(), Interrupt> {
    crate::task::park::check_current(None)
}

/// [`enter`], also returning who the caller is for a lock's holder record
/// (`LockOwner::set`), from the same lookup.
#[inline]
pub(crate) fn enter_as_holder() -> Result<*const (), Interrupt> {
    crate::task::park::check_current_task(None)
}

/// For blocking calls with no error to report an interruption through
/// (`lock`, `acquire`, `wait`): unwinds on cancellation or an expired
/// enclosing `timeout`, and panics when the task is unwinding already (it
/// cannot suspend; see the cancellation docs of `corio::task`).
pub(crate) fn unwind_for(i: Interrupt, what: &str) -> ! {
    crate::task::park::unwind_for_call(i, what)
}

/// For calls with a timeout: `Err` is "timed out" unless cancelled, which
/// unwinds.
pub(crate) fn timed_out(i: Interrupt) {
    if i == Interrupt::Cancelled {
        crate::task::park::unwind_for(i)
    }
}
