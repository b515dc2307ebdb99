//! [`RwLock`]: many readers or one writer, suspending tasks that wait.
#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use super::chan::deadline_after;
use super::spin::SpinLock;
use super::waiter::{self, WaitQueue, Wakes};
use crate::scheduler::Interrupt;
use crate::task::WaitReason;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    Read,
    Write,
}

struct State {
    readers: usize,
    writer: bool,
    queue: WaitQueue<Want>,
}

impl State {
    /// Hands the lock to the waiters at the front: one writer, or every
    /// reader up to the next writer (FIFO, so writers do not starve behind a
    /// stream of readers, nor readers behind writers).
    fn grant(&mut self) -> Wakes {
        let mut wakes = Wakes::default();
        loop {
            let next = self.queue.peek_live(|_, _, want| want);
            let ok = match next {
                Some(Want::Write) => !self.writer && self.readers == 0,
                Some(Want::Read) => !self.writer,
                None => false,
            };
            if !ok {
                return wakes;
            }
            let Some(wake) = self.queue.pop_select(|w, arm, _| waiter::select(w, arm)) else {
                return wakes;
            };
            wakes.push(wake);
            match next {
                Some(Want::Write) => {
                    self.writer = true;
                    return wakes;
                }
                _ => self.readers += 1,
            }
        }
    }
}

/// A reader-writer lock for tasks (and plain threads), like
/// [`std::sync::RwLock`]: any number of readers, or one writer.
///
/// Waiting suspends the task (state: waiting on a lock). Waiters are served
/// in arrival order — a writer waits only for the readers ahead of it, and
/// readers that arrive after a waiting writer queue behind it — so neither
/// side starves.
///
/// # Differences from std
///
/// No poisoning (see [`Mutex`](super::Mutex)); `read` and `write` are
/// cancellation points; `try_read_for`/`try_write_for` wait with a timeout.
///
/// # Examples
///
/// ```
/// use corio::sync::RwLock;
///
/// let lock = RwLock::new(5);
/// {
///     let r1 = lock.read();
///     let r2 = lock.read();
///     assert_eq!(*r1 + *r2, 10);
///     assert!(lock.try_write().is_none()); // readers hold it
/// }
/// *lock.write() += 1;
/// assert_eq!(*lock.read(), 6);
/// ```
pub struct RwLock<T: ?Sized> {
    state: SpinLock<State>,
    data: UnsafeCell<T>,
}

// SAFETY: readers share `&T` across threads (needs `Sync`), a writer gets
// `&mut T` on whichever thread locks (needs `Send`).
unsafe impl<T: ?Sized + Send + Sync> Sync for RwLock<T> {}
// SAFETY: moving the lock moves the `T`.
unsafe impl<T: ?Sized + Send> Send for RwLock<T> {}

impl<T> RwLock<T> {
    /// An unlocked lock holding `t`.
    pub const fn new(t: T) -> RwLock<T> {
        RwLock {
            state: SpinLock::new(State {
                readers: 0,
                writer: false,
                queue: WaitQueue::new(),
            }),
            data: UnsafeCell::new(t),
        }
    }

    /// The data, consuming the lock.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Locks for reading, waiting while a writer holds the lock or waits
    /// for it. A cancellation point.
    ///
    /// # Panics
    ///
    /// If it would have to wait while the task is unwinding.
    pub fn read(&self) -> RwLockReadGuard<'_, T> {
        match self.lock(Want::Read, None) {
            Ok(()) => RwLockReadGuard::new(self),
            Err(i) => waiter::unwind_for(i, "corio::sync::RwLock::read"),
        }
    }

    /// Locks for writing, waiting while anyone holds the lock. A
    /// cancellation point.
    ///
    /// # Panics
    ///
    /// If it would have to wait while the task is unwinding.
    pub fn write(&self) -> RwLockWriteGuard<'_, T> {
        match self.lock(Want::Write, None) {
            Ok(()) => RwLockWriteGuard::new(self),
            Err(i) => waiter::unwind_for(i, "corio::sync::RwLock::write"),
        }
    }

    /// Locks for reading if that is possible now; never waits.
    pub fn try_read(&self) -> Option<RwLockReadGuard<'_, T>> {
        let mut st = self.state.lock();
        Self::can(&mut st, Want::Read).then(|| {
            st.readers += 1;
            RwLockReadGuard::new(self)
        })
    }

    /// Locks for writing if that is possible now; never waits.
    pub fn try_write(&self) -> Option<RwLockWriteGuard<'_, T>> {
        let mut st = self.state.lock();
        Self::can(&mut st, Want::Write).then(|| {
            st.writer = true;
            RwLockWriteGuard::new(self)
        })
    }

    /// Like [`read`](Self::read), giving up (`None`) after `timeout`.
    pub fn try_read_for(&self, timeout: Duration) -> Option<RwLockReadGuard<'_, T>> {
        let r = self.lock(Want::Read, deadline_after(timeout));
        self.timed(r).then(|| RwLockReadGuard::new(self))
    }

    /// Like [`write`](Self::write), giving up (`None`) after `timeout`.
    pub fn try_write_for(&self, timeout: Duration) -> Option<RwLockWriteGuard<'_, T>> {
        let r = self.lock(Want::Write, deadline_after(timeout));
        self.timed(r).then(|| RwLockWriteGuard::new(self))
    }

    /// The data, through a unique borrow (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    fn timed(&self, r: Result<(), Interrupt>) -> bool {
        match r {
            Ok(()) => true,
            Err(i) => {
                waiter::timed_out(i);
                false
            }
        }
    }

    /// Whether `want` may be granted now without overtaking a waiter.
    fn can(st: &mut State, want: Want) -> bool {
        let free = match want {
            Want::Read => !st.writer,
            Want::Write => !st.writer && st.readers == 0,
        };
        free && st.queue.peek_live(|_, _, _| ()).is_none()
    }

    fn lock(&self, want: Want, deadline: Option<Instant>) -> Result<(), Interrupt> {
        waiter::enter()?;
        let mut st = self.state.lock();
        if Self::can(&mut st, want) {
            match want {
                Want::Read => st.readers += 1,
                Want::Write => st.writer = true,
            }
            return Ok(());
        }
        // Granted by `State::grant`, which does the bookkeeping.
        waiter::wait_in(
            &self.state,
            st,
            |st| &mut st.queue,
            want,
            WaitReason::Lock,
            deadline,
            || {},
            // A waiter at the front that leaves may unblock those behind.
            State::grant,
        )
    }

    fn unlock_read(&self) {
        let mut st = self.state.lock();
        st.readers -= 1;
        let wakes = if st.readers == 0 {
            st.grant()
        } else {
            Wakes::default()
        };
        drop(st);
        wakes.wake();
    }

    fn unlock_write(&self) {
        let mut st = self.state.lock();
        st.writer = false;
        let wakes = st.grant();
        drop(st);
        wakes.wake();
    }
}

impl<T: Default> Default for RwLock<T> {
    fn default() -> Self {
        RwLock::new(T::default())
    }
}

impl<T> From<T> for RwLock<T> {
    fn from(t: T) -> Self {
        RwLock::new(t)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RwLock");
        match self.try_read() {
            Some(g) => d.field("data", &&*g),
            None => d.field("data", &format_args!("<locked>")),
        };
        d.finish_non_exhaustive()
    }
}

/// Shared access to the data of a read-locked [`RwLock`].
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockReadGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: the guard gives `&T` only.
unsafe impl<T: ?Sized + Sync> Sync for RwLockReadGuard<'_, T> {}

impl<'a, T: ?Sized> RwLockReadGuard<'a, T> {
    fn new(lock: &'a RwLock<T>) -> Self {
        RwLockReadGuard {
            lock,
            _not_send: PhantomData,
        }
    }
}

impl<T: ?Sized> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: read-locked: no writer exists while this guard lives.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for RwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.unlock_read();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Exclusive access to the data of a write-locked [`RwLock`].
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockWriteGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: sharing the guard shares `&T` only.
unsafe impl<T: ?Sized + Sync> Sync for RwLockWriteGuard<'_, T> {}

impl<'a, T: ?Sized> RwLockWriteGuard<'a, T> {
    fn new(lock: &'a RwLock<T>) -> Self {
        RwLockWriteGuard {
            lock,
            _not_send: PhantomData,
        }
    }
}

impl<T: ?Sized> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: write-locked: this guard is the only access.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: write-locked, and `&mut self` makes this access unique.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.unlock_write();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
