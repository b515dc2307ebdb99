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
use crate::reactor::{self, LazyRegistration};
use crate::task::core::Core;
use crate::task::park::Interrupt;
use crate::task::{Direction, WaitReason};
use crate::time::deadline_after;

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
        pub(crate) &'a crate::reactor::LazyRegistration,
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

/// A timer, as an operation of [`select`]: it completes once its deadline
/// has passed. It bounds one arm's wait, not the whole `select`'s: several
/// can race each other and the other operations, and each has its index.
///
/// ```
/// use std::time::Duration;
/// use corio::sync::mpsc;
/// use corio::sync::select::{select, RecvOp, SleepOp};
///
/// corio::run(|| {
///     let (_tx, rx) = mpsc::channel::<u32>();
///     let mut recv = RecvOp::new(&rx);
///     let mut tick = SleepOp::new(Duration::from_millis(5));
///     assert_eq!(select(&mut [&mut recv, &mut tick]), 1);
/// });
/// ```
#[derive(Debug, Clone, Copy)]
pub struct SleepOp {
    /// `None`: never (a duration too long to add to now).
    deadline: Option<Instant>,
}

impl SleepOp {
    /// Completes `dur` from now (from the call of `new`, not from the
    /// `select`).
    pub fn new(dur: Duration) -> SleepOp {
        SleepOp {
            deadline: Instant::now().checked_add(dur),
        }
    }

    /// Completes at `deadline` (at once if it has passed).
    pub fn until(deadline: Instant) -> SleepOp {
        SleepOp {
            deadline: Some(deadline),
        }
    }

    fn expired(&self) -> bool {
        self.deadline.is_some_and(|at| Instant::now() >= at)
    }
}

impl sealed::Op for SleepOp {
    fn try_complete(&mut self) -> bool {
        self.expired()
    }

    fn register(&self, _w: &Waiter, _arm: usize) -> bool {
        // The select parks no later than `deadline()`.
        !self.expired()
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
        self.expired()
    }

    fn finish(&mut self) {}

    fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
}

impl Operation for SleepOp {}

/// A socket's readiness, as an operation of [`select`]: it completes when
/// the socket is readable ([`readable`](Self::readable)) or writable
/// ([`writable`](Self::writable)), like the sockets' own `readable()` and
/// `writable()`, and does no IO: follow it with `try_read`/`try_write` (or
/// `accept`, `try_recv`, ...), which may still find nothing to do — another
/// task may have been first — and then select again.
///
/// Readiness is a level: each try asks the OS (a zero-timeout `poll(2)`)
/// whether the socket is ready now — data or a connection waiting, room to
/// write, the end of the stream, or an error pending — so an arm that
/// loses takes nothing, and one that completes says the socket was ready
/// at that moment. While the `select` waits, the task is listed with the
/// reactor for the socket's events, and any event wakes it to try the arms
/// again.
///
/// Waiting needs a corio task: on a plain thread, or in a task of another
/// runtime than the one the socket is registered with, an arm that the
/// `select` would have to wait for completes at once with an error
/// ([`Error::NoRuntime`](crate::Error::NoRuntime) or
/// [`Error::WrongRuntime`](crate::Error::WrongRuntime), in an
/// [`io::Error`]). Checking does not: a `select` with a `default` arm
/// ([`try_select`]) works anywhere, as does one in which the socket is
/// already ready.
///
/// ```
/// use std::io::Write;
/// use corio::net::{TcpListener, TcpStream};
/// use corio::sync::mpsc;
/// use corio::sync::select::{select, ReadyOp, RecvOp};
///
/// corio::run(|| -> std::io::Result<()> {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     let mut client = TcpStream::connect(listener.local_addr()?)?;
///     let (server, _) = listener.accept()?;
///     let (_stop_tx, stop_rx) = mpsc::channel::<()>();
///     client.write_all(b"hi")?;
///     let mut data = ReadyOp::readable(&server);
///     let mut stop = RecvOp::new(&stop_rx);
///     assert_eq!(select(&mut [&mut data, &mut stop]), 0);
///     data.into_output()?;
///     let mut buf = [0; 2];
///     assert_eq!(server.try_read(&mut buf)?, 2);
///     Ok(())
/// })
/// .unwrap();
/// ```
pub struct ReadyOp<'a> {
    fd: BorrowedFd<'a>,
    reg: &'a LazyRegistration,
    dir: Direction,
    /// The task's entry in the reactor's waiter list, while registered.
    enlisted: Cell<Option<NonNull<Core>>>,
    /// Why the task could not be listed: the arm completes with it.
    failed: Cell<Option<io::Error>>,
    output: Option<io::Result<()>>,
}

impl<'a> ReadyOp<'a> {
    /// Waits until `socket` is readable (a listener: a connection waits).
    pub fn readable<S: Pollable + ?Sized>(socket: &'a S) -> ReadyOp<'a> {
        ReadyOp::new(socket, Direction::Read)
    }

    /// Waits until `socket` is writable.
    pub fn writable<S: Pollable + ?Sized>(socket: &'a S) -> ReadyOp<'a> {
        ReadyOp::new(socket, Direction::Write)
    }

    fn new<S: Pollable + ?Sized>(socket: &'a S, dir: Direction) -> ReadyOp<'a> {
        let sealed::SourceRef(fd, reg) = sealed::Source::source(socket);
        ReadyOp {
            fd,
            reg,
            dir,
            enlisted: Cell::new(None),
            failed: Cell::new(None),
            output: None,
        }
    }

    /// `Ok` if the socket was ready, or the error that ended the wait (see
    /// [`ReadyOp`]). `None` if this operation did not complete.
    pub fn output(&mut self) -> Option<io::Result<()>> {
        self.output.take()
    }

    /// Like [`output`](Self::output), for the operation `select` returned.
    ///
    /// # Panics
    ///
    /// If this operation did not complete (or its output was taken).
    pub fn into_output(mut self) -> io::Result<()> {
        self.output
            .take()
            .expect("ReadyOp::into_output: this operation was not the one selected")
    }
}

impl sealed::Op for ReadyOp<'_> {
    fn try_complete(&mut self) -> bool {
        if let Some(e) = self.failed.take() {
            self.output = Some(Err(e));
            return true;
        }
        match reactor::ready_now(self.fd, self.dir) {
            Ok(false) => false,
            r => {
                self.output = Some(r.map(drop));
                true
            }
        }
    }

    fn register(&self, _w: &Waiter, _arm: usize) -> bool {
        match self.reg.enlist(self.fd, self.dir) {
            Ok(core) => self.enlisted.set(Some(core)),
            Err(e) => {
                // Cannot wait for it: complete (with the error) instead.
                self.failed.set(Some(e));
                return false;
            }
        }
        // Listed first, then checked: readiness that came before the
        // listing is seen here, any that comes after is an event (the fd
        // is registered, edge-triggered) whose dispatch wakes the task.
        if matches!(reactor::ready_now(self.fd, self.dir), Ok(false)) {
            return true;
        }
        // Ready (or failing): not registered, try it again instead.
        self.unregister(_w, _arm);
        false
    }

    fn unregister(&self, _w: &Waiter, _arm: usize) {
        if let Some(core) = self.enlisted.take() {
            // SAFETY: `core` came from `enlist` on this registration and
            // direction, on this thread: the select's task, which does not
            // change threads.
            unsafe { self.reg.delist(self.dir, core) };
        }
    }

    fn complete_selected(&mut self) -> bool {
        // The reactor wakes the task, it never selects the waiter.
        false
    }

    fn lock_key(&self) -> Option<usize> {
        None
    }

    fn lock(&self) {}

    unsafe fn unlock(&self) {}

    unsafe fn try_complete_locked(&mut self, _wake: &mut Option<Wake>) -> bool {
        // A `poll(2)` under the channels' locks: no user code, and it does
        // not block; it makes the readiness part of the one instant at
        // which `try_select` sees every arm.
        self.try_complete()
    }

    fn finish(&mut self) {}
}

impl Operation for ReadyOp<'_> {}

impl fmt::Debug for ReadyOp<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadyOp")
            .field("fd", &self.fd)
            .field("direction", &self.dir)
            .field("completed", &self.output.is_some())
            .finish()
    }
}

/// The next signal of a [`Signals`](crate::signal::Signals) listener, as an
/// operation of [`select`]: like [`Signals::recv`](crate::signal::Signals::recv),
/// and a losing arm takes no signal (it stays for the next receive). Like a
/// [`ReadyOp`], waiting for it needs a corio task: elsewhere, if the
/// `select` would have to wait, it completes at once with
/// [`Error::NoRuntime`](crate::Error::NoRuntime).
///
/// ```
/// use corio::signal::{Signals, SIGUSR2};
/// use corio::sync::mpsc;
/// use corio::sync::select::{select, RecvOp, SignalOp};
///
/// corio::run(|| {
///     let mut signals = Signals::new([SIGUSR2]).unwrap();
///     let (_tx, rx) = mpsc::channel::<u32>();
///     signal_hook::low_level::raise(SIGUSR2).unwrap();
///     let mut sig = SignalOp::new(&mut signals);
///     let mut msg = RecvOp::new(&rx);
///     assert_eq!(select(&mut [&mut sig, &mut msg]), 0);
///     assert_eq!(sig.into_output().unwrap(), SIGUSR2);
/// });
/// ```
pub struct SignalOp<'a> {
    signals: &'a mut crate::signal::Signals,
    /// The task's entry in the reactor's waiter list, while registered.
    enlisted: Cell<Option<NonNull<Core>>>,
    /// Why the task could not be listed: the arm completes with it.
    failed: Cell<Option<io::Error>>,
    output: Option<io::Result<std::ffi::c_int>>,
}

impl<'a> SignalOp<'a> {
    /// Receives the next signal of `signals`.
    pub fn new(signals: &'a mut crate::signal::Signals) -> SignalOp<'a> {
        SignalOp {
            signals,
            enlisted: Cell::new(None),
            failed: Cell::new(None),
            output: None,
        }
    }

    /// The signal's number, or the error that ended the wait. `None` if
    /// this operation did not complete.
    pub fn output(&mut self) -> Option<io::Result<std::ffi::c_int>> {
        self.output.take()
    }

    /// Like [`output`](Self::output), for the operation `select` returned.
    ///
    /// # Panics
    ///
    /// If this operation did not complete (or its output was taken).
    pub fn into_output(mut self) -> io::Result<std::ffi::c_int> {
        self.output
            .take()
            .expect("SignalOp::into_output: this operation was not the one selected")
    }
}

impl sealed::Op for SignalOp<'_> {
    fn try_complete(&mut self) -> bool {
        if let Some(e) = self.failed.take() {
            self.output = Some(Err(e));
            return true;
        }
        match self.signals.try_recv() {
            Some(sig) => {
                self.output = Some(Ok(sig));
                true
            }
            None => false,
        }
    }

    fn register(&self, w: &Waiter, arm: usize) -> bool {
        let (fd, reg) = self.signals.source();
        match reg.enlist(fd, Direction::Read) {
            Ok(core) => self.enlisted.set(Some(core)),
            Err(e) => {
                self.failed.set(Some(e));
                return false;
            }
        }
        // As for `ReadyOp`: a byte in the self-pipe (a signal recorded
        // since the last try) sends the select back to try again.
        if matches!(reactor::ready_now(fd, Direction::Read), Ok(false)) {
            return true;
        }
        self.unregister(w, arm);
        false
    }

    fn unregister(&self, _w: &Waiter, _arm: usize) {
        if let Some(core) = self.enlisted.take() {
            let (_, reg) = self.signals.source();
            // SAFETY: as in `ReadyOp::unregister`.
            unsafe { reg.delist(Direction::Read, core) };
        }
    }

    fn complete_selected(&mut self) -> bool {
        false
    }

    fn lock_key(&self) -> Option<usize> {
        None
    }

    fn lock(&self) {}

    unsafe fn unlock(&self) {}

    unsafe fn try_complete_locked(&mut self, _wake: &mut Option<Wake>) -> bool {
        // Reads the self-pipe and signal-hook's flags: no user code.
        self.try_complete()
    }

    fn finish(&mut self) {}
}

impl Operation for SignalOp<'_> {}

impl fmt::Debug for SignalOp<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignalOp")
            .field("completed", &self.output.is_some())
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

/// Waits on several channel operations, task ends, timers, socket
/// readiness and signals at once, like Go's `select` or crossbeam's
/// `select!`; runs the arm of the one that completed.
///
/// ```text
/// corio::select! {
///     recv(rx) -> msg => { /* msg: Result<T, RecvError> */ },
///     send(tx, value) -> res => { /* res: Result<(), SendError<T>> */ },
///     join(handle) -> res => { /* res: Result<T, JoinError>; the handle is joined (moved) */ },
///     sleep(Duration::from_millis(100)) => { /* 100 ms passed first */ },
///     sleep_until(deadline) => { /* the Instant `deadline` passed first */ },
///     readable(stream) -> res => { /* res: io::Result<()>; now try_read, accept, ... */ },
///     writable(stream) -> res => { /* res: io::Result<()>; now try_write, ... */ },
///     signal(signals) -> sig => { /* sig: io::Result<c_int> */ },
///     default(Duration::from_secs(1)) => { /* nothing completed in time */ },
/// }
/// ```
///
/// * `recv(r)` receives from an `mpsc`, `mpmc` or `oneshot` receiver `r`.
/// * `send(s, msg)` sends `msg` through an `mpsc` or `mpmc` sender; `msg` is
///   evaluated before waiting (as in Go) and dropped, unsent, if another
///   arm wins.
/// * `join(h)` completes when the task of the `JoinHandle` `h` has
///   finished; the arm then joins `h` — which moves it — without waiting.
///   If another arm wins, `h` is untouched. `h` must be a place the arm
///   can move out of, such as a local variable (a value such as
///   `spawn(..)` is refused: the handle would be lost).
/// * `sleep(duration)` completes `duration` after the `select!` started;
///   `sleep_until(instant)` at `instant` (at once if it has passed). Unlike
///   `default(timeout)`, a timer is an arm like the others: it can stand
///   next to `default`, and several can race (a per-message timeout and an
///   overall deadline). In a loop, `sleep` starts afresh with each
///   `select!`; for one deadline across iterations use `sleep_until`.
///   See [`SleepOp`](crate::sync::select::SleepOp).
/// * `readable(socket)` / `writable(socket)` complete when a corio socket
///   (`TcpStream`, `UdpSocket`, the Unix sockets; `readable` also for
///   `TcpListener` and `UnixListener`: a connection waits to be accepted)
///   is ready, doing no IO; a losing arm takes nothing. Follow them with
///   `try_read`/`try_write`, `accept`, `try_recv`..., which may still find
///   nothing to do (then select again). Waiting for them needs a corio
///   task; see [`ReadyOp`](crate::sync::select::ReadyOp).
/// * `signal(signals)` receives the next signal of a mutable
///   [`Signals`](crate::signal::Signals) listener (a losing arm takes
///   none); see [`SignalOp`](crate::sync::select::SignalOp).
/// * `default => ...` runs if no operation can complete right now (seen
///   at one instant: an arm that was ready the whole time is never
///   missed; see [`try_select`](crate::sync::select::try_select)); it never
///   waits, so `select!` with `default` is not a yield point;
///   `default(timeout) => ...` if none completes within `timeout` (or an
///   enclosing [`time::timeout`](crate::time::timeout) expires).
/// * `-> pattern` may be left out (for timers it would bind `()`). Arms are
///   separated by commas (optional after a block); a trailing comma after
///   the last arm, and after the last argument of an operation, is allowed.
///
/// The channel, socket or signal listener of an arm may be any expression,
/// evaluated once, in the order of the arms, before the `select!` waits:
/// a place — `rx`, `&rx`, `self.rx`, `rxs[i]`, `*boxed` — is borrowed,
/// never moved; a value — `make_rx()`, `tx.clone()` — is kept, borrowed,
/// until the `select!` ends (after the body of the arm that ran), then
/// dropped (so `send(tx.clone(), v)` costs a clone, and the clone does not
/// outlive the `select!`). References and `Box`, `Rc` and `Arc` of
/// channels and sockets work too. Every operation is over before a body
/// runs: a body may use, move or reassign the channels and sockets.
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
///
/// A timer as an arm, and handles from expressions:
///
/// ```
/// use std::time::Duration;
/// use corio::sync::mpsc;
///
/// struct Hub {
///     inputs: Vec<mpsc::Receiver<u32>>,
/// }
///
/// corio::run(|| {
///     let (tx, rx) = mpsc::channel::<u32>();
///     let hub = Hub { inputs: vec![rx] };
///     let (_idle_tx, idle) = mpsc::channel::<u32>();
///     let got = corio::select! {
///         recv(hub.inputs[0]) -> m => m.ok(),
///         recv(&idle) -> m => m.ok(),
///         send(tx.clone(), 5) => None, // room in the channel: this arm runs
///     };
///     assert_eq!(got, None);
///     let got = corio::select! {
///         recv(idle) -> m => m.ok(),
///         sleep(Duration::from_millis(5)) => Some(0), // nothing else happens
///         default(Duration::from_secs(10)) => unreachable!(),
///     };
///     assert_eq!(got, Some(0));
/// });
/// ```
///
/// A connection that ends on Ctrl-C, with no helper task:
///
/// ```no_run
/// use std::io::ErrorKind;
/// use corio::net::TcpStream;
/// use corio::signal::{Signals, SIGINT};
///
/// corio::run(|| -> std::io::Result<()> {
///     let mut ctrl_c = Signals::new([SIGINT])?;
///     let stream = TcpStream::connect("127.0.0.1:7000")?;
///     let mut buf = [0; 4096];
///     loop {
///         corio::select! {
///             readable(stream) -> ready => {
///                 ready?;
///                 match stream.try_read(&mut buf) {
///                     Ok(0) => return Ok(()), // the peer closed
///                     Ok(n) => println!("{n} bytes"),
///                     Err(e) if e.kind() == ErrorKind::WouldBlock => {} // select again
///                     Err(e) => return Err(e),
///                 }
///             }
///             signal(ctrl_c) => return Ok(()),
///         }
///     }
/// })
/// .unwrap();
/// ```
///
/// `join` needs a handle it can move:
///
/// ```compile_fail,E0745
/// corio::run(|| {
///     corio::select! { join(corio::spawn(|| 1)) -> r => r.unwrap() }
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
    (@parse $arms:tt [] $ids:tt default($t:expr $(,)?) => $body:block $($rest:tt)*) => {
        $crate::__select_internal!(@parse $arms [(timeout $t) $body] $ids $($rest)*)
    };
    (@parse $arms:tt [] $ids:tt default($t:expr $(,)?) => $body:expr $(, $($rest:tt)*)?) => {
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
        $(
            // The handles, evaluated once, in order: a place (`rx`,
            // `self.rxs[i]`) is borrowed, a value (`make_rx()`,
            // `tx.clone()`) lives, borrowed, until the end of the select.
            let $id = $crate::__select_internal!(@handle $op $($args)*);
            let mut $id = $crate::__select_internal!(@op $op $id $($args)*);
        )*
        let __corio_index: ::core::option::Option<usize> = $crate::__select_internal!(
            @run [$(&mut $id as &mut dyn $crate::sync::select::Operation),*] $($def)*
        );
        // Every operation is dropped (the winner's output kept) before a
        // body runs, ending its borrow: the bodies may move the channels
        // and sockets, or use them through `&mut`.
        $(
            let $id = $crate::__select_internal!(
                @take $op $id (__corio_index == ::core::option::Option::Some($idx))
            );
        )*
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
            "`join(handle) -> pat => body`, `sleep(duration) => body`, ",
            "`sleep_until(instant) => body`, `readable(socket) -> pat => body`, ",
            "`writable(socket) -> pat => body`, `signal(signals) -> pat => body`, ",
            "`default => body` or `default(timeout) => body`, ",
            "found `",
            ::core::stringify!($($rest)+), "`"
        ))
    };

    // `let h = &expr;` extends the life of a temporary to the enclosing
    // block (a tuple's `&` operands too), so any expression works.
    (@handle recv $rx:expr $(,)?) => { &$rx };
    (@handle send $tx:expr, $msg:expr $(,)?) => { (&$tx, $msg) };
    // Only a place: the arm moves it, and a value (say `spawn(..)`) would
    // be evaluated twice. `addr_of!` refuses a temporary (E0745).
    (@handle join $h:expr $(,)?) => { ::core::ptr::addr_of!($h) };
    (@handle sleep $d:expr $(,)?) => { $crate::sync::select::SleepOp::new($d) };
    (@handle sleep_until $at:expr $(,)?) => { $crate::sync::select::SleepOp::until($at) };
    (@handle readable $s:expr $(,)?) => { &$s };
    (@handle writable $s:expr $(,)?) => { &$s };
    (@handle signal $s:expr $(,)?) => { &mut $s };
    (@handle $op:ident $($args:tt)*) => {
        ::core::compile_error!(::core::concat!(
            "corio::select!: unknown operation `", ::core::stringify!($op), "(",
            ::core::stringify!($($args)*), ")` (expected recv(r), send(s, msg), join(handle), ",
            "sleep(duration), sleep_until(instant), readable(socket), writable(socket) or ",
            "signal(signals))"
        ))
    };

    (@op recv $h:ident $($args:tt)*) => { $crate::sync::select::RecvOp::new($h) };
    (@op send $h:ident $($args:tt)*) => { $crate::sync::select::SendOp::new($h.0, $h.1) };
    (@op join $h:ident $handle:expr $(,)?) => { $crate::sync::select::JoinOp::new(&$handle) };
    (@op sleep $h:ident $($args:tt)*) => { $h };
    (@op sleep_until $h:ident $($args:tt)*) => { $h };
    (@op readable $h:ident $($args:tt)*) => { $crate::sync::select::ReadyOp::readable($h) };
    (@op writable $h:ident $($args:tt)*) => { $crate::sync::select::ReadyOp::writable($h) };
    (@op signal $h:ident $($args:tt)*) => { $crate::sync::select::SignalOp::new($h) };
    // An unknown operation, reported by `@handle`.
    (@op $op:ident $($args:tt)*) => {
        $crate::sync::select::SleepOp::new(::core::time::Duration::MAX)
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

    (@take join $id:ident $won:expr) => { () };
    (@take sleep $id:ident $won:expr) => { () };
    (@take sleep_until $id:ident $won:expr) => { () };
    (@take recv $id:ident $won:expr) => { $crate::__select_internal!(@output $id $won) };
    (@take send $id:ident $won:expr) => { $crate::__select_internal!(@output $id $won) };
    (@take readable $id:ident $won:expr) => { $crate::__select_internal!(@output $id $won) };
    (@take writable $id:ident $won:expr) => { $crate::__select_internal!(@output $id $won) };
    (@take signal $id:ident $won:expr) => { $crate::__select_internal!(@output $id $won) };
    // An unknown operation, reported by `@handle`.
    (@take $op:ident $id:ident $won:expr) => { () };
    (@output $id:ident $won:expr) => {
        if $won {
            ::core::option::Option::Some($id.into_output())
        } else {
            $crate::sync::select::__discard($id);
            ::core::option::Option::None
        }
    };

    // The operation only borrowed the handle, and has no destructor: the
    // borrow is over, the handle can be joined (moved).
    (@complete join $id:ident ($h:expr $(,)?) ($res:pat) $body:block) => {{
        let $res = $h.join();
        $body
    }};
    (@complete sleep $id:ident ($($args:tt)*) ($res:pat) $body:block) => {{
        let $res = $id;
        $body
    }};
    (@complete sleep_until $id:ident ($($args:tt)*) ($res:pat) $body:block) => {{
        let $res = $id;
        $body
    }};
    (@complete $op:ident $id:ident ($($args:tt)*) ($res:pat) $body:block) => {{
        let $res = $crate::__select_internal!(@won $op $id);
        $body
    }};
    (@won recv $id:ident) => { $crate::__select_internal!(@unwrap $id) };
    (@won send $id:ident) => { $crate::__select_internal!(@unwrap $id) };
    (@won readable $id:ident) => { $crate::__select_internal!(@unwrap $id) };
    (@won writable $id:ident) => { $crate::__select_internal!(@unwrap $id) };
    (@won signal $id:ident) => { $crate::__select_internal!(@unwrap $id) };
    (@won $op:ident $id:ident) => { ::core::unreachable!() };
    (@unwrap $id:ident) => {
        match $id {
            ::core::option::Option::Some(output) => output,
            ::core::option::Option::None => ::core::unreachable!(),
        }
    };


    (@default) => { ::core::unreachable!("corio::select! returned without an operation") };
    (@default (try) $body:block) => { $body };
    (@default (timeout $t:expr) $body:block) => { $body };
}
