//! Waiting on several operations at once: [`select!`](crate::select!) and
//! the functions it expands to.
//!
//! An *operation* is a receive ([`RecvOp`]), a send ([`SendOp`]), the end
//! of a task ([`JoinOp`]), a timer ([`SleepOp`]), a socket's readiness
//! ([`ReadyOp`]) or a signal ([`SignalOp`]); [`select`] waits until one of
//! them completes and returns its index. Exactly one operation completes, and the others lose
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
//!    notes it to wake at its end; a socket or signal listener lists the
//!    task with the reactor for its events). If an operation turns out
//!    ready while registering, stop registering and go to 4.
//! 3. Park, until the earliest timer at most. A channel that can complete
//!    an operation for a registered waiter — hand it a message, take its
//!    message — *selects* the waiter for that operation with a
//!    compare-and-swap, which only one can win. A task's end, a socket
//!    event or a timer only wakes the task: nothing happened to any
//!    operation yet, and 4 tries them again.
//! 4. Abort the waiter (the same compare-and-swap, so it fails if a channel
//!    selected it meanwhile: that operation completed and wins), remove it
//!    everywhere, and start again at 1.
//!
//! [`try_select`] instead holds the locks of all the channels while it tries
//! the operations, so that it sees them at one instant.
#![allow(unsafe_code)]

use std::cell::Cell;
use std::fmt;
use std::io;
use std::os::fd::BorrowedFd;
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::chan::{Chan, Slot};
use super::error::{RecvError, SendError};
use super::waiter::{self, Waiter, Wake};
use super::{mpmc, mpsc, oneshot};
use crate::JoinHandle;
use crate::io_op::LazyRegistration;
use crate::reactor;
use crate::task::core::Core;
use crate::task::park::Interrupt;
use crate::task::{Direction, WaitReason};
use crate::time::deadline_after;

mod macros;
mod ops;
pub use ops::{JoinOp, ReadyOp, RecvOp, SendOp, SignalOp, SleepOp};

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
        /// notification to retry (a disconnection). The default is for
        /// operations that are never queued in a channel, so never
        /// selected (a task's end, a timer, readiness, a signal).
        fn complete_selected(&mut self) -> bool {
            false
        }

        /// Where the lock of its channel is (the order `try_select` takes
        /// locks in); `None` (the default) if it has none: a task's end, a
        /// timer, readiness or a signal is seen at one instant without a
        /// lock (a task's end stays so once it happened; readiness and
        /// signals are a non-blocking syscall, no user code, under the
        /// channels' locks).
        fn lock_key(&self) -> Option<usize> {
            None
        }
        /// Takes its channel's lock, for [`try_complete_locked`].
        fn lock(&self) {}
        /// Releases its channel's lock.
        ///
        /// # Safety
        ///
        /// The caller took it with `lock` (of this or another operation on
        /// the same channel).
        unsafe fn unlock(&self) {}
        /// Completes the operation now if it can, like `try_complete`, with
        /// its channel's lock held by the caller; the wakeup it owes goes to
        /// `wake`, and the outcome becomes the output in `finish`, after
        /// unlocking (no user code, not even a drop, runs under the lock).
        /// Without a channel, that is `try_complete`.
        ///
        /// # Safety
        ///
        /// The caller holds the lock taken with `lock`.
        unsafe fn try_complete_locked(&mut self, wake: &mut Option<Wake>) -> bool {
            let _ = wake;
            self.try_complete()
        }
        /// Turns what `try_complete_locked` did into the output.
        fn finish(&mut self) {}

        /// When the operation completes by itself (a sleep arm): the
        /// `select` parks no later than that.
        fn deadline(&self) -> Option<std::time::Instant> {
            None
        }
    }

    /// Types that a receive operation can take messages from.
    pub trait RecvChan<T> {
        fn chan(&self) -> &crate::sync::chan::Chan<T>;
    }

    /// Types that a send operation can send through.
    pub trait SendChan<T> {
        fn chan(&self) -> &crate::sync::chan::Chan<T>;
    }

    /// Types whose readiness a readiness operation can wait for.
    pub trait Source {
        fn source(&self) -> SourceRef<'_>;
    }

    /// A socket's fd and its registration with the reactor.
    pub struct SourceRef<'a>(
        pub(crate) std::os::fd::BorrowedFd<'a>,
        pub(crate) &'a crate::io_op::LazyRegistration,
    );
}

/// An operation that [`select`] can wait on: [`RecvOp`], [`SendOp`],
/// [`JoinOp`], [`SleepOp`], [`ReadyOp`] or [`SignalOp`]. Sealed.
pub trait Operation: sealed::Op {}

/// A receiver a [`RecvOp`] can take messages from: `mpsc`, `mpmc` and
/// `oneshot` receivers, and references and smart pointers (`Box`, `Rc`,
/// `Arc`) to them. Sealed.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a corio channel receiver",
    label = "`recv` takes an mpsc, mpmc or oneshot Receiver, or a reference to one"
)]
pub trait Receiving<T>: sealed::RecvChan<T> {}

/// A sender a [`SendOp`] can send through: `mpsc` and `mpmc` senders, and
/// references and smart pointers (`Box`, `Rc`, `Arc`) to them. Sealed.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a corio channel sender",
    label = "`send` takes an mpsc or mpmc Sender or SyncSender, or a reference to one"
)]
pub trait Sending<T>: sealed::SendChan<T> {}

/// A socket whose readiness a [`ReadyOp`] can wait for: corio's
/// [`TcpStream`](crate::net::TcpStream), [`TcpListener`](crate::net::TcpListener)
/// (readable: a connection waits to be accepted),
/// [`UdpSocket`](crate::net::UdpSocket) and the Unix sockets of
/// [`net::unix`](crate::net::unix), and references and smart pointers to
/// them. Sealed.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a corio socket",
    label = "`readable`/`writable` take a corio::net socket or listener, or a reference to one"
)]
pub trait Pollable: sealed::Source {}

/// The pointer-like types every handle trait also covers: `recv(&rx)`,
/// `recv(self.rx)` with an `Arc<Receiver>` field, and so on.
macro_rules! pointer_impls {
    ($trait:ident, $sealed:ident, $method:ident -> $ret:ty $(, $t:ident)?) => {
        impl<$($t,)? R: $trait$(<$t>)? + ?Sized> sealed::$sealed$(<$t>)? for &R {
            fn $method(&self) -> $ret {
                sealed::$sealed::$method(&**self)
            }
        }
        impl<$($t,)? R: $trait$(<$t>)? + ?Sized> $trait$(<$t>)? for &R {}
        impl<$($t,)? R: $trait$(<$t>)? + ?Sized> sealed::$sealed$(<$t>)? for &mut R {
            fn $method(&self) -> $ret {
                sealed::$sealed::$method(&**self)
            }
        }
        impl<$($t,)? R: $trait$(<$t>)? + ?Sized> $trait$(<$t>)? for &mut R {}
        impl<$($t,)? R: $trait$(<$t>)? + ?Sized> sealed::$sealed$(<$t>)? for Box<R> {
            fn $method(&self) -> $ret {
                sealed::$sealed::$method(&**self)
            }
        }
        impl<$($t,)? R: $trait$(<$t>)? + ?Sized> $trait$(<$t>)? for Box<R> {}
        impl<$($t,)? R: $trait$(<$t>)? + ?Sized> sealed::$sealed$(<$t>)? for Rc<R> {
            fn $method(&self) -> $ret {
                sealed::$sealed::$method(&**self)
            }
        }
        impl<$($t,)? R: $trait$(<$t>)? + ?Sized> $trait$(<$t>)? for Rc<R> {}
        impl<$($t,)? R: $trait$(<$t>)? + ?Sized> sealed::$sealed$(<$t>)? for Arc<R> {
            fn $method(&self) -> $ret {
                sealed::$sealed::$method(&**self)
            }
        }
        impl<$($t,)? R: $trait$(<$t>)? + ?Sized> $trait$(<$t>)? for Arc<R> {}
    };
}

pointer_impls!(Receiving, RecvChan, chan -> &Chan<T>, T);
pointer_impls!(Sending, SendChan, chan -> &Chan<T>, T);
pointer_impls!(Pollable, Source, source -> sealed::SourceRef<'_>);

macro_rules! socket_impls {
    ($($ty:ty),*) => {$(
        impl sealed::Source for $ty {
            fn source(&self) -> sealed::SourceRef<'_> {
                let (fd, reg) = self.io.source();
                sealed::SourceRef(fd, reg)
            }
        }
        impl Pollable for $ty {}
    )*};
}

socket_impls!(
    crate::net::TcpStream,
    crate::net::TcpListener,
    crate::net::UdpSocket,
    crate::net::unix::UnixStream,
    crate::net::unix::UnixListener,
    crate::net::unix::UnixDatagram
);

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
        Err(i) => crate::task::park::unwind_for(i),
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
        Err(Interrupt::Cancelled) => crate::task::park::unwind_for(Interrupt::Cancelled),
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
    // The earliest sleep arm: the park ends then, and the arms are tried.
    let timer = ops.iter().filter_map(|op| op.deadline()).min();
    let park_until = match (deadline, timer) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
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
            match waiter.wait_once(WaitReason::Select, park_until) {
                // Perhaps only a sleep arm's time: then it is a wakeup,
                // unless the select's own deadline (or an enclosing
                // `timeout`'s) has passed too, or it was cancelled.
                Err(Interrupt::TimedOut) if timer.is_some() => {
                    crate::task::park::check_current(deadline).map(|()| None)
                }
                w => w,
            }
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

/// Drops an operation of `select!` that did not complete, ending its
/// borrows (`mem::drop`, which lints flag for types without a destructor).
#[doc(hidden)]
pub fn __discard<T>(_op: T) {}
