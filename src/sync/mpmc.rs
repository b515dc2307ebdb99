//! Multi-producer, multi-consumer channels, shaped like the (unstable)
//! `std::sync::mpmc`: one [`Sender`] type for bounded and unbounded
//! channels, and a [`Receiver`] that can be cloned — each message goes to
//! exactly one receiver, the one that has waited longest.
//!
//! Blocking calls, errors and cancellation behave as in
//! [`mpsc`](super::mpsc).
//!
//! ```
//! use corio::sync::mpmc;
//!
//! corio::run(|| {
//!     let (tx, rx) = mpmc::sync_channel(4);
//!     let workers: Vec<_> = (0..3)
//!         .map(|_| {
//!             let rx = rx.clone();
//!             corio::spawn(move || rx.iter().sum::<u64>())
//!         })
//!         .collect();
//!     drop(rx);
//!     for i in 1..=100 {
//!         tx.send(i).unwrap();
//!     }
//!     drop(tx);
//!     let total: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
//!     assert_eq!(total, 5050);
//! });
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::chan::{Chan, RecvFail, SendFail};
pub use super::error::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
use crate::time::deadline_after;

/// Creates an unbounded channel.
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan::new(None));
    (
        Sender {
            chan: Arc::clone(&chan),
        },
        Receiver { chan },
    )
}

/// Creates a channel holding at most `bound` messages (0: rendezvous).
pub fn sync_channel<T>(bound: usize) -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan::new(Some(bound)));
    (
        Sender {
            chan: Arc::clone(&chan),
        },
        Receiver { chan },
    )
}

/// The sending half of an `mpmc` channel. Cloneable.
pub struct Sender<T> {
    chan: Arc<Chan<T>>,
}

impl<T> Sender<T> {
    /// Sends `t`, waiting while a bounded channel is full. A cancellation
    /// point when it has to wait. On an unbounded channel it never waits,
    /// so it is not a yield point (see
    /// [`sync`](crate::sync#calls-that-never-yield)).
    ///
    /// # Errors
    ///
    /// [`SendError`] with the message once every receiver is gone.
    pub fn send(&self, t: T) -> Result<(), SendError<T>> {
        self.chan.send(t, None, SendFail::into_send_error)
    }

    /// Sends `t` if there is room; never waits (not a yield point).
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] or [`TrySendError::Disconnected`].
    pub fn try_send(&self, t: T) -> Result<(), TrySendError<T>> {
        self.chan.try_send(t)
    }

    /// Like [`send`](Self::send), giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// [`SendTimeoutError::Timeout`] or [`SendTimeoutError::Disconnected`].
    pub fn send_timeout(&self, t: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        self.chan.send(
            t,
            deadline_after(timeout),
            SendFail::into_send_timeout_error,
        )
    }

    /// Like [`send`](Self::send), giving up at `deadline`. A cancellation
    /// point.
    ///
    /// # Errors
    ///
    /// [`SendTimeoutError::Timeout`] or [`SendTimeoutError::Disconnected`],
    /// with the message.
    pub fn send_deadline(&self, t: T, deadline: Instant) -> Result<(), SendTimeoutError<T>> {
        self.chan.send(
            t,
            Some(deadline),
            super::chan::SendFail::into_send_timeout_error,
        )
    }

    pub(crate) fn chan(&self) -> &Chan<T> {
        &self.chan
    }
}

channel_handle!(Sender, "Sender", drop: drop_sender, clone: add_sender);
channel_queries!(Sender);

/// The receiving half of an `mpmc` channel. Cloneable; each message is
/// received once.
pub struct Receiver<T> {
    chan: Arc<Chan<T>>,
}

impl<T> Receiver<T> {
    /// Receives a message, waiting until one arrives. A cancellation point.
    ///
    /// # Errors
    ///
    /// [`RecvError`] once every sender is gone and the channel is empty.
    pub fn recv(&self) -> Result<T, RecvError> {
        self.chan.recv(None, RecvFail::into_recv_error)
    }

    /// Receives a message if one is waiting; never waits (not a yield
    /// point: see [`sync`](crate::sync#calls-that-never-yield)).
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] or [`TryRecvError::Disconnected`].
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        self.chan.try_recv()
    }

    /// Like [`recv`](Self::recv), giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`] or [`RecvTimeoutError::Disconnected`].
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.chan
            .recv(deadline_after(timeout), RecvFail::into_recv_timeout_error)
    }

    /// Like [`recv`](Self::recv), giving up at `deadline`.
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`] or [`RecvTimeoutError::Disconnected`].
    pub fn recv_deadline(&self, deadline: Instant) -> Result<T, RecvTimeoutError> {
        self.chan.recv(
            Some(deadline),
            super::chan::RecvFail::into_recv_timeout_error,
        )
    }

    /// An iterator that receives until every sender is gone.
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { rx: self }
    }

    /// An iterator over the messages waiting now; never waits.
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter { rx: self }
    }

    pub(crate) fn chan(&self) -> &Chan<T> {
        &self.chan
    }
}

channel_handle!(Receiver, "Receiver", drop: drop_receiver, clone: add_receiver);
channel_queries!(Receiver);

receiver_iterators!();
