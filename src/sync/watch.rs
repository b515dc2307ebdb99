//! A channel that holds one value, the latest, which any number of receivers
//! read and wait to change — tokio's `watch`, for configuration, state and
//! shutdown signals.
//!
//! Receivers see the *latest* value, not every value: a receiver that reads
//! slowly skips the versions it missed. Every receiver starts having seen the
//! value the channel holds when it subscribes.
//!
//! ```
//! use corio::sync::watch;
//!
//! corio::run(|| {
//!     let (tx, mut rx) = watch::channel("starting");
//!     let observer = corio::spawn(move || {
//!         let mut seen = vec![*rx.borrow()];
//!         while rx.changed().is_ok() {
//!             seen.push(*rx.borrow_and_update());
//!         }
//!         seen // the sender is gone
//!     });
//!     corio::yield_now();
//!     tx.send("running").unwrap();
//!     corio::yield_now();
//!     tx.send("stopped").unwrap();
//!     drop(tx);
//!     assert_eq!(observer.join().unwrap(), ["starting", "running", "stopped"]);
//! });
//! ```
//!
//! Waiting ([`Receiver::changed`], [`Receiver::wait_for`],
//! [`Sender::closed`]) suspends the task, or blocks a plain thread, and is a
//! cancellation point like every other wait in [`sync`](super).

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

pub use super::error::SendError;
use super::spin::SpinLock;
use super::waiter::{self, WaitQueue, Wakes};
use super::{RwLock, RwLockReadGuard};

/// Every sender is gone, so the value will not change again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the watch channel's senders are gone")]
pub struct RecvError(());

struct State {
    /// Bumped by every change of the value.
    version: u64,
    senders: usize,
    receivers: usize,
    /// Receivers waiting for a new version (or the last sender to go).
    changed: WaitQueue<()>,
    /// Senders waiting for the last receiver to go.
    closed: WaitQueue<()>,
}

struct Shared<T> {
    value: RwLock<T>,
    state: SpinLock<State>,
}

impl<T> Shared<T> {
    fn wake_all(queue: &mut WaitQueue<()>) -> Wakes {
        let mut wakes = Wakes::default();
        queue.select_all(&mut wakes);
        wakes
    }

    /// Records a change of the value and wakes the receivers waiting for one.
    fn bump(&self) {
        let mut st = self.state.lock();
        st.version += 1;
        let wakes = Self::wake_all(&mut st.changed);
        drop(st);
        wakes.wake();
    }
}

/// Creates a watch channel holding `init`.
pub fn channel<T>(init: T) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        value: RwLock::new(init),
        state: SpinLock::new(State {
            version: 0,
            senders: 1,
            receivers: 1,
            changed: WaitQueue::new(),
            closed: WaitQueue::new(),
        }),
    });
    (
        Sender {
            shared: Arc::clone(&shared),
        },
        Receiver { shared, seen: 0 },
    )
}

/// The sending side of a [`watch`](self) channel. Cloneable: the channel
/// closes when the last sender is dropped.
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

/// The receiving side of a [`watch`](self) channel. Cloneable: a clone has
/// seen what the original has seen.
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
    /// The version this receiver has seen.
    seen: u64,
}

/// A read borrow of the value in a [`watch`](self) channel. While it lives,
/// senders that change the value wait: keep it short.
pub struct Ref<'a, T> {
    guard: RwLockReadGuard<'a, T>,
    has_changed: bool,
}

impl<T> Ref<'_, T> {
    /// Whether this value had not been seen by the receiver that borrowed it
    /// (always `false` for a borrow through the sender).
    pub fn has_changed(&self) -> bool {
        self.has_changed
    }
}

impl<T> Deref for Ref<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T: fmt::Debug> fmt::Debug for Ref<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T> Sender<T> {
    /// Replaces the value and wakes the receivers waiting for a change.
    ///
    /// # Errors
    ///
    /// When no receiver is left, the value is handed back and not stored
    /// (use [`send_replace`](Self::send_replace) to store it anyway).
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        if self.shared.state.lock().receivers == 0 {
            return Err(SendError(value));
        }
        self.send_replace(value);
        Ok(())
    }

    /// Replaces the value whether or not any receiver is left, returning the
    /// old one.
    pub fn send_replace(&self, value: T) -> T {
        let mut guard = self.shared.value.write();
        let old = std::mem::replace(&mut *guard, value);
        // Bumped under the write lock, so a reader never pairs the new value
        // with the old version.
        self.shared.bump();
        drop(guard);
        old
    }

    /// Changes the value in place and wakes the receivers waiting for a
    /// change.
    pub fn send_modify(&self, modify: impl FnOnce(&mut T)) {
        let mut guard = self.shared.value.write();
        modify(&mut guard);
        self.shared.bump();
    }

    /// Changes the value in place if `modify` returns `true`; only then are
    /// receivers told. Returns what `modify` returned.
    pub fn send_if_modified(&self, modify: impl FnOnce(&mut T) -> bool) -> bool {
        let mut guard = self.shared.value.write();
        let modified = modify(&mut guard);
        if modified {
            self.shared.bump();
        }
        modified
    }

    /// Borrows the current value.
    pub fn borrow(&self) -> Ref<'_, T> {
        Ref {
            guard: self.shared.value.read(),
            has_changed: false,
        }
    }

    /// A new receiver that has seen the current value.
    pub fn subscribe(&self) -> Receiver<T> {
        let mut st = self.shared.state.lock();
        st.receivers += 1;
        let seen = st.version;
        drop(st);
        Receiver {
            shared: Arc::clone(&self.shared),
            seen,
        }
    }

    /// How many receivers are left.
    pub fn receiver_count(&self) -> usize {
        self.shared.state.lock().receivers
    }

    /// Whether every receiver is gone.
    pub fn is_closed(&self) -> bool {
        self.receiver_count() == 0
    }

    /// Waits until every receiver is gone (returns at once if they are). A
    /// cancellation point.
    pub fn closed(&self) {
        loop {
            let waited = waiter::wait_event(
                &self.shared.state,
                |st| &mut st.closed,
                |st| st.receivers == 0,
                None,
            );
            if let Err(i) = waited {
                waiter::unwind_for(i, "corio::sync::watch::Sender::closed");
            }
            if self.shared.state.lock().receivers == 0 {
                return;
            }
        }
    }
}

impl<T> Receiver<T> {
    /// Borrows the latest value without marking it seen.
    pub fn borrow(&self) -> Ref<'_, T> {
        let guard = self.shared.value.read();
        // The version is read under the read lock: no change can slip
        // between the value borrowed and the version compared.
        let has_changed = self.shared.state.lock().version != self.seen;
        Ref { guard, has_changed }
    }

    /// Borrows the latest value and marks it seen.
    pub fn borrow_and_update(&mut self) -> Ref<'_, T> {
        let guard = self.shared.value.read();
        let version = self.shared.state.lock().version;
        let has_changed = version != self.seen;
        self.seen = version;
        Ref { guard, has_changed }
    }

    /// Whether the value changed since this receiver last marked it seen.
    ///
    /// # Errors
    ///
    /// [`RecvError`] when every sender is gone and nothing is left unseen.
    pub fn has_changed(&self) -> Result<bool, RecvError> {
        let st = self.shared.state.lock();
        match (st.version != self.seen, st.senders) {
            (true, _) => Ok(true),
            (false, 0) => Err(RecvError(())),
            (false, _) => Ok(false),
        }
    }

    /// Marks the current value seen.
    pub fn mark_unchanged(&mut self) {
        self.seen = self.shared.state.lock().version;
    }

    /// Marks the current value unseen, so the next [`changed`](Self::changed)
    /// returns at once.
    pub fn mark_changed(&mut self) {
        self.seen = self.seen.wrapping_sub(1);
    }

    /// Waits until the value changes from the one this receiver has seen
    /// (returns at once if it already has), then marks it seen. A
    /// cancellation point.
    ///
    /// # Errors
    ///
    /// [`RecvError`] when every sender is gone and nothing is left unseen.
    pub fn changed(&mut self) -> Result<(), RecvError> {
        wait_changed(&self.shared, &mut self.seen)
    }

    /// Waits until the value satisfies `pred` (checking the current value
    /// first), marks it seen and returns a borrow of it. A cancellation
    /// point.
    ///
    /// # Errors
    ///
    /// [`RecvError`] when every sender is gone and the value does not
    /// satisfy `pred`.
    pub fn wait_for(&mut self, mut pred: impl FnMut(&T) -> bool) -> Result<Ref<'_, T>, RecvError> {
        // Split borrows: the returned `Ref` borrows `shared` while `seen`
        // changes.
        let (shared, seen) = (&self.shared, &mut self.seen);
        loop {
            {
                let guard = shared.value.read();
                let version = shared.state.lock().version;
                if pred(&guard) {
                    let has_changed = version != *seen;
                    *seen = version;
                    return Ok(Ref { guard, has_changed });
                }
                *seen = version;
            }
            wait_changed(shared, seen)?;
        }
    }

    /// Whether both receivers belong to the same channel.
    pub fn same_channel(&self, other: &Receiver<T>) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

/// Waits until the version differs from `*seen` (or every sender is gone),
/// then marks it seen.
fn wait_changed<T>(shared: &Shared<T>, seen: &mut u64) -> Result<(), RecvError> {
    loop {
        let mut outcome = None;
        let waited = waiter::wait_event(
            &shared.state,
            |st| &mut st.changed,
            |st| {
                outcome = if st.version != *seen {
                    Some(Ok(st.version))
                } else if st.senders == 0 {
                    Some(Err(RecvError(())))
                } else {
                    None
                };
                outcome.is_some()
            },
            None,
        );
        if let Err(i) = waited {
            waiter::unwind_for(i, "corio::sync::watch::Receiver::changed");
        }
        match outcome {
            Some(Ok(version)) => {
                *seen = version;
                return Ok(());
            }
            Some(Err(e)) => return Err(e),
            // Woken: look again.
            None => {}
        }
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.state.lock().senders += 1;
        Sender {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut st = self.shared.state.lock();
        st.senders -= 1;
        let wakes = if st.senders == 0 {
            Shared::<T>::wake_all(&mut st.changed)
        } else {
            Wakes::default()
        };
        drop(st);
        wakes.wake();
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.shared.state.lock().receivers += 1;
        Receiver {
            shared: Arc::clone(&self.shared),
            seen: self.seen,
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut st = self.shared.state.lock();
        st.receivers -= 1;
        let wakes = if st.receivers == 0 {
            Shared::<T>::wake_all(&mut st.closed)
        } else {
            Wakes::default()
        };
        drop(st);
        wakes.wake();
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("watch::Sender").finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("watch::Receiver")
            .field("seen", &self.seen)
            .finish_non_exhaustive()
    }
}
