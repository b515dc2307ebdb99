//! The future bridge: run any [`Future`] to completion from blocking-style
//! code, so async crates (`async-channel`, `async-lock`, `futures` streams,
//! …) work inside corio tasks.
//!
//! # How it works
//!
//! [`block_on`] polls the future with a [`Waker`] built from the caller's
//! unparker (its task, or its thread outside a task). When the future is
//! `Pending`, the task parks (`Waiting(Future)`) and the scheduler runs other
//! tasks; `wake` — from any thread — unparks it, and it polls again. The
//! park/unpark protocol keeps a wakeup that comes before the park, so none is
//! lost, and a stale wakeup only costs one extra poll.
//!
//! The other direction works too: [`JoinHandle`](crate::JoinHandle)
//! implements `Future`, so async code can `.await` a corio task.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;

use crate::task::WaitReason;
use crate::task::park::{Interrupt, Unparker};

/// The waker of a `block_on`: unparks the task or thread that polls, and
/// notes that it was woken.
struct UnparkWaker {
    unparker: Unparker,
    woken: AtomicBool,
}

impl Wake for UnparkWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.unparker.unpark();
    }
}

/// Polls `fut` to completion, parking the caller with `reason` between polls.
///
/// Returns `Err` if the task was cancelled or a deadline (an enclosing
/// `timeout`) passed while the future was pending; the future is left as it
/// was, so the caller decides whether to drop it or keep it.
///
/// While the thread is unwinding a task must not suspend (design invariant
/// 2), so then the *thread* blocks between polls, woken by a thread waker.
pub(crate) fn drive<F: Future + ?Sized>(
    mut fut: Pin<&mut F>,
    reason: WaitReason,
) -> Result<F::Output, Interrupt> {
    let unwinding = thread::panicking();
    let me = if unwinding {
        Unparker::Thread(thread::current())
    } else {
        Unparker::current()
    };
    let inner = Arc::new(UnparkWaker {
        unparker: me,
        woken: AtomicBool::new(false),
    });
    let waker = Waker::from(Arc::clone(&inner));
    let mut cx = Context::from_waker(&waker);
    loop {
        inner.woken.store(false, Ordering::Relaxed);
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return Ok(v);
        }
        if unwinding {
            thread::park();
        } else if inner.woken.load(Ordering::Acquire) {
            // Woken during its own poll: the future yields (an async
            // `yield_now`, a budget). Parking would return at once and starve
            // the other tasks; let them run first, as the future asked.
            crate::task::park::check_current(None)?;
            crate::task::park::yield_now();
        } else {
            crate::task::park::park(reason, None)?;
        }
    }
}

/// Runs a future to completion and returns its output.
///
/// Inside a corio task the *task* suspends between polls (its state is
/// `Waiting(Future)`) while the runtime runs other tasks; the future's
/// [`Waker`] is `Send + Sync` and may be woken from any thread. Outside a
/// task it blocks the calling thread, like `futures::executor::block_on`.
///
/// A future that wakes itself while being polled (an async `yield_now`)
/// lets the other ready tasks run before it is polled again.
///
/// The future runs on the caller's stack and thread; it is not spawned. Any
/// future works, whatever runtime it was written for, as long as it does not
/// need that runtime's reactor (a `tokio::net` socket does; `async-channel`,
/// `async-lock`, `futures` combinators, `oneshot`s and corio's own
/// [`JoinHandle`](crate::JoinHandle) do not).
///
/// # Cancellation and timeouts
///
/// A cancellation point: if the task is cancelled, or the deadline of an
/// enclosing [`time::timeout`](crate::time::timeout) passes, while the future
/// is pending, `block_on` unwinds (the future is dropped on the way, so its
/// destructors run) and the task finishes cancelled, or the `timeout`
/// returns `Err(Elapsed)`. A future that is ready on its first poll
/// completes even in a cancelled task.
///
/// # Panics
///
/// A panic in the future's `poll` propagates to the caller. While the thread
/// is already unwinding from a panic (in a destructor), `block_on` cannot
/// suspend the task and blocks the thread instead: a future that waits for
/// another task on the same runtime then never completes.
///
/// # Examples
///
/// An `async-channel` between two corio tasks:
///
/// ```
/// corio::run(|| {
///     let (tx, rx) = async_channel::bounded::<u32>(1);
///     let producer = corio::spawn(move || {
///         for i in 0..3 {
///             corio::block_on(tx.send(i)).unwrap();
///         }
///     });
///     let mut got = Vec::new();
///     while let Ok(v) = corio::block_on(rx.recv()) {
///         got.push(v);
///     }
///     producer.join().unwrap();
///     assert_eq!(got, [0, 1, 2]);
/// });
/// ```
///
/// Awaiting corio tasks from async code:
///
/// ```
/// corio::run(|| {
///     let a = corio::spawn(|| 20);
///     let b = corio::spawn(|| 22);
///     let sum = corio::block_on(async { a.await.unwrap() + b.await.unwrap() });
///     assert_eq!(sum, 42);
/// });
/// ```
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let fut = pin!(fut);
    match drive(fut, WaitReason::Future) {
        Ok(v) => v,
        Err(i) => crate::task::park::unwind_for(i),
    }
}
