//! Cancellation: a task blocked in each kind of operation stops, runs every
//! destructor, reports `is_cancelled`, and cannot swallow the cancellation.

use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use corio::sync::{
    Barrier, Condvar, Event, Mutex, Notify, RwLock, Semaphore, WaitGroup, mpmc, mpsc,
};
use corio::task::{TaskState, WaitReason};

const HOUR: Duration = Duration::from_secs(3600);

struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Spawns a task that blocks in `block`, cancels it while it waits (where
/// it must show `reason`), and checks that: the blocked call stopped; a
/// second blocking call after catching the first unwind stops too (sticky);
/// `join` reports a cancellation; both destructors (a captured value and a
/// value on the task's stack) ran.
fn cancel_while_blocked(
    reason: impl Fn(WaitReason) -> bool,
    block: impl Fn() + Send + Sync + 'static,
) {
    corio::run(move || {
        let drops = Arc::new(AtomicUsize::new(0));
        let first_stopped = Arc::new(AtomicBool::new(false));
        let second_returned = Arc::new(AtomicBool::new(false));
        let captured = Counted(Arc::clone(&drops));
        let (d, f, s) = (
            Arc::clone(&drops),
            Arc::clone(&first_stopped),
            Arc::clone(&second_returned),
        );
        let block = Arc::new(block);
        let h = corio::spawn(move || {
            let _captured = captured;
            let _on_stack = Counted(d);
            // Catching the unwind does not swallow the cancellation...
            let first = panic::catch_unwind(AssertUnwindSafe(|| block()));
            f.store(first.is_err(), Ordering::SeqCst);
            // ...the next blocking call fails again.
            block();
            s.store(true, Ordering::SeqCst);
        });
        for _ in 0..3 {
            corio::yield_now();
        }
        let state = corio::tasks()
            .into_iter()
            .find(|t| t.id() == h.id())
            .expect("blocked task alive")
            .state();
        match state {
            TaskState::Waiting(r) => assert!(reason(r), "waiting on {r}"),
            other => panic!("not waiting: {other}"),
        }
        h.cancel();
        let err = h.join().expect_err("cancelled");
        assert!(err.is_cancelled(), "{err:?}");
        assert!(
            first_stopped.load(Ordering::SeqCst),
            "the blocked call stopped"
        );
        assert!(
            !second_returned.load(Ordering::SeqCst),
            "cancellation is sticky"
        );
        assert_eq!(drops.load(Ordering::SeqCst), 2, "every destructor ran");
    });
}

#[test]
fn blocked_in_sleep() {
    cancel_while_blocked(|r| r == WaitReason::Timer, || corio::time::sleep(HOUR));
}

#[test]
fn blocked_in_recv() {
    let (tx, rx) = mpmc::channel::<u32>();
    cancel_while_blocked(
        |r| r == WaitReason::Channel,
        move || {
            let _keep = &tx;
            let _ = rx.recv();
        },
    );
}

#[test]
fn blocked_in_send() {
    let (tx, rx) = mpmc::sync_channel::<u32>(0);
    cancel_while_blocked(
        |r| r == WaitReason::Channel,
        move || {
            let _keep = &rx;
            let _ = tx.send(1);
        },
    );
}

#[test]
fn blocked_in_select() {
    let (tx, rx) = mpmc::channel::<u32>();
    cancel_while_blocked(
        |r| r == WaitReason::Select,
        move || {
            let _keep = &tx;
            corio::select! {
                recv(rx) -> _ => {},
            }
        },
    );
}

#[test]
fn blocked_in_mutex_lock() {
    let m = Arc::new(Mutex::new(()));
    let holder = Arc::clone(&m);
    let held = Arc::new(AtomicBool::new(false));
    let h2 = Arc::clone(&held);
    // Locked by another thread for the whole test.
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let t = thread::spawn(move || {
        let _g = holder.lock();
        h2.store(true, Ordering::SeqCst);
        release_rx.recv().unwrap();
    });
    while !held.load(Ordering::SeqCst) {
        thread::yield_now();
    }
    let m2 = Arc::clone(&m);
    cancel_while_blocked(
        |r| r == WaitReason::Lock,
        move || {
            let _g = m2.lock();
        },
    );
    release_tx.send(()).unwrap();
    t.join().unwrap();
    assert!(m.try_lock().is_some(), "no waiter left behind");
}

#[test]
fn blocked_in_rwlock_write() {
    let l = Arc::new(RwLock::new(0));
    let reader = Arc::clone(&l);
    let guard_holder = thread::spawn(move || {
        let _r = reader.read();
        thread::sleep(Duration::from_millis(300));
    });
    thread::sleep(Duration::from_millis(20));
    let l2 = Arc::clone(&l);
    cancel_while_blocked(
        |r| r == WaitReason::Lock,
        move || {
            let _w = l2.write();
        },
    );
    guard_holder.join().unwrap();
    assert!(l.try_write().is_some());
}

#[test]
fn blocked_in_semaphore() {
    let sem = Arc::new(Semaphore::new(0));
    let s = Arc::clone(&sem);
    cancel_while_blocked(
        |r| r == WaitReason::Semaphore,
        move || {
            let _p = s.acquire();
        },
    );
    sem.add_permits(1);
    assert!(
        sem.try_acquire().is_some(),
        "the cancelled waiter took nothing"
    );
}

#[test]
fn blocked_in_join() {
    cancel_while_blocked(
        |r| matches!(r, WaitReason::Join(_)),
        || {
            let forever = corio::spawn(|| corio::time::sleep(HOUR));
            let _ = forever.join();
        },
    );
}

#[test]
fn blocked_in_barrier_condvar_notify_event_wait_group() {
    let b = Arc::new(Barrier::new(2));
    cancel_while_blocked(
        |r| r == WaitReason::Event,
        move || {
            b.wait();
        },
    );
    let pair = Arc::new((Mutex::new(()), Condvar::new()));
    let p = Arc::clone(&pair);
    cancel_while_blocked(
        |r| r == WaitReason::Event,
        move || {
            let g = p.0.lock();
            let _g = p.1.wait(g);
        },
    );
    assert!(
        pair.0.try_lock().is_some(),
        "the condvar wait released the mutex"
    );
    let n = Arc::new(Notify::new());
    cancel_while_blocked(|r| r == WaitReason::Event, move || n.wait());
    let e = Arc::new(Event::new());
    cancel_while_blocked(|r| r == WaitReason::Event, move || e.wait());
    let wg = WaitGroup::new();
    cancel_while_blocked(|r| r == WaitReason::Event, move || wg.clone().wait());
}

#[test]
fn a_cancelled_lock_holder_does_not_poison_the_mutex() {
    corio::run(|| {
        let m = Arc::new(Mutex::new(vec![1]));
        let m2 = Arc::clone(&m);
        let h = corio::spawn(move || {
            let mut g = m2.lock();
            g.push(2);
            corio::time::sleep(HOUR); // cancelled holding the guard
            g.push(3);
        });
        corio::yield_now();
        assert!(m.is_locked());
        h.cancel();
        assert!(h.join().unwrap_err().is_cancelled());
        assert_eq!(*m.lock(), [1, 2]);
    });
}

#[test]
fn a_ready_channel_still_observes_the_cancellation() {
    corio::run(|| {
        let (tx, rx) = mpsc::channel::<u32>();
        for i in 0..10 {
            tx.send(i).unwrap();
        }
        let received = Arc::new(AtomicUsize::new(0));
        let r = Arc::clone(&received);
        let h = corio::spawn(move || {
            // Never has to wait: messages are always there.
            while rx.recv().is_ok() {
                r.fetch_add(1, Ordering::SeqCst);
                corio::yield_now();
            }
        });
        corio::yield_now();
        h.cancel();
        assert!(h.join().unwrap_err().is_cancelled());
        assert!(received.load(Ordering::SeqCst) < 10);
    });
}

#[test]
fn cancel_before_the_task_starts() {
    corio::run(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let captured = Counted(Arc::clone(&drops));
        let ran = Arc::new(AtomicBool::new(false));
        let r = Arc::clone(&ran);
        let h = corio::spawn(move || {
            let _c = captured;
            r.store(true, Ordering::SeqCst);
            corio::time::sleep(HOUR);
        });
        h.cancel(); // queued, not started
        assert!(h.join().unwrap_err().is_cancelled());
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        // It ran up to its first blocking call, which failed at once.
        assert!(ran.load(Ordering::SeqCst));
    });
}

#[test]
fn cancelling_a_finished_task_is_a_no_op() {
    corio::run(|| {
        let h = corio::spawn(|| 5);
        corio::yield_now();
        assert!(h.is_finished());
        h.cancel();
        h.cancel();
        assert_eq!(h.join().unwrap(), 5);
    });
}

#[test]
fn cancel_from_another_thread() {
    let (tx, rx) = std::sync::mpsc::channel();
    let t = thread::spawn(move || {
        let h: corio::JoinHandle<()> = rx.recv().unwrap();
        thread::sleep(Duration::from_millis(10));
        h.cancel();
        h.join()
    });
    corio::run(move || {
        let h = corio::spawn(|| corio::time::sleep(HOUR));
        tx.send(h).unwrap();
        corio::time::sleep(Duration::from_millis(200));
    });
    assert!(t.join().unwrap().unwrap_err().is_cancelled());
}

#[test]
fn shield_defers_the_cancellation_to_the_next_call() {
    corio::run(|| {
        let cleaned = Arc::new(AtomicBool::new(false));
        let after = Arc::new(AtomicBool::new(false));
        let (c, a) = (Arc::clone(&cleaned), Arc::clone(&after));
        let h = corio::spawn(move || {
            let r = panic::catch_unwind(AssertUnwindSafe(|| corio::time::sleep(HOUR)));
            assert!(r.is_err());
            corio::shield(|| {
                // Cleanup that blocks: not interrupted.
                corio::time::sleep(Duration::from_millis(5));
                c.store(true, Ordering::SeqCst);
            });
            corio::time::sleep(HOUR); // fails again
            a.store(true, Ordering::SeqCst);
        });
        corio::yield_now();
        h.cancel();
        assert!(h.join().unwrap_err().is_cancelled());
        assert!(cleaned.load(Ordering::SeqCst));
        assert!(!after.load(Ordering::SeqCst));
    });
}

#[test]
fn returning_normally_after_a_cancellation_still_reports_it() {
    corio::run(|| {
        let (_tx, rx) = mpsc::channel::<u32>();
        let h = corio::spawn(move || {
            let r = panic::catch_unwind(AssertUnwindSafe(|| rx.recv()));
            r.is_err()
        });
        corio::yield_now();
        h.cancel();
        assert!(h.join().unwrap_err().is_cancelled());
    });
}

#[test]
fn the_cancellation_error_is_never_interrupted() {
    let e: io::Error = corio::Error::Cancelled.into();
    assert_ne!(e.kind(), io::ErrorKind::Interrupted);
    assert!(corio::Error::is_cancellation(&e));
    // std's retry loops give up on it at once.
    struct Cancelled;
    impl io::Read for Cancelled {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(corio::Error::Cancelled.into())
        }
    }
    let mut buf = [0; 4];
    let e = io::Read::read_exact(&mut Cancelled, &mut buf).unwrap_err();
    assert!(corio::Error::is_cancellation(&e));
}

#[test]
fn blocked_in_a_socket_read() {
    use std::io::Read;
    corio::run(|| {
        let (a, _b) = corio::net::unix::UnixStream::pair().unwrap();
        let drops = Arc::new(AtomicUsize::new(0));
        let captured = Counted(Arc::clone(&drops));
        let d = Arc::clone(&drops);
        let (report_tx, report_rx) = std::sync::mpsc::channel::<Vec<io::ErrorKind>>();
        let h = corio::spawn(move || {
            let _captured = captured;
            let _on_stack = Counted(d);
            let mut a = a;
            let mut buf = [0u8; 16];
            let mut kinds = Vec::new();
            // An IO call returns the cancellation (it does not unwind)...
            let e = a.read(&mut buf).unwrap_err();
            assert!(corio::Error::is_cancellation(&e));
            kinds.push(e.kind());
            // ...every time (sticky), and std's retrying loops give up on
            // it at once instead of spinning.
            let e = a.read_exact(&mut buf).unwrap_err();
            assert!(corio::Error::is_cancellation(&e));
            kinds.push(e.kind());
            let e = io::copy(&mut a, &mut io::sink()).unwrap_err();
            assert!(corio::Error::is_cancellation(&e));
            kinds.push(e.kind());
            report_tx.send(kinds).unwrap();
        });
        corio::yield_now();
        let state = corio::tasks()
            .into_iter()
            .find(|t| t.id() == h.id())
            .unwrap()
            .state();
        assert!(
            matches!(
                state,
                TaskState::Waiting(WaitReason::Io {
                    direction: corio::task::Direction::Read,
                    ..
                })
            ),
            "{state}"
        );
        h.cancel();
        // It returned normally after seeing the cancellation: still
        // reported cancelled.
        assert!(h.join().unwrap_err().is_cancelled());
        let kinds = report_rx.recv().expect("the task checked its errors");
        assert_eq!(kinds.len(), 3);
        assert!(kinds.iter().all(|k| *k != io::ErrorKind::Interrupted));
        assert_eq!(drops.load(Ordering::SeqCst), 2);
    });
}
