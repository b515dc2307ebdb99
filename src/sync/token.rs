//! [`CancellationToken`]: one switch that stops a group of tasks.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use super::Event;
use crate::task::{CancelHandle, JoinHandle};

struct Node {
    cancelled: AtomicBool,
    event: Event,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    children: Vec<Weak<Node>>,
    tasks: Vec<CancelHandle>,
}

impl Node {
    /// Runs `add` under the lock unless the node is cancelled already
    /// (`false`): checked under the same lock `cancel` takes, so whatever
    /// `add` registers is seen by the cancellation, or was too late for it.
    fn enlist(&self, add: impl FnOnce(&mut Inner)) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if self.cancelled.load(Ordering::Acquire) {
            return false;
        }
        add(&mut inner);
        true
    }

    fn cancel(&self) {
        let taken = {
            let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            if self.cancelled.swap(true, Ordering::AcqRel) {
                return;
            }
            std::mem::take(&mut *inner)
        };
        self.event.set();
        for task in taken.tasks {
            task.cancel();
        }
        for child in taken.children {
            if let Some(child) = child.upgrade() {
                child.cancel();
            }
        }
    }
}

/// Pushes `item`, first dropping the entries `live` says are gone whenever
/// the list reaches a power of two (from 16), so that it stays about as long
/// as what it holds.
fn prune_and_push<T>(list: &mut Vec<T>, item: T, live: impl Fn(&T) -> bool) {
    if list.len() >= 16 && list.len().is_power_of_two() {
        list.retain(live);
    }
    list.push(item);
}

/// A token that cancels a group of tasks at once, and that tasks can watch —
/// tokio-util's `CancellationToken`, with corio's hard cancellation added.
///
/// Two ways to stop work with it:
///
/// * **Cooperative**: tasks check [`is_cancelled`](Self::is_cancelled) or
///   wait in [`cancelled`](Self::cancelled) (from a helper task, or with a
///   timeout) and stop on their own terms.
/// * **Hard**: tasks [`attach`](Self::attach)ed to the token are cancelled
///   like [`JoinHandle::cancel`] when it is: their blocking calls fail with
///   [`Error::Cancelled`](crate::Error::Cancelled) (or unwind), every
///   destructor runs.
///
/// [`child_token`](Self::child_token)s are cancelled with their parent, not
/// the other way round, so a server can cancel everything while each
/// connection cancels only its own tasks. Clones are the same token.
///
/// ```
/// use corio::sync::CancellationToken;
/// use std::time::Duration;
///
/// corio::run(|| {
///     let shutdown = CancellationToken::new();
///     let workers: Vec<_> = (0..3)
///         .map(|_| {
///             let h = corio::spawn(|| corio::time::sleep(Duration::from_secs(3600)));
///             shutdown.attach(&h);
///             h
///         })
///         .collect();
///     let watcher = {
///         let shutdown = shutdown.child_token();
///         corio::spawn(move || shutdown.cancelled())
///     };
///     corio::yield_now();
///     shutdown.cancel();
///     for w in workers {
///         assert!(w.join().unwrap_err().is_cancelled());
///     }
///     watcher.join().unwrap(); // woke up: its parent was cancelled
/// });
/// ```
#[derive(Clone)]
pub struct CancellationToken {
    node: Arc<Node>,
}

impl CancellationToken {
    /// A token that is not cancelled.
    pub fn new() -> CancellationToken {
        CancellationToken {
            node: Arc::new(Node {
                cancelled: AtomicBool::new(false),
                event: Event::new(),
                inner: Mutex::new(Inner::default()),
            }),
        }
    }

    /// A token cancelled when this one is (at once if it already is), which
    /// can also be cancelled on its own without affecting this one.
    pub fn child_token(&self) -> CancellationToken {
        let child = CancellationToken::new();
        let weak = Arc::downgrade(&child.node);
        // Forget children that are gone, so a long-lived parent of many
        // short-lived children stays small.
        if !self
            .node
            .enlist(|inner| prune_and_push(&mut inner.children, weak, |c| c.strong_count() > 0))
        {
            child.cancel();
        }
        child
    }

    /// Cancels the token, its children, and the tasks attached to any of
    /// them, and wakes everyone waiting in [`cancelled`](Self::cancelled).
    /// Cancelling twice does nothing more.
    pub fn cancel(&self) {
        self.node.cancel();
    }

    /// Whether the token has been cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.node.cancelled.load(Ordering::Acquire)
    }

    /// Waits until the token is cancelled (returns at once if it is). A
    /// cancellation point of the calling task.
    pub fn cancelled(&self) {
        self.node.event.wait();
    }

    /// Like [`cancelled`](Self::cancelled), giving up after `timeout`;
    /// `true` if the token was cancelled.
    pub fn cancelled_timeout(&self, timeout: Duration) -> bool {
        self.node.event.wait_timeout(timeout)
    }

    /// Cancels `task` when this token is cancelled — at once if it already
    /// is. Attaching a finished task does nothing.
    pub fn attach<T>(&self, task: &JoinHandle<T>) {
        self.attach_handle(task.cancel_handle());
    }

    /// Like [`attach`](Self::attach), with a [`CancelHandle`].
    pub fn attach_handle(&self, task: CancelHandle) {
        let for_later = task.clone();
        if !self
            .node
            .enlist(|inner| prune_and_push(&mut inner.tasks, for_later, |t| !t.is_finished()))
        {
            task.cancel();
        }
    }

    /// A guard that cancels the token when dropped (on every path out of a
    /// scope, panics included) unless [`disarm`](DropGuard::disarm)ed.
    pub fn drop_guard(self) -> DropGuard {
        DropGuard { token: Some(self) }
    }
}

impl Default for CancellationToken {
    fn default() -> Self {
        CancellationToken::new()
    }
}

impl fmt::Debug for CancellationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancellationToken")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

/// Cancels its [`CancellationToken`] when dropped; made by
/// [`CancellationToken::drop_guard`].
#[derive(Debug)]
pub struct DropGuard {
    token: Option<CancellationToken>,
}

impl DropGuard {
    /// Gives the token back without cancelling it.
    pub fn disarm(mut self) -> CancellationToken {
        self.token
            .take()
            .expect("a DropGuard holds its token until dropped")
    }
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        if let Some(token) = self.token.take() {
            token.cancel();
        }
    }
}
