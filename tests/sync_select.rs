//! `select!` and `sync::select`: exactly one operation completes, the
//! others lose nothing.

use std::collections::HashSet;
use std::sync::{Arc, Mutex as StdMutex};
use std::thread;
use std::time::{Duration, Instant};

use corio::sync::select::{self, JoinOp, Operation, RecvOp, SendOp};
use corio::sync::{mpmc, mpsc, oneshot};
use corio::task::{TaskState, WaitReason};

#[test]
fn picks_the_ready_arm_and_leaves_the_other_untouched() {
    corio::run(|| {
        let (tx1, rx1) = mpsc::channel::<u32>();
        let (tx2, rx2) = mpsc::channel::<u32>();
        tx2.send(2).unwrap();
        let got = corio::select! {
            recv(rx1) -> m => ("one", m.unwrap()),
            recv(rx2) -> m => ("two", m.unwrap()),
        };
        assert_eq!(got, ("two", 2));
        tx1.send(1).unwrap();
        assert_eq!(rx1.try_recv(), Ok(1));
        assert_eq!(rx2.try_recv(), Err(mpsc::TryRecvError::Empty));
    });
}

#[test]
fn default_and_timeout_arms() {
    corio::run(|| {
        let (_tx, rx) = mpsc::channel::<u32>();
        let r = corio::select! {
            recv(rx) -> _ => "message",
            default => "nothing ready",
        };
        assert_eq!(r, "nothing ready");
        let t = Instant::now();
        let r = corio::select! {
            recv(rx) -> _ => "message",
            default(Duration::from_millis(20)) => "timed out",
        };
        assert_eq!(r, "timed out");
        assert!(t.elapsed() >= Duration::from_millis(20));
    });
}

#[test]
fn waiting_select_shows_its_wait_reason() {
    corio::run(|| {
        let (tx, rx) = mpsc::channel::<u32>();
        let (_tx2, rx2) = mpsc::channel::<u32>();
        let h = corio::spawn(move || {
            corio::select! {
                recv(rx) -> m => m.unwrap(),
                recv(rx2) -> m => m.unwrap() + 100,
            }
        });
        corio::yield_now();
        let state = corio::tasks()
            .into_iter()
            .find(|t| t.id() == h.id())
            .unwrap()
            .state();
        assert_eq!(state, TaskState::Waiting(WaitReason::Select));
        tx.send(5).unwrap();
        assert_eq!(h.join().unwrap(), 5);
    });
}

#[test]
fn send_arm_on_a_rendezvous_channel() {
    corio::run(|| {
        let (tx_a, rx_a) = mpsc::sync_channel::<&str>(0);
        let (tx_b, rx_b) = mpsc::sync_channel::<&str>(0);
        let sender = corio::spawn(move || {
            corio::select! {
                send(tx_a, "to a") -> r => { r.unwrap(); 'a' }
                send(tx_b, "to b") -> r => { r.unwrap(); 'b' }
            }
        });
        corio::yield_now(); // the sender waits on both
        assert_eq!(rx_b.recv(), Ok("to b"));
        assert_eq!(sender.join().unwrap(), 'b');
        // The losing send was not delivered.
        assert_eq!(rx_a.try_recv(), Err(mpsc::TryRecvError::Disconnected));
    });
}

#[test]
fn a_losing_send_keeps_its_message() {
    corio::run(|| {
        let (tx, _rx) = mpsc::sync_channel::<String>(0);
        let (ready_tx, ready_rx) = mpsc::channel::<()>();
        ready_tx.send(()).unwrap();
        let mut send = SendOp::new(&tx, "kept".to_string());
        let mut recv = RecvOp::new(&ready_rx);
        let i = select::select(&mut [&mut send, &mut recv]);
        assert_eq!(i, 1);
        assert_eq!(recv.into_output(), Ok(()));
        assert_eq!(send.into_unsent().as_deref(), Some("kept"));
    });
}

#[test]
fn both_sides_selecting_on_one_rendezvous_channel_meet() {
    corio::run(|| {
        let (tx, rx) = mpsc::sync_channel::<u32>(0);
        let (_never_tx, never_rx) = mpsc::channel::<u32>();
        let (_never_tx2, never_rx2) = mpsc::channel::<u32>();
        let receiver = corio::spawn(move || {
            corio::select! {
                recv(rx) -> m => m.unwrap(),
                recv(never_rx) -> _ => unreachable!(),
            }
        });
        let sender = corio::spawn(move || {
            corio::select! {
                send(tx, 42) -> r => r.unwrap(),
                recv(never_rx2) -> _ => unreachable!(),
            }
        });
        assert_eq!(receiver.join().unwrap(), 42);
        sender.join().unwrap();
    });
}

#[test]
fn disconnection_completes_a_receive() {
    corio::run(|| {
        let (tx, rx) = mpsc::channel::<u32>();
        let (_tx2, rx2) = mpsc::channel::<u32>();
        let h = corio::spawn(move || {
            corio::select! {
                recv(rx) -> m => m,
                recv(rx2) -> _ => unreachable!(),
            }
        });
        corio::yield_now();
        drop(tx);
        assert_eq!(h.join().unwrap(), Err(mpsc::RecvError));
    });
}

#[test]
fn join_arm_joins_the_finished_task() {
    corio::run(|| {
        let (_tx, rx) = mpsc::channel::<u32>();
        let worker = corio::spawn(|| {
            corio::time::sleep(Duration::from_millis(5));
            "result"
        });
        let r = corio::select! {
            recv(rx) -> _ => unreachable!(),
            join(worker) -> r => r.unwrap(),
        };
        assert_eq!(r, "result");

        // A losing join arm leaves the handle usable.
        let (tx, rx) = mpsc::channel::<u32>();
        tx.send(1).unwrap();
        let slow = corio::spawn(|| 9);
        let mut op = JoinOp::new(&slow);
        let mut recv = RecvOp::new(&rx);
        let i = select::select(&mut [&mut recv, &mut op]);
        assert!(i == 0 || slow.is_finished());
        assert_eq!(slow.join().unwrap(), 9);
    });
}

#[test]
fn oneshot_receivers_and_mpmc_in_one_select() {
    corio::run(|| {
        let (otx, orx) = oneshot::channel::<u32>();
        let (_mtx, mrx) = mpmc::channel::<u32>();
        let h = corio::spawn(move || otx.send(3).unwrap());
        let r = corio::select! {
            recv(orx) -> m => m.unwrap(),
            recv(mrx) -> m => m.unwrap(),
        };
        assert_eq!(r, 3);
        h.join().unwrap();
    });
}

#[test]
fn macro_syntax_forms() {
    corio::run(|| {
        let (tx, rx) = mpsc::channel::<u32>();
        tx.send(1).unwrap();
        // No `-> pat`, block body without a comma, expression default.
        let mut hits = 0;
        corio::select! {
            recv(rx) => { hits += 1; }
            default => unreachable!()
        }
        assert_eq!(hits, 1);
        // Empty select with a default.
        let r = corio::select! { default => 7 };
        assert_eq!(r, 7);
        // A select in statement position with a trailing comma.
        tx.send(2).unwrap();
        corio::select! {
            recv(rx) -> m => assert_eq!(m, Ok(2)),
        }
    });
}

#[test]
fn select_on_a_plain_thread() {
    let (tx, rx) = mpsc::channel::<u32>();
    let (_tx2, rx2) = mpsc::channel::<u32>();
    let t = thread::spawn(move || {
        thread::sleep(Duration::from_millis(5));
        tx.send(11).unwrap();
    });
    let r = corio::select! {
        recv(rx2) -> _ => unreachable!(),
        recv(rx) -> m => m.unwrap(),
    };
    assert_eq!(r, 11);
    t.join().unwrap();
}

/// Many producers (tasks and a thread) send numbered messages through
/// several channels of every kind; consumers take them only through selects
/// that also offer losing arms (timeouts, a rendezvous send nobody takes);
/// some consumers are cancelled mid-select. Every message must arrive
/// exactly once.
#[test]
fn select_loses_nothing_under_stress() {
    const PER_PRODUCER: u32 = 10_000;
    let (tx0, rx0) = mpmc::channel::<u32>();
    let (tx1, rx1) = mpmc::sync_channel::<u32>(0);
    let (tx2, rx2) = mpmc::sync_channel::<u32>(3);
    let seen = Arc::new(StdMutex::new(Vec::<u32>::new()));

    let thread_tx = tx1.clone();
    let producer_thread = thread::spawn(move || {
        for i in 0..PER_PRODUCER {
            thread_tx.send(3 * PER_PRODUCER + i).unwrap();
        }
    });

    corio::run({
        let seen = Arc::clone(&seen);
        move || {
            let producers: Vec<_> = [tx0, tx1, tx2]
                .into_iter()
                .enumerate()
                .map(|(k, tx)| {
                    corio::spawn(move || {
                        for i in 0..PER_PRODUCER {
                            tx.send(k as u32 * PER_PRODUCER + i).unwrap();
                            if i % 64 == 0 {
                                corio::yield_now();
                            }
                        }
                    })
                })
                .collect();
            let (decoy_tx, _decoy_rx) = mpmc::sync_channel::<u32>(0);
            let consumer = |seen: Arc<StdMutex<Vec<u32>>>| {
                let rxs = [rx0.clone(), rx1.clone(), rx2.clone()];
                let decoy_tx = decoy_tx.clone();
                move || {
                    let mut open = [true; 3];
                    while open.contains(&true) {
                        // The builder form: one receive per open channel,
                        // plus a rendezvous send nobody takes.
                        let which: Vec<usize> = (0..3).filter(|&k| open[k]).collect();
                        let mut recvs: Vec<RecvOp<'_, u32>> =
                            which.iter().map(|&k| RecvOp::new(&rxs[k])).collect();
                        let mut decoy = SendOp::new(&decoy_tx, u32::MAX);
                        let mut ops: Vec<&mut dyn Operation> =
                            recvs.iter_mut().map(|r| r as &mut dyn Operation).collect();
                        ops.push(&mut decoy);
                        let picked = select::select_timeout(&mut ops, Duration::from_millis(50));
                        drop(ops);
                        match picked {
                            None => {}
                            Some(i) if i == which.len() => unreachable!("nobody receives decoys"),
                            Some(i) => {
                                match recvs[i].output().expect("the selected op completed") {
                                    Ok(v) => seen.lock().unwrap().push(v),
                                    Err(_) => open[which[i]] = false,
                                }
                            }
                        }
                        assert_eq!(decoy.into_unsent(), Some(u32::MAX));
                    }
                }
            };
            let consumers: Vec<_> = (0..4)
                .map(|_| corio::spawn(consumer(Arc::clone(&seen))))
                .collect();
            // Cancel some consumers while they select; nothing they were
            // offered may be lost.
            let victims: Vec<_> = (0..3)
                .map(|_| corio::spawn(consumer(Arc::clone(&seen))))
                .collect();
            for _ in 0..50 {
                corio::yield_now();
            }
            for v in &victims {
                v.cancel();
            }
            for p in producers {
                p.join().unwrap();
            }
            for v in victims {
                let _ = v.join();
            }
            for c in consumers {
                c.join().unwrap();
            }
            // Whatever is left (consumers stop at the first closed channel).
            for rx in [rx0, rx1, rx2] {
                seen.lock().unwrap().extend(rx.try_iter());
            }
        }
    });
    producer_thread.join().unwrap();
    // The thread's sender may have been the last one: drain again.
    let seen = seen.lock().unwrap();
    let unique: HashSet<u32> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "a message arrived twice");
    assert!(!unique.contains(&u32::MAX));
    let expected: HashSet<u32> = (0..4 * PER_PRODUCER).collect();
    let missing: Vec<_> = expected.difference(&unique).take(5).collect();
    assert!(missing.is_empty(), "lost messages, e.g. {missing:?}");
}
