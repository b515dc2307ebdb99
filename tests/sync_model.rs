//! Model-based property tests of the channels: random operation sequences
//! run against the real channel and against a `VecDeque` model, which must
//! agree after every step.

use std::collections::VecDeque;
use std::time::Duration;

use corio::sync::mpmc::{self, RecvTimeoutError, TryRecvError, TrySendError};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    TrySend {
        sender: usize,
        value: u32,
    },
    /// `send`, only issued when the model says it cannot wait.
    Send {
        sender: usize,
        value: u32,
    },
    TryRecv {
        receiver: usize,
    },
    RecvTimeoutZero {
        receiver: usize,
    },
    CloneSender {
        sender: usize,
    },
    DropSender {
        sender: usize,
    },
    CloneReceiver {
        receiver: usize,
    },
    DropReceiver {
        receiver: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let i = 0usize..4;
    prop_oneof![
        4 => (i.clone(), any::<u32>()).prop_map(|(sender, value)| Op::TrySend { sender, value }),
        3 => (i.clone(), any::<u32>()).prop_map(|(sender, value)| Op::Send { sender, value }),
        4 => i.clone().prop_map(|receiver| Op::TryRecv { receiver }),
        2 => i.clone().prop_map(|receiver| Op::RecvTimeoutZero { receiver }),
        1 => i.clone().prop_map(|sender| Op::CloneSender { sender }),
        1 => i.clone().prop_map(|sender| Op::DropSender { sender }),
        1 => i.clone().prop_map(|receiver| Op::CloneReceiver { receiver }),
        1 => i.prop_map(|receiver| Op::DropReceiver { receiver }),
    ]
}

fn capacity() -> impl Strategy<Value = Option<usize>> {
    prop_oneof![Just(None), (0usize..5).prop_map(Some)]
}

/// The model: a queue, a capacity, and how many handles of each side live.
struct Model {
    queue: VecDeque<u32>,
    cap: Option<usize>,
    senders: usize,
    receivers: usize,
}

impl Model {
    fn full(&self) -> bool {
        // Nobody ever waits in recv here, so a rendezvous channel is full.
        self.cap.is_some_and(|c| self.queue.len() >= c)
    }

    fn try_send(&mut self, v: u32) -> Result<(), TrySendError<u32>> {
        if self.receivers == 0 {
            Err(TrySendError::Disconnected(v))
        } else if self.full() {
            Err(TrySendError::Full(v))
        } else {
            self.queue.push_back(v);
            Ok(())
        }
    }

    fn try_recv(&mut self) -> Result<u32, TryRecvError> {
        match self.queue.pop_front() {
            Some(v) => Ok(v),
            None if self.senders == 0 => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }
}

fn check(cap: Option<usize>, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let (tx, rx) = match cap {
        None => mpmc::channel(),
        Some(c) => mpmc::sync_channel(c),
    };
    let mut senders = vec![tx];
    let mut receivers = vec![rx];
    let mut model = Model {
        queue: VecDeque::new(),
        cap,
        senders: 1,
        receivers: 1,
    };
    for op in ops {
        match op {
            Op::TrySend { sender, value } if !senders.is_empty() => {
                let s = &senders[sender % senders.len()];
                prop_assert_eq!(s.try_send(value), model.try_send(value));
            }
            Op::Send { sender, value } if !senders.is_empty() => {
                if model.receivers > 0 && model.full() {
                    continue; // would wait forever: nobody else runs
                }
                let s = &senders[sender % senders.len()];
                let expected = model
                    .try_send(value)
                    .map_err(|e| mpmc::SendError(e.into_inner()));
                prop_assert_eq!(s.send(value), expected);
            }
            Op::TryRecv { receiver } if !receivers.is_empty() => {
                let r = &receivers[receiver % receivers.len()];
                prop_assert_eq!(r.try_recv(), model.try_recv());
            }
            Op::RecvTimeoutZero { receiver } if !receivers.is_empty() => {
                let r = &receivers[receiver % receivers.len()];
                let expected = model.try_recv().map_err(|e| match e {
                    TryRecvError::Empty => RecvTimeoutError::Timeout,
                    TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
                });
                prop_assert_eq!(r.recv_timeout(Duration::ZERO), expected);
            }
            Op::CloneSender { sender } if !senders.is_empty() => {
                let s = senders[sender % senders.len()].clone();
                senders.push(s);
                model.senders += 1;
            }
            Op::DropSender { sender } if !senders.is_empty() => {
                let i = sender % senders.len();
                senders.swap_remove(i);
                model.senders -= 1;
            }
            Op::CloneReceiver { receiver } if !receivers.is_empty() => {
                let r = receivers[receiver % receivers.len()].clone();
                receivers.push(r);
                model.receivers += 1;
            }
            Op::DropReceiver { receiver } if !receivers.is_empty() => {
                let i = receiver % receivers.len();
                receivers.swap_remove(i);
                model.receivers -= 1;
                if model.receivers == 0 {
                    // Buffered messages are dropped with the last receiver.
                    model.queue.clear();
                }
            }
            _ => {}
        }
        if let Some(s) = senders.first() {
            prop_assert_eq!(s.len(), model.queue.len());
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn channel_agrees_with_the_model_on_a_thread(cap in capacity(), ops in prop::collection::vec(op(), 1..150)) {
        check(cap, ops)?;
    }

    #[test]
    fn channel_agrees_with_the_model_in_a_task(cap in capacity(), ops in prop::collection::vec(op(), 1..150)) {
        corio::run(move || check(cap, ops))?;
    }

    /// Producers and consumers that really wait (tasks interleaved by
    /// random yields): every message arrives exactly once, and each
    /// producer's messages arrive in the order it sent them.
    #[test]
    fn concurrent_tasks_keep_per_sender_order(
        cap in capacity(),
        producers in 1usize..4,
        consumers in 1usize..4,
        per in 1u32..60,
        yields in prop::collection::vec(0u8..3, 64),
    ) {
        let got = corio::run(move || {
            let (tx, rx) = match cap {
                None => mpmc::channel::<(usize, u32)>(),
                Some(c) => mpmc::sync_channel(c),
            };
            let yields = std::sync::Arc::new(yields);
            let ps: Vec<_> = (0..producers)
                .map(|p| {
                    let (tx, yields) = (tx.clone(), std::sync::Arc::clone(&yields));
                    corio::spawn(move || {
                        for i in 0..per {
                            tx.send((p, i)).unwrap();
                            for _ in 0..yields[(p * 7 + i as usize) % yields.len()] {
                                corio::yield_now();
                            }
                        }
                    })
                })
                .collect();
            drop(tx);
            let cs: Vec<_> = (0..consumers)
                .map(|c| {
                    let (rx, yields) = (rx.clone(), std::sync::Arc::clone(&yields));
                    corio::spawn(move || {
                        let mut got = Vec::new();
                        let mut n = 0usize;
                        loop {
                            let r = match n % 3 {
                                0 => rx.recv().ok(),
                                1 => match rx.recv_timeout(Duration::from_millis(1)) {
                                    Ok(v) => Some(v),
                                    Err(RecvTimeoutError::Timeout) => { n += 1; continue; }
                                    Err(RecvTimeoutError::Disconnected) => None,
                                },
                                _ => match rx.try_recv() {
                                    Ok(v) => Some(v),
                                    Err(TryRecvError::Empty) => { corio::yield_now(); n += 1; continue; }
                                    Err(TryRecvError::Disconnected) => None,
                                },
                            };
                            let Some(v) = r else { break };
                            got.push(v);
                            n += 1;
                            for _ in 0..yields[(c * 13 + n) % yields.len()] {
                                corio::yield_now();
                            }
                        }
                        got
                    })
                })
                .collect();
            drop(rx);
            for p in ps {
                p.join().unwrap();
            }
            cs.into_iter().map(|c| c.join().unwrap()).collect::<Vec<_>>()
        });
        // Per-consumer, each producer's messages are increasing (FIFO
        // channel, so a consumer never sees them out of order).
        for list in &got {
            for p in 0..producers {
                let mine: Vec<u32> = list.iter().filter(|m| m.0 == p).map(|m| m.1).collect();
                prop_assert!(mine.windows(2).all(|w| w[0] < w[1]), "reordered: {:?}", mine);
            }
        }
        let mut all: Vec<(usize, u32)> = got.into_iter().flatten().collect();
        all.sort_unstable();
        let expected: Vec<(usize, u32)> =
            (0..producers).flat_map(|p| (0..per).map(move |i| (p, i))).collect();
        prop_assert_eq!(all, expected);
    }
}
