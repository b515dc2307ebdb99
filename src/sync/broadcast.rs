//! A bounded channel where every receiver gets every message — tokio's
//! `broadcast`, for fanning events out to many tasks.
//!
//! The channel keeps the last `capacity` messages. A receiver that falls
//! further behind than that does not hold the senders up: its next
//! [`recv`](Receiver::recv) reports how many messages it missed
//! ([`RecvError::Lagged`]) and continues with the oldest one still kept.
//! Messages are cloned for each receiver, so `T: Clone`.
//!
//! ```
//! use corio::sync::broadcast;
//!
//! corio::run(|| {
//!     let (tx, mut rx1) = broadcast::channel(16);
//!     let mut rx2 = tx.subscribe();
//!     let a = corio::spawn(move || (rx1.recv().unwrap(), rx1.recv().unwrap()));
//!     let b = corio::spawn(move || (rx2.recv().unwrap(), rx2.recv().unwrap()));
//!     tx.send("hello").unwrap();
//!     tx.send("world").unwrap();
//!     assert_eq!(a.join().unwrap(), ("hello", "world"));
//!     assert_eq!(b.join().unwrap(), ("hello", "world"));
//! });
//! ```
//!
//! `send` never waits (it is never a yield point: a loop that only sends
//! starves the other tasks of its thread); `recv` suspends the task, or
//! blocks a plain thread, and is a cancellation point.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

pub use super::error::SendError;
use super::spin::SpinLock;
use super::waiter::{self, WaitQueue, Wakes};

/// Why [`Receiver::recv`] returned no message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecvError {
    /// Every sender is gone and this receiver has read every message.
    #[error("the broadcast channel is closed")]
    Closed,
    /// The receiver fell behind and this many messages were dropped before
    /// it read them; the next `recv` returns the oldest message kept.
    #[error("the receiver lagged behind by {0} messages")]
    Lagged(u64),
}

/// Why [`Receiver::try_recv`] returned no message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TryRecvError {
    /// No message is waiting for this receiver.
    #[error("the broadcast channel has no message for this receiver")]
    Empty,
    /// Every sender is gone and this receiver has read every message.
    #[error("the broadcast channel is closed")]
    Closed,
    /// As [`RecvError::Lagged`].
    #[error("the receiver lagged behind by {0} messages")]
    Lagged(u64),
}

struct State<T> {
    /// The kept messages; `buffer[0]` has position `head`.
    buffer: VecDeque<T>,
    head: u64,
    capacity: usize,
    senders: usize,
    receivers: usize,
    waiting: WaitQueue<()>,
}

impl<T: Clone> State<T> {
    /// The message at `*next` for a receiver, advancing it.
    fn take(&self, next: &mut u64) -> Result<T, TryRecvError> {
        if *next < self.head {
            let missed = self.head - *next;
            *next = self.head;
            return Err(TryRecvError::Lagged(missed));
        }
        let offset = (*next - self.head) as usize;
        match self.buffer.get(offset) {
            Some(message) => {
                let message = message.clone();
                *next += 1;
                Ok(message)
            }
            None if self.senders == 0 => Err(TryRecvError::Closed),
            None => Err(TryRecvError::Empty),
        }
    }
}

impl<T> State<T> {
    fn tail(&self) -> u64 {
        self.head + self.buffer.len() as u64
    }

    fn wake_all(&mut self) -> Wakes {
        let mut wakes = Wakes::default();
        self.waiting.select_all(&mut wakes);
        wakes
    }
}

/// Creates a broadcast channel that keeps the last `capacity` messages.
///
/// # Panics
///
/// If `capacity` is 0.
pub fn channel<T: Clone>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    assert!(
        capacity > 0,
        "corio::sync::broadcast::channel: capacity must be at least 1"
    );
    let shared = Arc::new(SpinLock::new(State {
        buffer: VecDeque::with_capacity(capacity.min(1024)),
        head: 0,
        capacity,
        senders: 1,
        receivers: 1,
        waiting: WaitQueue::new(),
    }));
    (
        Sender {
            shared: Arc::clone(&shared),
        },
        Receiver { shared, next: 0 },
    )
}

/// The sending side of a [`broadcast`](self) channel; cloneable.
pub struct Sender<T> {
    shared: Arc<SpinLock<State<T>>>,
}

/// A receiving side of a [`broadcast`](self) channel. A clone starts where
/// the original is; [`Sender::subscribe`] starts at the next message sent.
pub struct Receiver<T> {
    shared: Arc<SpinLock<State<T>>>,
    /// The position of the next message this receiver reads.
    next: u64,
}

impl<T> Sender<T> {
    /// Sends `message` to every receiver, returning how many there are.
    /// Never waits: when the channel is full, the oldest message is dropped
    /// (receivers that had not read it see [`RecvError::Lagged`]).
    ///
    /// # Errors
    ///
    /// When no receiver is left; the message is handed back.
    pub fn send(&self, message: T) -> Result<usize, SendError<T>> {
        let mut st = self.shared.lock();
        if st.receivers == 0 {
            return Err(SendError(message));
        }
        let evicted = if st.buffer.len() == st.capacity {
            st.head += 1;
            st.buffer.pop_front()
        } else {
            None
        };
        st.buffer.push_back(message);
        let receivers = st.receivers;
        let wakes = st.wake_all();
        drop(st);
        // Dropped outside the lock: its destructor may do anything.
        drop(evicted);
        wakes.wake();
        Ok(receivers)
    }

    /// A new receiver that gets the messages sent from now on.
    pub fn subscribe(&self) -> Receiver<T> {
        let mut st = self.shared.lock();
        st.receivers += 1;
        Receiver {
            shared: Arc::clone(&self.shared),
            next: st.tail(),
        }
    }

    /// How many receivers are left.
    pub fn receiver_count(&self) -> usize {
        self.shared.lock().receivers
    }

    /// How many messages the channel keeps now.
    pub fn len(&self) -> usize {
        self.shared.lock().buffer.len()
    }

    /// Whether the channel keeps no message.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: Clone> Receiver<T> {
    /// Receives the next message, waiting for one if none is there. A
    /// cancellation point.
    ///
    /// # Errors
    ///
    /// [`RecvError::Lagged`] when messages this receiver had not read were
    /// dropped (the next call continues with the oldest kept);
    /// [`RecvError::Closed`] when every sender is gone and everything was
    /// read.
    pub fn recv(&mut self) -> Result<T, RecvError> {
        loop {
            let mut outcome = Err(TryRecvError::Empty);
            let next = &mut self.next;
            let waited = waiter::wait_event(
                &self.shared,
                |st| &mut st.waiting,
                |st| {
                    outcome = st.take(next);
                    !matches!(outcome, Err(TryRecvError::Empty))
                },
                None,
            );
            if let Err(i) = waited {
                waiter::unwind_for(i, "corio::sync::broadcast::Receiver::recv");
            }
            match outcome {
                Ok(message) => return Ok(message),
                Err(TryRecvError::Closed) => return Err(RecvError::Closed),
                Err(TryRecvError::Lagged(n)) => return Err(RecvError::Lagged(n)),
                // Woken: look again.
                Err(TryRecvError::Empty) => {}
            }
        }
    }

    /// Receives the next message if one is there; never waits.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv), plus [`TryRecvError::Empty`].
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        self.shared.lock().take(&mut self.next)
    }
}

impl<T> Receiver<T> {
    /// How many messages this receiver has not read yet (those still kept).
    pub fn len(&self) -> usize {
        let st = self.shared.lock();
        (st.tail() - self.next.max(st.head)) as usize
    }

    /// Whether this receiver has read every message kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A receiver that gets the messages sent from now on, like
    /// [`Sender::subscribe`].
    pub fn resubscribe(&self) -> Receiver<T> {
        let mut st = self.shared.lock();
        st.receivers += 1;
        Receiver {
            shared: Arc::clone(&self.shared),
            next: st.tail(),
        }
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        Sender {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        st.senders -= 1;
        let wakes = if st.senders == 0 {
            st.wake_all()
        } else {
            Wakes::default()
        };
        drop(st);
        wakes.wake();
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.shared.lock().receivers += 1;
        Receiver {
            shared: Arc::clone(&self.shared),
            next: self.next,
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        st.receivers -= 1;
        // The last receiver takes the kept messages with it; they are
        // dropped outside the lock.
        let kept = if st.receivers == 0 {
            st.head = st.tail();
            std::mem::take(&mut st.buffer)
        } else {
            VecDeque::new()
        };
        drop(st);
        drop(kept);
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("broadcast::Sender").finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("broadcast::Receiver")
            .finish_non_exhaustive()
    }
}
