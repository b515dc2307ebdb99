//! Waiting on several operations at once: [`select!`](crate::select!) and
//! the functions it expands to.
//!
//! An *operation* is a receive ([`RecvOp`]), a send ([`SendOp`]) or the end
//! of a task ([`JoinOp`]); [`select`] waits until one of them completes and
//! returns its index. Exactly one operation completes, and the others lose
//! nothing: no message is taken from a channel unless its receive is the
//! one that completes, and the message of a send that did not complete is
//! still in its `SendOp` ([`SendOp::into_unsent`]). When several are ready,
//! one is picked at random, so none starves.
//!
//! ```
//! use corio::sync::mpsc;
//! use corio::sync::select::{select, RecvOp};
//!
//! corio::run(|| {
//!     let (tx1, rx1) = mpsc::channel::<u32>();
//!     let (_tx2, rx2) = mpsc::channel::<&str>();
//!     let sender = corio::spawn(move || tx1.send(7).unwrap());
//!     let mut a = RecvOp::new(&rx1);
//!     let mut b = RecvOp::new(&rx2);
//!     match select(&mut [&mut a, &mut b]) {
//!         0 => assert_eq!(a.into_output(), Ok(7)),
//!         _ => unreachable!(),
//!     }
//!     assert_eq!(rx2.try_recv(), Err(mpsc::TryRecvError::Empty)); // untouched
//!     sender.join().unwrap();
//! });
//! ```
//!
//! # How it waits
//!
//! 1. Try every operation, without waiting, starting at a random one; the
//!    first that completes wins.
//! 2. Register one waiter with every operation (a channel queues it; a task
//!    notes it to wake at its end). If an operation turns out ready while
//!    registering, stop registering and go to 4.
//! 3. Park. A channel that can complete an operation for a registered
//!    waiter — hand it a message, take its message — *selects* the waiter
//!    for that operation with a compare-and-swap, which only one can win.
//! 4. Abort the waiter (the same compare-and-swap, so it fails if a channel
//!    selected it meanwhile: that operation completed and wins), remove it
//!    everywhere, and start again at 1.
//!
//! [`try_select`] instead holds the locks of all the channels while it tries
//! the operations, so that it sees them at one instant.
#![allow(unsafe_code)]

use std::fmt;
use std::time::{Duration, Instant};

use super::chan::{Chan, Slot, deadline_after};
use super::error::{RecvError, SendError};
use super::waiter::{self, Waiter, Wake};
use super::{mpmc, mpsc, oneshot};
use crate::JoinHandle;
use crate::scheduler::{self, Interrupt};
use crate::task::WaitReason;

mod sealed {
    use crate::sync::waiter::{Waiter, Wake};

    /// The operations a `select` drives. Sealed: only corio's types
    /// implement it, so the registration contract (an operation stays put
    /// while registered and is unregistered before it moves) holds.
    pub trait Op {
        /// Completes the operation now if it can.
        fn try_complete(&mut self) -> bool;
        /// Registers `w` for `arm`; `false` if the operation is ready now
        /// (nothing registered). Takes `&self`: while registered, a waker
        /// may write the operation's slot through the queue's pointer, so no
        /// `&mut` to it may exist until it is unregistered.
        fn register(&self, w: &Waiter, arm: usize) -> bool;
        /// Removes `w`'s registration for `arm`, if any remains.
        fn unregister(&self, w: &Waiter, arm: usize);
        /// `w` was selected for this operation's arm (and every arm is
        /// unregistered): finish it. `false` if the selection was a
        /// notification to retry (a disconnection).
        fn complete_selected(&mut self) -> bool;

        /// Where the lock of its channel is (the order `try_select` takes
        /// locks in); `None` if it has none (a task's end: once it has
        /// happened it stays so, no lock needed to see it at one instant).
        fn lock_key(&self) -> Option<usize>;
        /// Takes its channel's lock, for [`try_complete_locked`].
        fn lock(&self);
        /// Releases its channel's lock.
        ///
        /// # Safety
        ///
        /// The caller took it with `lock` (of this or another operation on
        /// the same channel).
        unsafe fn unlock(&self);
        /// Completes the operation now if it can, like `try_complete`, with
        /// its channel's lock held by the caller; the wakeup it owes goes to
        /// `wake`, and the outcome becomes the output in `finish`, after
        /// unlocking (no user code, not even a drop, runs under the lock).
        ///
        /// # Safety
        ///
        /// The caller holds the lock taken with `lock`.
        unsafe fn try_complete_locked(&mut self, wake: &mut Option<Wake>) -> bool;
        /// Turns what `try_complete_locked` did into the output.
        fn finish(&mut self);
    }

    /// Types that a receive operation can take messages from.
    pub trait RecvChan<T> {
        fn chan(&self) -> &crate::sync::chan::Chan<T>;
    }

    /// Types that a send operation can send through.
    pub trait SendChan<T> {
        fn chan(&self) -> &crate::sync::chan::Chan<T>;
    }
}

/// An operation that [`select`] can wait on: [`RecvOp`], [`SendOp`] or
/// [`JoinOp`]. Sealed.
pub trait Operation: sealed::Op {}

/// A receiver a [`RecvOp`] can take messages from: `mpsc`, `mpmc` and
/// `oneshot` receivers. Sealed.
pub trait Receiving<T>: sealed::RecvChan<T> {}

/// A sender a [`SendOp`] can send through: `mpsc` and `mpmc` senders.
/// Sealed.
pub trait Sending<T>: sealed::SendChan<T> {}

macro_rules! chan_impls {
    ($trait:ident, $sealed:ident, $($ty:ty),*) => {$(
        impl<T> sealed::$sealed<T> for $ty {
            fn chan(&self) -> &Chan<T> {
                <$ty>::chan(self)
            }
        }
        impl<T> $trait<T> for $ty {}
    )*};
}

chan_impls!(
    Receiving,
    RecvChan,
    mpsc::Receiver<T>,
    mpmc::Receiver<T>,
    oneshot::Receiver<T>
);
chan_impls!(
    Sending,
    SendChan,
    mpsc::Sender<T>,
    mpsc::SyncSender<T>,
    mpmc::Sender<T>
);

/// Receiving one message from a channel, as an operation of [`select`].
pub struct RecvOp<'a, T> {
    chan: &'a Chan<T>,
    slot: Slot<T>,
    output: Option<Result<T, RecvError>>,
}

impl<'a, T> RecvOp<'a, T> {
    /// A receive from `rx`.
    pub fn new<R: Receiving<T>>(rx: &'a R) -> RecvOp<'a, T> {
        RecvOp {
            chan: sealed::RecvChan::chan(rx),
            slot: Slot::new(None),
            output: None,
        }
    }

    /// The message received, or [`RecvError`] if every sender was gone.
    /// `None` if this operation did not complete.
    pub fn output(&mut self) -> Option<Result<T, RecvError>> {
        self.output.take()
    }

    /// Like [`output`](Self::output), for the operation `select` returned.
    ///
    /// # Panics
    ///
    /// If this operation did not complete (or its output was taken).
    pub fn into_output(mut self) -> Result<T, RecvError> {
        self.output
            .take()
            .expect("RecvOp::into_output: this operation was not the one selected")
    }
}

impl<T> sealed::Op for RecvOp<'_, T> {
    fn try_complete(&mut self) -> bool {
        match self.chan.try_recv() {
            Ok(v) => self.output = Some(Ok(v)),
            Err(e) if e.is_disconnected() => self.output = Some(Err(RecvError)),
            Err(_) => return false,
        }
        true
    }

    fn register(&self, w: &Waiter, arm: usize) -> bool {
        self.chan.register_recv(w, arm, &self.slot)
    }

    fn unregister(&self, w: &Waiter, arm: usize) {
        self.chan.unregister_recv(w, arm);
    }

    fn complete_selected(&mut self) -> bool {
        // Selected and unregistered: the slot is ours again (waiter rule 3).
        match self.slot.get_mut().take() {
            Some(v) => {
                self.output = Some(Ok(v));
                true
            }
            None => false,
        }
    }

    fn lock_key(&self) -> Option<usize> {
        Some(self.chan.lock_key())
    }

    fn lock(&self) {
        self.chan.lock_raw();
    }

    unsafe fn unlock(&self) {
        // SAFETY: per this function's contract.
        unsafe { self.chan.unlock_raw() }
    }

    unsafe fn try_complete_locked(&mut self, wake: &mut Option<Wake>) -> bool {
        // SAFETY: the caller holds the lock (this function's contract).
        // Into the slot, empty while not registered: nothing is dropped
        // under the lock; `finish` moves it on.
        match unsafe { self.chan.try_recv_locked(&self.slot, wake) } {
            Ok(()) => true,
            Err(e) => e.is_disconnected(),
        }
    }

    fn finish(&mut self) {
        self.output = Some(self.slot.get_mut().take().ok_or(RecvError));
    }
}

impl<T> Operation for RecvOp<'_, T> {}

impl<T> fmt::Debug for RecvOp<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvOp")
            .field("completed", &self.output.is_some())
            .finish()
    }
}

/// Sending one message through a channel, as an operation of [`select`].
///
/// The message is given up front (a rendezvous receiver must be able to
/// take it while the `select` waits); if another operation completes, it is
/// still here: [`into_unsent`](Self::into_unsent).
pub struct SendOp<'a, T> {
    chan: &'a Chan<T>,
    slot: Slot<T>,
    output: Option<Result<(), SendError<T>>>,
}

impl<'a, T> SendOp<'a, T> {
    /// A send of `msg` through `tx`.
    pub fn new<S: Sending<T>>(tx: &'a S, msg: T) -> SendOp<'a, T> {
        SendOp {
            chan: sealed::SendChan::chan(tx),
            slot: Slot::new(Some(msg)),
            output: None,
        }
    }

    /// `Ok` if the message was sent, [`SendError`] (with it) if every
    /// receiver was gone. `None` if this operation did not complete.
    pub fn output(&mut self) -> Option<Result<(), SendError<T>>> {
        self.output.take()
    }

    /// Like [`output`](Self::output), for the operation `select` returned.
    ///
    /// # Panics
    ///
    /// If this operation did not complete (or its output was taken).
    pub fn into_output(mut self) -> Result<(), SendError<T>> {
        self.output
            .take()
            .expect("SendOp::into_output: this operation was not the one selected")
    }

    /// The message, if it was not sent.
    pub fn into_unsent(mut self) -> Option<T> {
        match self.output.take() {
            Some(Err(SendError(v))) => Some(v),
            _ => self.slot.get_mut().take(),
        }
    }
}

impl<T> sealed::Op for SendOp<'_, T> {
    fn try_complete(&mut self) -> bool {
        let Some(msg) = self.slot.get_mut().take() else {
            return false;
        };
        match self.chan.try_send(msg) {
            Ok(()) => self.output = Some(Ok(())),
            Err(e) if e.is_disconnected() => self.output = Some(Err(SendError(e.into_inner()))),
            Err(e) => {
                *self.slot.get_mut() = Some(e.into_inner());
                return false;
            }
        }
        true
    }

    fn register(&self, w: &Waiter, arm: usize) -> bool {
        self.chan.register_send(w, arm, &self.slot)
    }

    fn unregister(&self, w: &Waiter, arm: usize) {
        self.chan.unregister_send(w, arm);
    }

    fn complete_selected(&mut self) -> bool {
        if self.slot.get_mut().is_some() {
            // Selected without the message taken: the receivers went away.
            return false;
        }
        self.output = Some(Ok(()));
        true
    }

    fn lock_key(&self) -> Option<usize> {
        Some(self.chan.lock_key())
    }

    fn lock(&self) {
        self.chan.lock_raw();
    }

    unsafe fn unlock(&self) {
        // SAFETY: per this function's contract.
        unsafe { self.chan.unlock_raw() }
    }

    unsafe fn try_complete_locked(&mut self, wake: &mut Option<Wake>) -> bool {
        if self.slot.get_mut().is_none() {
            return false;
        }
        // SAFETY: the caller holds the lock (this function's contract), and
        // the slot, not registered, holds the message. A refused message
        // stays in it until `finish`.
        unsafe { self.chan.try_send_locked(&self.slot, wake) }.unwrap_or(true)
    }

    fn finish(&mut self) {
        self.output = Some(match self.slot.get_mut().take() {
            None => Ok(()),
            Some(msg) => Err(SendError(msg)),
        });
    }
}

impl<T> Operation for SendOp<'_, T> {}

impl<T> fmt::Debug for SendOp<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendOp")
            .field("completed", &self.output.is_some())
            .finish()
    }
}

/// The end of a task, as an operation of [`select`]. It completes when the
/// task has finished, and takes nothing from its [`JoinHandle`]: join it
/// afterwards to get the result without waiting.
pub struct JoinOp<'a, T> {
    handle: &'a JoinHandle<T>,
}

impl<'a, T> JoinOp<'a, T> {
    /// Waits for the task of `handle` to finish.
    pub fn new(handle: &'a JoinHandle<T>) -> JoinOp<'a, T> {
        JoinOp { handle }
    }
}

impl<T> sealed::Op for JoinOp<'_, T> {
    fn try_complete(&mut self) -> bool {
        self.handle.is_finished()
    }

    fn register(&self, w: &Waiter, _arm: usize) -> bool {
        // A stale registration only causes a spurious wakeup later.
        self.handle.set_waiter(w.owned_unparker())
    }

    fn unregister(&self, _w: &Waiter, _arm: usize) {}

    fn complete_selected(&mut self) -> bool {
        // Never queued anywhere, so never selected.
        false
    }

    fn lock_key(&self) -> Option<usize> {
        None
    }

    fn lock(&self) {}

    unsafe fn unlock(&self) {}

    unsafe fn try_complete_locked(&mut self, _wake: &mut Option<Wake>) -> bool {
        self.handle.is_finished()
    }

    fn finish(&mut self) {}
}

impl<T> Operation for JoinOp<'_, T> {}

impl<T> fmt::Debug for JoinOp<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinOp")
            .field("task", &self.handle.id())
            .finish()
    }
}

/// Waits until one of `ops` completes and returns its index. A cancellation
/// point: a cancelled task unwinds from here (so does an expired enclosing
/// [`time::timeout`](crate::time::timeout)); none of the operations
/// completes then.
///
/// With no operations it waits until cancelled.
///
/// # Panics
///
/// If it would have to wait while the task is unwinding (in a destructor).
pub fn select(ops: &mut [&mut dyn Operation]) -> usize {
    match run(ops, Mode::Wait(None)) {
        Ok(i) => i,
        Err(Interrupt::Unwinding) => {
            panic!("corio::sync::select cannot wait while the task is unwinding")
        }
        Err(i) => scheduler::unwind_for(i),
    }
}

/// Completes one of `ops` if one can complete now; never waits, and is not
/// a yield point (see [`sync`](crate::sync#calls-that-never-yield)).
///
/// Linearizable: it returns `None` only if there was an instant at which
/// none of `ops` could complete (it looks at every channel involved at once,
/// under all their locks), so a message that was in one of the channels the
/// whole time is never missed.
pub fn try_select(ops: &mut [&mut dyn Operation]) -> Option<usize> {
    run(ops, Mode::Try).ok()
}

/// Like [`select`], giving up (`None`) after `timeout`.
pub fn select_timeout(ops: &mut [&mut dyn Operation], timeout: Duration) -> Option<usize> {
    match deadline_after(timeout) {
        Some(at) => select_deadline(ops, at),
        None => Some(select(ops)),
    }
}

/// Like [`select`], giving up (`None`) at `deadline` — or when an
/// enclosing [`time::timeout`](crate::time::timeout) expires.
pub fn select_deadline(ops: &mut [&mut dyn Operation], deadline: Instant) -> Option<usize> {
    match run(ops, Mode::Wait(Some(deadline))) {
        Ok(i) => Some(i),
        Err(Interrupt::Cancelled) => scheduler::unwind_for(Interrupt::Cancelled),
        Err(_) => None,
    }
}

#[derive(Clone, Copy)]
enum Mode {
    Try,
    Wait(Option<Instant>),
}

/// Unregisters every operation registered so far, on every exit path.
struct Registered<'o, 'a> {
    ops: &'o mut [&'a mut dyn Operation],
    waiter: &'o Waiter,
    start: usize,
    count: usize,
}

impl Drop for Registered<'_, '_> {
    fn drop(&mut self) {
        let n = self.ops.len();
        for k in 0..self.count {
            let i = (self.start + k) % n;
            self.ops[i].unregister(self.waiter, i);
        }
    }
}

/// A cheap per-thread pseudo-random start, so that no operation starves.
fn random_start(n: usize) -> usize {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u32> = const { Cell::new(0x9e37_79b9) };
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        s.set(x);
        x as usize % n
    })
}

fn try_all(ops: &mut [&mut dyn Operation], start: usize) -> Option<usize> {
    let n = ops.len();
    (0..n)
        .map(|k| (start + k) % n)
        .find(|&i| ops[i].try_complete())
}

/// `try_all` for `try_select`, which must be linearizable: it may report
/// that nothing is ready only if, at one instant, nothing was. Trying the
/// arms one after another could see the first empty, then the second empty
/// after a message moved from it into the first. So it holds the locks of
/// every channel involved while it tries the arms (taken in address order,
/// each once, as every caller holding several does).
fn try_all_at_once(ops: &mut [&mut dyn Operation], start: usize) -> Option<usize> {
    let n = ops.len();
    if n == 1 {
        return ops[0].try_complete().then_some(0);
    }
    // Lock each distinct channel once, lowest address first. Quadratic in
    // the arms, without allocating; `select!` has at most 32.
    let mut last = None;
    while let Some(key) = ops
        .iter()
        .filter_map(|op| op.lock_key())
        .filter(|&k| last.is_none_or(|l| k > l))
        .min()
    {
        if let Some(op) = ops.iter().find(|op| op.lock_key() == Some(key)) {
            op.lock();
        }
        last = Some(key);
    }
    let mut wake = None;
    let won = (0..n)
        .map(|k| (start + k) % n)
        // SAFETY: every operation's channel is locked, above.
        .find(|&i| unsafe { ops[i].try_complete_locked(&mut wake) });
    for i in 0..n {
        let key = ops[i].lock_key();
        if key.is_some() && !ops[..i].iter().any(|op| op.lock_key() == key) {
            // SAFETY: locked above, once per channel; released once.
            unsafe { ops[i].unlock() };
        }
    }
    Wake::wake_opt(wake);
    let i = won?;
    ops[i].finish();
    Some(i)
}

fn run(ops: &mut [&mut dyn Operation], mode: Mode) -> Result<usize, Interrupt> {
    if let Mode::Wait(_) = mode {
        waiter::enter()?;
    }
    let n = ops.len();
    let start = if n > 1 { random_start(n) } else { 0 };
    let Mode::Wait(deadline) = mode else {
        return try_all_at_once(ops, start).ok_or(Interrupt::TimedOut);
    };
    if let Some(i) = try_all(ops, start) {
        return Ok(i);
    }
    let waiter = Waiter::new_multi();
    loop {
        let mut reg = Registered {
            ops: &mut *ops,
            waiter: &waiter,
            start,
            count: 0,
        };
        let mut ready = false;
        for k in 0..n {
            let i = (start + k) % n;
            if !reg.ops[i].register(&waiter, i) {
                ready = true;
                break;
            }
            reg.count += 1;
        }
        let woken = if ready {
            Ok(None)
        } else {
            waiter.wait_once(WaitReason::Select, deadline)
        };
        let selected = match woken {
            Ok(Some(arm)) => Some(arm),
            _ => waiter.abort().err(),
        };
        drop(reg);
        if let Some(arm) = selected {
            if let Err(i) = woken {
                waiter::completed_anyway(i);
            }
            if ops[arm].complete_selected() {
                return Ok(arm);
            }
        } else {
            woken?;
        }
        waiter.reset();
        if let Some(i) = try_all(ops, start) {
            return Ok(i);
        }
    }
}

/// Waits on several channel operations and task ends at once, like Go's
/// `select` or crossbeam's `select!`; runs the arm of the one that
/// completed.
///
/// ```text
/// corio::select! {
///     recv(rx) -> msg => { /* msg: Result<T, RecvError> */ },
///     send(tx, value) -> res => { /* res: Result<(), SendError<T>> */ },
///     join(handle) -> res => { /* res: Result<T, JoinError>; the handle is joined (moved) */ },
///     default(Duration::from_secs(1)) => { /* nothing completed in time */ },
/// }
/// ```
///
/// * `recv(r)` receives from an `mpsc`, `mpmc` or `oneshot` receiver `r`.
/// * `send(s, msg)` sends `msg` through an `mpsc` or `mpmc` sender; `msg` is
///   evaluated before waiting (as in Go) and dropped, unsent, if another
///   arm wins.
/// * `join(h)` completes when the task of the `JoinHandle` `h` (a variable)
///   has finished; the arm then joins `h` — which moves it — without
///   waiting. If another arm wins, `h` is untouched.
/// * `default => ...` runs if no operation can complete right now (seen
///   at one instant: an arm that was ready the whole time is never
///   missed; see [`try_select`](crate::sync::select::try_select)); it never
///   waits, so `select!` with `default` is not a yield point;
///   `default(timeout) => ...` if none completes within `timeout` (or an
///   enclosing [`time::timeout`](crate::time::timeout) expires).
/// * `-> pattern` may be left out. Arms are separated by commas (optional
///   after a block).
///
/// Exactly one arm runs; the operations of the others do not happen (see
/// [`sync::select`](crate::sync::select)). Without `default`, a cancelled
/// task unwinds out of `select!`. Up to 32 operations.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use corio::sync::mpsc;
///
/// corio::run(|| {
///     let (tx, rx) = mpsc::sync_channel::<u32>(0);
///     let (done_tx, done_rx) = mpsc::channel::<()>();
///     let worker = corio::spawn(move || {
///         let mut got = Vec::new();
///         loop {
///             corio::select! {
///                 recv(rx) -> msg => match msg {
///                     Ok(m) => got.push(m),
///                     Err(_) => break,
///                 },
///                 recv(done_rx) => break,
///             }
///         }
///         got
///     });
///     for i in 0..3 {
///         tx.send(i).unwrap();
///     }
///     done_tx.send(()).unwrap();
///     assert_eq!(worker.join().unwrap(), [0, 1, 2]);
///
///     let (_keep, idle) = mpsc::channel::<u32>();
///     let timed_out = corio::select! {
///         recv(idle) -> _ => false,
///         default(Duration::from_millis(10)) => true,
///     };
///     assert!(timed_out);
/// });
/// ```
#[macro_export]
macro_rules! select {
    ($($tokens:tt)*) => {
        $crate::__select_internal!(
            @parse [] []
            [(__corio_op0 0) (__corio_op1 1) (__corio_op2 2) (__corio_op3 3)
             (__corio_op4 4) (__corio_op5 5) (__corio_op6 6) (__corio_op7 7)
             (__corio_op8 8) (__corio_op9 9) (__corio_op10 10) (__corio_op11 11)
             (__corio_op12 12) (__corio_op13 13) (__corio_op14 14) (__corio_op15 15)
             (__corio_op16 16) (__corio_op17 17) (__corio_op18 18) (__corio_op19 19)
             (__corio_op20 20) (__corio_op21 21) (__corio_op22 22) (__corio_op23 23)
             (__corio_op24 24) (__corio_op25 25) (__corio_op26 26) (__corio_op27 27)
             (__corio_op28 28) (__corio_op29 29) (__corio_op30 30) (__corio_op31 31)]
            $($tokens)*
        )
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __select_internal {
    // Separators left after a block body.
    (@parse $arms:tt $def:tt $ids:tt , $($rest:tt)*) => {
        $crate::__select_internal!(@parse $arms $def $ids $($rest)*)
    };
    // default
    (@parse $arms:tt [] $ids:tt default => $body:block $($rest:tt)*) => {
        $crate::__select_internal!(@parse $arms [(try) $body] $ids $($rest)*)
    };
    (@parse $arms:tt [] $ids:tt default => $body:expr $(, $($rest:tt)*)?) => {
        $crate::__select_internal!(@parse $arms [(try) { $body }] $ids $($($rest)*)?)
    };
    (@parse $arms:tt [] $ids:tt default($t:expr) => $body:block $($rest:tt)*) => {
        $crate::__select_internal!(@parse $arms [(timeout $t) $body] $ids $($rest)*)
    };
    (@parse $arms:tt [] $ids:tt default($t:expr) => $body:expr $(, $($rest:tt)*)?) => {
        $crate::__select_internal!(@parse $arms [(timeout $t) { $body }] $ids $($($rest)*)?)
    };
    (@parse $arms:tt [$($def:tt)+] $ids:tt default $($rest:tt)*) => {
        ::core::compile_error!("corio::select!: more than one `default` arm")
    };
    // An operation without `-> pattern`.
    (@parse $arms:tt $def:tt $ids:tt $op:ident ($($args:tt)*) => $($rest:tt)*) => {
        $crate::__select_internal!(@parse $arms $def $ids $op ($($args)*) -> _ => $($rest)*)
    };
    // An operation.
    (@parse [$($arms:tt)*] $def:tt [($id:ident $idx:tt) $($ids:tt)*]
        $op:ident ($($args:tt)*) -> $res:pat => $body:block $($rest:tt)*) => {
        $crate::__select_internal!(@parse
            [$($arms)* ($op $id $idx ($($args)*) ($res) $body)] $def [$($ids)*] $($rest)*)
    };
    (@parse [$($arms:tt)*] $def:tt [($id:ident $idx:tt) $($ids:tt)*]
        $op:ident ($($args:tt)*) -> $res:pat => $body:expr $(, $($rest:tt)*)?) => {
        $crate::__select_internal!(@parse
            [$($arms)* ($op $id $idx ($($args)*) ($res) { $body })] $def [$($ids)*]
            $($($rest)*)?)
    };
    (@parse $arms:tt $def:tt [] $op:ident $($rest:tt)*) => {
        ::core::compile_error!("corio::select!: more than 32 operations")
    };
    // All parsed.
    (@parse [$(($op:ident $id:ident $idx:tt ($($args:tt)*) ($res:pat) $body:block))*]
        [$($def:tt)*] $ids:tt) => {{
        $( let mut $id = $crate::__select_internal!(@op $op $($args)*); )*
        let __corio_index: ::core::option::Option<usize> = $crate::__select_internal!(
            @run [$(&mut $id as &mut dyn $crate::sync::select::Operation),*] $($def)*
        );
        match __corio_index {
            $( ::core::option::Option::Some($idx) => {
                $crate::__select_internal!(@complete $op $id ($($args)*) ($res) $body)
            } )*
            _ => $crate::__select_internal!(@default $($def)*),
        }
    }};
    (@parse $arms:tt $def:tt $ids:tt $($rest:tt)+) => {
        ::core::compile_error!(::core::concat!(
            "corio::select!: expected `recv(r) -> pat => body`, `send(s, msg) -> pat => body`, ",
            "`join(handle) -> pat => body`, `default => body` or `default(timeout) => body`, found `",
            ::core::stringify!($($rest)+), "`"
        ))
    };

    (@op recv $rx:expr) => { $crate::sync::select::RecvOp::new(&$rx) };
    (@op send $tx:expr, $msg:expr) => { $crate::sync::select::SendOp::new(&$tx, $msg) };
    (@op join $h:expr) => { $crate::sync::select::JoinOp::new(&$h) };
    (@op $op:ident $($args:tt)*) => {
        ::core::compile_error!(::core::concat!(
            "corio::select!: unknown operation `", ::core::stringify!($op),
            "` (expected recv, send or join)"
        ))
    };

    (@run [$($ops:expr),*]) => {
        ::core::option::Option::Some($crate::sync::select::select(&mut [$($ops),*]))
    };
    (@run [$($ops:expr),*] (try) $body:block) => {
        $crate::sync::select::try_select(&mut [$($ops),*])
    };
    (@run [$($ops:expr),*] (timeout $t:expr) $body:block) => {
        $crate::sync::select::select_timeout(&mut [$($ops),*], $t)
    };

    (@complete recv $id:ident ($($args:tt)*) ($res:pat) $body:block) => {{
        let $res = $id.into_output();
        $body
    }};
    (@complete send $id:ident ($($args:tt)*) ($res:pat) $body:block) => {{
        let $res = $id.into_output();
        $body
    }};
    // The operation only borrowed the handle, and has no destructor: the
    // borrow is over, the handle can be joined (moved).
    (@complete join $id:ident ($h:expr) ($res:pat) $body:block) => {{
        let $res = $h.join();
        $body
    }};

    (@default) => { ::core::unreachable!("corio::select! returned without an operation") };
    (@default (try) $body:block) => { $body };
    (@default (timeout $t:expr) $body:block) => { $body };
}
