//! Channel deadlines (`recv_deadline`, `send_deadline`) and buffer queries
//! (`len`, `is_empty`, `is_full`, `capacity`).

use std::time::{Duration, Instant};

use corio::sync::{mpmc, mpsc, oneshot};

#[test]
fn recv_deadline_times_out_then_receives() {
    corio::run(|| {
        let (tx, rx) = mpsc::channel::<u32>();
        let at = Instant::now() + Duration::from_millis(10);
        assert_eq!(rx.recv_deadline(at), Err(mpsc::RecvTimeoutError::Timeout));
        assert!(Instant::now() >= at);
        let sender = corio::spawn(move || {
            corio::time::sleep(Duration::from_millis(5));
            tx.send(9).unwrap();
        });
        assert_eq!(
            rx.recv_deadline(Instant::now() + Duration::from_secs(60)),
            Ok(9)
        );
        sender.join().unwrap();
        assert_eq!(
            rx.recv_deadline(Instant::now() + Duration::from_secs(60)),
            Err(mpsc::RecvTimeoutError::Disconnected)
        );

        let (tx, rx) = mpmc::channel::<u32>();
        tx.send(1).unwrap();
        assert_eq!(
            rx.recv_deadline(Instant::now()),
            Ok(1),
            "a ready message wins"
        );
        assert_eq!(
            rx.recv_deadline(Instant::now()),
            Err(mpmc::RecvTimeoutError::Timeout)
        );

        let (otx, orx) = oneshot::channel::<&str>();
        assert_eq!(
            orx.recv_deadline(Instant::now() + Duration::from_millis(1)),
            Err(oneshot::RecvTimeoutError::Timeout)
        );
        otx.send("x").unwrap();
        assert_eq!(orx.recv_deadline(Instant::now()), Ok("x"));
    });
}

#[test]
fn send_deadline_hands_the_message_back_on_timeout() {
    corio::run(|| {
        let (tx, rx) = mpsc::sync_channel::<String>(1);
        tx.send("first".into()).unwrap();
        let err = tx
            .send_deadline("second".into(), Instant::now() + Duration::from_millis(5))
            .unwrap_err();
        match err {
            mpsc::SendTimeoutError::Timeout(m) => assert_eq!(m, "second"),
            other => panic!("{other:?}"),
        }
        assert_eq!(rx.recv().unwrap(), "first");
        tx.send_deadline("third".into(), Instant::now() + Duration::from_secs(60))
            .unwrap();
        assert_eq!(rx.recv().unwrap(), "third");

        let (tx, rx) = mpmc::sync_channel::<u8>(0);
        assert!(matches!(
            tx.send_deadline(1, Instant::now() + Duration::from_millis(2)),
            Err(mpmc::SendTimeoutError::Timeout(1))
        ));
        drop(rx);
        assert!(matches!(
            tx.send_deadline(2, Instant::now() + Duration::from_secs(60)),
            Err(mpmc::SendTimeoutError::Disconnected(2))
        ));
    });
}

#[test]
fn buffer_queries() {
    let (tx, rx) = mpsc::sync_channel::<u8>(2);
    assert_eq!((tx.capacity(), rx.capacity()), (Some(2), Some(2)));
    assert!(tx.is_empty() && !tx.is_full());
    tx.send(1).unwrap();
    tx.send(2).unwrap();
    assert_eq!((tx.len(), rx.len()), (2, 2));
    assert!(tx.is_full() && rx.is_full());
    rx.recv().unwrap();
    assert!(!tx.is_full());

    let (tx, rx) = mpsc::channel::<u8>();
    assert_eq!(tx.capacity(), None);
    for i in 0..100 {
        tx.send(i).unwrap();
    }
    assert_eq!(rx.len(), 100);
    assert!(!tx.is_full(), "an unbounded channel is never full");

    let (tx, rx) = mpmc::sync_channel::<u8>(0);
    assert_eq!(rx.capacity(), Some(0));
    assert!(
        tx.is_full(),
        "a rendezvous channel has no room without a receiver"
    );
    assert!(rx.is_empty());
}
