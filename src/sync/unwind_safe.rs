//! `UnwindSafe` and `RefUnwindSafe` for the types whose std or crossbeam
//! counterparts have them: the channel handles (for every `T`, as std's and
//! crossbeam's), the locks and the other primitives.
//!
//! The auto traits miss these types only because of the interior mutability
//! they are built on (the `UnsafeCell` of the internal spin lock), and a
//! panic cannot leave that half-changed: a critical section moves a few
//! values and runs no user code (`spin` and `waiter` rule 6), and a waiter
//! that unwinds leaves its queues first (waiter rule 4). What a panic *can*
//! leave behind is the caller's own data under a [`Mutex`] or [`RwLock`]:
//! std's locks mark that by poisoning, corio's do not poison (like
//! `parking_lot`'s), so code that catches a panic must not trust an
//! invariant that the panicking critical section was restoring.

use std::panic::{RefUnwindSafe, UnwindSafe};

use super::{
    Barrier, Condvar, Event, Mutex, Notify, RwLock, Semaphore, WaitGroup, broadcast, mpmc, mpsc,
    oneshot, watch,
};

/// Implements both traits for each type (generic over `T` for the channel
/// handles).
macro_rules! unwind_safe {
    (<T> $($ty:ty),* $(,)?) => {$(
        impl<T> UnwindSafe for $ty {}
        impl<T> RefUnwindSafe for $ty {}
    )*};
    ($($ty:ty),* $(,)?) => {$(
        impl UnwindSafe for $ty {}
        impl RefUnwindSafe for $ty {}
    )*};
}

unwind_safe!(Condvar, Semaphore, Barrier, Event, Notify, WaitGroup);
unwind_safe!(<T>
    mpsc::Sender<T>,
    mpsc::SyncSender<T>,
    mpsc::Receiver<T>,
    mpmc::Sender<T>,
    mpmc::Receiver<T>,
    oneshot::Sender<T>,
    oneshot::Receiver<T>,
    broadcast::Sender<T>,
    broadcast::Receiver<T>,
    watch::Sender<T>,
    watch::Receiver<T>,
);

impl<T: ?Sized> UnwindSafe for Mutex<T> {}
impl<T: ?Sized> RefUnwindSafe for Mutex<T> {}
impl<T: ?Sized> UnwindSafe for RwLock<T> {}
impl<T: ?Sized> RefUnwindSafe for RwLock<T> {}
