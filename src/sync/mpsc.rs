//! Multi-producer, single-consumer channels, like [`std::sync::mpsc`].
//!
//! [`channel`] makes an unbounded channel, [`sync_channel`] a bounded one
//! (capacity 0: a rendezvous, where every send waits for a receiver). A
//! blocking call inside a task suspends the task (state: waiting on a
//! channel), never the thread; on a plain thread it blocks the thread. Both
//! ends work from any task of any runtime and from plain threads, in any
//! mix.
//!
//! ```
//! use corio::sync::mpsc;
//!
//! corio::run(|| {
//!     let (tx, rx) = mpsc::sync_channel(0);
//!     let producer = corio::spawn(move || {
//!         for i in 0..3 {
//!             tx.send(i).unwrap(); // waits for the receiver each time
//!         }
//!     });
//!     assert_eq!(rx.iter().collect::<Vec<_>>(), [0, 1, 2]);
//!     producer.join().unwrap();
//! });
//! ```
//!
//! # Differences from std
//!
//! * Cancellation: a blocking call (`send` on a full bounded channel,
//!   `recv`, `recv_timeout`, `send_timeout`, `iter`) of a cancelled task does
//!   not return: the task unwinds, running every destructor, and its
//!   [`join`](crate::JoinHandle::join) reports
//!   [`is_cancelled`](crate::JoinError::is_cancelled). A message the call was
//!   sending is dropped; a message it already received is returned (the
//!   cancellation then fails the next blocking call). The same holds inside
//!   an expired [`time::timeout`](crate::time::timeout) for calls without a
//!   timeout error of their own: they unwind to the `timeout`.
//! * A call that would have to wait while its task is unwinding (in a
//!   destructor) fails at once with its usual error instead.
//! * Both senders also have [`try_send`](Sender::try_send) and
//!   `send_timeout` (for [`Sender`], which never waits, they fail only when
//!   the receiver is gone).
//! * When the last receiver goes, the messages still buffered are dropped.
//!   If a message's destructor panics, the others are dropped all the same
//!   and the first panic continues out of the receiver's drop (further ones
//!   are reported by the panic hook, then discarded), so the process does
//!   not abort on a second panic. The same holds for [`mpmc`](super::mpmc)
//!   and [`oneshot`](super::oneshot).
//!
//! Use [`mpmc`](super::mpmc) for cloneable receivers and
//! [`select!`](crate::select!) to wait on several channels at once.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::chan::Chan;
pub use super::error::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
use crate::time::deadline_after;

/// Creates an unbounded channel: [`Sender::send`] never waits.
///
/// # Examples
///
/// ```
/// let (tx, rx) = corio::sync::mpsc::channel();
/// std::thread::spawn(move || tx.send("from a thread").unwrap());
/// corio::run(move || assert_eq!(rx.recv().unwrap(), "from a thread"));
/// ```
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan::new(None));
    (
        Sender {
            chan: Arc::clone(&chan),
        },
        Receiver::new(chan),
    )
}

/// Creates a channel holding at most `bound` messages: [`SyncSender::send`]
/// waits while it is full. With `bound == 0` every send waits until a
/// receiver takes the message (a rendezvous).
///
/// # Examples
///
/// ```
/// use corio::sync::mpsc::{sync_channel, TrySendError};
///
/// let (tx, rx) = sync_channel(1);
/// tx.send(1).unwrap();
/// assert_eq!(tx.try_send(2), Err(TrySendError::Full(2)));
/// assert_eq!(rx.recv(), Ok(1));
/// ```
pub fn sync_channel<T>(bound: usize) -> (SyncSender<T>, Receiver<T>) {
    let chan = Arc::new(Chan::new(Some(bound)));
    (
        SyncSender {
            chan: Arc::clone(&chan),
        },
        Receiver::new(chan),
    )
}

/// The sending half of an unbounded [`channel`]. Cloneable.
pub struct Sender<T> {
    chan: Arc<Chan<T>>,
}

impl<T> Sender<T> {
    /// Sends `t`; never waits, so it is not a yield point: a loop that only
    /// sends starves the other tasks of its thread (see
    /// [`sync`](crate::sync#calls-that-never-yield)).
    ///
    /// # Errors
    ///
    /// [`SendError`] with the message if the receiver is gone.
    pub fn send(&self, t: T) -> Result<(), SendError<T>> {
        self.chan.try_send(t).map_err(|e| SendError(e.into_inner()))
    }

    /// Same as [`send`](Self::send) (an unbounded channel is never full);
    /// here for symmetry with [`SyncSender::try_send`].
    ///
    /// # Errors
    ///
    /// [`TrySendError::Disconnected`] if the receiver is gone.
    pub fn try_send(&self, t: T) -> Result<(), TrySendError<T>> {
        self.chan.try_send(t)
    }

    /// Same as [`send`](Self::send); never times out.
    ///
    /// # Errors
    ///
    /// [`SendTimeoutError::Disconnected`] if the receiver is gone.
    pub fn send_timeout(&self, t: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        let _ = timeout;
        self.send(t)
            .map_err(|e| SendTimeoutError::Disconnected(e.0))
    }

    pub(crate) fn chan(&self) -> &Chan<T> {
        &self.chan
    }
}

channel_handle!(Sender, "Sender", drop: drop_sender, clone: add_sender);
channel_queries!(Sender);

/// The sending half of a bounded [`sync_channel`]. Cloneable.
pub struct SyncSender<T> {
    chan: Arc<Chan<T>>,
}

impl<T> SyncSender<T> {
    /// Sends `t`, waiting while the channel is full (with capacity 0: until
    /// a receiver takes it). A cancellation point.
    ///
    /// # Errors
    ///
    /// [`SendError`] with the message if the receiver is gone (or goes away
    /// while this waits).
    pub fn send(&self, t: T) -> Result<(), SendError<T>> {
        self.chan
            .send(t, None, super::chan::SendFail::into_send_error)
    }

    /// Sends `t` if the channel has room (capacity 0: if a receiver is
    /// waiting); never waits (not a yield point: see
    /// [`sync`](crate::sync#calls-that-never-yield)).
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] or [`TrySendError::Disconnected`], with the
    /// message.
    pub fn try_send(&self, t: T) -> Result<(), TrySendError<T>> {
        self.chan.try_send(t)
    }

    /// Like [`send`](Self::send), giving up after `timeout`. A cancellation
    /// point.
    ///
    /// # Errors
    ///
    /// [`SendTimeoutError::Timeout`] (also when an enclosing
    /// [`time::timeout`](crate::time::timeout) expires) or
    /// [`SendTimeoutError::Disconnected`], with the message.
    pub fn send_timeout(&self, t: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        self.chan.send(
            t,
            deadline_after(timeout),
            super::chan::SendFail::into_send_timeout_error,
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

channel_handle!(SyncSender, "SyncSender", drop: drop_sender, clone: add_sender);
channel_queries!(SyncSender);

/// The receiving half of a [`channel`] or [`sync_channel`]. Not cloneable
/// (see [`mpmc`](super::mpmc)); like std's, it is `Send` but not `Sync`:
///
/// ```compile_fail
/// fn assert_sync<T: Sync>(_: &T) {}
/// let (_tx, rx) = corio::sync::mpsc::channel::<u8>();
/// assert_sync(&rx);
/// ```
pub struct Receiver<T> {
    chan: Arc<Chan<T>>,
    _not_sync: PhantomData<Cell<()>>,
}

impl<T> Receiver<T> {
    fn new(chan: Arc<Chan<T>>) -> Receiver<T> {
        Receiver {
            chan,
            _not_sync: PhantomData,
        }
    }

    /// Receives a message, waiting until one arrives. A cancellation point.
    ///
    /// # Errors
    ///
    /// [`RecvError`] once every sender is gone and the channel is empty.
    ///
    /// # Examples
    ///
    /// ```
    /// use corio::sync::mpsc;
    /// corio::run(|| {
    ///     let (tx, rx) = mpsc::channel();
    ///     let sender = corio::spawn(move || tx.send(5).unwrap());
    ///     assert_eq!(rx.recv(), Ok(5));
    ///     assert_eq!(rx.recv(), Err(mpsc::RecvError)); // the sender is gone
    ///     sender.join().unwrap();
    /// });
    /// ```
    #[inline]
    pub fn recv(&self) -> Result<T, RecvError> {
        self.chan.recv(None, super::chan::RecvFail::into_recv_error)
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

    /// Like [`recv`](Self::recv), giving up after `timeout`. A cancellation
    /// point.
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`] (also when an enclosing
    /// [`time::timeout`](crate::time::timeout) expires) or
    /// [`RecvTimeoutError::Disconnected`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use corio::sync::mpsc::{channel, RecvTimeoutError};
    ///
    /// let (_tx, rx) = channel::<u8>();
    /// assert_eq!(rx.recv_timeout(Duration::from_millis(5)), Err(RecvTimeoutError::Timeout));
    /// ```
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.chan.recv(
            deadline_after(timeout),
            super::chan::RecvFail::into_recv_timeout_error,
        )
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

    /// An iterator that [`recv`](Self::recv)s until every sender is gone.
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

channel_handle!(Receiver, "Receiver", drop: drop_receiver);
channel_queries!(Receiver);

receiver_iterators!();

#[cfg(test)]
mod tests {
    use super::*;

    fn _assert_traits() {
        fn send<T: Send>() {}
        fn sync<T: Sync>() {}
        send::<Sender<u8>>();
        sync::<Sender<u8>>();
        send::<SyncSender<u8>>();
        sync::<SyncSender<u8>>();
        send::<Receiver<u8>>();
    }
}
