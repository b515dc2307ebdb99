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
