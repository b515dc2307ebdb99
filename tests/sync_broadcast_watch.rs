//! `broadcast` and `watch` channels: between tasks, across runtimes and
//! plain threads, with their error cases.

use std::time::Duration;

use corio::sync::{broadcast, watch};

#[test]
fn broadcast_every_receiver_gets_every_message_in_order() {
    corio::run(|| {
        let (tx, rx) = broadcast::channel(64);
        let receivers: Vec<_> = (0..4)
            .map(|i| {
                let mut rx = if i == 0 { rx.clone() } else { tx.subscribe() };
                corio::spawn(move || {
                    let mut got = Vec::new();
                    loop {
                        match rx.recv() {
                            Ok(v) => got.push(v),
                            Err(broadcast::RecvError::Closed) => return got,
                            Err(e) => panic!("unexpected {e}"),
                        }
                    }
                })
            })
            .collect();
        drop(rx);
        corio::yield_now();
        for i in 0..50u32 {
            assert_eq!(tx.send(i).unwrap(), 4);
            if i % 7 == 0 {
                corio::yield_now();
            }
        }
        drop(tx);
        for r in receivers {
            assert_eq!(r.join().unwrap(), (0..50).collect::<Vec<_>>());
        }
    });
}

#[test]
fn broadcast_slow_receiver_lags_and_resumes_at_the_oldest_kept() {
    let (tx, mut rx) = broadcast::channel(4);
    for i in 0..10 {
        tx.send(i).unwrap();
    }
    assert_eq!(rx.len(), 4);
    assert_eq!(rx.recv(), Err(broadcast::RecvError::Lagged(6)));
    assert_eq!(rx.recv(), Ok(6));
    assert_eq!(rx.try_recv(), Ok(7));
    assert_eq!(rx.recv(), Ok(8));
    assert_eq!(rx.recv(), Ok(9));
    assert_eq!(rx.try_recv(), Err(broadcast::TryRecvError::Empty));
    drop(tx);
    assert_eq!(rx.try_recv(), Err(broadcast::TryRecvError::Closed));
    assert_eq!(rx.recv(), Err(broadcast::RecvError::Closed));
}

#[test]
fn broadcast_send_without_receivers_hands_the_message_back() {
    let (tx, rx) = broadcast::channel::<String>(2);
    drop(rx);
    let err = tx.send("lost?".to_string()).unwrap_err();
    assert_eq!(err.0, "lost?");
    // A new subscriber only sees what is sent after it subscribed.
    let mut rx = tx.subscribe();
    tx.send("seen".into()).unwrap();
    assert_eq!(rx.recv().unwrap(), "seen");
}

#[test]
fn broadcast_between_a_plain_thread_and_tasks() {
    let (tx, mut rx) = broadcast::channel(1024);
    let producer = std::thread::spawn(move || {
        for i in 0..1000u32 {
            tx.send(i).unwrap();
        }
    });
    let sum = corio::run(move || {
        let mut sum = 0u64;
        while let Ok(v) = rx.recv() {
            sum += u64::from(v);
        }
        sum
    });
    producer.join().unwrap();
    assert_eq!(sum, (0..1000u64).sum());
}

#[test]
fn broadcast_recv_is_a_cancellation_point() {
    corio::run(|| {
        let (tx, mut rx) = broadcast::channel::<u8>(1);
        let h = corio::spawn(move || rx.recv());
        corio::yield_now();
        h.cancel();
        assert!(h.join().unwrap_err().is_cancelled());
        drop(tx);
    });
}

#[test]
#[should_panic(expected = "capacity must be at least 1")]
fn broadcast_capacity_zero_is_refused() {
    let _ = broadcast::channel::<u8>(0);
}

#[test]
fn watch_receivers_see_the_latest_value_and_the_close() {
    corio::run(|| {
        let (tx, mut rx) = watch::channel(0u32);
        let mut rx2 = rx.clone();
        let waiter = corio::spawn(move || rx2.wait_for(|v| *v >= 3).map(|v| *v).unwrap());
        corio::yield_now();
        for v in 1..=5 {
            tx.send(v).unwrap();
        }
        assert_eq!(waiter.join().unwrap(), 5);
        // Intermediate versions are skipped: one change, the latest value.
        assert!(rx.has_changed().unwrap());
        rx.changed().unwrap();
        assert_eq!(*rx.borrow(), 5);
        assert!(!rx.has_changed().unwrap());
        drop(tx);
        assert!(rx.changed().is_err());
        assert!(rx.has_changed().is_err());
        assert_eq!(*rx.borrow(), 5, "the last value stays readable");
    });
}

#[test]
fn watch_changed_waits_across_threads_and_send_fails_without_receivers() {
    let (tx, rx) = watch::channel(String::from("a"));
    let t = std::thread::spawn(move || {
        let mut rx = rx;
        let mut seen = Vec::new();
        while rx.changed().is_ok() {
            seen.push(rx.borrow_and_update().clone());
            if seen.last().map(String::as_str) == Some("c") {
                break;
            }
        }
        seen
    });
    corio::run(move || {
        for v in ["b", "c"] {
            corio::time::sleep(Duration::from_millis(20));
            tx.send(v.to_string()).unwrap();
        }
        let seen = t.join().unwrap();
        assert_eq!(seen, ["b", "c"]);
        // The receiver is gone: send hands the value back, send_replace
        // stores it anyway.
        assert!(tx.is_closed());
        assert_eq!(tx.send("d".into()).unwrap_err().0, "d");
        assert_eq!(tx.send_replace("e".into()), "c");
        assert_eq!(*tx.borrow(), "e");
        tx.closed(); // returns at once
    });
}

#[test]
fn watch_sender_closed_waits_for_the_last_receiver() {
    corio::run(|| {
        let (tx, rx) = watch::channel(());
        let rx2 = tx.subscribe();
        assert_eq!(tx.receiver_count(), 2);
        let dropper = corio::spawn(move || {
            corio::time::sleep(Duration::from_millis(10));
            drop(rx);
            corio::time::sleep(Duration::from_millis(10));
            drop(rx2);
        });
        tx.closed();
        assert!(dropper.is_finished() || tx.receiver_count() == 0);
        dropper.join().unwrap();
    });
}

#[test]
fn watch_send_modify_and_send_if_modified_notify_only_on_change() {
    let (tx, mut rx) = watch::channel(vec![1]);
    assert!(!tx.send_if_modified(|_| false));
    assert!(!rx.has_changed().unwrap());
    tx.send_modify(|v| v.push(2));
    assert!(rx.has_changed().unwrap());
    assert!(rx.borrow().has_changed());
    assert_eq!(*rx.borrow_and_update(), [1, 2]);
    assert!(!rx.borrow().has_changed());
    rx.mark_changed();
    assert!(rx.has_changed().unwrap());
    rx.mark_unchanged();
    assert!(!rx.has_changed().unwrap());
}
