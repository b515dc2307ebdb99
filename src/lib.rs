//! # corio — stackful coroutines for Rust, without `async`/`await`
//!
//! corio gives Rust the cooperative model of Python's asyncio and Go's
//! goroutines: code in a task is written in ordinary blocking style —
//! `stream.read(&mut buf)?`, `sleep(d)`, `handle.join()` — and when an
//! operation would block, the task suspends to a per-thread scheduler
//! instead of blocking the thread. A reactor (epoll on Linux, the
//! [`polling`] crate elsewhere) resumes it when the OS reports readiness.
//! There is no function colouring: corio sockets are `std::io::Read`/`Write`,
//! so synchronous crates that work on a stream you hand them (rustls,
//! tungstenite, httparse) run in tasks unchanged. Crates that open their own
//! std sockets block the thread instead; the README's "Blocking libraries"
//! section says which, and `corio::compat` (features `ureq`, `redis`) adapts
//! two of them.
//!
//! ```
//! use std::time::Duration;
//!
//! corio::run(|| {
//!     let handles: Vec<_> = (0..3)
//!         .map(|i| corio::spawn(move || {
//!             corio::time::sleep(Duration::from_millis(10 * i));
//!             i * 10
//!         }))
//!         .collect();
//!     let results: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
//!     assert_eq!(results, [0, 10, 20]);
//! });
//! ```
//!
//! ## Layers
//!
//! Each layer uses only the ones above it (docs/architecture.md has the
//! details, and `tests/layers.rs` checks it against every import):
//!
//! | module | job |
//! | --- | --- |
//! | [`stack`] | pooled, guard-protected stack memory |
//! | `poller`, `reactor` | the OS poller (epoll, or `polling`); registered fds, readiness, waiters as opaque tokens; the driver seam (poll, notify, clock, a provided network) — a leaf |
//! | `sim_world` | a simulation's state (virtual clock, hosts, in-memory network), used only by [`sim`] — a leaf |
//! | `overflow` | the stack-overflow handler, asking the layers that own stacks to name the one that overflowed — a leaf |
//! | [`task`] | scheduled coroutines: id, name, lifecycle state machine, `JoinHandle`; the task block (`task::core`), the per-thread context (`task::context`), park/unpark, deadlines and cancellation (`task::park`) |
//! | [`generator`] | bare coroutines: `resume`/`yield_` (values out and in) with an explicit state; uses the task layer's per-context frame slot |
//! | `scheduler` | the per-thread loop: run ready tasks, poll the driver (the reactor), fire timers |
//! | `io_op` | the blocking-IO loop: register, try the syscall, wait for readiness, retry |
//! | [`time`] | `sleep`, `timeout` |
//! | [`block_on`], [`unblock`], [`fs`] | the future bridge; blocking work and file IO on a thread pool while the task waits |
//! | [`net`] | TCP, UDP and Unix sockets that suspend the task, not the thread |
//! | [`sim`] | deterministic simulation: a seeded loop, hosts, faults, `check` over seeds |
//! | [`process`] | child processes: `wait` and piped stdio suspend the task |
//! | [`signal`] | Unix signals as something a task waits for |
//! | [`sync`] | channels, `select!`, locks, semaphores, barriers, events |
//! | [`inspect`] | a snapshot of every task and what it waits on |
//! | [`runtime`] | `Runtime`, `run` |
//!
//! ## The task lifecycle
//!
//! A task is `Ready` (queued), `Running`, `Waiting(reason)` or
//! `Finished(Returned | Panicked | Cancelled)`; [`task::TaskState`] documents
//! the transitions and [`tasks`] shows them live.
//!
//! ## Tasks that talk, wait and stop
//!
//! [`sync`] has std-shaped channels ([`sync::mpsc`]), [`select!`] over
//! several of them, and locks that suspend the task instead of the thread.
//! [`scope`] starts tasks that borrow the caller's locals and always ends
//! after them; [`task_local!`] gives each task its own values.
//! [`JoinHandle::cancel`] stops a task at its next blocking call, running
//! every destructor; [`task`](task#cancellation) lists the cancellation
//! points.
//!
//! ```
//! use corio::sync::mpsc;
//! use std::time::Duration;
//!
//! corio::run(|| {
//!     let (tx, rx) = mpsc::channel();
//!     let mut totals = [0u32; 2];
//!     corio::scope(|s| {
//!         for (i, total) in totals.iter_mut().enumerate() {
//!             let tx = tx.clone();
//!             s.spawn(move || {
//!                 *total = (1..=10).map(|n| n * (i as u32 + 1)).sum();
//!                 tx.send(i).unwrap();
//!             });
//!         }
//!     });
//!     drop(tx);
//!     assert_eq!(totals, [55, 110]); // written by the children
//!     let first = corio::select! {
//!         recv(rx) -> who => who.unwrap(),
//!         default(Duration::from_secs(1)) => unreachable!(),
//!     };
//!     assert!(first < 2);
//! });
//! ```
//!
//! ## Guarantees
//!
//! * A task never moves to another thread, so thread-locals are sound in it.
//! * A panicking task is reported on its [`JoinHandle`]; the runtime and the
//!   other tasks run on.
//! * Nothing suspends while the thread is unwinding.
//! * A cancelled task unwinds from its blocking calls (or gets
//!   [`Error::Cancelled`] from IO), running every destructor, and cannot
//!   swallow the cancellation by accident.
//! * A [`scope`] never returns or unwinds before its children have ended.
//! * When the main task returns, the tasks still alive are unwound on their
//!   own stacks and every destructor runs.
//! * A stack overflow in a task is reported with the task's id, name and
//!   stack size instead of a bare "Segmentation fault" (in a generator: where
//!   it was made, and its stack size).
//!
//! The compiler enforces the thread rules. A runtime, a generator and a
//! handle to a task returning a `!Send` value stay on their thread:
//!
//! ```compile_fail
//! fn assert_send<T: Send>(_: &T) {}
//! let rt = corio::Runtime::new().unwrap();
//! assert_send(&rt);
//! ```
//!
//! ```compile_fail
//! fn assert_send<T: Send>(_: &T) {}
//! let g = corio::generator::Generator::<u32, ()>::new(|y| y.yield_(1));
//! assert_send(&g);
//! ```
//!
//! ```compile_fail
//! fn assert_send<T: Send>(_: &T) {}
//! corio::run(|| {
//!     let h = corio::spawn_local(|| std::rc::Rc::new(1));
//!     assert_send(&h);
//! });
//! ```
//!
//! and `spawn` only takes `Send` closures (use `spawn_local` for others):
//!
//! ```compile_fail
//! corio::run(|| {
//!     let rc = std::rc::Rc::new(1);
//!     corio::spawn(move || *rc);
//! });
//! ```
#![deny(missing_docs)]
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]
#![doc(test(attr(deny(warnings))))]

// corio is built on Unix primitives (fds, `poll(2)`, `mmap`, signals): say
// so up front rather than with a screen of unresolved `std::os::fd` imports.
#[cfg(not(unix))]
compile_error!(
    "corio supports Unix targets only: Linux (x86-64, aarch64; tested) and other Unix \
     systems such as macOS and the BSDs (untested). Windows and other non-Unix targets \
     are not supported."
);

#[cfg(any(feature = "ureq", feature = "redis"))]
pub mod compat;
mod error;
pub mod fs;
mod future;
pub mod generator;
pub mod inspect;
mod io_op;
mod loom;
pub mod net;
mod overflow;
mod poller;
mod pool;
pub mod process;
mod reactor;
pub mod runtime;
mod scheduler;
pub mod signal;
pub mod sim;
mod sim_world;
pub mod stack;
pub mod sync;
pub mod task;
pub mod time;

pub use error::{Error, JoinError};
pub use future::block_on;
pub use inspect::tasks;
pub use pool::{set_max_blocking_threads, unblock};
pub use runtime::{Runtime, run};
pub use task::{Builder, JoinHandle, Task, TaskId, scope, try_scope};

/// Spawns a task running `f` on the current thread's runtime, like
/// [`std::thread::spawn`].
///
/// The task starts when the current task next suspends (it is queued
/// `Ready`). Dropping the returned handle detaches the task.
///
/// # Panics
///
/// Outside a corio runtime ("corio::spawn called outside of a corio
/// runtime"); [`Builder::spawn`] returns that as an error instead. The
/// task's stack is taken when it first runs, on the worker that runs it: if
/// none can be mapped then, the task ends without running and its
/// [`JoinError`] names the limit and how to raise it
/// ([`JoinError::start_error`]).
///
/// # Examples
///
/// ```
/// corio::run(|| {
///     let h = corio::spawn(|| "hello from a task");
///     assert_eq!(h.join().unwrap(), "hello from a task");
/// });
/// ```
#[track_caller]
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    task::spawn_or_panic(f)
}

/// Like [`spawn`], for closures and results that are not `Send` (tasks never
/// leave their thread).
///
/// # Panics
///
/// As [`spawn`].
#[track_caller]
pub fn spawn_local<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + 'static,
    T: 'static,
{
    task::spawn_local_or_panic(f)
}

/// Spawns `f` on worker `worker` of the current runtime (`0..workers`),
/// where it runs until it ends. See [`runtime::Handle::spawn_on`].
///
/// # Panics
///
/// Outside a runtime, or if `worker` is out of range. (A stack that cannot
/// be mapped is the task's error, as for [`spawn`].)
///
/// # Examples
///
/// ```
/// let rt = corio::runtime::Builder::new().workers(2).build().unwrap();
/// let w = rt.block_on(|| corio::spawn_on(1, corio::runtime::worker_index).join().unwrap());
/// assert_eq!(w, Some(1));
/// ```
#[track_caller]
pub fn spawn_on<F, T>(worker: usize, f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    runtime::spawn_on(worker, f)
}

/// Lets the other ready tasks run, then continues (outside a task, yields
/// the thread). The task stays `Ready` while it waits its turn.
#[inline]
pub fn yield_now() {
    crate::task::park::yield_now()
}

/// The task that calls it.
///
/// # Panics
///
/// Outside a task; see [`try_current`].
pub fn current() -> Task {
    try_current().expect("corio::current called outside of a corio task")
}

/// The task that calls it, or `None` outside a task.
pub fn try_current() -> Option<Task> {
    crate::task::context::current_task()
}

/// Runs `f` shielded from cancellation: blocking calls inside it do not fail
/// with [`Error::Cancelled`], so cleanup that must finish can finish. A
/// cancellation that arrives meanwhile stays pending and is reported by the
/// first blocking call after `f`.
pub fn shield<R>(f: impl FnOnce() -> R) -> R {
    crate::task::park::shielded(f)
}

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The snippets of `docs/guide.md` (asyncio to corio), compiled and run as
/// doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/guide.md")]
pub struct GuideDoctests;
