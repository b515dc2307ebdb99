//! [`Slot`]: where a message travels between a waiting caller and the
//! channel, and the raw pointer to it that the wait queues hold.
#![allow(unsafe_code)]

use super::*;

/// Where a message travels between a waiting caller and the channel. Lives
/// on the caller's stack (or in its `select` operation).
pub struct Slot<T>(UnsafeCell<Option<T>>);

impl<T> Slot<T> {
    pub(crate) fn new(v: Option<T>) -> Slot<T> {
        Slot(UnsafeCell::new(v))
    }

    /// Takes the content.
    ///
    /// # Safety
    ///
    /// The caller has exclusive access under the waiter rules: it is the
    /// owner and either is not registered, observed its selection, or holds
    /// the channel lock after aborting; or it is a waker holding the lock
    /// while the entry is queued.
    pub(crate) unsafe fn take(&self) -> Option<T> {
        // SAFETY: exclusive access, per this function's contract.
        unsafe { (*self.0.get()).take() }
    }

    /// Whether it is empty. Same contract as [`take`](Self::take).
    pub(crate) unsafe fn is_empty(&self) -> bool {
        // SAFETY: exclusive access, per this function's contract.
        unsafe { (*self.0.get()).is_none() }
    }

    /// Stores `v`. Same contract as [`take`](Self::take).
    pub(crate) unsafe fn put(&self, v: T) {
        // SAFETY: exclusive access, per this function's contract.
        unsafe { *self.0.get() = Some(v) };
    }

    /// Moves the message into `dst`, which is empty: one copy, straight
    /// from slot to slot (no temporary on the stack). Same contract as
    /// [`take`](Self::take), for both slots.
    pub(crate) unsafe fn move_to(&self, dst: &Slot<T>) {
        // SAFETY: exclusive access to both, per this function's contract;
        // `dst` holds `None`, so overwriting it drops nothing, and `self`
        // is left `None`, so the message is not duplicated.
        unsafe {
            debug_assert!((*dst.0.get()).is_none() && (*self.0.get()).is_some());
            ptr::copy_nonoverlapping(self.0.get(), dst.0.get(), 1);
            ptr::write(self.0.get(), None);
        }
    }

    /// The content, for an owner that is not registered anywhere.
    pub(crate) fn get_mut(&mut self) -> &mut Option<T> {
        self.0.get_mut()
    }

    /// The message in a slot of its owner, registered nowhere: what a failed
    /// send left there, or what a receive brought.
    pub(crate) fn take_message(&self) -> T {
        // SAFETY: the sender's own slot, not registered: exclusive access.
        unsafe { self.take() }.expect("a message that was not sent stays in its slot")
    }
}

/// A queued slot pointer.
pub(crate) struct SlotPtr<T>(NonNull<Slot<T>>);

impl<T> Clone for SlotPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SlotPtr<T> {}

// SAFETY: a slot pointer is dereferenced only under the channel lock by the
// rules of `waiter`; the message moving through it is a `T: Send`.
unsafe impl<T: Send> Send for SlotPtr<T> {}

impl<T> SlotPtr<T> {
    pub(crate) fn new(slot: &Slot<T>) -> SlotPtr<T> {
        SlotPtr(NonNull::from(slot))
    }

    /// # Safety
    ///
    /// The entry holding this pointer is (or was until just now) queued and
    /// the channel lock is held (waiter rule 4).
    pub(crate) unsafe fn get<'a>(self) -> &'a Slot<T> {
        // SAFETY: per this function's contract the slot is alive.
        unsafe { self.0.as_ref() }
    }
}
