//! Core costs, corio beside tokio's current-thread runtime and may with one
//! worker, in the same run:
//!
//! * `yield`: two tasks on one thread alternately yielding (time per yield);
//! * `spawn_join`: spawn 1,000 trivial tasks, then join them (time per task);
//! * `generator`: one resume + yield round trip, beside raw corosensei.
//!
//! Run: `cargo bench --bench core`. Figures go in docs/performance.md.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

fn may_one_worker() {
    may::config().set_workers(1);
}

/// Two tasks each yield `n` times; returns the time per yield.
fn yields(c: &mut Criterion) {
    let mut g = c.benchmark_group("yield");
    g.throughput(Throughput::Elements(1));
    g.bench_function(BenchmarkId::new("corio", "2 tasks"), |b| {
        b.iter_custom(|iters| {
            let n = iters.div_ceil(2);
            corio::run(move || {
                let start = Instant::now();
                let a = corio::spawn(move || (0..n).for_each(|_| corio::yield_now()));
                let b = corio::spawn(move || (0..n).for_each(|_| corio::yield_now()));
                a.join().unwrap();
                b.join().unwrap();
                start.elapsed()
            })
        })
    });
    g.bench_function(BenchmarkId::new("tokio", "2 tasks"), |b| {
        let rt = tokio_rt();
        b.iter_custom(|iters| {
            let n = iters.div_ceil(2);
            rt.block_on(async move {
                let start = Instant::now();
                let task = move || async move {
                    for _ in 0..n {
                        tokio::task::yield_now().await;
                    }
                };
                let a = tokio::spawn(task());
                let b = tokio::spawn(task());
                a.await.unwrap();
                b.await.unwrap();
                start.elapsed()
            })
        })
    });
    g.bench_function(BenchmarkId::new("may", "2 tasks"), |b| {
        may_one_worker();
        b.iter_custom(|iters| {
            let n = iters.div_ceil(2);
            let start = Instant::now();
            let task = move || (0..n).for_each(|_| may::coroutine::yield_now());
            // SAFETY: the closures use no thread-locals (may's spawn is unsafe
            // because its coroutines may migrate between worker threads).
            let (a, b) = unsafe { (may::coroutine::spawn(task), may::coroutine::spawn(task)) };
            a.join().unwrap();
            b.join().unwrap();
            start.elapsed()
        })
    });
    g.finish();
}

const BATCH: u64 = 1000;

fn spawn_join(c: &mut Criterion) {
    let mut g = c.benchmark_group("spawn_join");
    g.throughput(Throughput::Elements(BATCH));
    g.bench_function(BenchmarkId::new("corio", BATCH), |b| {
        b.iter_custom(|iters| {
            corio::run(move || {
                let mut handles = Vec::with_capacity(BATCH as usize);
                let start = Instant::now();
                for _ in 0..iters {
                    handles.extend((0..BATCH).map(|i| corio::spawn(move || black_box(i))));
                    for h in handles.drain(..) {
                        black_box(h.join().unwrap());
                    }
                }
                start.elapsed()
            })
        })
    });
    g.bench_function(BenchmarkId::new("tokio", BATCH), |b| {
        let rt = tokio_rt();
        b.iter_custom(|iters| {
            rt.block_on(async move {
                let mut handles = Vec::with_capacity(BATCH as usize);
                let start = Instant::now();
                for _ in 0..iters {
                    handles.extend((0..BATCH).map(|i| tokio::spawn(async move { black_box(i) })));
                    for h in handles.drain(..) {
                        black_box(h.await.unwrap());
                    }
                }
                start.elapsed()
            })
        })
    });
    g.bench_function(BenchmarkId::new("may", BATCH), |b| {
        may_one_worker();
        b.iter_custom(|iters| {
            let mut handles = Vec::with_capacity(BATCH as usize);
            let start = Instant::now();
            for _ in 0..iters {
                // SAFETY: as above, the closures touch no thread-locals.
                handles.extend(
                    (0..BATCH).map(|i| unsafe { may::coroutine::spawn(move || black_box(i)) }),
                );
                for h in handles.drain(..) {
                    black_box(h.join().unwrap());
                }
            }
            start.elapsed()
        })
    });
    g.finish();
}

fn generator(c: &mut Criterion) {
    let mut g = c.benchmark_group("generator");
    g.throughput(Throughput::Elements(1));
    g.bench_function("corio resume", |b| {
        let mut gen_ = corio::generator::Generator::<u64, ()>::new(|y| {
            let mut i = 0u64;
            loop {
                y.yield_(i);
                i += 1;
            }
        });
        b.iter(|| black_box(gen_.resume()))
    });
    g.bench_function("corosensei resume", |b| {
        let mut co = corosensei::Coroutine::<(), u64, ()>::new(|y, ()| {
            let mut i = 0u64;
            loop {
                y.suspend(i);
                i += 1;
            }
        });
        b.iter(|| black_box(co.resume(())))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = yields, spawn_join, generator
}
criterion_main!(benches);
