//! Channels, locks and other ways for tasks to talk and wait for each other.
//!
//! | what | like | for |
//! | --- | --- | --- |
//! | [`mpsc`] | `std::sync::mpsc` | channels: unbounded, bounded, rendezvous |
//! | [`mpmc`] | `std::sync::mpmc` | channels with cloneable receivers |
//! | [`oneshot`] | tokio's `oneshot` | one message, e.g. a result |
//! | [`broadcast`] | tokio's `broadcast` | every message to every receiver |
//! | [`watch`] | tokio's `watch` | the latest value, and waiting for it to change |
//! | [`select!`](crate::select!), [`select`] | Go's `select`, crossbeam's `select!` | the first of several receives, sends, task ends, timers, socket readiness events or signals, or a timeout |
//! | [`Mutex`], [`RwLock`] | `std::sync` | locks (no poisoning) |
//! | [`Condvar`] | `std::sync::Condvar` | waiting for a condition under a [`Mutex`] |
//! | [`Semaphore`] | tokio's `Semaphore` | limiting concurrency |
//! | [`Barrier`] | `std::sync::Barrier` | meeting points |
//! | [`WaitGroup`] | Go's `sync.WaitGroup` | waiting for a group to finish |
//! | [`Notify`], [`Event`] | tokio's `Notify`, asyncio's `Event` | waking waiters |
//! | [`CancellationToken`] | tokio-util's `CancellationToken` | stopping a group of tasks |
//!
//! ```
//! use corio::sync::{mpsc, Mutex};
//! use std::sync::Arc;
//!
//! corio::run(|| {
//!     let (tx, rx) = mpsc::sync_channel(16);
//!     let seen = Arc::new(Mutex::new(Vec::new()));
//!     let consumer = {
//!         let seen = Arc::clone(&seen);
//!         corio::spawn(move || {
//!             for word in rx.iter() {
//!                 seen.lock().push(word);
//!             }
//!         })
//!     };
//!     for word in ["blocking", "style", "no", "await"] {
//!         tx.send(word).unwrap();
//!     }
//!     drop(tx); // the consumer's loop ends
//!     consumer.join().unwrap();
//!     assert_eq!(seen.lock().len(), 4);
//! });
//! ```
//!
//! # Waiting
//!
//! A call that has to wait suspends the calling **task** — its state
//! becomes `Waiting` with the primitive as the reason
//! ([`WaitReason::Channel`](crate::task::WaitReason::Channel), `Lock`,
//! `Semaphore`, `Event`, `Select`) — and the thread runs other tasks. On a
//! plain thread (outside any runtime) the same call blocks the thread, so
//! both ends of a channel, or the holders of a lock, can be tasks of one
//! runtime, tasks of runtimes on different threads, or plain threads, in any
//! mix.
//!
//! Waiters are served first come, first served: a message goes to the
//! receiver that has waited longest, a lock or permit is handed straight to
//! the oldest waiter (newcomers cannot barge in), and a bounded channel takes
//! the messages of waiting senders in order. So nobody starves. A waiter
//! that times out or is cancelled leaves the queue without taking the
//! wakeup meant for the next one.
//!
//! Every call that waits has a `try_` form that never waits and a timed
//! form (`recv_timeout`, `send_timeout`, `try_lock_for`,
//! `acquire_timeout`, `wait_timeout`, ...). An enclosing
//! [`time::timeout`](crate::time::timeout) applies too.
//!
//! # Calls that never yield
//!
//! A task gives its thread to other tasks only where it waits (or calls
//! [`yield_now`](crate::yield_now)). These calls never wait, so they are
//! never yield points, even when they fail:
//!
//! * `send` of an unbounded channel ([`mpsc::Sender::send`],
//!   [`mpmc::Sender::send`] of an [`mpmc::channel`]) and
//!   [`oneshot::Sender::send`];
//! * every `try_` call: `try_send`, `try_recv`, `try_iter`, `try_lock`,
//!   `try_read`, `try_write`, `try_acquire`, ...;
//! * [`select!`](crate::select!) with a plain `default` arm, and
//!   [`select::try_select`];
//! * the calls that wake or release: `notify_*`, `set`, `add_permits`,
//!   dropping a guard or permit.
//!
//! So a loop made only of them — a producer that keeps sending on an
//! unbounded channel, a poll loop of `try_recv` or `select!` with
//! `default` — keeps its thread to itself: the other tasks of that runtime
//! (the consumer included) do not run until it waits. Such a loop must
//! yield now and then:
//!
//! ```
//! use corio::sync::mpsc;
//!
//! corio::run(|| {
//!     let (tx, rx) = mpsc::channel();
//!     let consumer = corio::spawn(move || rx.iter().count());
//!     for i in 0..10_000 {
//!         tx.send(i).unwrap(); // never waits, never yields
//!         if i % 256 == 255 {
//!             corio::yield_now(); // let the consumer (and the rest) run
//!         }
//!     }
//!     drop(tx);
//!     assert_eq!(consumer.join().unwrap(), 10_000);
//! });
//! ```
//!
//! A bounded channel needs no such care: a full one makes the sender wait.
//!
//! # Panics and unwinding
//!
//! The channel handles, locks and other primitives are `UnwindSafe` and
//! `RefUnwindSafe`, as their std and crossbeam counterparts are; the locks
//! do not poison, so after a caught panic the data under a lock may be
//! half-updated. When the last receiver of a channel is dropped with
//! messages still buffered, every one of them is dropped, even if a
//! destructor panics; the first such panic then continues out of that drop.
//!
//! # Cancellation
//!
//! Every call that may wait is a cancellation point (see
//! [`task`](crate::task#cancellation)): in a cancelled task it does not
//! wait, and since std-shaped signatures have no room for a "cancelled"
//! error, it unwinds — running every destructor — and the task ends
//! cancelled. An operation that completed just as the cancellation came
//! (a message handed over, a lock granted) completes; the next call fails.
//! A [`Mutex`] held by a cancelled task is released by its guard's drop
//! during the unwind: cancellation does not poison.
//!
//! # Implementation notes
//!
//! One protocol underlies every primitive: a waiting caller's record lives
//! on its own stack (no allocation per wait) and is queued under the
//! primitive's spin lock; a waker hands over what the caller waited for and
//! then *selects* the record with one state transition, which a timeout, a
//! cancellation or another `select` arm can win instead, so exactly one
//! thing happens. Both ends on one thread cost no atomic operation beyond
//! the lock. See the source of `sync/waiter.rs` for the numbered rules.

/// `Drop`, `Debug` and, for cloneable handles, `Clone` of a channel handle
/// `$name<T> { chan: Arc<Chan<T>> }`: a clone counts one more sender or
/// receiver (`$add`), a drop one less (`$drop`; the last one disconnects);
/// `Debug` shows `$label` and nothing else. Expanded in each channel module.
macro_rules! channel_handle {
    ($name:ident, $label:literal, drop: $drop:ident $(, clone: $add:ident)?) => {
        $(
            impl<T> Clone for $name<T> {
                fn clone(&self) -> Self {
                    self.chan.$add();
                    $name {
                        chan: Arc::clone(&self.chan),
                    }
                }
            }
        )?

        impl<T> Drop for $name<T> {
            fn drop(&mut self) {
                self.chan.$drop();
            }
        }

        impl<T> fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct($label).finish_non_exhaustive()
            }
        }
    };
}

/// The buffer queries of a channel handle `$name<T> { chan: Arc<Chan<T>> }`
/// (`len`, `is_empty`, `is_full`, `capacity`), shaped like those of std's
/// `mpmc` and crossbeam's channels; expanded in each channel module.
macro_rules! channel_queries {
    ($name:ident) => {
        impl<T> $name<T> {
            /// Messages waiting in the buffer.
            pub fn len(&self) -> usize {
                self.chan.len()
            }

            /// Whether no message is waiting in the buffer.
            pub fn is_empty(&self) -> bool {
                self.len() == 0
            }

            /// Whether the buffer is full, so a blocking `send` would wait
            /// (always for a rendezvous channel, never for an unbounded one).
            pub fn is_full(&self) -> bool {
                self.capacity().is_some_and(|cap| self.len() >= cap)
            }

            /// The capacity; `None` for an unbounded channel.
            pub fn capacity(&self) -> Option<usize> {
                self.chan.capacity()
            }
        }
    };
}

/// The iterators of a channel `Receiver<T>` (`iter`, `try_iter`, and both
/// `IntoIterator`s), shaped like std's; expanded in each channel module,
/// whose `Receiver` has `recv`, `try_recv` and `iter`.
macro_rules! receiver_iterators {
    () => {
        /// Iterator returned by [`Receiver::iter`].
        #[derive(Debug)]
        pub struct Iter<'a, T> {
            rx: &'a Receiver<T>,
        }

        impl<T> Iterator for Iter<'_, T> {
            type Item = T;
            #[inline]
            fn next(&mut self) -> Option<T> {
                self.rx.recv().ok()
            }
        }

        /// Iterator returned by [`Receiver::try_iter`].
        #[derive(Debug)]
        pub struct TryIter<'a, T> {
            rx: &'a Receiver<T>,
        }

        impl<T> Iterator for TryIter<'_, T> {
            type Item = T;
            fn next(&mut self) -> Option<T> {
                self.rx.try_recv().ok()
            }
        }

        /// Owning iterator returned by `Receiver::into_iter`.
        #[derive(Debug)]
        pub struct IntoIter<T> {
            rx: Receiver<T>,
        }

        impl<T> Iterator for IntoIter<T> {
            type Item = T;
            #[inline]
            fn next(&mut self) -> Option<T> {
                self.rx.recv().ok()
            }
        }

        impl<'a, T> IntoIterator for &'a Receiver<T> {
            type Item = T;
            type IntoIter = Iter<'a, T>;
            fn into_iter(self) -> Iter<'a, T> {
                self.iter()
            }
        }

        impl<T> IntoIterator for Receiver<T> {
            type Item = T;
            type IntoIter = IntoIter<T>;
            fn into_iter(self) -> IntoIter<T> {
                IntoIter { rx: self }
            }
        }
    };
}

mod barrier;
pub mod broadcast;
mod chan;
mod condvar;
mod error;
pub mod mpmc;
pub mod mpsc;
mod mutex;
mod notify;
pub mod oneshot;
mod rwlock;
pub mod select;
mod semaphore;
mod spin;
mod token;
mod unwind_safe;
mod wait_group;
mod waiter;
pub mod watch;

pub use barrier::{Barrier, BarrierWaitResult};
pub use condvar::{Condvar, WaitTimeoutResult};
pub use mutex::{MappedMutexGuard, Mutex, MutexGuard};
pub use notify::{Event, Notify};
pub use rwlock::{
    MappedRwLockReadGuard, MappedRwLockWriteGuard, RwLock, RwLockReadGuard, RwLockWriteGuard,
};
pub use semaphore::{
    AcquireError, OwnedSemaphorePermit, Semaphore, SemaphorePermit, TryAcquireError,
};
pub use token::{CancellationToken, DropGuard};
pub use wait_group::WaitGroup;
