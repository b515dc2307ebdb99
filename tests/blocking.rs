//! `corio::unblock`: the blocking thread pool.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Once, mpsc};
use std::thread;
use std::time::Duration;

use corio::task::{TaskState, WaitReason};

const POOL: usize = 4;

/// Every test in this binary runs with a small pool, so that "more jobs than
/// threads" is easy to reach.
fn small_pool() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| corio::set_max_blocking_threads(NonZeroUsize::new(POOL).unwrap()));
}

/// Waits until the task `id` is in `state` (yielding to let it get there).
fn wait_for_state(id: corio::TaskId, state: TaskState) {
    for _ in 0..10_000 {
        if corio::tasks()
            .iter()
            .any(|t| t.id() == id && t.state() == state)
        {
            return;
        }
        corio::time::sleep(Duration::from_millis(1));
    }
    panic!(
        "task {id} never reached {state}: {}",
        corio::inspect::dump()
    );
}

#[test]
fn more_jobs_than_pool_threads_all_complete() {
    small_pool();
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let total: usize = corio::run(|| {
        let handles: Vec<_> = (0..10 * POOL)
            .map(|i| {
                let (running, peak) = (Arc::clone(&running), Arc::clone(&peak));
                corio::spawn(move || {
                    corio::unblock(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        thread::sleep(Duration::from_millis(2));
                        running.fetch_sub(1, Ordering::SeqCst);
                        i
                    })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(total, (0..10 * POOL).sum::<usize>());
    let peak = peak.load(Ordering::SeqCst);
    assert!(
        (1..=POOL).contains(&peak),
        "{peak} jobs ran at once on a pool of {POOL}"
    );
}

#[test]
fn the_runtime_keeps_running_while_a_task_waits_on_the_pool() {
    small_pool();
    corio::run(|| {
        let (tx, rx) = mpsc::channel::<&str>();
        // The closure can only finish if another task runs while it waits.
        let waiter =
            corio::spawn(move || corio::unblock(move || rx.recv_timeout(Duration::from_secs(10))));
        let sender = corio::spawn(move || {
            corio::time::sleep(Duration::from_millis(5));
            tx.send("from another task").unwrap();
        });
        assert_eq!(waiter.join().unwrap(), Ok("from another task"));
        sender.join().unwrap();
    });
}

#[test]
fn the_closure_runs_on_a_pool_thread_in_a_task_and_inline_outside() {
    small_pool();
    let me = thread::current().id();
    assert_eq!(corio::unblock(move || thread::current().id()), me);
    corio::run(move || {
        let there = corio::unblock(|| thread::current().id());
        assert_ne!(there, me);
    });
}

#[test]
fn a_waiting_task_shows_wait_reason_blocking() {
    small_pool();
    corio::run(|| {
        let (tx, rx) = mpsc::channel::<()>();
        let h = corio::spawn(move || corio::unblock(move || rx.recv().unwrap()));
        wait_for_state(h.id(), TaskState::Waiting(WaitReason::Blocking));
        tx.send(()).unwrap();
        h.join().unwrap();
    });
}

#[test]
fn a_panic_in_the_closure_resumes_in_the_caller() {
    small_pool();
    corio::run(|| {
        let err = corio::spawn(|| corio::unblock(|| -> u32 { panic!("pool boom {}", 42) }))
            .join()
            .unwrap_err();
        assert!(err.is_panic());
        assert_eq!(err.panic_message(), Some("pool boom 42"));

        // The payload is the closure's own, and can be caught in the caller.
        let caught = std::panic::catch_unwind(|| corio::unblock(|| std::panic::panic_any(7u8)));
        assert_eq!(*caught.unwrap_err().downcast::<u8>().unwrap(), 7);
        // The task and the runtime carry on.
        assert_eq!(corio::unblock(|| 1 + 1), 2);
    });
}

/// Waits (suspending the task, without needing a pool thread) until `rx`
/// has a message.
fn recv_in_task<T>(rx: &mpsc::Receiver<T>) -> T {
    for _ in 0..10_000 {
        if let Ok(v) = rx.try_recv() {
            return v;
        }
        corio::time::sleep(Duration::from_millis(1));
    }
    panic!("no message in 10 s");
}

#[test]
fn a_cancelled_task_stops_waiting_while_the_closure_runs_to_completion() {
    small_pool();
    corio::run(|| {
        let (started_tx, started_rx) = mpsc::channel::<()>();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let (done_tx, done_rx) = mpsc::channel::<&str>();
        let h = corio::spawn(move || {
            corio::unblock(move || {
                started_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                done_tx.send("closure finished").unwrap();
            });
            unreachable!("unblock returned in a cancelled task");
        });
        recv_in_task(&started_rx);
        h.cancel();
        // The task observes the cancellation while the closure still blocks.
        assert!(h.join().unwrap_err().is_cancelled());
        assert!(done_rx.try_recv().is_err());
        release_tx.send(()).unwrap();
        assert_eq!(recv_in_task(&done_rx), "closure finished");
    });
}

#[test]
fn a_closure_the_pool_has_not_started_never_runs_if_its_task_is_cancelled() {
    small_pool();
    let ran = Arc::new(AtomicBool::new(false));
    let ran2 = Arc::clone(&ran);
    corio::run(move || {
        // Occupy every pool thread.
        let (started_tx, started_rx) = mpsc::channel::<()>();
        let release: Vec<_> = (0..POOL)
            .map(|_| {
                let (tx, rx) = mpsc::channel::<()>();
                let started_tx = started_tx.clone();
                ::std::mem::drop(corio::spawn(move || {
                    corio::unblock(move || {
                        started_tx.send(()).unwrap();
                        rx.recv().ok();
                    })
                }));
                tx
            })
            .collect();
        for _ in 0..POOL {
            recv_in_task(&started_rx);
        }
        let queued =
            corio::spawn(move || corio::unblock(move || ran2.store(true, Ordering::SeqCst)));
        wait_for_state(queued.id(), TaskState::Waiting(WaitReason::Blocking));
        queued.cancel();
        assert!(queued.join().unwrap_err().is_cancelled());
        for tx in release {
            tx.send(()).unwrap();
        }
        // Jobs queued after the cancelled one have run: it was skipped.
        for _ in 0..2 * POOL {
            corio::unblock(|| ());
        }
    });
    assert!(!ran.load(Ordering::SeqCst));
}

#[test]
fn an_already_cancelled_task_does_not_submit_the_closure() {
    small_pool();
    let ran = Arc::new(AtomicBool::new(false));
    let ran2 = Arc::clone(&ran);
    corio::run(move || {
        let h = corio::spawn(move || corio::unblock(move || ran2.store(true, Ordering::SeqCst)));
        h.cancel(); // before the task first runs
        assert!(h.join().unwrap_err().is_cancelled());
    });
    assert!(!ran.load(Ordering::SeqCst));
}

#[test]
fn timeout_stops_waiting_for_a_slow_closure() {
    small_pool();
    corio::run(|| {
        let (tx, rx) = mpsc::channel::<()>();
        let r = corio::time::timeout(Duration::from_millis(20), move || {
            corio::unblock(move || rx.recv_timeout(Duration::from_secs(10)))
        });
        assert!(r.is_err());
        tx.send(()).ok();
    });
}
