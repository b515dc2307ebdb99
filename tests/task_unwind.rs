//! Unwinding, cancellation and the scheduler: cleanup code that calls corio
//! while its task unwinds, panics while a task's result is dropped, a
//! cancelled scope, a task that keeps catching its cancellation, a task that
//! joins itself.
//!
//! Each case runs in a child process (an ignored test of this binary, run
//! with `--ignored --exact NAME`) with a time limit: what it guards against
//! is an abort or a hang, which the parent judges by exit status and stderr.

use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

mod common;
use corio::sync::{Event, Mutex, mpsc};

const HOUR: Duration = Duration::from_secs(3600);

/// What a child process did.
struct Child {
    /// `None`: it ran past the limit and was killed.
    success: Option<bool>,
    stdout: String,
    stderr: String,
}

impl Child {
    fn describe(&self) -> String {
        format!(
            "exit: {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.success, self.stdout, self.stderr
        )
    }

    /// Passed, in time.
    fn assert_ok(&self) {
        assert_eq!(self.success, Some(true), "{}", self.describe());
    }
}

/// Runs the ignored test `name` of this binary in a child process, killing
/// it after `limit`.
fn child(name: &str, limit: Duration) -> Child {
    let run = common::run_ignored_test(name, limit, &[]);
    Child {
        success: run.status.map(|s| s.success()),
        stdout: run.stdout,
        stderr: run.stderr,
    }
}

const LIMIT: Duration = Duration::from_secs(30);

/// Runs `f` in a cancelled task: `f` is the destructor of a value on the
/// task's stack while it unwinds from its cancellation.
fn in_cleanup_after_cancel(f: impl FnOnce() + Send + 'static) {
    struct OnDrop<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for OnDrop<F> {
        fn drop(&mut self) {
            assert!(std::thread::panicking());
            (self.0.take().unwrap())();
        }
    }
    corio::run(move || {
        let h = corio::spawn(move || {
            let _cleanup = OnDrop(Some(f));
            corio::time::sleep(HOUR);
        });
        corio::yield_now();
        h.cancel();
        assert!(h.join().unwrap_err().is_cancelled());
    });
}

// ---- Cleanup code may call corio ------------------------------------------

#[test]
#[ignore = "run in a child process by cleanup_completes_operations_that_need_not_wait"]
fn child_cleanup_completes_operations_that_need_not_wait() {
    // An uncontended lock.
    let m = Arc::new(Mutex::new(0));
    let m2 = Arc::clone(&m);
    in_cleanup_after_cancel(move || *m2.lock() += 1);
    assert_eq!(*m.try_lock().unwrap(), 1);
    // A message that is ready.
    let (tx, rx) = mpsc::channel::<u32>();
    tx.send(7).unwrap();
    let got = Arc::new(AtomicUsize::new(0));
    let g = Arc::clone(&got);
    in_cleanup_after_cancel(move || g.store(rx.recv().unwrap() as usize, Ordering::SeqCst));
    assert_eq!(got.load(Ordering::SeqCst), 7);
    // An event that is set.
    let e = Arc::new(Event::new());
    e.set();
    let done = Arc::new(AtomicBool::new(false));
    let (e2, d) = (Arc::clone(&e), Arc::clone(&done));
    in_cleanup_after_cancel(move || {
        e2.wait();
        d.store(true, Ordering::SeqCst);
    });
    assert!(done.load(Ordering::SeqCst));
    // The same inside an expired `timeout` (its unwind, not a cancellation).
    corio::run(|| {
        let m = Mutex::new(0);
        let (tx, rx) = mpsc::channel::<u32>();
        tx.send(1).unwrap();
        struct Cleanup<'a>(&'a Mutex<i32>, &'a mpsc::Receiver<u32>);
        impl Drop for Cleanup<'_> {
            fn drop(&mut self) {
                *self.0.lock() += 1;
                assert_eq!(self.1.recv(), Ok(1));
            }
        }
        let r = corio::time::timeout(Duration::from_millis(10), || {
            let _c = Cleanup(&m, &rx);
            corio::time::sleep(HOUR);
        });
        assert!(r.is_err());
        assert_eq!(*m.lock(), 1);
    });
    println!("CLEANUP OK");
}

#[test]
fn cleanup_completes_operations_that_need_not_wait() {
    let c = child(
        "child_cleanup_completes_operations_that_need_not_wait",
        LIMIT,
    );
    c.assert_ok();
    assert!(c.stdout.contains("CLEANUP OK"), "{}", c.describe());
}

#[test]
#[ignore = "run in a child process by cleanup_that_would_wait_fails_with_an_error"]
fn child_cleanup_that_would_wait_fails_with_an_error() {
    let (tx, rx) = mpsc::channel::<u32>();
    let got = Arc::new(std::sync::Mutex::new(None));
    let g = Arc::clone(&got);
    in_cleanup_after_cancel(move || *g.lock().unwrap() = Some(rx.recv()));
    assert!(got.lock().unwrap().unwrap().is_err());
    drop(tx);
    // `sleep` returns early; `join` of a task of the same runtime gives up
    // on it (cancels it) and says so; a call with no error (`Event::wait`)
    // panics, which the destructor catches.
    corio::run(|| {
        let other = corio::spawn(|| corio::time::sleep(HOUR));
        corio::yield_now();
        let e = Arc::new(Event::new());
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (e2, s) = (Arc::clone(&e), Arc::clone(&seen));
        in_cleanup_after_cancel_here(move || {
            let t = Instant::now();
            corio::time::sleep(HOUR);
            s.lock().unwrap().push(t.elapsed() < HOUR);
            s.lock()
                .unwrap()
                .push(other.join().unwrap_err().is_cancelled());
            let r = panic::catch_unwind(AssertUnwindSafe(|| e2.wait()));
            s.lock().unwrap().push(r.is_err());
        });
        assert_eq!(*seen.lock().unwrap(), [true, true, true]);
    });
    println!("CLEANUP OK");
}

#[test]
fn cleanup_that_would_wait_fails_with_an_error() {
    let c = child("child_cleanup_that_would_wait_fails_with_an_error", LIMIT);
    c.assert_ok();
    assert!(c.stdout.contains("CLEANUP OK"), "{}", c.describe());
}

/// `Mutex::lock` has no error: one that would have to wait in cleanup
/// panics. Caught in the destructor, the task's unwind goes on.
#[test]
#[ignore = "run in a child process by contended_lock_in_cleanup_panics"]
fn child_contended_lock_in_cleanup_caught() {
    let m = Arc::new(Mutex::new(0));
    let caught = Arc::new(AtomicBool::new(false));
    let (m2, c) = (Arc::clone(&m), Arc::clone(&caught));
    corio::run(move || {
        let _held = m.lock();
        in_cleanup_after_cancel_here(move || {
            let r = panic::catch_unwind(AssertUnwindSafe(|| drop(m2.lock())));
            c.store(r.is_err(), Ordering::SeqCst);
        });
    });
    assert!(caught.load(Ordering::SeqCst));
    println!("CAUGHT OK");
}

/// Like [`in_cleanup_after_cancel`], inside a running runtime.
fn in_cleanup_after_cancel_here(f: impl FnOnce() + Send + 'static) {
    struct OnDrop<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for OnDrop<F> {
        fn drop(&mut self) {
            (self.0.take().unwrap())();
        }
    }
    let h = corio::spawn(move || {
        let _cleanup = OnDrop(Some(f));
        corio::time::sleep(HOUR);
    });
    corio::yield_now();
    h.cancel();
    assert!(h.join().unwrap_err().is_cancelled());
}

/// Not caught, the panic leaves a destructor during an unwind, which Rust
/// answers with an abort: the message names the call.
#[test]
#[ignore = "run in a child process by contended_lock_in_cleanup_panics"]
fn child_contended_lock_in_cleanup_uncaught() {
    let m = Arc::new(Mutex::new(0));
    let m2 = Arc::clone(&m);
    corio::run(move || {
        let _held = m.lock();
        in_cleanup_after_cancel_here(move || drop(m2.lock()));
    });
}

#[test]
fn contended_lock_in_cleanup_panics() {
    let c = child("child_contended_lock_in_cleanup_caught", LIMIT);
    c.assert_ok();
    assert!(c.stdout.contains("CAUGHT OK"), "{}", c.describe());
    let c = child("child_contended_lock_in_cleanup_uncaught", LIMIT);
    assert_eq!(c.success, Some(false), "{}", c.describe());
    assert!(
        c.stderr
            .contains("corio::sync::Mutex::lock: cannot wait while the task is unwinding"),
        "{}",
        c.describe()
    );
}

// ---- Panics never cross the scheduler -------------------------------------

#[derive(Debug)]
struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("PanicOnDrop dropped");
    }
}

corio::task_local! {
    static SEEN: std::cell::Cell<u32> = std::cell::Cell::new(0);
}

static LOCAL_READ: AtomicUsize = AtomicUsize::new(0);

/// Reads a task-local of whatever task drops it.
struct ReadsLocal;

impl Drop for ReadsLocal {
    fn drop(&mut self) {
        LOCAL_READ.store(SEEN.with(|c| c.get()) as usize, Ordering::SeqCst);
    }
}

#[test]
#[ignore = "run in a child process by panics_dropping_results_are_caught"]
fn child_panics_dropping_results_are_caught() {
    let ran_after = corio::run(|| {
        // A detached task's value.
        let h = corio::Builder::new()
            .name("detached-drop")
            .spawn(|| PanicOnDrop)
            .unwrap();
        drop(h);
        corio::yield_now();
        // A value returned after catching a cancellation.
        let h = corio::Builder::new()
            .name("caught-cancel")
            .spawn(|| {
                let _ = panic::catch_unwind(|| corio::time::sleep(HOUR));
                PanicOnDrop
            })
            .unwrap();
        corio::yield_now();
        h.cancel();
        assert!(h.join().unwrap_err().is_cancelled());
        // A detached result that reads a task-local of its task.
        drop(corio::spawn(|| {
            SEEN.with(|c| c.set(5));
            ReadsLocal
        }));
        corio::yield_now();
        // The runtime runs on.
        let three = corio::spawn(|| 3).join().unwrap();
        // A task that never runs (the runtime shuts down first), whose
        // closure panics when dropped.
        let never = PanicOnDrop;
        drop(corio::Builder::new().name("never-ran").spawn(move || {
            let _n = never;
        }));
        three
    });
    assert_eq!(ran_after, 3);
    assert_eq!(LOCAL_READ.load(Ordering::SeqCst), 5);
    println!("RESULTS OK");
}

#[test]
fn panics_dropping_results_are_caught() {
    let c = child("child_panics_dropping_results_are_caught", LIMIT);
    c.assert_ok();
    assert!(c.stdout.contains("RESULTS OK"), "{}", c.describe());
    for name in ["'detached-drop'", "'caught-cancel'", "'never-ran'"] {
        assert!(
            c.stderr
                .lines()
                .any(|l| l.starts_with("corio: task ") && l.contains(name)),
            "no report naming {name}: {}",
            c.describe()
        );
    }
}

// ---- Cancelling a task in a scope -----------------------------------------

#[test]
#[ignore = "run in a child process by cancelling_a_task_in_a_scope_cancels_its_children"]
fn child_cancelling_a_task_in_a_scope_cancels_its_children() {
    corio::run(|| {
        let child_stopped = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&child_stopped);
        let parent = corio::spawn(move || {
            let borrowed = String::from("on the parent's stack");
            corio::scope(|sc| {
                sc.spawn(|| {
                    struct Stopped(Arc<AtomicBool>, usize);
                    impl Drop for Stopped {
                        fn drop(&mut self) {
                            self.0.store(self.1 > 0, Ordering::SeqCst);
                        }
                    }
                    let _s = Stopped(s, borrowed.len());
                    corio::time::sleep(HOUR);
                });
            });
            "not reached"
        });
        for _ in 0..3 {
            corio::yield_now();
        }
        parent.cancel();
        let err = parent.join().unwrap_err();
        assert!(err.is_cancelled(), "{err:?}");
        assert!(child_stopped.load(Ordering::SeqCst));
    });
    println!("SCOPE OK");
}

#[test]
fn cancelling_a_task_in_a_scope_cancels_its_children() {
    let c = child(
        "child_cancelling_a_task_in_a_scope_cancels_its_children",
        LIMIT,
    );
    c.assert_ok();
    assert!(c.stdout.contains("SCOPE OK"), "{}", c.describe());
}

// ---- A task that catches its cancellation in a loop -----------------------

#[test]
#[ignore = "run in a child process by a_task_catching_cancellation_cannot_freeze_its_thread"]
fn child_a_task_catching_cancellation_cannot_freeze_its_thread() {
    corio::run(|| {
        let (_tx, rx) = mpsc::channel::<u32>();
        let stubborn = corio::Builder::new()
            .name("stubborn")
            .spawn(move || {
                loop {
                    let _ = panic::catch_unwind(AssertUnwindSafe(|| rx.recv()));
                }
            })
            .unwrap();
        corio::yield_now();
        stubborn.cancel();
        // Other tasks still run, and timers still fire.
        let n = corio::spawn(|| {
            let mut n = 0;
            for _ in 0..100 {
                corio::yield_now();
                n += 1;
            }
            n
        });
        assert_eq!(n.join().unwrap(), 100);
        corio::time::sleep(Duration::from_millis(20));
        drop(stubborn);
        // Another one, never cancelled: only the shutdown unwinds it.
        let (_tx2, rx2) = mpsc::channel::<u32>();
        drop(
            corio::Builder::new()
                .name("stubborn-at-exit")
                .spawn(move || {
                    loop {
                        let _ = panic::catch_unwind(AssertUnwindSafe(|| rx2.recv()));
                    }
                })
                .unwrap(),
        );
        corio::yield_now();
        // Returning shuts the runtime down: it gives up on both.
    });
    println!("LOOP OK");
}

#[test]
fn a_task_catching_cancellation_cannot_freeze_its_thread() {
    let c = child(
        "child_a_task_catching_cancellation_cannot_freeze_its_thread",
        LIMIT,
    );
    c.assert_ok();
    assert!(c.stdout.contains("LOOP OK"), "{}", c.describe());
    for name in ["'stubborn'", "'stubborn-at-exit'"] {
        assert!(
            c.stderr
                .lines()
                .any(|l| l.starts_with("corio: task ") && l.contains(name)),
            "no report naming {name}: {}",
            c.describe()
        );
    }
}

// ---- A task joining itself ------------------------------------------------

#[test]
#[ignore = "run in a child process by a_task_joining_itself_panics"]
fn child_a_task_joining_itself_panics() {
    let msg = corio::run(|| {
        let (tx, rx) = corio::sync::oneshot::channel::<corio::JoinHandle<()>>();
        let (done_tx, done_rx) = corio::sync::oneshot::channel::<String>();
        let h = corio::spawn(move || {
            let me = rx.recv().unwrap();
            let r = panic::catch_unwind(AssertUnwindSafe(|| me.join()));
            let msg = match r {
                Ok(_) => "returned".to_string(),
                Err(p) => p
                    .downcast_ref::<String>()
                    .cloned()
                    .unwrap_or_else(|| "other panic".into()),
            };
            done_tx.send(msg).unwrap();
        });
        tx.send(h).unwrap();
        done_rx.recv().unwrap()
    });
    assert!(msg.contains("cannot join itself"), "{msg}");
    // Awaiting its own handle as a future, too.
    let msg = corio::run(|| {
        let (tx, rx) = corio::sync::oneshot::channel::<corio::JoinHandle<()>>();
        let (done_tx, done_rx) = corio::sync::oneshot::channel::<bool>();
        let h = corio::spawn(move || {
            let me = rx.recv().unwrap();
            let r = panic::catch_unwind(AssertUnwindSafe(|| corio::block_on(me)));
            done_tx.send(r.is_err()).unwrap();
        });
        tx.send(h).unwrap();
        done_rx.recv().unwrap()
    });
    assert!(msg, "block_on of its own handle returned");
    println!("SELF JOIN OK");
}

#[test]
fn a_task_joining_itself_panics() {
    let c = child("child_a_task_joining_itself_panics", LIMIT);
    c.assert_ok();
    assert!(c.stdout.contains("SELF JOIN OK"), "{}", c.describe());
}
