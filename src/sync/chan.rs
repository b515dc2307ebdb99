//! The channel shared by `mpsc`, `mpmc` and `oneshot`: a buffer, the counts
//! of senders and receivers, and a wait queue for each side, all behind one
//! spin lock (see [`waiter`](super::waiter) for the waiting rules).
//!
//! # Rules
//!
//! 1. A message goes to the oldest live receiver waiter first, straight into
//!    its slot; only when none waits does it go to the buffer. So a live
//!    receiver waiter implies an empty buffer, and messages keep their
//!    order.
//! 2. A sender waits, its message in its slot, when the buffer is full
//!    (capacity 0: always, until a receiver takes the message from the
//!    slot). A receiver that frees a place moves the oldest waiting sender's
//!    message into the buffer and wakes that sender: FIFO for senders too,
//!    and the woken sender has nothing left to do.
//! 3. When the last sender goes, waiting receivers are selected without a
//!    message and retry (they see the disconnection); when the last receiver
//!    goes, buffered messages are dropped (outside the lock, every one even
//!    if a destructor panics: `drop_messages`) and waiting
//!    senders are selected with their message still in their slot, which
//!    they get back in their error.
//! 4. Blocking calls that cannot complete under the lock register and park
//!    in the same critical section that found the channel empty or full, so
//!    no wakeup can fall between the check and the registration.
#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::fmt;
use std::mem;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use super::error::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
use super::spin::{SpinGuard, SpinLock};
use super::waiter::{self, WaitQueue, Waiter, Wake, Wakes};
use crate::task::WaitReason;
use crate::task::park::Interrupt;

mod fail;
mod slot;
use fail::Refused;
pub(crate) use fail::{RecvFail, SendFail};
pub use slot::Slot;
use slot::SlotPtr;

struct State<T> {
    buf: VecDeque<T>,
    /// `usize::MAX` for an unbounded channel.
    cap: usize,
    tx_gone: bool,
    rx_gone: bool,
    recvq: WaitQueue<SlotPtr<T>>,
    sendq: WaitQueue<SlotPtr<T>>,
}

/// The shared channel. `pub` only for the sealed `select` traits.
pub struct Chan<T> {
    state: SpinLock<State<T>>,
    senders: AtomicUsize,
    receivers: AtomicUsize,
    /// Sends never wait, so they are not cancellation points.
    unbounded: bool,
}

/// Drops the messages left in a channel whose last receiver is gone.
///
/// A message's destructor may panic. Every message is dropped all the same
/// (in a plain `VecDeque` a second panic would abort the process), and the
/// first panic then continues out of the drop of the last receiver; the
/// others were reported by the panic hook and are discarded. A thread that
/// is unwinding already keeps unwinding with its own panic.
fn drop_messages<T>(buf: VecDeque<T>) {
    if !mem::needs_drop::<T>() {
        return;
    }
    let mut first = None;
    for m in buf {
        if let Err(p) = panic::catch_unwind(AssertUnwindSafe(|| drop(m))) {
            first.get_or_insert(p);
        }
    }
    if let Some(p) = first
        && !std::thread::panicking()
    {
        panic::resume_unwind(p);
    }
}

/// Which queue a registration is in.
#[derive(Clone, Copy)]
enum Side {
    Send,
    Recv,
}

/// Removes a waiter's entry when a blocking call leaves by any path but a
/// selection (timeout, cancellation, forced unwind) — waiter rule 4.
struct Registration<'a, T> {
    chan: &'a Chan<T>,
    waiter: &'a Waiter,
    side: Side,
}

impl<T> Drop for Registration<'_, T> {
    fn drop(&mut self) {
        // Abort under the lock (a single-operation waiter's rule); if a
        // waker selected us first, it already popped the entry.
        let mut st = self.chan.state.lock();
        if self.waiter.abort().is_ok() {
            match self.side {
                Side::Send => st.sendq.remove(self.waiter, 0),
                Side::Recv => st.recvq.remove(self.waiter, 0),
            };
        }
    }
}

impl<T> Chan<T> {
    /// A channel holding up to `cap` messages (`None`: unbounded), with one
    /// sender and one receiver.
    pub(crate) fn new(cap: Option<usize>) -> Chan<T> {
        Chan {
            state: SpinLock::new(State {
                buf: VecDeque::new(),
                cap: cap.unwrap_or(usize::MAX),
                tx_gone: false,
                rx_gone: false,
                recvq: WaitQueue::default(),
                sendq: WaitQueue::default(),
            }),
            senders: AtomicUsize::new(1),
            receivers: AtomicUsize::new(1),
            unbounded: cap.is_none(),
        }
    }

    pub(crate) fn capacity(&self) -> Option<usize> {
        let cap = self.state.lock().cap;
        (cap != usize::MAX).then_some(cap)
    }

    pub(crate) fn len(&self) -> usize {
        self.state.lock().buf.len()
    }

    /// Whether every receiver is gone.
    pub(crate) fn is_rx_gone(&self) -> bool {
        self.state.lock().rx_gone
    }

    pub(crate) fn add_sender(&self) {
        self.senders.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_receiver(&self) {
        self.receivers.fetch_add(1, Ordering::Relaxed);
    }

    /// A sender handle is dropped; the last one disconnects (rule 3).
    pub(crate) fn drop_sender(&self) {
        if self.senders.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        let mut wakes = Wakes::default();
        let mut st = self.state.lock();
        st.tx_gone = true;
        st.recvq.select_all(&mut wakes);
        drop(st);
        wakes.wake();
    }

    /// A receiver handle is dropped; the last one disconnects (rule 3).
    pub(crate) fn drop_receiver(&self) {
        if self.receivers.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        let mut wakes = Wakes::default();
        let mut st = self.state.lock();
        st.rx_gone = true;
        let buf = mem::take(&mut st.buf);
        st.sendq.select_all(&mut wakes);
        drop(st);
        wakes.wake();
        drop_messages(buf);
    }

    /// Sends the message in `slot` if it can without waiting: to the oldest
    /// live receiver waiter, else into the buffer. The message moves only
    /// to its destination; refused, it stays in `slot`.
    #[inline(always)]
    fn send_locked(st: &mut State<T>, slot: &Slot<T>) -> Result<Option<Wake>, Refused> {
        if st.rx_gone {
            return Err(Refused::Disconnected);
        }
        // Rule 1: the oldest live receiver takes it.
        let wake = st.recvq.pop_select(|w, arm, theirs| {
            // SAFETY: popped under the lock (waiter rule 2).
            let theirs = unsafe { theirs.get() };
            // SAFETY: we hold the lock and the entry was queued; `slot` is
            // the sender's own, not registered anywhere. A receiver's slot
            // is empty while it waits.
            unsafe { slot.move_to(theirs) };
            match waiter::select(w, arm) {
                Some(wake) => Some(wake),
                None => {
                    // It gave up: undo the hand-over.
                    // SAFETY: as above; the failed selection means the owner
                    // will only look at its slot under this lock.
                    unsafe { theirs.move_to(slot) };
                    None
                }
            }
        });
        if wake.is_some() {
            return Ok(wake);
        }
        if st.buf.len() < st.cap {
            // SAFETY: the sender's own slot, as above.
            let v = unsafe { slot.take() };
            st.buf.push_back(v.expect("message not handed over"));
            Ok(None)
        } else {
            Err(Refused::Full)
        }
    }

    /// Receives a message into `slot` (the receiver's own, empty) if one
    /// is there, moving it only once, from the buffer or a waiting
    /// sender's slot.
    #[inline(always)]
    fn recv_locked(st: &mut State<T>, slot: &Slot<T>) -> Result<Option<Wake>, TryRecvError> {
        let State {
            buf,
            sendq,
            tx_gone,
            ..
        } = st;
        if buf.is_empty() && sendq.is_empty() {
            // The common "must wait" case, without trying to pop.
            return Err(if *tx_gone {
                TryRecvError::Disconnected
            } else {
                TryRecvError::Empty
            });
        }
        if let Some(v) = buf.pop_front() {
            // SAFETY: the receiver's own slot, registered nowhere.
            unsafe { slot.put(v) };
            // Rule 2: a place is free; let the oldest waiting sender in.
            let wake = if sendq.is_empty() {
                None
            } else {
                sendq.pop_select(|w, arm, theirs| {
                    // SAFETY: popped under the lock (waiter rule 2).
                    let theirs = unsafe { theirs.get() };
                    // SAFETY: we hold the lock and the entry was queued.
                    let m = unsafe { theirs.take() }?;
                    match waiter::select(w, arm) {
                        Some(wake) => {
                            buf.push_back(m);
                            Some(wake)
                        }
                        None => {
                            // SAFETY: as above.
                            unsafe { theirs.put(m) };
                            None
                        }
                    }
                })
            };
            return Ok(wake);
        }
        // Empty buffer: take straight from a waiting (rendezvous) sender.
        let wake = sendq.pop_select(|w, arm, theirs| {
            // SAFETY: popped under the lock (waiter rule 2).
            let theirs = unsafe { theirs.get() };
            // SAFETY: we hold the lock and the entry was queued; our slot
            // is ours and empty.
            if unsafe { theirs.is_empty() } {
                return None;
            }
            // SAFETY: as above.
            unsafe { theirs.move_to(slot) };
            match waiter::select(w, arm) {
                Some(wake) => Some(wake),
                None => {
                    // SAFETY: as above.
                    unsafe { slot.move_to(theirs) };
                    None
                }
            }
        });
        match wake {
            Some(wake) => Ok(Some(wake)),
            None if *tx_gone => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }

    pub(crate) fn try_send(&self, v: T) -> Result<(), TrySendError<T>> {
        let slot = Slot::new(Some(v));
        let r = Self::send_locked(&mut self.state.lock(), &slot);
        match r {
            Ok(wake) => {
                Wake::wake_opt(wake);
                Ok(())
            }
            Err(refused) => Err(refused.try_send_error(&slot)),
        }
    }

    pub(crate) fn try_recv(&self) -> Result<T, TryRecvError> {
        let slot = Slot::new(None);
        let r = Self::recv_locked(&mut self.state.lock(), &slot);
        r.map(|wake| {
            Wake::wake_opt(wake);
            slot.take_message()
        })
    }

    /// Sends `v`, waiting while the channel is full until `deadline` (or an
    /// enclosing `timeout`), a cancellation, or the receivers going away.
    ///
    /// Inlined into the caller down to the stack switch — a switch made
    /// inside a called function costs return mispredictions on every
    /// resume (see `crate::task::park::yield_now`); this halved a ping-pong round
    /// trip. Only the registration and the wait are inline: a send that
    /// need not wait, and the rare paths after a wakeup, are calls that
    /// return before any switch.
    ///
    /// The message goes into one slot here and stays there until it moves
    /// to its destination (a receiver's slot or the buffer): the layers
    /// below take the slot by reference and a waiting sender registers that
    /// same slot, so a large message is not copied on the stack layer after
    /// layer (a 32 KiB message fits a task's default stack).
    ///
    /// A failure is turned into the caller's error by `into`, out of line.
    #[inline(always)]
    pub(crate) fn send<E>(
        &self,
        v: T,
        deadline: Option<Instant>,
        into: fn(SendFail<T>) -> E,
    ) -> Result<(), E> {
        let slot = Slot::new(Some(v));
        match self.send_from(&slot, deadline) {
            Ok(()) => Ok(()),
            Err(refused) => Err(refused.send_fail(&slot, into)),
        }
    }

    /// [`send`](Self::send) of the message in `slot`.
    #[inline(always)]
    fn send_from(&self, slot: &Slot<T>, deadline: Option<Instant>) -> Result<(), Refused> {
        let Some(st) = self.send_or_lock(slot, true)? else {
            return Ok(());
        };
        if self.send_wait(st, slot, deadline)? {
            Ok(())
        } else {
            self.send_slow(slot, deadline)
        }
    }

    /// The start of a send: the entry check (with `enter`), then the send if
    /// it need not wait (`None`); otherwise the locked state to register in.
    fn send_or_lock(
        &self,
        slot: &Slot<T>,
        enter: bool,
    ) -> Result<Option<SpinGuard<'_, State<T>>>, Refused> {
        if enter
            && !self.unbounded
            && let Err(i) = waiter::enter()
        {
            return Err(Refused::Interrupted(i));
        }
        let mut st = self.state.lock();
        match Self::send_locked(&mut st, slot) {
            Ok(wake) => {
                drop(st);
                Wake::wake_opt(wake);
                Ok(None)
            }
            Err(Refused::Full) => Ok(Some(st)),
            Err(refused) => Err(refused),
        }
    }

    /// Registers a sender that must wait (its state locked in `st`) with its
    /// own `slot`, and waits once: `true` when a receiver took the message,
    /// `false` when it was handed back (the receivers went away: try again).
    #[inline(always)]
    fn send_wait(
        &self,
        mut st: SpinGuard<'_, State<T>>,
        slot: &Slot<T>,
        deadline: Option<Instant>,
    ) -> Result<bool, Refused> {
        let waiter = Waiter::new();
        // SAFETY: `waiter` and `slot` outlive the registration (the slot is
        // the caller's, alive until `send` returns), whose guard removes the
        // entry on every exit but a selection.
        unsafe { st.sendq.push(&waiter, 0, SlotPtr::new(slot)) };
        drop(st);
        let reg = Registration {
            chan: self,
            waiter: &waiter,
            side: Side::Send,
        };
        let woken = waiter.wait(WaitReason::Channel, deadline);
        if woken.is_ok() {
            // The waker popped our entry: nothing to remove.
            mem::forget(reg);
            // SAFETY: selected: the slot is ours again. Empty: taken.
            if unsafe { slot.is_empty() } {
                return Ok(true);
            }
        } else {
            drop(reg);
        }
        Self::send_after_wake(woken, &waiter, slot)
    }

    /// The end of a send's wait that did not simply see its message taken:
    /// interrupted, or selected without it being taken.
    #[cold]
    fn send_after_wake(
        woken: Result<usize, Interrupt>,
        waiter: &Waiter,
        slot: &Slot<T>,
    ) -> Result<bool, Refused> {
        match (woken, waiter.selected()) {
            // Aborted and unregistered under the lock: the unsent message
            // stays in the slot.
            (Err(i), None) => return Err(Refused::Interrupted(i)),
            (Err(i), Some(_)) => waiter::completed_anyway(i),
            (Ok(_), _) => {}
        }
        // SAFETY: selected: the slot is ours again.
        Ok(unsafe { slot.is_empty() })
    }

    /// Sends again, without the entry check, after the message came back
    /// (the receivers went away: it returns at once).
    #[inline(never)]
    fn send_slow(&self, slot: &Slot<T>, deadline: Option<Instant>) -> Result<(), Refused> {
        loop {
            let Some(st) = self.send_or_lock(slot, false)? else {
                return Ok(());
            };
            if self.send_wait(st, slot, deadline)? {
                return Ok(());
            }
        }
    }

    /// Receives a message, waiting while the channel is empty until
    /// `deadline` (or an enclosing `timeout`), a cancellation, or the
    /// senders going away; a failure is turned into the caller's error by
    /// `into`.
    ///
    /// Inlined down to the stack switch, as [`send`](Self::send) is, and,
    /// like it, with the message moved once into one slot here (the buffer
    /// or a sender moves it there; a waiting receiver registers that same
    /// slot), and from there into the return value.
    #[inline(always)]
    pub(crate) fn recv<E>(
        &self,
        deadline: Option<Instant>,
        into: fn(RecvFail) -> E,
    ) -> Result<T, E> {
        let slot = Slot::new(None);
        match self.recv_into(&slot, deadline) {
            Ok(()) => Ok(slot.take_message()),
            Err(fail) => Err(into(fail)),
        }
    }

    /// [`recv`](Self::recv) into `slot`.
    #[inline(always)]
    fn recv_into(&self, slot: &Slot<T>, deadline: Option<Instant>) -> Result<(), RecvFail> {
        let Some(st) = self.recv_or_lock(slot, true)? else {
            return Ok(());
        };
        if self.recv_wait(st, slot, deadline)? {
            Ok(())
        } else {
            self.recv_slow(slot, deadline)
        }
    }

    /// The start of a receive: the entry check (with `enter`), then a
    /// message into `slot` if one is there (`None`); otherwise the locked
    /// state to register in.
    fn recv_or_lock(
        &self,
        slot: &Slot<T>,
        enter: bool,
    ) -> Result<Option<SpinGuard<'_, State<T>>>, RecvFail> {
        if enter {
            waiter::enter().map_err(RecvFail::Interrupted)?;
        }
        let mut st = self.state.lock();
        match Self::recv_locked(&mut st, slot) {
            Ok(wake) => {
                drop(st);
                Wake::wake_opt(wake);
                Ok(None)
            }
            Err(TryRecvError::Disconnected) => Err(RecvFail::Disconnected),
            Err(TryRecvError::Empty) => Ok(Some(st)),
        }
    }

    /// Registers a receiver that must wait (its state locked in `st`) with
    /// its own empty `slot`, and waits once: `true` when a message arrived
    /// in the slot, `false` when it was woken without one (the senders went
    /// away: try again).
    #[inline(always)]
    fn recv_wait(
        &self,
        mut st: SpinGuard<'_, State<T>>,
        slot: &Slot<T>,
        deadline: Option<Instant>,
    ) -> Result<bool, RecvFail> {
        let waiter = Waiter::new();
        // SAFETY: `waiter` and `slot` outlive the registration (the slot is
        // the caller's, alive until `recv` returns), whose guard removes the
        // entry on every exit but a selection.
        unsafe { st.recvq.push(&waiter, 0, SlotPtr::new(slot)) };
        drop(st);
        let reg = Registration {
            chan: self,
            waiter: &waiter,
            side: Side::Recv,
        };
        let woken = waiter.wait(WaitReason::Channel, deadline);
        if woken.is_ok() {
            // The waker popped our entry: nothing to remove.
            mem::forget(reg);
            // SAFETY: selected: the slot is ours again.
            if !unsafe { slot.is_empty() } {
                return Ok(true);
            }
        } else {
            drop(reg);
        }
        Self::recv_after_wake(woken, &waiter, slot)
    }

    /// The end of a receive's wait that did not simply bring a message:
    /// interrupted, or selected without one.
    #[cold]
    fn recv_after_wake(
        woken: Result<usize, Interrupt>,
        waiter: &Waiter,
        slot: &Slot<T>,
    ) -> Result<bool, RecvFail> {
        match (woken, waiter.selected()) {
            (Err(i), None) => return Err(RecvFail::Interrupted(i)),
            (Err(i), Some(_)) => waiter::completed_anyway(i),
            (Ok(_), _) => {}
        }
        // SAFETY: selected: the slot is ours again.
        Ok(!unsafe { slot.is_empty() })
    }

    /// Receives again, without the entry check, after a wakeup that brought
    /// no message (the senders went away: it returns at once).
    #[inline(never)]
    fn recv_slow(&self, slot: &Slot<T>, deadline: Option<Instant>) -> Result<(), RecvFail> {
        loop {
            let Some(st) = self.recv_or_lock(slot, false)? else {
                return Ok(());
            };
            if self.recv_wait(st, slot, deadline)? {
                return Ok(());
            }
        }
    }

    /// `try_select` support: the channel's lock, held across the arms of
    /// one `try_select` so that it sees all of them at one instant.
    pub(crate) fn lock_raw(&self) {
        self.state.lock_raw();
    }

    /// `try_select` support: where the lock is, the order in which a
    /// caller takes several.
    pub(crate) fn lock_key(&self) -> usize {
        std::ptr::from_ref(&self.state).addr()
    }

    /// `try_select` support: releases [`lock_raw`](Self::lock_raw).
    ///
    /// # Safety
    ///
    /// The caller took the lock with `lock_raw`.
    pub(crate) unsafe fn unlock_raw(&self) {
        // SAFETY: per this function's contract; the `*_locked` calls keep
        // no reference to the state.
        unsafe { self.state.unlock_raw() }
    }

    /// [`try_recv`](Self::try_recv) into `slot`, under a lock the caller
    /// holds; the wakeup it owes a sender is delivered after unlocking.
    ///
    /// # Safety
    ///
    /// The caller holds the lock through [`lock_raw`](Self::lock_raw), and
    /// `slot` is its own, registered nowhere, empty.
    pub(crate) unsafe fn try_recv_locked(
        &self,
        slot: &Slot<T>,
        wake: &mut Option<Wake>,
    ) -> Result<(), TryRecvError> {
        // SAFETY: locked by the caller; the reference ends with this call.
        let st = unsafe { self.state.locked() };
        Self::recv_locked(st, slot).map(|w| *wake = w)
    }

    /// [`try_send`](Self::try_send) of the message in `slot`, under a lock
    /// the caller holds: `Ok(true)` sent, `Ok(false)` full; the wakeup it
    /// owes a receiver is delivered after unlocking. A message that was not
    /// sent stays in `slot`.
    ///
    /// # Safety
    ///
    /// The caller holds the lock through [`lock_raw`](Self::lock_raw), and
    /// `slot` is its own, registered nowhere, holding a message.
    pub(crate) unsafe fn try_send_locked(
        &self,
        slot: &Slot<T>,
        wake: &mut Option<Wake>,
    ) -> Result<bool, SendError<()>> {
        // SAFETY: locked by the caller; the reference ends with this call.
        let st = unsafe { self.state.locked() };
        match Self::send_locked(st, slot) {
            Ok(w) => {
                *wake = w;
                Ok(true)
            }
            Err(Refused::Full) => Ok(false),
            Err(_) => Err(SendError(())),
        }
    }

    /// `select` support: removes `w`'s entry for `arm`.
    fn unregister(&self, side: Side, w: &Waiter, arm: usize) {
        let mut st = self.state.lock();
        match side {
            Side::Send => st.sendq.remove(w, arm),
            Side::Recv => st.recvq.remove(w, arm),
        };
    }

    /// `select` support: queues `w` as a receiver for `arm` unless a receive
    /// could complete now (then `false`: retry the operation instead).
    pub(crate) fn register_recv(&self, w: &Waiter, arm: usize, slot: &Slot<T>) -> bool {
        let mut st = self.state.lock();
        if !st.buf.is_empty() || st.tx_gone || st.sendq.has_live(Some(w)) {
            return false;
        }
        // SAFETY: the `select` operation owning `slot` removes the entry
        // before it is moved or dropped (select rules).
        unsafe { st.recvq.push(w, arm, SlotPtr::new(slot)) };
        true
    }

    /// `select` support: queues `w` as a sender of the message in `slot`
    /// unless a send could complete now.
    pub(crate) fn register_send(&self, w: &Waiter, arm: usize, slot: &Slot<T>) -> bool {
        let mut st = self.state.lock();
        if st.rx_gone || st.buf.len() < st.cap || st.recvq.has_live(Some(w)) {
            return false;
        }
        // SAFETY: as in `register_recv`.
        unsafe { st.sendq.push(w, arm, SlotPtr::new(slot)) };
        true
    }

    pub(crate) fn unregister_recv(&self, w: &Waiter, arm: usize) {
        self.unregister(Side::Recv, w, arm);
    }

    pub(crate) fn unregister_send(&self, w: &Waiter, arm: usize) {
        self.unregister(Side::Send, w, arm);
    }
}

impl<T> fmt::Debug for Chan<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state.lock();
        f.debug_struct("Channel")
            .field("len", &st.buf.len())
            .field("capacity", &(st.cap != usize::MAX).then_some(st.cap))
            .field("senders_gone", &st.tx_gone)
            .field("receivers_gone", &st.rx_gone)
            .finish()
    }
}
