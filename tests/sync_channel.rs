//! Channels: std's mpsc behaviour (ported cases), rendezvous and bounded
//! waiting, disconnection both ways, and every mix of tasks, runtimes and
//! plain threads.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use corio::sync::{mpmc, mpsc, oneshot};
use corio::task::{TaskState, WaitReason};
use mpsc::{RecvError, RecvTimeoutError, SendError, TryRecvError, TrySendError};

/// Runs the body once inside a corio task and once on a plain thread.
macro_rules! both {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[test]
            fn in_task() {
                corio::run($body);
            }
            #[test]
            fn on_thread() {
                ($body)();
            }
        }
    };
}

both!(smoke, || {
    let (tx, rx) = mpsc::channel::<i32>();
    tx.send(1).unwrap();
    assert_eq!(rx.recv().unwrap(), 1);
});

both!(drop_full, || {
    let (tx, _rx) = mpsc::channel::<Box<i32>>();
    tx.send(Box::new(1)).unwrap();
});

both!(port_gone, || {
    let (tx, rx) = mpsc::channel::<i32>();
    drop(rx);
    assert_eq!(tx.send(1), Err(SendError(1)));
});

both!(sync_port_gone, || {
    let (tx, rx) = mpsc::sync_channel::<i32>(0);
    drop(rx);
    assert_eq!(tx.send(1), Err(SendError(1)));
    assert_eq!(tx.try_send(2), Err(TrySendError::Disconnected(2)));
});

both!(try_recv_states, || {
    let (tx, rx) = mpsc::sync_channel::<i32>(1);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    tx.send(1).unwrap();
    assert_eq!(tx.try_send(2), Err(TrySendError::Full(2)));
    assert_eq!(rx.try_recv(), Ok(1));
    drop(tx);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    assert_eq!(rx.recv(), Err(RecvError));
});

both!(buffered_messages_survive_sender_drop, || {
    let (tx, rx) = mpsc::sync_channel::<i32>(3);
    for i in 0..3 {
        tx.send(i).unwrap();
    }
    drop(tx);
    assert_eq!(rx.iter().collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(rx.recv(), Err(RecvError));
});

both!(try_iter_takes_only_what_waits, || {
    let (tx, rx) = mpsc::channel();
    for i in 0..5 {
        tx.send(i).unwrap();
    }
    assert_eq!(rx.try_iter().collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
    assert_eq!(rx.try_iter().count(), 0);
    tx.send(9).unwrap();
    drop(tx);
    assert_eq!(rx.into_iter().collect::<Vec<_>>(), [9]);
});

both!(recv_timeout_times_out, || {
    let (tx, rx) = mpsc::channel::<i32>();
    let t = Instant::now();
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(20)),
        Err(RecvTimeoutError::Timeout)
    );
    assert!(t.elapsed() >= Duration::from_millis(20));
    tx.send(3).unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_millis(20)), Ok(3));
    drop(tx);
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)),
        Err(RecvTimeoutError::Disconnected)
    );
});

both!(send_timeout_times_out, || {
    let (tx, rx) = mpsc::sync_channel::<i32>(1);
    tx.send(1).unwrap();
    let err = tx
        .send_timeout(2, Duration::from_millis(20))
        .expect_err("full");
    assert!(err.is_timeout());
    assert_eq!(err.into_inner(), 2);
    assert_eq!(rx.recv(), Ok(1));
    // The timed-out send left nothing behind.
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    drop(rx);
    assert!(
        tx.send_timeout(3, Duration::from_secs(10))
            .unwrap_err()
            .is_disconnected()
    );
});

#[test]
fn messages_are_dropped_with_the_receiver() {
    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    for _ in 0..10 {
        tx.send(Counted(Arc::clone(&drops))).unwrap();
    }
    drop(rx);
    assert_eq!(drops.load(Ordering::SeqCst), 10);
    let back = tx.send(Counted(Arc::clone(&drops))).unwrap_err().0;
    drop(back);
    assert_eq!(drops.load(Ordering::SeqCst), 11);
}

#[test]
fn rendezvous_send_waits_for_the_receiver() {
    corio::run(|| {
        let (tx, rx) = mpsc::sync_channel::<u32>(0);
        // Nobody receives: try_send finds no partner.
        assert_eq!(tx.try_send(1), Err(TrySendError::Full(1)));
        let sender = corio::spawn(move || {
            tx.send(7).unwrap();
            tx
        });
        corio::yield_now();
        // The sender waits in the channel, visibly.
        let info = corio::tasks()
            .into_iter()
            .find(|t| t.id() == sender.id())
            .unwrap();
        assert_eq!(info.state(), TaskState::Waiting(WaitReason::Channel));
        assert!(!sender.is_finished());
        assert_eq!(rx.recv(), Ok(7));
        let tx = sender.join().unwrap();
        // A receiver waiting in recv lets try_send hand over at once.
        let receiver = corio::spawn(move || rx.recv());
        corio::yield_now();
        assert_eq!(tx.try_send(8), Ok(()));
        assert_eq!(receiver.join().unwrap(), Ok(8));
    });
}

#[test]
fn bounded_senders_are_served_in_order() {
    corio::run(|| {
        let (tx, rx) = mpsc::sync_channel::<u32>(1);
        tx.send(0).unwrap();
        let senders: Vec<_> = (1..=5)
            .map(|i| {
                let tx = tx.clone();
                corio::spawn(move || tx.send(i).unwrap())
            })
            .collect();
        // All five wait (the buffer is full), in spawn order.
        corio::yield_now();
        drop(tx);
        let got: Vec<u32> = rx.iter().collect();
        assert_eq!(got, [0, 1, 2, 3, 4, 5]);
        for s in senders {
            s.join().unwrap();
        }
    });
}

#[test]
fn waiting_senders_get_their_message_back_when_the_receiver_goes() {
    corio::run(|| {
        let (tx, rx) = mpsc::sync_channel::<String>(0);
        let senders: Vec<_> = (0..3)
            .map(|i| {
                let tx = tx.clone();
                corio::spawn(move || tx.send(format!("m{i}")))
            })
            .collect();
        corio::yield_now();
        drop(rx);
        let mut back: Vec<String> = senders
            .into_iter()
            .map(|s| s.join().unwrap().unwrap_err().0)
            .collect();
        back.sort();
        assert_eq!(back, ["m0", "m1", "m2"]);
    });
}

#[test]
fn waiting_receivers_wake_when_the_senders_go() {
    corio::run(|| {
        let (tx, rx) = mpmc::channel::<u32>();
        let receivers: Vec<_> = (0..3)
            .map(|_| {
                let rx = rx.clone();
                corio::spawn(move || rx.recv())
            })
            .collect();
        corio::yield_now();
        drop(tx);
        for r in receivers {
            assert_eq!(r.join().unwrap(), Err(mpmc::RecvError));
        }
    });
}

#[test]
fn between_runtimes_on_different_threads() {
    let (tx, rx) = mpsc::sync_channel::<u64>(0);
    let (back_tx, back_rx) = mpsc::channel::<u64>();
    let a = thread::spawn(move || {
        corio::run(move || {
            let mut sum = 0;
            for v in rx.iter() {
                sum += v;
                back_tx.send(v * 2).unwrap();
            }
            sum
        })
    });
    let b = thread::spawn(move || {
        corio::run(move || {
            let mut doubled = 0;
            for i in 0..2_000 {
                tx.send(i).unwrap();
                doubled += back_rx.recv().unwrap();
            }
            doubled
        })
    });
    assert_eq!(b.join().unwrap(), 2 * (0..2_000).sum::<u64>());
    assert_eq!(a.join().unwrap(), (0..2_000).sum::<u64>());
}

const MILLION: u64 = 1_000_000;

#[test]
fn a_million_messages_from_a_thread_to_a_task() {
    let (tx, rx) = mpsc::sync_channel::<u64>(64);
    let producer = thread::spawn(move || {
        for i in 0..MILLION {
            tx.send(i).unwrap();
        }
    });
    let (count, sum) = corio::run(move || {
        let consumer = corio::spawn(move || {
            let mut expected = 0;
            for v in rx.iter() {
                assert_eq!(v, expected, "lost or reordered");
                expected += 1;
            }
            (expected, 0)
        });
        consumer.join().unwrap()
    });
    producer.join().unwrap();
    assert_eq!((count, sum), (MILLION, 0));
}

#[test]
fn a_million_messages_from_a_task_to_a_thread() {
    let (tx, rx) = mpsc::sync_channel::<u64>(64);
    let consumer = thread::spawn(move || {
        let mut expected = 0;
        for v in rx.iter() {
            assert_eq!(v, expected, "lost or reordered");
            expected += 1;
        }
        expected
    });
    corio::run(move || {
        let producer = corio::spawn(move || {
            for i in 0..MILLION {
                tx.send(i).unwrap();
            }
        });
        producer.join().unwrap();
    });
    assert_eq!(consumer.join().unwrap(), MILLION);
}

#[test]
fn cross_thread_rendezvous_ping_pong_stress() {
    // Every message is a wakeup across threads, both ways.
    let (ping_tx, ping_rx) = mpmc::sync_channel::<u32>(0);
    let (pong_tx, pong_rx) = mpmc::sync_channel::<u32>(0);
    let echo = thread::spawn(move || {
        for v in ping_rx.iter() {
            pong_tx.send(v + 1).unwrap();
        }
    });
    corio::run(move || {
        let tasks: Vec<_> = (0..4)
            .map(|k| {
                let ping_tx = ping_tx.clone();
                let pong_rx = pong_rx.clone();
                corio::spawn(move || {
                    for i in 0..2_000 {
                        // Replies may go to another task: check the total.
                        ping_tx.send(k * 10_000 + i).unwrap();
                        pong_rx.recv().unwrap();
                    }
                })
            })
            .collect();
        drop(ping_tx);
        for t in tasks {
            t.join().unwrap();
        }
    });
    echo.join().unwrap();
}

#[test]
fn mpmc_delivers_each_message_once() {
    corio::run(|| {
        let (tx, rx) = mpmc::sync_channel::<u32>(8);
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let rx = rx.clone();
                corio::spawn(move || rx.iter().collect::<Vec<_>>())
            })
            .collect();
        drop(rx);
        let thread_tx = tx.clone();
        let t = thread::spawn(move || {
            for i in 1000..2000 {
                thread_tx.send(i).unwrap();
            }
        });
        for i in 0..1000 {
            tx.send(i).unwrap();
        }
        drop(tx);
        // The workers end once the thread's sender is gone too (joining the
        // thread first would block this runtime's thread).
        let mut all: Vec<u32> = workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect();
        t.join().unwrap();
        all.sort_unstable();
        assert_eq!(all, (0..2000).collect::<Vec<_>>());
    });
}

#[test]
fn oneshot_basics() {
    corio::run(|| {
        let (tx, rx) = oneshot::channel::<u32>();
        assert_eq!(rx.try_recv(), Err(oneshot::TryRecvError::Empty));
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(5)),
            Err(oneshot::RecvTimeoutError::Timeout)
        );
        let h = corio::spawn(move || tx.send(5));
        assert_eq!(rx.recv(), Ok(5));
        h.join().unwrap().unwrap();

        let (tx, rx) = oneshot::channel::<u32>();
        drop(tx);
        assert_eq!(rx.recv(), Err(oneshot::RecvError));

        let (tx, rx) = oneshot::channel::<u32>();
        assert!(!tx.is_closed());
        drop(rx);
        assert!(tx.is_closed());
        assert_eq!(tx.send(1), Err(oneshot::SendError(1)));
    });
}

#[test]
fn oneshot_from_a_thread() {
    let (tx, rx) = oneshot::channel::<&str>();
    let t = thread::spawn(move || {
        thread::sleep(Duration::from_millis(5));
        tx.send("done").unwrap();
    });
    corio::run(move || assert_eq!(rx.recv(), Ok("done")));
    t.join().unwrap();
}

#[test]
fn waiting_receiver_shows_its_wait_reason() {
    corio::run(|| {
        let (tx, rx) = mpsc::channel::<()>();
        let h = corio::spawn(move || rx.recv());
        corio::yield_now();
        let info = corio::tasks()
            .into_iter()
            .find(|t| t.id() == h.id())
            .unwrap();
        assert_eq!(info.state(), TaskState::Waiting(WaitReason::Channel));
        tx.send(()).unwrap();
        assert_eq!(h.join().unwrap(), Ok(()));
    });
}

#[test]
fn send_error_types_are_std_shaped() {
    let e = SendError(5);
    assert_eq!(e.to_string(), "sending on a closed channel");
    assert_eq!(format!("{e:?}"), "SendError { .. }");
    let e: TrySendError<u8> = SendError(1).into();
    assert!(e.is_disconnected());
    assert_eq!(RecvError.to_string(), "receiving on a closed channel");
    let e: RecvTimeoutError = RecvError.into();
    assert!(e.is_disconnected());
    let e: TryRecvError = RecvError.into();
    assert!(e.is_disconnected());
    fn is_error<E: std::error::Error + Send + Sync + 'static>(_: E) {}
    is_error(SendError(1u8));
    is_error(TrySendError::Full(1u8));
    is_error(mpsc::SendTimeoutError::Timeout(1u8));
    is_error(RecvError);
    is_error(TryRecvError::Empty);
    is_error(RecvTimeoutError::Timeout);
}
