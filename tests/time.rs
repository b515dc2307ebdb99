//! Deadlines and timers: timer entries are kept lazily between parks (see
//! docs/architecture.md), which must never make a deadline fire late or a
//! wait end early.

use std::time::{Duration, Instant};

use corio::sync::mpsc;
use corio::time::{sleep, timeout};

/// A short deadline after many long ones (whose lingering timer entry is
/// later than it) still fires on time.
#[test]
fn a_short_deadline_after_long_ones_fires_on_time() {
    corio::run(|| {
        let (tx, rx) = mpsc::channel();
        let sender = corio::spawn(move || {
            for i in 0..20 {
                sleep(Duration::from_millis(1));
                tx.send(i).unwrap();
            }
            tx
        });
        for i in 0..20 {
            assert_eq!(timeout(Duration::from_secs(30), || rx.recv()), Ok(Ok(i)));
        }
        let _tx = sender.join().unwrap();
        let start = Instant::now();
        assert!(timeout(Duration::from_millis(50), || rx.recv()).is_err());
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(50) && took < Duration::from_secs(5),
            "a 50 ms timeout took {took:?}"
        );
    });
}

/// A long deadline after a short one (whose lingering timer entry fires
/// first) does not end the wait early.
#[test]
fn a_long_deadline_after_a_short_one_still_waits() {
    corio::run(|| {
        let (tx, rx) = mpsc::channel();
        tx.send(0).unwrap();
        assert_eq!(timeout(Duration::from_millis(20), || rx.recv()), Ok(Ok(0)));
        let sender = corio::spawn(move || {
            sleep(Duration::from_millis(150));
            tx.send(1).unwrap();
        });
        let start = Instant::now();
        // The 20 ms entry fires while this waits: a spurious wakeup, not an
        // expiry.
        assert_eq!(timeout(Duration::from_secs(30), || rx.recv()), Ok(Ok(1)));
        assert!(start.elapsed() >= Duration::from_millis(150));
        sender.join().unwrap();
    });
}

/// Sleeps keep their length when the task has a lingering timer entry, and
/// so do sleeps shorter than it.
#[test]
fn sleeps_are_not_shortened_or_stretched_by_earlier_deadlines() {
    corio::run(|| {
        let (tx, rx) = mpsc::channel::<()>();
        tx.send(()).unwrap();
        // Leaves an entry 30 s out.
        assert!(timeout(Duration::from_secs(30), || rx.recv()).is_ok());
        let start = Instant::now();
        sleep(Duration::from_millis(60));
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(60) && took < Duration::from_secs(5),
            "a 60 ms sleep took {took:?}"
        );
        // Leaves an entry 10 ms out, then sleeps past it.
        tx.send(()).unwrap();
        assert!(timeout(Duration::from_millis(10), || rx.recv()).is_ok());
        let start = Instant::now();
        sleep(Duration::from_millis(100));
        assert!(start.elapsed() >= Duration::from_millis(100));
    });
}

/// Tasks that end with a timer entry still armed (their last wait, under an
/// hour-long deadline, was ended by a message) finish and leave the runtime
/// free to end at once.
#[test]
fn tasks_ending_with_an_armed_timer_do_not_hold_the_runtime() {
    let start = Instant::now();
    corio::run(|| {
        let handles: Vec<_> = (0..100)
            .map(|_| {
                corio::spawn(|| {
                    let (tx, rx) = mpsc::channel();
                    let sender = corio::spawn(move || {
                        corio::yield_now();
                        tx.send(()).unwrap();
                    });
                    let got = timeout(Duration::from_secs(3600), || rx.recv()).unwrap();
                    sender.join().unwrap();
                    got
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap().unwrap();
        }
        assert_eq!(corio::tasks().len(), 1, "only main is left");
    });
    assert!(start.elapsed() < Duration::from_secs(60));
}

/// Deadline checks in tasks read the loop's clock, which a task that never
/// waits does not let the loop advance; every 64th check re-reads the real
/// clock, so such a task still sees its deadline within a few operations.
#[test]
fn a_task_that_never_waits_still_times_out() {
    corio::run(|| {
        let (tx, rx) = mpsc::channel();
        let deadline = Instant::now() + Duration::from_millis(20);
        let mut ops = 0u64;
        let mut ops_after_deadline = 0u64;
        let result = corio::time::timeout_at(deadline, || {
            // Every send and receive completes at once: the loop never polls.
            loop {
                if tx.send(ops).is_err() || rx.recv().is_err() {
                    return;
                }
                ops += 1;
                let now = Instant::now();
                if now >= deadline {
                    ops_after_deadline += 1;
                }
                assert!(
                    now < deadline + Duration::from_secs(10),
                    "no timeout after {ops} operations"
                );
            }
        });
        assert!(result.is_err(), "the loop ended without its deadline");
        assert!(Instant::now() >= deadline);
        // At least one check per iteration (the receive), one real read
        // per 64 checks; one more for the iteration the deadline fell in.
        assert!(
            ops_after_deadline <= 65,
            "{ops_after_deadline} iterations after the deadline"
        );
    });
}

/// `timeout` reports `Elapsed` only when its deadline interrupted an
/// operation, which then took nothing: a receive that took a message
/// returns it, however late. Ten thousand receives under a 20 µs deadline,
/// racing a producer on another thread (a message handed over just as the
/// deadline passes must come back): every message arrives exactly once,
/// in order.
#[test]
fn timed_receives_lose_no_message() {
    const N: u64 = 10_000;
    corio::run(|| {
        let (tx, rx) = mpsc::channel();
        let producer = std::thread::spawn(move || {
            for i in 0..N {
                // A few microseconds apart, to land around the deadlines.
                let until = Instant::now() + Duration::from_micros(i % 23);
                while Instant::now() < until {
                    std::hint::spin_loop();
                }
                tx.send(i).unwrap();
            }
        });
        let mut got = Vec::new();
        let mut elapsed = 0;
        for _ in 0..N {
            match timeout(Duration::from_micros(20), || rx.recv()) {
                Ok(Ok(v)) => got.push(v),
                Ok(Err(_)) => break,
                Err(_) => elapsed += 1,
            }
        }
        producer.join().unwrap();
        // The rest, after the producer is done.
        while let Ok(v) = rx.recv() {
            got.push(v);
        }
        assert_eq!(got.len() as u64, N, "{elapsed} receives timed out");
        assert!(got.iter().copied().eq(0..N), "messages out of order");
    });
}

/// A closure that finishes without being interrupted returns its value,
/// even after the deadline; one that swallowed an interruption still
/// reports `Elapsed`, whether the operation failed or unwound.
#[test]
fn only_an_interruption_makes_a_timeout_elapse() {
    corio::run(|| {
        let (tx, rx) = mpsc::channel();
        // Late, but nothing was interrupted.
        tx.send(1).unwrap();
        let late = timeout(Duration::from_millis(1), || {
            let v = rx.recv();
            std::thread::sleep(Duration::from_millis(5));
            v
        });
        assert_eq!(late, Ok(Ok(1)));
        // A receive that failed for the deadline, its error swallowed.
        let swallowed = timeout(Duration::from_millis(5), || {
            assert!(rx.recv_timeout(Duration::from_secs(3600)).is_err());
            2
        });
        assert!(swallowed.is_err());
        // A sleep that unwound for the deadline, caught inside.
        let caught = timeout(Duration::from_millis(5), || {
            let r = std::panic::catch_unwind(|| sleep(Duration::from_secs(3600)));
            assert!(r.is_err());
            3
        });
        assert!(caught.is_err());
        // An operation's own deadline is not the scope's.
        let own = timeout(Duration::from_secs(3600), || {
            rx.recv_timeout(Duration::from_millis(5)).is_err()
        });
        assert_eq!(own, Ok(true));
        drop(tx);
    });
}

/// Nested scopes: only the scope whose deadline interrupted something
/// reports `Elapsed`; an enclosing scope's earlier deadline goes to that
/// scope, through a later inner one that returns normally.
#[test]
fn nested_timeouts_report_the_deadline_that_fired() {
    corio::run(|| {
        let (tx, rx) = mpsc::channel::<u32>();
        // The inner scope is earlier: it elapses, the outer one does not.
        let outer = timeout(Duration::from_secs(3600), || {
            let inner = timeout(Duration::from_millis(5), || rx.recv());
            assert!(inner.is_err());
            "outer done"
        });
        assert_eq!(outer, Ok("outer done"));
        // The outer scope is earlier: the inner one returns the swallowed
        // error, the outer one elapses.
        let outer = timeout(Duration::from_millis(5), || {
            let inner = timeout(Duration::from_secs(3600), || rx.recv().is_err());
            assert_eq!(inner, Ok(true));
        });
        assert!(outer.is_err());
        // The same with the unwinding kind of call: the inner scope passes
        // the unwind on, the outer one catches it.
        let outer = timeout(Duration::from_millis(5), || {
            let _ = timeout(Duration::from_secs(3600), || {
                sleep(Duration::from_secs(3600))
            });
            unreachable!("the outer deadline unwinds through the inner scope");
        });
        assert!(outer.is_err());
        // An inner scope that elapsed and was swallowed, then an outer
        // scope that finishes: nothing interrupted the outer one.
        tx.send(7).unwrap();
        let outer = timeout(Duration::from_secs(3600), || {
            assert!(
                timeout(Duration::from_millis(5), || sleep(Duration::from_secs(
                    3600
                )))
                .is_err()
            );
            rx.recv()
        });
        assert_eq!(outer, Ok(Ok(7)));
        // Equal deadlines: the innermost scope reports it.
        let at = Instant::now() + Duration::from_millis(5);
        let outer =
            corio::time::timeout_at(at, || corio::time::timeout_at(at, || rx.recv()).is_err());
        assert_eq!(outer, Ok(true));
    });
}

/// The same rule on a plain thread, outside any runtime.
#[test]
fn timeouts_outside_a_runtime_follow_the_same_rule() {
    let (tx, rx) = mpsc::channel();
    tx.send(1).unwrap();
    let late = timeout(Duration::from_millis(1), || {
        let v = rx.recv();
        std::thread::sleep(Duration::from_millis(5));
        v
    });
    assert_eq!(late, Ok(Ok(1)));
    let swallowed = timeout(Duration::from_millis(5), || rx.recv().is_err());
    assert!(swallowed.is_err());
    let outer = timeout(Duration::from_millis(5), || {
        let inner = timeout(Duration::from_secs(3600), || rx.recv().is_err());
        assert_eq!(inner, Ok(true));
    });
    assert!(outer.is_err());
    drop(tx);
}
