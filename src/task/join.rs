//! [`JoinHandle`]: the owned permission to wait for a task's result.
#![allow(unsafe_code)]

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::park::{Interrupt, Unparker};
use super::{Packet, TaskId, TaskRef};
use crate::error::JoinError;
use crate::task::WaitReason;

/// An owned permission to join a task (wait for its result), like
/// [`std::thread::JoinHandle`].
///
/// Dropping the handle *detaches* the task: it keeps running and its result
/// is dropped when it finishes.
///
/// # Examples
///
/// ```
/// corio::run(|| {
///     let h = corio::spawn(|| 6 * 7);
///     assert_eq!(h.join().unwrap(), 42);
/// });
/// ```
#[must_use = "dropping a JoinHandle detaches the task; call join() to wait for it"]
pub struct JoinHandle<T> {
    /// A block made by `Packet::<T>::allocate`.
    task: TaskRef,
    /// `JoinHandle<T>` is `Send` only when `T` is.
    _marker: PhantomData<T>,
}

impl<T> JoinHandle<T> {
    /// # Safety
    ///
    /// `task` is a block made by `Packet::<T>::allocate`.
    pub(crate) unsafe fn new(task: TaskRef) -> JoinHandle<T> {
        JoinHandle {
            task,
            _marker: PhantomData,
        }
    }

    fn packet(&self) -> &Packet<T> {
        // SAFETY: the invariant of the `task` field.
        unsafe { Packet::of(&self.task) }
    }

    /// Waits for the task to finish and returns its value, or a [`JoinError`]
    /// if it panicked or was cancelled.
    ///
    /// Inside a task this suspends the calling task (state: waiting on
    /// join); on a plain thread it blocks the thread.
    ///
    /// # Errors
    ///
    /// [`JoinError::is_panic`] if the task panicked (the payload is kept),
    /// [`JoinError::is_cancelled`] if it was cancelled.
    ///
    /// # Panics
    ///
    /// Panics if called on a plain thread for a task of a runtime on that same
    /// thread that is not running (it could never finish), and if a task
    /// joins itself (it would wait forever).
    ///
    /// # Cancellation
    ///
    /// `join` is a cancellation point. It has no error of its own to report a
    /// cancellation of the *calling* task with, so a cancelled caller unwinds
    /// from here (its destructors run; its own `join` reports it cancelled),
    /// and inside an expired [`time::timeout`](crate::time::timeout) it
    /// unwinds to that `timeout`. Called while the caller is already
    /// unwinding, it cannot wait and returns a cancelled `JoinError`.
    pub fn join(self) -> Result<T, JoinError> {
        let header = &self.packet().core.header;
        if !header.is_complete() {
            let waiter = Unparker::current();
            match &waiter {
                Unparker::Thread(_) => assert!(
                    !header.runs_on_current_thread(),
                    "JoinHandle::join on the runtime's own thread outside the runtime \
                     would block forever; join from inside a task or run block_on"
                ),
                Unparker::Task(me) if std::ptr::eq(me.core(), self.task.core()) => {
                    self_join(header)
                }
                _ => {}
            }
            if header.set_join_waiter(waiter) {
                while !header.is_complete() {
                    match super::park::park(WaitReason::Join(header.id), None) {
                        Ok(()) => {}
                        Err(Interrupt::Unwinding) => {
                            if header.runs_on_current_thread() {
                                // It can only run once we suspend, which we
                                // cannot while unwinding: give up on it, and
                                // make the report true.
                                super::cancel(&self.task_ref());
                                return Err(JoinError::cancelled(header.describe()));
                            }
                            // Another thread runs it: blocking this one is
                            // safe, and the registration wakes it.
                            if header.set_join_waiter(Unparker::Thread(std::thread::current())) {
                                while !header.is_complete() {
                                    std::thread::park();
                                }
                            }
                        }
                        // join has no error of its own to return: a cancelled
                        // joiner unwinds, and an expired `timeout` unwinds to it.
                        Err(i) => super::park::unwind_for(i),
                    }
                }
            }
        }
        self.packet()
            .take_result()
            .expect("task result is taken only once")
    }

    /// Whether the task has finished (returned, panicked or was cancelled).
    /// Does not block.
    pub fn is_finished(&self) -> bool {
        self.packet().core.header.is_complete()
    }

    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.packet().core.header.id
    }

    /// The task's name, if it has one.
    pub fn name(&self) -> Option<&str> {
        self.packet().core.header.name.as_deref()
    }

    /// Cancels the task.
    ///
    /// The task's current blocking operation — or its next one — fails with
    /// [`Error::Cancelled`](crate::Error::Cancelled), and so does every later
    /// one (the cancellation is sticky), so the task unwinds back to its
    /// closure with every destructor run. [`join`](Self::join) then returns a
    /// `JoinError` with [`is_cancelled`](JoinError::is_cancelled). Cancelling
    /// a finished task does nothing.
    ///
    /// ```
    /// use std::time::Duration;
    /// corio::run(|| {
    ///     let h = corio::spawn(|| corio::time::sleep(Duration::from_secs(3600)));
    ///     corio::yield_now();
    ///     h.cancel();
    ///     assert!(h.join().unwrap_err().is_cancelled());
    /// });
    /// ```
    pub fn cancel(&self) {
        super::cancel(&self.task_ref());
    }

    /// The task's scheduler core, for identity comparisons.
    pub(crate) fn core_ptr(&self) -> *const super::core::Core {
        self.task.core()
    }

    pub(crate) fn task_ref(&self) -> TaskRef {
        self.task.clone()
    }

    /// Registers `waiter` to be woken when the task finishes; `false` if it
    /// already has.
    pub(crate) fn set_waiter(&self, waiter: Unparker) -> bool {
        self.packet().core.header.set_join_waiter(waiter)
    }
}

/// A task waiting for itself would wait forever: say so instead.
#[cold]
fn self_join(header: &super::Header) -> ! {
    panic!(
        "JoinHandle::join: {} cannot join itself: it would wait forever",
        header.describe()
    )
}

// The handle is never pinned structurally: polling only touches the shared
// task block behind its counted pointer.
impl<T> Unpin for JoinHandle<T> {}

/// Awaiting a `JoinHandle` waits for the task, like [`join`](JoinHandle::join),
/// so async code (for example inside [`corio::block_on`](crate::block_on))
/// can await corio tasks. The waker is woken from the task's thread when it
/// finishes.
///
/// # Panics
///
/// Polling again after it returned `Ready`.
impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        // Register first, then learn whether it already completed (the
        // registration reports that atomically), so no wakeup is lost.
        if !this.is_finished() {
            if super::park::current_core()
                .is_some_and(|c| std::ptr::eq(c.as_ptr(), this.core_ptr()))
            {
                self_join(&this.packet().core.header);
            }
            if this.set_waiter(Unparker::Waker(cx.waker().clone())) {
                return Poll::Pending;
            }
        }
        Poll::Ready(
            this.packet()
                .take_result()
                .expect("JoinHandle polled after it returned Ready"),
        )
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        self.packet().detach();
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("id", &self.id())
            .field("name", &self.name())
            .field("finished", &self.is_finished())
            .finish()
    }
}
