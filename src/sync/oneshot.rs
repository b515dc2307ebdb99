//! A channel for exactly one message: the usual way to hand a result back
//! from a task or thread.
//!
//! [`Sender::send`] consumes the sender and never waits; the receiver waits
//! for the message (a cancellation point) or learns that the sender was
//! dropped without sending. Errors and cancellation behave as in
//! [`mpsc`](super::mpsc); a [`Receiver`] can be an arm of
//! [`select!`](crate::select!).
//!
//! ```
//! use corio::sync::oneshot;
//!
//! corio::run(|| {
//!     let (tx, rx) = oneshot::channel();
//!     let task = corio::spawn(move || tx.send(6 * 7).unwrap());
//!     assert_eq!(rx.recv(), Ok(42));
//!     task.join().unwrap();
//! });
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::chan::{Chan, RecvFail};
pub use super::error::{RecvError, RecvTimeoutError, SendError, TryRecvError};
use crate::time::deadline_after;

/// Creates a one-message channel.
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan::new(Some(1)));
    (
        Sender {
            chan: Arc::clone(&chan),
        },
        Receiver { chan },
    )
}

/// Sends the one message of a [`channel`].
pub struct Sender<T> {
    chan: Arc<Chan<T>>,
}

impl<T> Sender<T> {
    /// Sends `t`, consuming the sender; never waits (not a yield point).
    ///
    /// # Errors
    ///
    /// [`SendError`] with the message if the receiver is gone.
    pub fn send(self, t: T) -> Result<(), SendError<T>> {
        // The only message: the one-place buffer always has room.
        self.chan.try_send(t).map_err(|e| SendError(e.into_inner()))
    }

    /// Whether the receiver is gone (a send would fail).
    pub fn is_closed(&self) -> bool {
        self.chan.is_rx_gone()
    }
}

channel_handle!(Sender, "oneshot::Sender", drop: drop_sender);

/// Receives the one message of a [`channel`].
pub struct Receiver<T> {
    chan: Arc<Chan<T>>,
}

impl<T> Receiver<T> {
    /// Waits for the message. A cancellation point.
    ///
    /// # Errors
    ///
    /// [`RecvError`] if the sender was dropped without sending.
    pub fn recv(self) -> Result<T, RecvError> {
        self.chan.recv(None, RecvFail::into_recv_error)
    }

    /// Takes the message if it has arrived; never waits (not a yield point:
    /// see [`sync`](crate::sync#calls-that-never-yield)).
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] if not yet sent, [`TryRecvError::Disconnected`]
    /// if the sender was dropped without sending or the message was already
    /// taken.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        self.chan.try_recv()
    }

    /// Like [`recv`](Self::recv), giving up after `timeout` (the receiver
    /// stays usable).
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

    pub(crate) fn chan(&self) -> &Chan<T> {
        &self.chan
    }
}

channel_handle!(Receiver, "oneshot::Receiver", drop: drop_receiver);
