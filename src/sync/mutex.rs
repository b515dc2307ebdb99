//! [`Mutex`]: mutual exclusion that suspends the task, not the thread.
#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use super::spin::SpinLock;
use super::waiter::{self, WaitQueue, Wake, Wakes};
use crate::task::WaitReason;
use crate::time::deadline_after;

const LOCKED: u8 = 1;
/// The wait queue may hold waiters: unlock must look at it.
const QUEUED: u8 = 2;

/// A mutual-exclusion lock for tasks (and plain threads), like
/// [`std::sync::Mutex`].
///
/// A task that waits for the lock suspends (state: waiting on a lock); the
/// thread goes on running other tasks. Waiters get the lock in the order
/// they asked for it: unlocking hands it straight to the oldest waiter, so
/// nobody starves and nobody barges in ahead of the queue. Holding the
/// guard across a suspension (`sleep`, IO, a channel) is fine.
///
/// Uncontended, `lock` is one compare-and-swap and unlocking another.
///
/// # Differences from std
///
/// * No poisoning: a guard dropped by a panic or a cancellation unwinding
///   unlocks the mutex like any other drop, and the data stays available
///   (like `parking_lot` and tokio). So [`lock`](Self::lock) returns the
///   guard itself, and [`try_lock`](Self::try_lock) an `Option`.
/// * `lock` is a cancellation point: a cancelled task unwinds from it (it
///   does not take the lock).
/// * [`try_lock_for`](Self::try_lock_for) and
///   [`try_lock_until`](Self::try_lock_until) wait with a timeout.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use corio::sync::Mutex;
///
/// corio::run(|| {
///     let total = Arc::new(Mutex::new(0));
///     let tasks: Vec<_> = (0..10)
///         .map(|_| {
///             let total = Arc::clone(&total);
///             corio::spawn(move || {
///                 let mut t = total.lock();
///                 corio::time::sleep(Duration::from_millis(1)); // still holding it
///                 *t += 1;
///             })
///         })
///         .collect();
///     for t in tasks {
///         t.join().unwrap();
///     }
///     assert_eq!(*total.lock(), 10);
/// });
/// ```
pub struct Mutex<T: ?Sized> {
    state: AtomicU8,
    /// Who took it last (for dumps and the deadlock report).
    owner: crate::task::diag::LockOwner,
    waiters: SpinLock<WaitQueue<()>>,
    data: UnsafeCell<T>,
}

// SAFETY: the mutex hands out `&mut T` to one guard at a time, so it may be
// shared between threads whenever `T` may be sent to the one that locks it.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}
// SAFETY: moving the mutex moves the `T`.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}

impl<T> Mutex<T> {
    /// An unlocked mutex holding `t`.
    pub const fn new(t: T) -> Mutex<T> {
        Mutex {
            state: AtomicU8::new(0),
            owner: crate::task::diag::LockOwner::new(),
            waiters: SpinLock::new(WaitQueue::new()),
            data: UnsafeCell::new(t),
        }
    }

    /// The data, consuming the mutex.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Locks the mutex, waiting (suspending the task) while another holder
    /// has it. A cancellation point.
    ///
    /// # Unwinding
    ///
    /// In a destructor that runs while the task unwinds (a panic, a
    /// cancellation, an expired `timeout`), a free mutex is locked as usual,
    /// even in a cancelled task. A held one cannot be waited for (the task
    /// cannot suspend mid-unwind) and `lock` has no error to return, so it
    /// panics with `corio::sync::Mutex::lock: cannot wait while the task is
    /// unwinding`; Rust aborts the process if that panic leaves the
    /// destructor. Use [`try_lock`](Self::try_lock) there, or catch the
    /// panic. See the [task docs](crate::task#cleanup-while-unwinding).
    ///
    /// # Panics
    ///
    /// If it would have to wait while the task is unwinding (above).
    #[inline]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        let me = match waiter::enter_as_holder() {
            Ok(me) => me,
            Err(i) => waiter::unwind_for(i, "corio::sync::Mutex::lock"),
        };
        if self.try_lock_fast() {
            return MutexGuard::held_by(self, me);
        }
        self.lock_contended(me)
    }

    /// The rest of [`lock`](Self::lock), out of line so that the caller
    /// inlines the uncontended path alone.
    #[cold]
    #[inline(never)]
    fn lock_contended(&self, me: *const ()) -> MutexGuard<'_, T> {
        match self.lock_slow(None) {
            Ok(()) => MutexGuard::held_by(self, me),
            Err(i) => waiter::unwind_for(i, "corio::sync::Mutex::lock"),
        }
    }

    /// Locks the mutex if it is free and nobody waits for it; never waits.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.try_lock_fast().then(|| MutexGuard::new(self))
    }

    /// Like [`lock`](Self::lock), giving up (`None`) after `timeout`.
    pub fn try_lock_for(&self, timeout: Duration) -> Option<MutexGuard<'_, T>> {
        match deadline_after(timeout) {
            Some(at) => self.try_lock_until(at),
            None => Some(self.lock()),
        }
    }

    /// Like [`lock`](Self::lock), giving up (`None`) at `deadline` or when an
    /// enclosing [`time::timeout`](crate::time::timeout) expires.
    pub fn try_lock_until(&self, deadline: Instant) -> Option<MutexGuard<'_, T>> {
        let me = match waiter::enter_as_holder() {
            Ok(me) => me,
            Err(i) => {
                waiter::timed_out(i);
                return None;
            }
        };
        if self.try_lock_fast() {
            return Some(MutexGuard::held_by(self, me));
        }
        match self.lock_slow(Some(deadline)) {
            Ok(()) => Some(MutexGuard::held_by(self, me)),
            Err(i) => {
                waiter::timed_out(i);
                None
            }
        }
    }

    /// Whether the mutex is locked right now.
    pub fn is_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) & LOCKED != 0
    }

    /// The data, through a unique borrow (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    fn try_lock_fast(&self) -> bool {
        self.state
            .compare_exchange(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    fn lock_slow(&self, deadline: Option<Instant>) -> Result<(), crate::task::park::Interrupt> {
        let q = self.waiters.lock();
        // Under the queue lock: take the lock if it is free, or mark that a
        // waiter is coming, so that the holder's unlock looks at the queue.
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            let (new, acquire) = if s & LOCKED == 0 {
                (s | LOCKED, true)
            } else {
                (s | QUEUED, false)
            };
            match self
                .state
                .compare_exchange_weak(s, new, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) if acquire => return Ok(()),
                Ok(_) => break,
                Err(actual) => s = actual,
            }
        }
        crate::task::diag::note_wait(crate::task::diag::WaitObj::mutex(&self.owner));
        // Ownership is handed over by `unlock_slow` (FIFO).
        waiter::wait_in(
            &self.waiters,
            q,
            |q| q,
            (),
            WaitReason::Lock,
            deadline,
            || {},
            |_| Wakes::default(),
        )
        .map(|_| ())
    }

    /// Unlocks: to the oldest waiter if there is one, else to nobody.
    #[inline]
    fn unlock(&self) {
        unlock_raw(&self.state, &self.waiters);
    }

    /// Unlocks a mutex whose guard was forgotten by a condition variable.
    pub(crate) fn force_unlock(&self) {
        self.unlock();
    }
}

/// The unlock of a mutex, over the two fields it touches, so that a
/// [`MappedMutexGuard`] (which no longer knows the mutex's `T`) can unlock
/// too.
#[inline]
fn unlock_raw(state: &AtomicU8, waiters: &SpinLock<WaitQueue<()>>) {
    if state
        .compare_exchange(LOCKED, 0, Ordering::Release, Ordering::Relaxed)
        .is_err()
    {
        unlock_slow(state, waiters);
    }
}

#[cold]
fn unlock_slow(state: &AtomicU8, waiters: &SpinLock<WaitQueue<()>>) {
    let mut q = waiters.lock();
    let wake = q.pop_select(|w, arm, ()| waiter::select(w, arm));
    if wake.is_some() {
        // The lock passes on: stays LOCKED; QUEUED only if others remain.
        let s = if q.is_empty() {
            LOCKED
        } else {
            LOCKED | QUEUED
        };
        state.store(s, Ordering::Release);
    } else {
        state.store(0, Ordering::Release);
    }
    drop(q);
    Wake::wake_opt(wake);
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Mutex::new(T::default())
    }
}

impl<T> From<T> for Mutex<T> {
    fn from(t: T) -> Self {
        Mutex::new(t)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.try_lock() {
            Some(g) => d.field("data", &&*g),
            None => d.field("data", &format_args!("<locked>")),
        };
        d.finish_non_exhaustive()
    }
}

/// Access to the data of a locked [`Mutex`]; unlocks when dropped.
///
/// Like std's, it is not `Send`: it stays with the task that locked.
#[must_use = "if unused the Mutex will immediately unlock"]
pub struct MutexGuard<'a, T: ?Sized> {
    mutex: &'a Mutex<T>,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: sharing the guard shares `&T` only.
unsafe impl<T: ?Sized + Sync> Sync for MutexGuard<'_, T> {}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    fn new(mutex: &'a Mutex<T>) -> Self {
        mutex.owner.claim();
        MutexGuard {
            mutex,
            _not_send: PhantomData,
        }
    }

    /// The guard of a lock taken by `holder` (see `LockOwner::set`).
    #[inline(always)]
    fn held_by(mutex: &'a Mutex<T>, holder: *const ()) -> Self {
        mutex.owner.set(holder);
        MutexGuard {
            mutex,
            _not_send: PhantomData,
        }
    }

    /// The mutex it locks (for `Condvar`).
    pub(crate) fn mutex(this: &Self) -> &'a Mutex<T> {
        this.mutex
    }

    /// Narrows the guard to a part of the data (a field, an element),
    /// keeping the mutex locked until the new guard drops. An associated
    /// function (`MutexGuard::map(guard, ..)`), so it does not shadow a
    /// method of `T`.
    ///
    /// ```
    /// use corio::sync::{Mutex, MutexGuard};
    ///
    /// let m = Mutex::new((1, String::from("a")));
    /// let mut name = MutexGuard::map(m.lock(), |pair| &mut pair.1);
    /// name.push('b');
    /// assert!(m.is_locked());
    /// drop(name);
    /// assert_eq!(m.lock().1, "ab");
    /// ```
    pub fn map<U: ?Sized>(this: Self, f: impl FnOnce(&mut T) -> &mut U) -> MappedMutexGuard<'a, U> {
        // SAFETY: the guard holds the lock; if `f` panics, `this` still
        // unlocks on the way out.
        let data = NonNull::from(f(unsafe { &mut *this.mutex.data.get() }));
        let mutex = this.mutex;
        std::mem::forget(this);
        MappedMutexGuard {
            state: &mutex.state,
            waiters: &mutex.waiters,
            data,
            _marker: PhantomData,
        }
    }

    /// Like [`map`](Self::map), for a part that may not be there: `Err`
    /// gives the original guard back.
    pub fn try_map<U: ?Sized>(
        this: Self,
        f: impl FnOnce(&mut T) -> Option<&mut U>,
    ) -> Result<MappedMutexGuard<'a, U>, Self> {
        // SAFETY: as in `map`.
        match f(unsafe { &mut *this.mutex.data.get() }) {
            Some(part) => {
                let data = NonNull::from(part);
                let mutex = this.mutex;
                std::mem::forget(this);
                Ok(MappedMutexGuard {
                    state: &mutex.state,
                    waiters: &mutex.waiters,
                    data,
                    _marker: PhantomData,
                })
            }
            None => Err(this),
        }
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock.
        unsafe { &*self.mutex.data.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the lock, and `&mut self` makes this the
        // only access through it.
        unsafe { &mut *self.mutex.data.get() }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.mutex.unlock();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

/// Access to a part of the data of a locked [`Mutex`], made by
/// [`MutexGuard::map`]; unlocks the mutex when dropped. Not `Send`, like
/// the guard it came from.
#[must_use = "if unused the Mutex will immediately unlock"]
pub struct MappedMutexGuard<'a, U: ?Sized> {
    state: &'a AtomicU8,
    waiters: &'a SpinLock<WaitQueue<()>>,
    data: NonNull<U>,
    /// Borrows the part mutably for `'a` (invariant in `U`), and keeps the
    /// guard on its thread like `MutexGuard`.
    _marker: PhantomData<(&'a mut U, *const ())>,
}

// SAFETY: sharing the guard shares `&U` only.
unsafe impl<U: ?Sized + Sync> Sync for MappedMutexGuard<'_, U> {}

impl<'a, U: ?Sized> MappedMutexGuard<'a, U> {
    /// Narrows the guard further, as [`MutexGuard::map`].
    pub fn map<V: ?Sized>(
        mut this: Self,
        f: impl FnOnce(&mut U) -> &mut V,
    ) -> MappedMutexGuard<'a, V> {
        let data = NonNull::from(f(&mut *this));
        let (state, waiters) = (this.state, this.waiters);
        std::mem::forget(this);
        MappedMutexGuard {
            state,
            waiters,
            data,
            _marker: PhantomData,
        }
    }
}

impl<U: ?Sized> Deref for MappedMutexGuard<'_, U> {
    type Target = U;
    fn deref(&self) -> &U {
        // SAFETY: `data` points into the locked mutex's data, and the lock
        // is held until this guard drops.
        unsafe { self.data.as_ref() }
    }
}

impl<U: ?Sized> DerefMut for MappedMutexGuard<'_, U> {
    fn deref_mut(&mut self) -> &mut U {
        // SAFETY: as in `deref`; `&mut self` makes this access unique.
        unsafe { self.data.as_mut() }
    }
}

impl<U: ?Sized> Drop for MappedMutexGuard<'_, U> {
    fn drop(&mut self) {
        unlock_raw(self.state, self.waiters);
    }
}

impl<U: ?Sized + fmt::Debug> fmt::Debug for MappedMutexGuard<'_, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<U: ?Sized + fmt::Display> fmt::Display for MappedMutexGuard<'_, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}
