//! Channels and locks, corio beside tokio's current-thread runtime and may
//! with one worker, in the same run:
//!
//! * `ping_pong`: two tasks pass a message back and forth through two
//!   channels (capacity 1; may's channels are unbounded); time per round
//!   trip (two sends, two receives, two task switches).
//! * `ping_pong_timeout`: the same round trip with both loops inside a
//!   one-hour `timeout` (tokio: `tokio::time::timeout`; may has no scoped
//!   timeout): what a deadline adds to every wait.
//! * `bounded_throughput`: one producer task, one consumer task, a channel
//!   of capacity 128 (may: unbounded, it has no bounded channel); time per
//!   message.
//! * `mutex_uncontended`: lock and unlock a mutex no one else touches, in a
//!   task; time per lock+unlock (std's mutex as a floor).
//!
//! Run: `cargo bench --bench sync`. Figures go in docs/performance.md.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

// The ping-pong workload is shared with sync_count.rs.
#[path = "sync/ping_pong.rs"]
mod ping_pong;

use ping_pong::{Plain, Timeout};

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

fn may_one_worker() {
    may::config().set_workers(1);
}

/// Runs `f` in a may coroutine and returns its result (the benchmark loop
/// must run inside a coroutine for may's primitives to suspend it).
fn may_run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    // SAFETY: the closures of these benchmarks touch no thread-locals (may's
    // spawn is unsafe because its coroutines may move between workers).
    unsafe { may::coroutine::spawn(f) }.join().unwrap()
}

fn ping_pong(c: &mut Criterion) {
    let mut g = c.benchmark_group("ping_pong");
    g.throughput(Throughput::Elements(1));
    g.bench_function(BenchmarkId::new("corio", "round trip"), |b| {
        b.iter_custom(ping_pong::corio::<Plain>)
    });
    g.bench_function(BenchmarkId::new("tokio", "round trip"), |b| {
        let rt = ping_pong::tokio_runtime::<Plain>();
        b.iter_custom(|iters| rt.block_on(ping_pong::tokio::<Plain>(iters)))
    });
    g.bench_function(BenchmarkId::new("may", "round trip"), |b| {
        may_one_worker();
        b.iter_custom(|iters| may_run(move || ping_pong::may(iters)))
    });
    g.finish();
}

fn ping_pong_timeout(c: &mut Criterion) {
    let mut g = c.benchmark_group("ping_pong_timeout");
    g.throughput(Throughput::Elements(1));
    g.bench_function(BenchmarkId::new("corio", "round trip"), |b| {
        b.iter_custom(ping_pong::corio::<Timeout>)
    });
    g.bench_function(BenchmarkId::new("tokio", "round trip"), |b| {
        let rt = ping_pong::tokio_runtime::<Timeout>();
        b.iter_custom(|iters| rt.block_on(ping_pong::tokio::<Timeout>(iters)))
    });
    g.finish();
}

const CAPACITY: usize = 128;

fn bounded_throughput(c: &mut Criterion) {
    let mut g = c.benchmark_group("bounded_throughput");
    g.throughput(Throughput::Elements(1));
    g.bench_function(BenchmarkId::new("corio", CAPACITY), |b| {
        b.iter_custom(|iters| {
            corio::run(move || {
                let (tx, rx) = corio::sync::mpsc::sync_channel::<u64>(CAPACITY);
                let start = Instant::now();
                let consumer = corio::spawn(move || rx.iter().fold(0u64, |a, v| a ^ v));
                for i in 0..iters {
                    tx.send(i).unwrap();
                }
                drop(tx);
                black_box(consumer.join().unwrap());
                start.elapsed()
            })
        })
    });
    g.bench_function(BenchmarkId::new("tokio", CAPACITY), |b| {
        let rt = tokio_rt();
        b.iter_custom(|iters| {
            rt.block_on(async move {
                let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(CAPACITY);
                let start = Instant::now();
                let consumer = tokio::spawn(async move {
                    let mut a = 0u64;
                    while let Some(v) = rx.recv().await {
                        a ^= v;
                    }
                    a
                });
                for i in 0..iters {
                    tx.send(i).await.unwrap();
                }
                drop(tx);
                black_box(consumer.await.unwrap());
                start.elapsed()
            })
        })
    });
    g.bench_function(BenchmarkId::new("may", "unbounded"), |b| {
        may_one_worker();
        b.iter_custom(|iters| {
            may_run(move || {
                let (tx, rx) = may::sync::mpsc::channel::<u64>();
                let start = Instant::now();
                // SAFETY: see `may_run`.
                let consumer = unsafe {
                    may::coroutine::spawn(move || {
                        let mut a = 0u64;
                        while let Ok(v) = rx.recv() {
                            a ^= v;
                        }
                        a
                    })
                };
                for i in 0..iters {
                    tx.send(i).unwrap();
                }
                drop(tx);
                black_box(consumer.join().unwrap());
                start.elapsed()
            })
        })
    });
    g.finish();
}

fn mutex_uncontended(c: &mut Criterion) {
    let mut g = c.benchmark_group("mutex_uncontended");
    g.throughput(Throughput::Elements(1));
    g.bench_function("corio", |b| {
        b.iter_custom(|iters| {
            corio::run(move || {
                let m = corio::sync::Mutex::new(0u64);
                let start = Instant::now();
                for _ in 0..iters {
                    *black_box(&m).lock() += 1;
                }
                start.elapsed()
            })
        })
    });
    g.bench_function("tokio", |b| {
        let rt = tokio_rt();
        b.iter_custom(|iters| {
            rt.block_on(async move {
                let m = tokio::sync::Mutex::new(0u64);
                let start = Instant::now();
                for _ in 0..iters {
                    *black_box(&m).lock().await += 1;
                }
                start.elapsed()
            })
        })
    });
    g.bench_function("may", |b| {
        may_one_worker();
        b.iter_custom(|iters| {
            may_run(move || {
                let m = may::sync::Mutex::new(0u64);
                let start = Instant::now();
                for _ in 0..iters {
                    *black_box(&m).lock().unwrap() += 1;
                }
                start.elapsed()
            })
        })
    });
    g.bench_function("std", |b| {
        let m = std::sync::Mutex::new(0u64);
        b.iter(|| *black_box(&m).lock().unwrap() += 1)
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = ping_pong, ping_pong_timeout, bounded_throughput, mutex_uncontended
}
criterion_main!(benches);
