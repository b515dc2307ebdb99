//! Unix signals as something a task can wait for: [`ctrl_c`] and
//! [`Signals`].
//!
//! Built on `signal-hook`: the signal handler only records the signal and
//! writes a byte to a self-pipe (a socket pair) — the async-signal-safe part —
//! and the pipe's read end sits in the reactor, so a waiting task suspends
//! (`Waiting(Signal)`) and is woken like for any other IO. Outside a task the
//! thread blocks.
//!
//! # Behaviour to know
//!
//! * Listening replaces the signal's default action (for `SIGINT` and
//!   `SIGTERM`, terminating the process) **for the rest of the process's
//!   life**, even after the listener is dropped — as with `signal-hook` and
//!   tokio. Create the listener early: a signal that arrives before it exists
//!   gets the default action.
//! * Every listener receives every signal it listens for; several arrivals
//!   of the same signal between two receives may be reported once (signals
//!   are not queued, by the OS or here).
//! * `SIGKILL`, `SIGSTOP`, `SIGILL`, `SIGFPE` and `SIGSEGV` cannot be
//!   listened for.
//!
//! # Examples
//!
//! A graceful shutdown: stop when `SIGTERM` or `SIGINT` arrives.
//!
//! ```no_run
//! use corio::signal::{Signals, SIGINT, SIGTERM};
//!
//! corio::run(|| -> std::io::Result<()> {
//!     let mut signals = Signals::new([SIGTERM, SIGINT])?;
//!     let server = corio::spawn(|| { /* serve */ });
//!     let sig = signals.recv()?; // suspends this task, not the thread
//!     eprintln!("got signal {sig}, shutting down");
//!     server.cancel();
//!     Ok(())
//! })
//! .unwrap();
//! ```

use std::collections::VecDeque;
use std::ffi::c_int;
use std::fmt;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use signal_hook::iterator::backend::SignalDelivery;
use signal_hook::iterator::exfiltrator::SignalOnly;

use crate::io_op::{LazyRegistration, Registered, io_op_as};
use crate::task::{Direction, WaitReason};

pub use signal_hook::consts::signal::{
    SIGABRT, SIGALRM, SIGCHLD, SIGCONT, SIGHUP, SIGINT, SIGPIPE, SIGQUIT, SIGTERM, SIGUSR1,
    SIGUSR2, SIGWINCH,
};

/// A listener for a set of signals.
///
/// [`recv`](Signals::recv) waits for the next one; the listener is also an
/// [`Iterator`] over the signals as they arrive. Dropping it stops listening
/// (the default action is not restored; see the [module docs](self)).
///
/// # Examples
///
/// ```
/// use corio::signal::{Signals, SIGUSR1};
///
/// corio::run(|| {
///     let mut signals = Signals::new([SIGUSR1]).unwrap();
///     std::thread::spawn(|| signal_hook::low_level::raise(SIGUSR1).unwrap());
///     assert_eq!(signals.recv().unwrap(), SIGUSR1);
/// });
/// ```
pub struct Signals {
    /// The self-pipe's read end, registered (deleted from the poller
    /// before the last owner of the fd, here or in `delivery`, closes it).
    read: Registered<Arc<UnixStream>>,
    delivery: SignalDelivery<Arc<UnixStream>, SignalOnly>,
    /// Signals taken from `delivery` but not yet returned.
    queue: VecDeque<c_int>,
}

fn check(signal: c_int) -> io::Result<()> {
    if signal <= 0 || signal >= 128 || signal_hook::consts::FORBIDDEN.contains(&signal) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("signal {signal} cannot be listened for"),
        ));
    }
    Ok(())
}

impl Signals {
    /// Starts listening for `signals`.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a signal that cannot be handled (`SIGKILL`,
    /// `SIGSTOP`, `SIGILL`, `SIGFPE`, `SIGSEGV`, or a number that is no
    /// signal); the open-files limit (the self-pipe is two descriptors).
    pub fn new<I>(signals: I) -> io::Result<Signals>
    where
        I: IntoIterator<Item = c_int>,
    {
        if crate::task::driver::simulated() {
            return Err(crate::Error::NotSimulated {
                operation: "signal handling",
            }
            .into());
        }
        let signals: Vec<c_int> = signals.into_iter().collect();
        for &s in &signals {
            check(s)?;
        }
        let (read, write) = UnixStream::pair().map_err(crate::error::io_with_limit)?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        let read = Arc::new(read);
        let delivery = SignalDelivery::with_pipe(Arc::clone(&read), write, SignalOnly, signals)?;
        Ok(Signals {
            read: Registered::new(read),
            delivery,
            queue: VecDeque::new(),
        })
    }

    /// Adds `signal` to the set this listener receives.
    ///
    /// # Errors
    ///
    /// As for [`new`](Self::new).
    pub fn add_signal(&self, signal: c_int) -> io::Result<()> {
        check(signal)?;
        self.delivery.handle().add_signal(signal)
    }

    /// Waits for the next signal and returns its number.
    ///
    /// Inside a task, the task suspends (`Waiting(Signal)`) until a signal
    /// arrives; outside, the thread blocks.
    ///
    /// # Errors
    ///
    /// A cancellation or timeout of the calling task
    /// ([`Error::Cancelled`](crate::Error::Cancelled) in an `io::Error`, or
    /// `TimedOut`); the signals already received stay queued.
    pub fn recv(&mut self) -> io::Result<c_int> {
        if let Some(s) = self.queue.pop_front() {
            return Ok(s);
        }
        let Signals {
            read,
            delivery,
            queue,
        } = self;
        io_op_as(
            read.get().as_fd(),
            read.reg(),
            Direction::Read,
            None,
            WaitReason::Signal,
            || {
                // Drains the self-pipe, then reads the recorded signals: a
                // signal recorded after this writes a new byte, a new edge.
                queue.extend(delivery.pending());
                queue
                    .pop_front()
                    .ok_or_else(|| io::ErrorKind::WouldBlock.into())
            },
        )
    }

    /// The self-pipe's read end and its registration, for a `select` arm.
    pub(crate) fn source(&self) -> (std::os::fd::BorrowedFd<'_>, &LazyRegistration) {
        self.read.source()
    }

    /// Returns a signal that has arrived, without waiting.
    pub fn try_recv(&mut self) -> Option<c_int> {
        if self.queue.is_empty() {
            self.queue.extend(self.delivery.pending());
        }
        self.queue.pop_front()
    }
}

/// Yields signals as they arrive, forever; ends only if waiting fails (the
/// task was cancelled or timed out — the next blocking call reports that).
impl Iterator for Signals {
    type Item = c_int;

    fn next(&mut self) -> Option<c_int> {
        self.recv().ok()
    }
}

impl fmt::Debug for Signals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signals")
            .field("queued", &self.queue)
            .finish_non_exhaustive()
    }
}

/// Waits for the next Ctrl-C (`SIGINT`).
///
/// Inside a task, the task suspends until `SIGINT` arrives; outside, the
/// thread blocks. After the first call `SIGINT` no longer terminates the
/// process (see the [module docs](self)): the program decides what Ctrl-C
/// does. A `SIGINT` that arrives when no `ctrl_c` or [`Signals`] is waiting
/// for it is lost — for a shutdown that must not miss one, keep a
/// `Signals::new([SIGINT])` for the life of the program instead.
///
/// # Errors
///
/// A cancellation or timeout of the calling task; the open-files limit.
///
/// # Examples
///
/// ```no_run
/// corio::run(|| {
///     corio::signal::ctrl_c().unwrap();
///     println!("Ctrl-C: bye");
/// });
/// ```
pub fn ctrl_c() -> io::Result<()> {
    Signals::new([SIGINT])?.recv().map(drop)
}
