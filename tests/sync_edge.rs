//! Edge cases of `corio::sync` that std's, crossbeam's and tokio's own test
//! suites exercise: a semaphore with no free permit or too many permits,
//! `select!` with `default` being linearizable, large messages on a task's
//! default stack, and channels whose messages panic when dropped.
//!
//! Cases that hang, abort or overflow a stack when broken re-run this test
//! binary as a child process (`--ignored --exact NAME`), killed after a
//! time limit; the parent judges its exit status and output.

use std::panic::{self, AssertUnwindSafe};
use std::process::ExitStatus;

use std::thread;
use std::time::Duration;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

mod common;
use corio::sync::{Semaphore, mpmc, mpsc, oneshot};

/// What a child process did: its exit status (`None`: killed at the time
/// limit), stdout and stderr.
struct Child {
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
}

impl Child {
    fn assert_success(&self) {
        assert!(
            self.status.is_some_and(|s| s.success()),
            "child {}\nstdout:\n{}\nstderr:\n{}",
            match self.status {
                None => "was killed at its time limit (hung)".to_string(),
                Some(s) => format!("failed: {s}"),
            },
            self.stdout,
            self.stderr
        );
    }
}

/// Runs the ignored test `name` of this binary in a child process, killed
/// after `limit`.
fn child(name: &str, limit: Duration, envs: &[(&str, &str)]) -> Child {
    let run = common::run_ignored_test(name, limit, envs);
    Child {
        status: run.status,
        stdout: run.stdout,
        stderr: run.stderr,
    }
}

/// Runs `f` in a task, on a plain thread, and in a task of a runtime on
/// another thread.
fn in_three_modes(f: fn()) {
    corio::run(f);
    f();
    thread::spawn(move || corio::run(f)).join().unwrap();
}

// ---------------------------------------------------------------------------
// Semaphore

#[test]
#[ignore = "run in a child process by semaphore_try_acquire_without_a_free_permit_fails_at_once"]
fn child_semaphore_try_acquire_empty() {
    in_three_modes(|| {
        let none = Semaphore::new(0);
        assert!(none.try_acquire().is_none());
        assert!(none.try_acquire_many(3).is_none());
        assert_eq!(none.available_permits(), 0, "a failed try gave permits");

        let one = Semaphore::new(1);
        let held = one.try_acquire().expect("one permit is free");
        assert!(one.try_acquire().is_none());
        assert!(one.try_acquire_many(2).is_none());
        assert_eq!(one.available_permits(), 0);
        drop(held);
        assert_eq!(one.available_permits(), 1);
        assert!(one.try_acquire_many(2).is_none());
        assert_eq!(one.available_permits(), 1);

        // tokio's `forget`.
        let sem = Semaphore::new(1);
        sem.try_acquire().unwrap().forget();
        assert_eq!(sem.available_permits(), 0);
        assert!(sem.try_acquire().is_none());
    });
    println!("\nDONE");
}

#[test]
fn semaphore_try_acquire_without_a_free_permit_fails_at_once() {
    let out = child(
        "child_semaphore_try_acquire_empty",
        Duration::from_secs(30),
        &[],
    );
    out.assert_success();
    assert!(out.stdout.contains("DONE"), "{}", out.stdout);
}

#[test]
fn semaphore_holds_up_to_max_permits() {
    let sem = Semaphore::new(Semaphore::MAX_PERMITS - 2);
    sem.add_permits(2);
    assert_eq!(sem.available_permits(), Semaphore::MAX_PERMITS);
    let p = sem.try_acquire_many(Semaphore::MAX_PERMITS).unwrap();
    assert_eq!(sem.available_permits(), 0);
    drop(p);
    assert_eq!(sem.available_permits(), Semaphore::MAX_PERMITS);
}

#[test]
#[should_panic(expected = "more than Semaphore::MAX_PERMITS")]
fn semaphore_add_permits_past_the_maximum_panics() {
    let sem = Semaphore::new(Semaphore::MAX_PERMITS);
    sem.add_permits(1);
}

#[test]
#[should_panic(expected = "more than Semaphore::MAX_PERMITS")]
fn semaphore_add_permits_that_would_wrap_panics() {
    let sem = Semaphore::new(2);
    sem.add_permits(usize::MAX);
}

#[test]
#[should_panic(expected = "more than Semaphore::MAX_PERMITS")]
fn semaphore_new_past_the_maximum_panics() {
    let _ = Semaphore::new(Semaphore::MAX_PERMITS + 1);
}

#[test]
fn semaphore_add_permits_panic_leaves_it_usable() {
    let sem = Semaphore::new(Semaphore::MAX_PERMITS);
    assert!(panic::catch_unwind(AssertUnwindSafe(|| sem.add_permits(1))).is_err());
    assert_eq!(sem.available_permits(), Semaphore::MAX_PERMITS);
    drop(sem.try_acquire().unwrap());
}

// ---------------------------------------------------------------------------
// Large messages on a task's default stack

/// Sends and receives a message of `N` bytes through every kind of channel,
/// each end a task with the default stack; the blocking sends really wait.
fn big_messages<const N: usize>() {
    corio::run(|| {
        // Unbounded mpsc.
        let (tx, rx) = mpsc::channel::<[u8; N]>();
        let t = corio::spawn(move || tx.send([1; N]).unwrap());
        assert_eq!(
            corio::spawn(move || rx.recv().unwrap()[N - 1])
                .join()
                .unwrap(),
            1
        );
        t.join().unwrap();

        // Bounded mpsc, full: the send waits.
        let (tx, rx) = mpsc::sync_channel::<[u8; N]>(1);
        let t = corio::spawn(move || {
            tx.send([2; N]).unwrap();
            tx.send([3; N]).unwrap();
        });
        corio::yield_now();
        let r = corio::spawn(move || rx.recv().unwrap()[0] + rx.recv().unwrap()[N - 1]);
        assert_eq!(r.join().unwrap(), 5);
        t.join().unwrap();

        // Rendezvous, either end first.
        for sender_first in [true, false] {
            let (tx, rx) = mpsc::sync_channel::<[u8; N]>(0);
            let send = move || tx.send([4; N]).unwrap();
            let recv = move || rx.recv().unwrap()[N / 2];
            let (t, r) = if sender_first {
                let t = corio::spawn(send);
                corio::yield_now();
                (t, corio::spawn(recv))
            } else {
                let r = corio::spawn(recv);
                corio::yield_now();
                (corio::spawn(send), r)
            };
            assert_eq!(r.join().unwrap(), 4);
            t.join().unwrap();
        }

        // mpmc, bounded (rendezvous) and unbounded.
        let (tx, rx) = mpmc::sync_channel::<[u8; N]>(0);
        let t = corio::spawn(move || tx.send([5; N]).unwrap());
        corio::yield_now();
        assert_eq!(
            corio::spawn(move || rx.recv().unwrap()[0]).join().unwrap(),
            5
        );
        t.join().unwrap();
        let (tx, rx) = mpmc::channel::<[u8; N]>();
        let t = corio::spawn(move || tx.send([6; N]).unwrap());
        assert_eq!(
            corio::spawn(move || rx.recv().unwrap()[0]).join().unwrap(),
            6
        );
        t.join().unwrap();

        // oneshot.
        let (tx, rx) = oneshot::channel::<[u8; N]>();
        let r = corio::spawn(move || rx.recv().unwrap()[1]);
        corio::yield_now();
        corio::spawn(move || tx.send([7; N]).unwrap())
            .join()
            .unwrap();
        assert_eq!(r.join().unwrap(), 7);
    });
}

/// The message size that must fit: 32 KiB in an optimized build, where a
/// channel keeps one copy of a message on the stack of a sender or receiver
/// (before, a blocking send kept eight, and a 32 KiB message overflowed the
/// default 256 KiB stack). Unoptimized code keeps a copy per temporary, up
/// to about thirteen (forty before): 8 KiB there.
const FITS: usize = if cfg!(debug_assertions) { 8 } else { 32 } * 1024;

#[test]
#[ignore = "run in a child process by a_32_kib_message_fits_a_default_task_stack"]
fn child_big_messages() {
    big_messages::<FITS>();
    println!("\nDONE");
}

#[test]
fn a_32_kib_message_fits_a_default_task_stack() {
    let out = child("child_big_messages", Duration::from_secs(60), &[]);
    out.assert_success();
    assert!(out.stdout.contains("DONE"), "{}", out.stdout);
}

/// For measuring: the size (in KiB, from `CORIO_MSG_KIB`) of the message
/// [`big_messages`] sends. `cargo test --test sync_edge -- --ignored
/// --exact child_big_messages_sized` with a size per run finds the largest
/// message that fits (a stack overflow aborts the run).
#[test]
#[ignore = "a measuring tool, run by hand"]
fn child_big_messages_sized() {
    let kib: usize = std::env::var("CORIO_MSG_KIB")
        .map(|v| v.parse().unwrap())
        .unwrap_or(32);
    match kib {
        8 => big_messages::<{ 8 * 1024 }>(),
        16 => big_messages::<{ 16 * 1024 }>(),
        24 => big_messages::<{ 24 * 1024 }>(),
        32 => big_messages::<{ 32 * 1024 }>(),
        40 => big_messages::<{ 40 * 1024 }>(),
        48 => big_messages::<{ 48 * 1024 }>(),
        56 => big_messages::<{ 56 * 1024 }>(),
        64 => big_messages::<{ 64 * 1024 }>(),
        80 => big_messages::<{ 80 * 1024 }>(),
        96 => big_messages::<{ 96 * 1024 }>(),
        112 => big_messages::<{ 112 * 1024 }>(),
        _ => panic!("CORIO_MSG_KIB: one of 8 16 24 32 40 48 56 64 80 96 112"),
    }
    println!("\nFITS {kib} KiB");
}

// ---------------------------------------------------------------------------
// Messages whose destructor panics

/// A message whose drop counts itself and panics.
struct Bomb(Arc<AtomicUsize>);

impl Drop for Bomb {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
        panic!("bomb");
    }
}

/// Drops `rx` (the last receiver, with `n` bombs buffered): every bomb is
/// dropped and the first panic comes out of the drop.
fn drop_bombs<R>(rx: R, dropped: &AtomicUsize, n: usize) {
    let r = panic::catch_unwind(AssertUnwindSafe(move || drop(rx)));
    let payload = r.expect_err("the panic of a message's drop comes out of the last handle's drop");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"bomb"));
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        n,
        "every message was dropped"
    );
}

#[test]
#[ignore = "run in a child process by panicking_message_drops_neither_abort_nor_leak"]
fn child_panicking_message_drops() {
    in_three_modes(|| {
        let dropped = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel();
        for _ in 0..3 {
            tx.send(Bomb(Arc::clone(&dropped))).ok().unwrap();
        }
        drop(tx);
        drop_bombs(rx, &dropped, 3);

        let dropped = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::sync_channel(4);
        for _ in 0..4 {
            tx.send(Bomb(Arc::clone(&dropped))).ok().unwrap();
        }
        // The senders may outlive the receiver.
        drop_bombs(rx, &dropped, 4);
        drop(tx);

        let dropped = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpmc::channel();
        let rx2 = rx.clone();
        for _ in 0..2 {
            tx.send(Bomb(Arc::clone(&dropped))).ok().unwrap();
        }
        drop(rx);
        assert_eq!(dropped.load(Ordering::SeqCst), 0, "a receiver is left");
        drop_bombs(rx2, &dropped, 2);
        drop(tx);

        let dropped = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = oneshot::channel();
        tx.send(Bomb(Arc::clone(&dropped))).ok().unwrap();
        drop_bombs(rx, &dropped, 1);
    });
    println!("\nDONE");
}

#[test]
fn panicking_message_drops_neither_abort_nor_leak() {
    let out = child(
        "child_panicking_message_drops",
        Duration::from_secs(60),
        &[],
    );
    out.assert_success();
    assert!(out.stdout.contains("DONE"), "{}", out.stdout);
}

// ---------------------------------------------------------------------------
// UnwindSafe and RefUnwindSafe, where std's and crossbeam's types have them

fn assert_unwind_safe<T: ?Sized + panic::UnwindSafe + panic::RefUnwindSafe>() {}

#[test]
fn sync_types_are_unwind_safe() {
    /// Neither trait, so that a generic bound on `T` would show.
    #[allow(dead_code)]
    struct NotUnwindSafe(std::cell::Cell<u8>, &'static mut u8);

    assert_unwind_safe::<corio::sync::Mutex<NotUnwindSafe>>();
    assert_unwind_safe::<corio::sync::RwLock<NotUnwindSafe>>();
    assert_unwind_safe::<corio::sync::Mutex<[u8]>>();
    assert_unwind_safe::<corio::sync::MutexGuard<'static, u8>>();
    assert_unwind_safe::<corio::sync::Condvar>();
    assert_unwind_safe::<corio::sync::Semaphore>();
    assert_unwind_safe::<corio::sync::SemaphorePermit<'static>>();
    assert_unwind_safe::<corio::sync::Barrier>();
    assert_unwind_safe::<corio::sync::Event>();
    assert_unwind_safe::<corio::sync::Notify>();
    assert_unwind_safe::<corio::sync::WaitGroup>();
    assert_unwind_safe::<mpsc::Sender<NotUnwindSafe>>();
    assert_unwind_safe::<mpsc::SyncSender<NotUnwindSafe>>();
    assert_unwind_safe::<mpsc::Receiver<NotUnwindSafe>>();
    assert_unwind_safe::<mpmc::Sender<NotUnwindSafe>>();
    assert_unwind_safe::<mpmc::Receiver<NotUnwindSafe>>();
    assert_unwind_safe::<oneshot::Sender<NotUnwindSafe>>();
    assert_unwind_safe::<oneshot::Receiver<NotUnwindSafe>>();
    assert_unwind_safe::<mpsc::Iter<'static, NotUnwindSafe>>();
    assert_unwind_safe::<mpsc::IntoIter<NotUnwindSafe>>();
    assert_unwind_safe::<corio::sync::broadcast::Sender<NotUnwindSafe>>();
    assert_unwind_safe::<corio::sync::broadcast::Receiver<NotUnwindSafe>>();
    assert_unwind_safe::<corio::sync::watch::Sender<NotUnwindSafe>>();
    assert_unwind_safe::<corio::sync::watch::Receiver<NotUnwindSafe>>();
    assert_unwind_safe::<corio::sync::CancellationToken>();

    // So they can be used across catch_unwind without AssertUnwindSafe.
    let (tx, rx) = mpsc::channel::<u8>();
    let lock = corio::sync::Mutex::new(0);
    assert!(
        panic::catch_unwind(|| {
            *lock.lock() += 1;
            tx.send(1).unwrap();
            panic!("caught");
        })
        .is_err()
    );
    assert_eq!((*lock.lock(), rx.recv()), (1, Ok(1)));
}

// ---------------------------------------------------------------------------
// select! with default

/// crossbeam's `linearizable_default`: one side sends on `r1` and then
/// selects over `r1` and `r2` with `default`, while the other side sends on
/// `r2` before taking the message from `r1`. At every instant one of the two
/// holds a message, so `default` must never run. Returns how often it ran.
fn linearizable_default(bounded: bool, in_runtimes: bool, count: usize) -> usize {
    let (start_s, start_r) = mpsc::sync_channel::<()>(0);
    let (end_s, end_r) = mpsc::sync_channel::<()>(0);
    let ((s1, r1), (s2, r2)) = if bounded {
        (mpmc::sync_channel::<i32>(1), mpmc::sync_channel::<i32>(1))
    } else {
        (mpmc::channel::<i32>(), mpmc::channel::<i32>())
    };
    let r1_other = r1.clone();
    let selector = move || {
        let mut defaults = 0;
        for _ in 0..count {
            start_s.send(()).unwrap();
            s1.send(1).unwrap();
            corio::select! {
                recv(r1) -> _ => {},
                recv(r2) -> _ => {},
                default => defaults += 1,
            }
            end_s.send(()).unwrap();
            let _ = r2.try_recv();
        }
        defaults
    };
    let other = move || {
        for _ in 0..count {
            start_r.recv().unwrap();
            s2.send(1).unwrap();
            let _ = r1_other.try_recv();
            end_r.recv().unwrap();
        }
    };
    let (a, b) = if in_runtimes {
        (
            thread::spawn(move || corio::run(selector)),
            thread::spawn(move || corio::run(other)),
        )
    } else {
        (thread::spawn(selector), thread::spawn(other))
    };
    b.join().unwrap();
    a.join().unwrap()
}

const LINEARIZABLE_COUNT: usize = 200_000;

#[test]
fn select_default_is_linearizable_on_threads() {
    for bounded in [true, false] {
        let defaults = linearizable_default(bounded, false, LINEARIZABLE_COUNT);
        assert_eq!(defaults, 0, "bounded: {bounded}");
    }
}

#[test]
fn select_default_is_linearizable_between_runtimes() {
    for bounded in [true, false] {
        let defaults = linearizable_default(bounded, true, LINEARIZABLE_COUNT);
        assert_eq!(defaults, 0, "bounded: {bounded}");
    }
}

#[test]
fn select_default_still_runs_when_nothing_is_ready() {
    in_three_modes(|| {
        let (_tx1, rx1) = mpsc::channel::<u8>();
        let (tx2, rx2) = mpmc::sync_channel::<u8>(0);
        let (stx, _srx) = mpmc::sync_channel::<u8>(0);
        let ran = corio::select! {
            recv(rx1) -> _ => false,
            recv(rx2) -> _ => false,
            send(stx, 1) -> _ => false,
            default => true,
        };
        assert!(ran);
        // The same channel on both sides of one select.
        let ran = corio::select! {
            send(tx2, 1) -> _ => false,
            recv(rx2) -> _ => false,
            default => true,
        };
        assert!(ran);
        // A ready arm wins over default, whichever comes first.
        let (tx, rx) = mpsc::channel::<u8>();
        tx.send(5).unwrap();
        let got = corio::select! {
            recv(rx1) -> _ => None,
            recv(rx) -> m => Some(m.unwrap()),
            default => None,
        };
        assert_eq!(got, Some(5));
    });
}
