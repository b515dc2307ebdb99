//! Async crates inside corio tasks, through the future bridge.
//!
//! ```text
//! cargo run --example async_interop
//! ```
//!
//! `corio::block_on(fut)` polls any `Future` to completion, suspending the
//! calling *task* (not the thread) between polls; the future's waker may be
//! fired from any thread. So async libraries that do not need a particular
//! reactor work unchanged inside blocking-style corio code:
//!
//! 1. an `async-channel` pipeline: producer tasks, a plain OS thread also
//!    feeding it, and a consumer task;
//! 2. an `async-lock` `RwLock` shared by reader and writer tasks that
//!    suspend (a corio `sleep`) while holding it;
//! 3. a `futures` stream pipeline (`map`, `filter`, `buffered`, `fold`) whose
//!    stages await corio tasks — a `JoinHandle` is a `Future`;
//! 4. blocking work on the pool (`corio::unblock`) awaited from async code.
//!
//! It prints one line per part, each with the numbers it checked.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

fn main() {
    corio::run(|| {
        channel_pipeline();
        shared_rwlock();
        stream_of_tasks();
        unblock_from_async();
    });
}

/// Producers (tasks and a thread) → bounded async channel → one consumer.
fn channel_pipeline() {
    let (tx, rx) = async_channel::bounded::<u64>(8);
    let producers: Vec<_> = (0..4u64)
        .map(|p| {
            let tx = tx.clone();
            corio::spawn(move || {
                for i in 0..250 {
                    // Suspends this task while the channel is full.
                    corio::block_on(tx.send(p * 1_000 + i)).unwrap();
                }
            })
        })
        .collect();
    let thread_tx = tx.clone();
    let thread = std::thread::spawn(move || {
        for i in 0..250 {
            thread_tx.send_blocking(10_000 + i).unwrap();
        }
    });
    drop(tx);
    let consumer = corio::spawn(move || {
        let (mut n, mut sum) = (0u64, 0u64);
        // Ends when every sender is gone.
        while let Ok(v) = corio::block_on(rx.recv()) {
            n += 1;
            sum += v;
        }
        (n, sum)
    });
    for p in producers {
        p.join().unwrap();
    }
    // A thread join blocks: wait for it on the pool, not on this thread.
    corio::unblock(move || thread.join().unwrap());
    let (n, sum) = consumer.join().unwrap();
    let expected: u64 = (0..4u64)
        .flat_map(|p| (0..250).map(move |i| p * 1_000 + i))
        .chain((0..250).map(|i| 10_000 + i))
        .sum();
    assert_eq!((n, sum), (1_250, expected));
    println!("async-channel: {n} messages from 4 tasks and 1 thread, sum {sum}");
}

/// Readers and writers of an `async_lock::RwLock`.
fn shared_rwlock() {
    let config = Arc::new(async_lock::RwLock::new(vec![0u32]));
    let writers: Vec<_> = (1..=3)
        .map(|w| {
            let config = Arc::clone(&config);
            corio::spawn(move || {
                let mut guard = corio::block_on(config.write());
                // Holding the lock across a suspension: readers wait.
                corio::time::sleep(Duration::from_millis(2));
                guard.push(w);
            })
        })
        .collect();
    let readers: Vec<_> = (0..5)
        .map(|_| {
            let config = Arc::clone(&config);
            corio::spawn(move || corio::block_on(config.read()).len())
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let seen: Vec<usize> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    let final_len = corio::block_on(config.read()).len();
    assert_eq!(final_len, 4);
    assert!(seen.iter().all(|&n| (1..=4).contains(&n)));
    println!("async-lock: 3 writers, 5 readers saw lengths {seen:?}, final length {final_len}");
}

/// A `futures` stream whose items are corio tasks, awaited 4 at a time.
fn stream_of_tasks() {
    let squares = futures::stream::iter(1..=20u64)
        .map(|n| {
            corio::spawn(move || {
                corio::time::sleep(Duration::from_millis(21 - n));
                n * n
            })
        })
        .buffered(4)
        .map(|joined| joined.unwrap())
        .filter(|sq| std::future::ready(sq % 2 == 0))
        .fold(0u64, |acc, sq| std::future::ready(acc + sq));
    let total = corio::block_on(squares);
    let expected: u64 = (1..=20u64).map(|n| n * n).filter(|sq| sq % 2 == 0).sum();
    assert_eq!(total, expected);
    println!("futures: sum of the even squares of 1..=20, computed by 20 tasks: {total}");
}

/// `corio::unblock` inside an async block: the pool does the blocking work,
/// the async code awaits a corio task that ran it.
fn unblock_from_async() {
    let job = corio::spawn(|| {
        corio::unblock(|| {
            std::thread::sleep(Duration::from_millis(10)); // a blocking call
            "done on the pool"
        })
    });
    let result = corio::block_on(async move {
        let (a, b) = futures::join!(job, async { 40 + 2 });
        (a.unwrap(), b)
    });
    assert_eq!(result, ("done on the pool", 42));
    println!("unblock: {:?} and {} from one join!", result.0, result.1);
}
