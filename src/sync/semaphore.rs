//! [`Semaphore`]: a count of permits that tasks wait for.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::spin::SpinLock;
use super::waiter::{self, WaitQueue, Wakes};
use crate::task::WaitReason;
use crate::task::diag::{MAX_TICKET, PermitHolders, WaitObj};
use crate::task::park::Interrupt;
use crate::time::deadline_after;

struct State {
    permits: usize,
    /// No permit is handed out any more (see [`Semaphore::close`]).
    closed: bool,
    /// Each waiter with the number of permits it asked for.
    queue: WaitQueue<usize>,
}

/// The arm a waiter is selected for when it got its permits.
const GRANTED: usize = 0;
/// The arm a waiter is selected for when the semaphore closed under it.
const CLOSED: usize = 1;

/// Why a `take` took no permits.
enum Fail {
    Closed,
    Interrupted(Interrupt),
}

impl State {
    /// Hands permits to the waiters at the front, in order, while they
    /// last. The first that cannot be served stops the others (FIFO: a
    /// large request is not starved by a stream of small ones).
    fn grant(&mut self) -> Wakes {
        let mut wakes = Wakes::default();
        while let Some(need) = self.queue.peek_live(|_, _, need| need) {
            if need > self.permits {
                break;
            }
            match self.queue.pop_select(|w, _, _| waiter::select(w, GRANTED)) {
                Some(wake) => {
                    self.permits -= need;
                    wakes.push(wake);
                }
                None => break,
            }
        }
        wakes
    }
}

/// The semaphore was closed: [`Semaphore::acquire_owned`] and the other
/// fallible acquires fail with it once [`Semaphore::close`] was called.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the semaphore is closed")]
pub struct AcquireError(());

/// Why [`Semaphore::try_acquire_owned`] returned no permit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TryAcquireError {
    /// The semaphore was closed.
    #[error("the semaphore is closed")]
    Closed,
    /// Not enough permits now (or others wait ahead).
    #[error("no permits available")]
    NoPermits,
}

/// A counting semaphore: [`acquire`](Self::acquire) takes a permit,
/// waiting (suspending the task; state: waiting on a semaphore) while none
/// is left; dropping the [`SemaphorePermit`] gives it back.
///
/// Waiters are served in arrival order. A waiter that times out or is
/// cancelled leaves the queue, and the permits it did not get go to those
/// behind it.
///
/// # Holders
///
/// For [`corio::inspect`](crate::inspect) (dumps, the wait graph, the
/// deadlock report), a [`SemaphorePermit`] — from [`acquire`](Self::acquire),
/// [`try_acquire`](Self::try_acquire) and their `_many` and `_timeout`
/// forms — records the task that acquired it as its holder, until it is
/// dropped or [`forget`](SemaphorePermit::forget)ten. A task waiting in
/// `acquire` then shows as `acquire on Semaphore 0x… held by task 3
/// 'worker'`, an edge from it to each such holder. An
/// [`OwnedSemaphorePermit`] is not traced: it exists to move to another
/// task or thread, and the acquirer would be the wrong holder once it has.
/// Nor are permits taken outside a task, nor acquisitions beyond the
/// first seven that are held at once. A `SemaphorePermit` moved to another
/// task (a scope child) still names the task that acquired it.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use corio::sync::Semaphore;
///
/// corio::run(|| {
///     let sem = Arc::new(Semaphore::new(2)); // at most two at a time
///     let tasks: Vec<_> = (0..6)
///         .map(|_| {
///             let sem = Arc::clone(&sem);
///             corio::spawn(move || {
///                 let _permit = sem.acquire();
///                 assert!(sem.available_permits() <= 1);
///                 corio::yield_now();
///             })
///         })
///         .collect();
///     for t in tasks {
///         t.join().unwrap();
///     }
///     assert_eq!(sem.available_permits(), 2);
/// });
/// ```
pub struct Semaphore {
    state: SpinLock<State>,
    /// The tasks holding its permits, where traced (for dumps and the
    /// deadlock report; see "Holders" above).
    holders: PermitHolders,
}

/// The message of a count past [`Semaphore::MAX_PERMITS`].
const TOO_MANY: &str = "corio::sync::Semaphore: more than Semaphore::MAX_PERMITS permits";

impl Semaphore {
    /// The most permits a semaphore holds, as tokio's: `usize::MAX >> 3`.
    /// [`new`](Self::new) and [`add_permits`](Self::add_permits) panic
    /// rather than go past it (a count that wrapped around would hand out
    /// permits that were never there).
    pub const MAX_PERMITS: usize = usize::MAX >> 3;

    /// A semaphore with `permits` permits.
    ///
    /// # Panics
    ///
    /// If `permits` is more than [`MAX_PERMITS`](Self::MAX_PERMITS).
    pub const fn new(permits: usize) -> Semaphore {
        assert!(permits <= Self::MAX_PERMITS, "{}", TOO_MANY);
        Semaphore {
            state: SpinLock::new(State {
                permits,
                closed: false,
                queue: WaitQueue::new(),
            }),
            holders: PermitHolders::new(),
        }
    }

    /// Takes a permit, waiting while none is available. A cancellation
    /// point.
    ///
    /// # Panics
    ///
    /// If it would have to wait while the task is unwinding, or if the
    /// semaphore is (or gets) [`close`](Self::close)d; a semaphore that
    /// may close is better used through
    /// [`acquire_owned`](Self::acquire_owned), which returns the close as
    /// an error.
    #[inline]
    pub fn acquire(&self) -> SemaphorePermit<'_> {
        self.acquire_many(1)
    }

    /// Takes `n` permits at once, waiting until that many are available.
    /// A cancellation point.
    ///
    /// # Panics
    ///
    /// As [`acquire`](Self::acquire).
    #[inline]
    pub fn acquire_many(&self, n: usize) -> SemaphorePermit<'_> {
        match self.take::<true>(n, None) {
            Ok(held) => SemaphorePermit { sem: self, held },
            Err(Fail::Closed) => panic!(
                "corio::sync::Semaphore::acquire on a closed semaphore; \
                 use acquire_owned or try_acquire to learn of the close as an error"
            ),
            Err(Fail::Interrupted(i)) => waiter::unwind_for(i, "corio::sync::Semaphore::acquire"),
        }
    }

    /// Takes a permit if one is available, nobody waits and the semaphore
    /// is not closed; never waits
    /// (not a yield point: see [`sync`](crate::sync#calls-that-never-yield)).
    pub fn try_acquire(&self) -> Option<SemaphorePermit<'_>> {
        self.try_acquire_many(1)
    }

    /// Takes `n` permits if available and nobody waits; never waits.
    pub fn try_acquire_many(&self, n: usize) -> Option<SemaphorePermit<'_>> {
        // The permit is made only once the permits are taken, after the
        // lock is released: a permit made eagerly and dropped on failure
        // would give back permits never taken, relocking the held lock.
        let mut st = self.state.lock();
        let taken = Self::take_now(&mut st, n);
        // Claims are made under the lock (`PermitHolders`); no permit, no
        // holder.
        let ticket = if taken && n > 0 {
            self.holders.claim(crate::task::diag::current_holder())
        } else {
            0
        };
        drop(st);
        taken.then(|| SemaphorePermit {
            sem: self,
            held: held(n, ticket),
        })
    }

    /// Like [`acquire`](Self::acquire), giving up (`None`) after `timeout`
    /// or when the semaphore is closed.
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<SemaphorePermit<'_>> {
        self.acquire_many_timeout(1, timeout)
    }

    /// Like [`acquire_many`](Self::acquire_many), giving up (`None`) after
    /// `timeout`.
    pub fn acquire_many_timeout(&self, n: usize, timeout: Duration) -> Option<SemaphorePermit<'_>> {
        match self.take::<true>(n, deadline_after(timeout)) {
            Ok(held) => Some(SemaphorePermit { sem: self, held }),
            Err(Fail::Closed) => None,
            Err(Fail::Interrupted(i)) => {
                waiter::timed_out(i);
                None
            }
        }
    }

    /// Adds `n` permits (waking waiters they satisfy).
    ///
    /// # Panics
    ///
    /// If the semaphore would then hold more than
    /// [`MAX_PERMITS`](Self::MAX_PERMITS) permits; it is left unchanged.
    pub fn add_permits(&self, n: usize) {
        let mut st = self.state.lock();
        match st.permits.checked_add(n) {
            Some(total) if total <= Self::MAX_PERMITS => st.permits = total,
            _ => {
                drop(st);
                panic!("{}", TOO_MANY);
            }
        }
        let wakes = st.grant();
        drop(st);
        wakes.wake();
    }

    /// Permits available now.
    pub fn available_permits(&self) -> usize {
        self.state.lock().permits
    }

    fn take_now(st: &mut State, n: usize) -> bool {
        let ok = !st.closed && st.permits >= n && st.queue.peek_live(|_, _, _| ()).is_none();
        if ok {
            st.permits -= n;
        }
        ok
    }

    /// Takes `n` permits: `Ok` with the `held` word of their permit (the
    /// count, and — if `TRACED`, for a `SemaphorePermit`, and `n > 0` —
    /// the ticket of the caller's record as their holder: see
    /// `PermitHolders`), or why not.
    #[inline(always)]
    fn take<const TRACED: bool>(&self, n: usize, deadline: Option<Instant>) -> Result<usize, Fail> {
        let me = waiter::enter_as_holder().map_err(Fail::Interrupted)?;
        let mut st = self.state.lock();
        if st.closed {
            return Err(Fail::Closed);
        }
        if Self::take_now(&mut st, n) {
            // Under the lock, which orders the claims.
            let ticket = if TRACED && n > 0 {
                self.holders.claim(me)
            } else {
                0
            };
            return Ok(held(n, ticket));
        }
        self.take_contended::<TRACED>(st, n, deadline, me)
    }

    /// The waiting half of [`take`](Self::take), out of line.
    #[cold]
    #[inline(never)]
    fn take_contended<const TRACED: bool>(
        &self,
        st: super::spin::SpinGuard<'_, State>,
        n: usize,
        deadline: Option<Instant>,
        me: *const (),
    ) -> Result<usize, Fail> {
        crate::task::diag::note_wait(WaitObj::semaphore(&self.holders));
        let arm = waiter::wait_in(
            &self.state,
            st,
            |st| &mut st.queue,
            n,
            WaitReason::Semaphore,
            deadline,
            || {},
            State::grant,
        )
        .map_err(Fail::Interrupted)?;
        if arm == CLOSED {
            return Err(Fail::Closed);
        }
        // Granted: recorded by the holder itself, now that it has them.
        let ticket = if TRACED && n > 0 {
            let _st = self.state.lock();
            self.holders.claim(me)
        } else {
            0
        };
        Ok(held(n, ticket))
    }

    /// Closes the semaphore: no permit is handed out any more. Every task
    /// waiting in an acquire wakes: the fallible acquires
    /// ([`acquire_owned`](Self::acquire_owned),
    /// [`try_acquire_owned`](Self::try_acquire_owned)) return an error, the
    /// timed ones `None`, and [`acquire`](Self::acquire) panics. Permits
    /// already held stay valid and are given back as usual.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use corio::sync::Semaphore;
    ///
    /// corio::run(|| {
    ///     let sem = Arc::new(Semaphore::new(0));
    ///     let waiter = corio::spawn({
    ///         let sem = Arc::clone(&sem);
    ///         move || sem.acquire_owned().is_err()
    ///     });
    ///     corio::yield_now();
    ///     sem.close();
    ///     assert!(waiter.join().unwrap()); // woke with an error
    ///     assert!(sem.is_closed());
    /// });
    /// ```
    pub fn close(&self) {
        let mut wakes = Wakes::default();
        let mut st = self.state.lock();
        st.closed = true;
        st.queue.drain(|w, _, _| {
            if let Some(wake) = waiter::select(w, CLOSED) {
                wakes.push(wake);
            }
        });
        drop(st);
        wakes.wake();
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.state.lock().closed
    }

    /// Removes up to `n` of the available permits for good, returning how
    /// many it removed (permits held now are not touched).
    pub fn forget_permits(&self, n: usize) -> usize {
        let mut st = self.state.lock();
        let removed = n.min(st.permits);
        st.permits -= removed;
        removed
    }

    /// Takes a permit from a shared semaphore, as an
    /// [`OwnedSemaphorePermit`] that holds the `Arc` and so can move into a
    /// spawned task. A cancellation point.
    ///
    /// # Errors
    ///
    /// [`AcquireError`] if the semaphore is or gets closed.
    ///
    /// # Panics
    ///
    /// If it would have to wait while the task is unwinding.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use corio::sync::Semaphore;
    ///
    /// corio::run(|| {
    ///     let limit = Arc::new(Semaphore::new(2));
    ///     let tasks: Vec<_> = (0..6)
    ///         .map(|i| {
    ///             // Taken here, released when the task ends.
    ///             let permit = Arc::clone(&limit).acquire_owned().unwrap();
    ///             corio::spawn(move || {
    ///                 let _permit = permit;
    ///                 corio::yield_now();
    ///                 i
    ///             })
    ///         })
    ///         .collect();
    ///     let sum: i32 = tasks.into_iter().map(|t| t.join().unwrap()).sum();
    ///     assert_eq!(sum, 15);
    ///     assert_eq!(limit.available_permits(), 2);
    /// });
    /// ```
    pub fn acquire_owned(self: Arc<Self>) -> Result<OwnedSemaphorePermit, AcquireError> {
        self.acquire_many_owned(1)
    }

    /// Like [`acquire_owned`](Self::acquire_owned), for `n` permits.
    ///
    /// # Errors
    ///
    /// As [`acquire_owned`](Self::acquire_owned).
    ///
    /// # Panics
    ///
    /// As [`acquire_owned`](Self::acquire_owned).
    pub fn acquire_many_owned(
        self: Arc<Self>,
        n: usize,
    ) -> Result<OwnedSemaphorePermit, AcquireError> {
        match self.take::<false>(n, None) {
            Ok(_) => Ok(OwnedSemaphorePermit { sem: self, n }),
            Err(Fail::Closed) => Err(AcquireError(())),
            Err(Fail::Interrupted(i)) => {
                waiter::unwind_for(i, "corio::sync::Semaphore::acquire_owned")
            }
        }
    }

    /// Takes a permit now if one is available; never waits.
    ///
    /// # Errors
    ///
    /// [`TryAcquireError::NoPermits`] or [`TryAcquireError::Closed`].
    pub fn try_acquire_owned(self: Arc<Self>) -> Result<OwnedSemaphorePermit, TryAcquireError> {
        self.try_acquire_many_owned(1)
    }

    /// Takes `n` permits now if available; never waits.
    ///
    /// # Errors
    ///
    /// As [`try_acquire_owned`](Self::try_acquire_owned).
    pub fn try_acquire_many_owned(
        self: Arc<Self>,
        n: usize,
    ) -> Result<OwnedSemaphorePermit, TryAcquireError> {
        let mut st = self.state.lock();
        if st.closed {
            return Err(TryAcquireError::Closed);
        }
        let taken = Self::take_now(&mut st, n);
        drop(st);
        if taken {
            Ok(OwnedSemaphorePermit { sem: self, n })
        } else {
            Err(TryAcquireError::NoPermits)
        }
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("permits", &self.available_permits())
            .finish()
    }
}

/// Permits taken from a [`Semaphore`]; given back when dropped.
#[must_use = "if unused the permit is released at once"]
pub struct SemaphorePermit<'a> {
    sem: &'a Semaphore,
    /// How many permits it holds, with the ticket of its holder record
    /// (see "Holders") in the top bits, which a count never uses (it is at
    /// most `MAX_PERMITS`): the permit stays two words, returned in
    /// registers.
    held: usize,
}

/// Where a permit's ticket starts in its `held` word.
const TICKET_SHIFT: u32 = usize::BITS - 3;
const _: () = assert!(MAX_TICKET < 1 << 3 && Semaphore::MAX_PERMITS < 1 << TICKET_SHIFT);

/// The `held` word of a permit of `n` permits whose holder record has
/// `ticket`.
#[inline(always)]
fn held(n: usize, ticket: usize) -> usize {
    n | ticket << TICKET_SHIFT
}

impl SemaphorePermit<'_> {
    /// Keeps the permits taken for good (they are not given back).
    pub fn forget(mut self) {
        // Dropped just after: no holder any more, no permits to give back.
        self.held &= !Semaphore::MAX_PERMITS;
    }

    /// How many permits this holds.
    pub fn num_permits(&self) -> usize {
        self.held & Semaphore::MAX_PERMITS
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        // No holder any more, before the permits can go to another.
        self.sem.holders.release(self.held >> TICKET_SHIFT);
        let n = self.num_permits();
        if n > 0 {
            self.sem.add_permits(n);
        }
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit")
            .field("permits", &self.num_permits())
            .finish()
    }
}

/// Permits taken from a shared ([`Arc`]) [`Semaphore`] with
/// [`Semaphore::acquire_owned`]; `Send`, so it can move into a spawned
/// task. Given back when dropped.
#[must_use = "if unused the permit is released at once"]
pub struct OwnedSemaphorePermit {
    sem: Arc<Semaphore>,
    n: usize,
}

impl OwnedSemaphorePermit {
    /// Keeps the permits taken for good (they are not given back).
    pub fn forget(mut self) {
        self.n = 0;
    }

    /// How many permits this holds.
    pub fn num_permits(&self) -> usize {
        self.n
    }

    /// The semaphore the permits came from.
    pub fn semaphore(&self) -> &Arc<Semaphore> {
        &self.sem
    }
}

impl Drop for OwnedSemaphorePermit {
    fn drop(&mut self) {
        if self.n > 0 {
            self.sem.add_permits(self.n);
        }
    }
}

impl fmt::Debug for OwnedSemaphorePermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedSemaphorePermit")
            .field("permits", &self.n)
            .finish()
    }
}
