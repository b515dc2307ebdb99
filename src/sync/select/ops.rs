//! The operations of [`select`](super::select): receive, send, join,
//! sleep, readiness and signal arms.
#![allow(unsafe_code)]

use super::*;

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
            deadline: crate::time::now().checked_add(dur),
        }
    }

    /// Completes at `deadline` (at once if it has passed).
    pub fn until(deadline: Instant) -> SleepOp {
        SleepOp {
            deadline: Some(deadline),
        }
    }

    fn expired(&self) -> bool {
        self.deadline.is_some_and(|at| crate::time::now() >= at)
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
}

impl Operation for SignalOp<'_> {}

impl fmt::Debug for SignalOp<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignalOp")
            .field("completed", &self.output.is_some())
            .finish()
    }
}
