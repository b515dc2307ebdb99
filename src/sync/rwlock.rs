//! [`RwLock`]: many readers or one writer, suspending tasks that wait.
#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use super::spin::SpinLock;
use super::waiter::{self, WaitQueue, Wakes};
use crate::task::WaitReason;
use crate::task::park::Interrupt;
use crate::time::deadline_after;

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
    /// Who took it for writing last (for dumps and the deadlock report).
    writer: crate::task::diag::LockOwner,
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
            writer: crate::task::diag::LockOwner::new(),
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
        crate::task::diag::note_wait(crate::task::diag::WaitObj::rwlock(&self.writer));
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
        .map(|_| ())
    }

    fn unlock_read(&self) {
        unlock_read(&self.state);
    }

    fn unlock_write(&self) {
        unlock_write(&self.state);
    }
}

/// The unlocks, over the one field they touch, so that mapped guards (which
/// no longer know the lock's `T`) can unlock too.
fn unlock_read(state: &SpinLock<State>) {
    let mut st = state.lock();
    st.readers -= 1;
    let wakes = if st.readers == 0 {
        st.grant()
    } else {
        Wakes::default()
    };
    drop(st);
    wakes.wake();
}

fn unlock_write(state: &SpinLock<State>) {
    let mut st = state.lock();
    st.writer = false;
    let wakes = st.grant();
    drop(st);
    wakes.wake();
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

    /// Narrows the guard to a part of the data, keeping the read lock until
    /// the new guard drops (an associated function:
    /// `RwLockReadGuard::map(guard, ..)`).
    ///
    /// ```
    /// use corio::sync::{RwLock, RwLockReadGuard};
    ///
    /// let lock = RwLock::new(vec![1, 2, 3]);
    /// let last = RwLockReadGuard::map(lock.read(), |v| v.last().unwrap());
    /// assert_eq!(*last, 3);
    /// assert!(lock.try_write().is_none());
    /// ```
    pub fn map<U: ?Sized>(this: Self, f: impl FnOnce(&T) -> &U) -> MappedRwLockReadGuard<'a, U> {
        // SAFETY: read-locked; if `f` panics, `this` unlocks on the way out.
        let data = NonNull::from(f(unsafe { &*this.lock.data.get() }));
        let state = &this.lock.state;
        std::mem::forget(this);
        MappedRwLockReadGuard {
            state,
            data,
            _marker: PhantomData,
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
        lock.writer.claim();
        RwLockWriteGuard {
            lock,
            _not_send: PhantomData,
        }
    }

    /// Turns the write lock into a read lock without letting a writer in
    /// between; readers queued at the front are let in with it.
    ///
    /// ```
    /// use corio::sync::{RwLock, RwLockWriteGuard};
    ///
    /// let lock = RwLock::new(1);
    /// let mut w = lock.write();
    /// *w = 2;
    /// let r = RwLockWriteGuard::downgrade(w);
    /// assert_eq!(*r, 2);
    /// assert!(lock.try_read().is_some()); // other readers too
    /// assert!(lock.try_write().is_none());
    /// ```
    pub fn downgrade(this: Self) -> RwLockReadGuard<'a, T> {
        let lock = this.lock;
        std::mem::forget(this);
        let mut st = lock.state.lock();
        st.writer = false;
        st.readers = 1;
        let wakes = st.grant();
        drop(st);
        wakes.wake();
        RwLockReadGuard::new(lock)
    }

    /// Narrows the guard to a part of the data, keeping the write lock
    /// until the new guard drops (`RwLockWriteGuard::map(guard, ..)`).
    pub fn map<U: ?Sized>(
        this: Self,
        f: impl FnOnce(&mut T) -> &mut U,
    ) -> MappedRwLockWriteGuard<'a, U> {
        // SAFETY: write-locked; if `f` panics, `this` unlocks on the way
        // out.
        let data = NonNull::from(f(unsafe { &mut *this.lock.data.get() }));
        let state = &this.lock.state;
        std::mem::forget(this);
        MappedRwLockWriteGuard {
            state,
            data,
            _marker: PhantomData,
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

/// Shared access to a part of a read-locked [`RwLock`]'s data, made by
/// [`RwLockReadGuard::map`].
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct MappedRwLockReadGuard<'a, U: ?Sized> {
    state: &'a SpinLock<State>,
    data: NonNull<U>,
    _marker: PhantomData<(&'a U, *const ())>,
}

// SAFETY: the guard gives `&U` only.
unsafe impl<U: ?Sized + Sync> Sync for MappedRwLockReadGuard<'_, U> {}

impl<U: ?Sized> Deref for MappedRwLockReadGuard<'_, U> {
    type Target = U;
    fn deref(&self) -> &U {
        // SAFETY: `data` points into the read-locked data; no writer exists
        // while this guard lives.
        unsafe { self.data.as_ref() }
    }
}

impl<U: ?Sized> Drop for MappedRwLockReadGuard<'_, U> {
    fn drop(&mut self) {
        unlock_read(self.state);
    }
}

impl<U: ?Sized + fmt::Debug> fmt::Debug for MappedRwLockReadGuard<'_, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Exclusive access to a part of a write-locked [`RwLock`]'s data, made by
/// [`RwLockWriteGuard::map`].
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct MappedRwLockWriteGuard<'a, U: ?Sized> {
    state: &'a SpinLock<State>,
    data: NonNull<U>,
    _marker: PhantomData<(&'a mut U, *const ())>,
}

// SAFETY: sharing the guard shares `&U` only.
unsafe impl<U: ?Sized + Sync> Sync for MappedRwLockWriteGuard<'_, U> {}

impl<U: ?Sized> Deref for MappedRwLockWriteGuard<'_, U> {
    type Target = U;
    fn deref(&self) -> &U {
        // SAFETY: `data` points into the write-locked data; this guard is
        // the only access.
        unsafe { self.data.as_ref() }
    }
}

impl<U: ?Sized> DerefMut for MappedRwLockWriteGuard<'_, U> {
    fn deref_mut(&mut self) -> &mut U {
        // SAFETY: as in `deref`; `&mut self` makes this access unique.
        unsafe { self.data.as_mut() }
    }
}

impl<U: ?Sized> Drop for MappedRwLockWriteGuard<'_, U> {
    fn drop(&mut self) {
        unlock_write(self.state);
    }
}

impl<U: ?Sized + fmt::Debug> fmt::Debug for MappedRwLockWriteGuard<'_, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
