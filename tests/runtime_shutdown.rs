//! What happens to tasks still alive when the main task returns.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn destructors_of_tasks_left_at_exit_all_run() {
    let drops = Arc::new(AtomicUsize::new(0));
    let d = Arc::clone(&drops);
    corio::run(move || {
        for i in 0..100 {
            let d = Arc::clone(&d);
            // Suspended in different ways, each with a value on its stack.
            drop(corio::spawn(move || {
                let _on_stack = Counted(Arc::clone(&d));
                match i % 3 {
                    0 => corio::time::sleep(Duration::from_secs(3600)),
                    1 => loop {
                        corio::yield_now();
                    },
                    _ => {
                        let _nested = Counted(d);
                        corio::time::sleep(Duration::from_secs(3600));
                    }
                }
            }));
        }
        // Tasks that never started: their captured values are dropped too.
        for _ in 0..10 {
            let c = Counted(Arc::clone(&d));
            drop(corio::spawn(move || drop(c)));
        }
        corio::yield_now();
    });
    // 100 on-stack values, 33 nested ones (i % 3 == 2), 10 captures.
    assert_eq!(drops.load(Ordering::SeqCst), 100 + 33 + 10);
}

#[test]
fn a_task_catching_the_shutdown_unwind_in_yields_is_unwound_again_then_given_up_on() {
    let caught = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&caught);
    corio::run(move || {
        drop(corio::spawn(move || {
            loop {
                let r: std::thread::Result<()> = std::panic::catch_unwind(|| {
                    loop {
                        corio::yield_now();
                    }
                });
                assert!(r.is_err());
                c.fetch_add(1, Ordering::SeqCst);
            }
        }));
        corio::yield_now();
    });
    // Each yield after a caught unwind unwinds it again, 100 times; then
    // the runtime gives up on it (and leaks it, with `c`).
    assert_eq!(caught.load(Ordering::SeqCst), 100);
}

#[test]
fn join_of_a_task_cancelled_at_exit_reports_cancellation() {
    let (tx, rx) = std::sync::mpsc::channel();
    corio::run(move || {
        let h = corio::spawn(|| corio::time::sleep(Duration::from_secs(3600)));
        corio::yield_now();
        tx.send(h).unwrap();
    });
    let h = rx.recv().unwrap();
    assert!(h.is_finished());
    assert!(h.join().unwrap_err().is_cancelled());
}

#[test]
fn a_runtime_can_run_again_after_block_on() {
    let rt = corio::Runtime::new().unwrap();
    assert_eq!(rt.block_on(|| corio::spawn(|| 1).join().unwrap()), 1);
    assert_eq!(rt.block_on(|| corio::spawn(|| 2).join().unwrap()), 2);
}

#[test]
fn main_task_may_borrow_from_the_caller() {
    let data = String::from("abc");
    let len = corio::run(|| data.len());
    assert_eq!(len, 3);
}

#[test]
fn runtimes_on_many_threads_are_independent() {
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                corio::run(move || {
                    let hs: Vec<_> = (0..1000).map(|i| corio::spawn(move || i * t)).collect();
                    hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
                })
            })
        })
        .collect();
    let sums: Vec<u64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let base: u64 = (0..1000).sum();
    assert_eq!(sums, [0, base, 2 * base, 3 * base]);
}

#[test]
fn cancel_wakes_a_sleeping_task_and_runs_destructors() {
    let drops = Arc::new(AtomicUsize::new(0));
    let d = Arc::clone(&drops);
    corio::run(move || {
        let h = corio::spawn(move || {
            let _guard = Counted(d);
            corio::time::sleep(Duration::from_secs(3600));
            "not reached"
        });
        corio::yield_now();
        h.cancel();
        h.cancel(); // idempotent
        assert!(h.join().unwrap_err().is_cancelled());
    });
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn cancelling_a_finished_task_is_a_noop() {
    corio::run(|| {
        let h = corio::spawn(|| 5);
        corio::yield_now();
        assert!(h.is_finished());
        h.cancel();
        assert_eq!(h.join().unwrap(), 5);
    });
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// A runtime's shared state (with its poller's file descriptors) lives as
/// long as the last handle to one of its tasks, wherever that handle is
/// dropped, and no longer: many runtimes whose handles outlive them, some
/// dropped on other threads, leave no descriptor behind.
#[test]
fn runtime_state_is_freed_after_the_last_task_handle() {
    // Warm up thread-locals and pools that stay for the thread's life.
    corio::run(|| corio::spawn(|| ()).join().unwrap());
    let before = open_fds();
    for round in 0..20 {
        let handles: Vec<corio::JoinHandle<u32>> = corio::run(move || {
            (0..2000)
                .map(|i| corio::spawn(move || i + round))
                .collect::<Vec<_>>()
        });
        // The handles outlived their runtime (its tasks never ran, so they
        // were cancelled): join half here, drop the rest on another thread.
        let mut handles = handles;
        let later = handles.split_off(1000);
        for h in handles {
            assert!(h.join().unwrap_err().is_cancelled());
        }
        std::thread::spawn(move || drop(later)).join().unwrap();
    }
    // Other tests run threads with runtimes concurrently: allow them a few.
    let after = open_fds();
    assert!(
        after <= before + 8,
        "{} descriptors before, {} after 20 runtimes",
        before,
        after
    );
}
