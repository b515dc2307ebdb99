//! Several workers: corio beside tokio's multi-thread runtime and `may`
//! with the same number of workers, in the same run (the Go equivalents are
//! in `benches/go/`, run separately):
//!
//! ```text
//! cargo bench --bench workers                  # every workload (about 4 minutes)
//! cargo bench --bench workers -- fanout        # one group: fanout spawn_join pingpong parked
//! cargo bench --bench workers -- parked        # the 1,000,000 parked tasks only
//! ```
//!
//! * `fanout`: 100,000 tasks of about 20 µs of CPU work each (a fixed
//!   number of multiply-adds, calibrated once per run), spawned by one task
//!   and then joined, with 1 and 2 workers. may cannot hold 100,000
//!   coroutines at once (each stack is its own mapping with a guard page,
//!   and `vm.max_map_count` runs out), so its fan-out is 10 waves of 10,000;
//!   it runs in a child process per sample, since may's worker count is
//!   fixed once per process.
//! * `spawn_join`: from one task on a 2-worker runtime, batches of 1,000
//!   tasks spawned and then joined (each runtime places them); and for
//!   corio, one task at a time onto the other worker (`spawn_on`).
//! * `pingpong`: a round trip between two tasks through two channels on a
//!   2-worker runtime. corio pins the two tasks on different workers
//!   (`spawn_on`), and for reference on the same one; tokio and may place
//!   them themselves (neither can pin a task to a worker).
//! * `parked`: 1,000,000 tasks blocked on one semaphore with 2 workers
//!   (corio also with 1): the time to create them and have all of them
//!   started and blocked, and the resident memory per task, each in a fresh
//!   child process.
//!
//! Figures go in docs/performance.md.

use std::hint::black_box;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use corio::runtime::{Builder, Runtime};
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};

const FANOUT_TASKS: usize = 100_000;
/// may's fan-out runs in waves of this many coroutines (see the module docs).
const MAY_WAVE: usize = 10_000;
const BATCH: u64 = 1_000;
const PARKED: usize = 1_000_000;

/// The CPU work of one fan-out task: `iters` dependent multiply-adds.
#[inline(never)]
fn work(iters: u64) -> u64 {
    let mut x = 0u64;
    for i in 0..iters {
        x = black_box(x.wrapping_mul(31).wrapping_add(i));
    }
    x
}

/// How many iterations of [`work`] take about 20 µs on this machine (the
/// fastest of several timings, so that a preempted one does not count).
fn calibrate() -> u64 {
    const PROBE: u64 = 1_000_000;
    let best = (0..7)
        .map(|_| {
            let t = Instant::now();
            black_box(work(PROBE));
            t.elapsed()
        })
        .min()
        .unwrap();
    (PROBE as f64 * 20e-6 / best.as_secs_f64()).round() as u64
}

fn corio_rt(workers: usize) -> Runtime {
    Builder::new().workers(workers).build().unwrap()
}

fn tokio_rt(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_time()
        .build()
        .unwrap()
}

/// Runs `f` as a tokio task (on a worker, as corio's main task is), not on
/// the thread calling `block_on`.
fn tokio_on_worker<T: Send + 'static>(
    rt: &tokio::runtime::Runtime,
    f: impl Future<Output = T> + Send + 'static,
) -> T {
    rt.block_on(async move { tokio::spawn(f).await.unwrap() })
}

/// Runs `f` in a may coroutine and waits for it from this thread.
fn may_on_worker<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    // SAFETY: the closures of this file use no thread-locals (may's spawn is
    // unsafe because its coroutines may move between worker threads).
    unsafe { may::coroutine::spawn(f) }.join().unwrap()
}

fn corio_fanout(rt: &Runtime, iters: u64, w: u64) -> Duration {
    rt.block_on(move || {
        let t = Instant::now();
        for _ in 0..iters {
            let hs: Vec<_> = (0..FANOUT_TASKS)
                .map(|_| corio::spawn(move || work(w)))
                .collect();
            for h in hs {
                black_box(h.join().unwrap());
            }
        }
        t.elapsed()
    })
}

fn tokio_fanout(rt: &tokio::runtime::Runtime, iters: u64, w: u64) -> Duration {
    tokio_on_worker(rt, async move {
        let t = Instant::now();
        for _ in 0..iters {
            let hs: Vec<_> = (0..FANOUT_TASKS)
                .map(|_| tokio::spawn(async move { work(w) }))
                .collect();
            for h in hs {
                black_box(h.await.unwrap());
            }
        }
        t.elapsed()
    })
}

/// In a child process (`workers child may-fanout WORKERS ITERS WORK`).
fn may_fanout(iters: u64, w: u64) -> Duration {
    may_on_worker(move || {
        let t = Instant::now();
        for _ in 0..iters {
            for _ in 0..FANOUT_TASKS / MAY_WAVE {
                // SAFETY: as in `may_on_worker`.
                let hs: Vec<_> = (0..MAY_WAVE)
                    .map(|_| unsafe { may::coroutine::spawn(move || work(w)) })
                    .collect();
                for h in hs {
                    black_box(h.join().unwrap());
                }
            }
        }
        t.elapsed()
    })
}

/// Runs this binary as `child ARGS...`; returns what it printed. A child
/// that runs past two minutes is killed (may can hang once a worker thread
/// panicked on a failed stack allocation).
fn child(args: &[String]) -> Result<String, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut proc = Command::new(exe)
        .arg("child")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while proc.try_wait().map_err(|e| e.to_string())?.is_none() {
        if Instant::now() > deadline {
            let _ = proc.kill();
            let _ = proc.wait();
            return Err("killed after 120 s".to_string());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = proc.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err
            .lines()
            .find(|l| !l.trim().is_empty() && !l.starts_with("thread "))
            .unwrap_or("");
        return Err(format!("{}: {first}", out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn fanout(c: &mut Criterion, w: u64) {
    let mut g = c.benchmark_group("fanout");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(FANOUT_TASKS as u64));
    for workers in [1, 2] {
        let id = format!("{workers} worker{}", if workers > 1 { "s" } else { "" });
        g.bench_function(BenchmarkId::new("corio", &id), |b| {
            let rt = corio_rt(workers);
            b.iter_custom(|iters| corio_fanout(&rt, iters, w))
        });
        g.bench_function(BenchmarkId::new("tokio", &id), |b| {
            let rt = tokio_rt(workers);
            b.iter_custom(|iters| tokio_fanout(&rt, iters, w))
        });
        g.bench_function(BenchmarkId::new("may", &id), |b| {
            b.iter_custom(|iters| {
                let args = ["may-fanout", &workers.to_string(), &iters.to_string()];
                let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
                let args = [args, vec![w.to_string()]].concat();
                let out = child(&args).unwrap_or_else(|e| panic!("may fan-out: {e}"));
                Duration::from_nanos(out.trim().parse().expect("nanoseconds"))
            })
        });
    }
    g.finish();
}

fn spawn_join(c: &mut Criterion) {
    let mut g = c.benchmark_group("spawn_join");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(BATCH));
    let id = format!("2 workers, batches of {BATCH}");
    g.bench_function(BenchmarkId::new("corio", &id), |b| {
        let rt = corio_rt(2);
        b.iter_custom(|iters| {
            rt.block_on(move || {
                let mut hs = Vec::with_capacity(BATCH as usize);
                let t = Instant::now();
                for _ in 0..iters {
                    hs.extend((0..BATCH).map(|i| corio::spawn(move || black_box(i))));
                    for h in hs.drain(..) {
                        black_box(h.join().unwrap());
                    }
                }
                t.elapsed()
            })
        })
    });
    g.bench_function(BenchmarkId::new("tokio", &id), |b| {
        let rt = tokio_rt(2);
        b.iter_custom(|iters| {
            tokio_on_worker(&rt, async move {
                let mut hs = Vec::with_capacity(BATCH as usize);
                let t = Instant::now();
                for _ in 0..iters {
                    hs.extend((0..BATCH).map(|i| tokio::spawn(async move { black_box(i) })));
                    for h in hs.drain(..) {
                        black_box(h.await.unwrap());
                    }
                }
                t.elapsed()
            })
        })
    });
    g.bench_function(BenchmarkId::new("may", &id), |b| {
        b.iter_custom(|iters| {
            may_on_worker(move || {
                let mut hs = Vec::with_capacity(BATCH as usize);
                let t = Instant::now();
                for _ in 0..iters {
                    // SAFETY: as in `may_on_worker`.
                    hs.extend(
                        (0..BATCH).map(|i| unsafe { may::coroutine::spawn(move || black_box(i)) }),
                    );
                    for h in hs.drain(..) {
                        black_box(h.join().unwrap());
                    }
                }
                t.elapsed()
            })
        })
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function(
        BenchmarkId::new("corio", "onto the other worker, one at a time"),
        |b| {
            let rt = corio_rt(2);
            b.iter_custom(|iters| {
                rt.block_on(move || {
                    let t = Instant::now();
                    for i in 0..iters {
                        black_box(corio::spawn_on(1, move || i).join().unwrap());
                    }
                    t.elapsed()
                })
            })
        },
    );
    g.finish();
}

fn corio_pingpong(rt: &Runtime, on: usize, iters: u64) -> Duration {
    rt.block_on(move || {
        let (tx, rx) = corio::sync::mpsc::sync_channel::<u64>(1);
        let (back_tx, back_rx) = corio::sync::mpsc::sync_channel::<u64>(1);
        let echo = corio::spawn_on(on, move || {
            for v in rx.iter() {
                back_tx.send(v).unwrap();
            }
        });
        let t = Instant::now();
        for i in 0..iters {
            tx.send(i).unwrap();
            black_box(back_rx.recv().unwrap());
        }
        let took = t.elapsed();
        drop(tx);
        echo.join().unwrap();
        took
    })
}

fn pingpong(c: &mut Criterion) {
    let mut g = c.benchmark_group("pingpong");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(1));
    g.bench_function(BenchmarkId::new("corio", "2 workers, across"), |b| {
        let rt = corio_rt(2);
        b.iter_custom(|iters| corio_pingpong(&rt, 1, iters))
    });
    g.bench_function(BenchmarkId::new("corio", "2 workers, same worker"), |b| {
        let rt = corio_rt(2);
        b.iter_custom(|iters| corio_pingpong(&rt, 0, iters))
    });
    g.bench_function(BenchmarkId::new("tokio", "2 workers"), |b| {
        let rt = tokio_rt(2);
        b.iter_custom(|iters| {
            tokio_on_worker(&rt, async move {
                let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(1);
                let (back_tx, mut back_rx) = tokio::sync::mpsc::channel::<u64>(1);
                let echo = tokio::spawn(async move {
                    while let Some(v) = rx.recv().await {
                        back_tx.send(v).await.unwrap();
                    }
                });
                let t = Instant::now();
                for i in 0..iters {
                    tx.send(i).await.unwrap();
                    black_box(back_rx.recv().await.unwrap());
                }
                let took = t.elapsed();
                drop(tx);
                echo.await.unwrap();
                took
            })
        })
    });
    g.bench_function(BenchmarkId::new("may", "2 workers"), |b| {
        b.iter_custom(|iters| {
            may_on_worker(move || {
                let (tx, rx) = may::sync::mpsc::channel::<u64>();
                let (back_tx, back_rx) = may::sync::mpsc::channel::<u64>();
                // SAFETY: as in `may_on_worker`.
                let echo = unsafe {
                    may::coroutine::spawn(move || {
                        for v in rx.iter() {
                            back_tx.send(v).unwrap();
                        }
                    })
                };
                let t = Instant::now();
                for i in 0..iters {
                    tx.send(i).unwrap();
                    black_box(back_rx.recv().unwrap());
                }
                let took = t.elapsed();
                drop(tx);
                echo.join().unwrap();
                took
            })
        })
    });
    g.finish();
}

/// The resident set of this process, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib * 1024
}

/// Prints the seconds since `start` and the resident bytes per task since
/// `before`, and exits at once: tearing `n` tasks down is not measured.
fn report(start: Instant, before: u64, n: usize) -> ! {
    let took = start.elapsed().as_secs_f64();
    println!("{took} {}", (rss() - before) as f64 / n as f64);
    std::process::exit(0)
}

fn corio_parked(workers: usize, n: usize) -> ! {
    corio_rt(workers).block_on(move || {
        let gate = Arc::new(corio::sync::Semaphore::new(0));
        let started = Arc::new(AtomicUsize::new(0));
        let mut hs = Vec::with_capacity(n);
        let before = rss();
        let t = Instant::now();
        for _ in 0..n {
            let (gate, started) = (gate.clone(), started.clone());
            hs.push(corio::spawn(move || {
                started.fetch_add(1, Ordering::Relaxed);
                gate.acquire().forget();
            }));
        }
        while started.load(Ordering::Relaxed) < n {
            corio::time::sleep(Duration::from_millis(1));
        }
        report(t, before, n)
    })
}

fn tokio_parked(workers: usize, n: usize) -> ! {
    tokio_on_worker(&tokio_rt(workers), async move {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let started = Arc::new(AtomicUsize::new(0));
        let mut hs = Vec::with_capacity(n);
        let before = rss();
        let t = Instant::now();
        for _ in 0..n {
            let (gate, started) = (gate.clone(), started.clone());
            hs.push(tokio::spawn(async move {
                started.fetch_add(1, Ordering::Relaxed);
                gate.acquire().await.unwrap().forget();
            }));
        }
        while started.load(Ordering::Relaxed) < n {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        report(t, before, n)
    })
}

fn may_parked(n: usize) -> ! {
    may_on_worker(move || {
        let gate = Arc::new(may::sync::Semphore::new(0));
        let started = Arc::new(AtomicUsize::new(0));
        let mut hs = Vec::with_capacity(n);
        let before = rss();
        let t = Instant::now();
        for _ in 0..n {
            let (gate, started) = (gate.clone(), started.clone());
            // SAFETY: as in `may_on_worker`.
            hs.push(unsafe {
                may::coroutine::spawn(move || {
                    started.fetch_add(1, Ordering::Relaxed);
                    gate.wait();
                })
            });
        }
        while started.load(Ordering::Relaxed) < n {
            may::coroutine::sleep(Duration::from_millis(1));
        }
        report(t, before, n)
    })
}

/// The parked tasks, each runtime in a fresh process; prints a table.
fn parked() {
    let runs: [(&str, usize); 4] = [("corio", 2), ("tokio", 2), ("may", 2), ("corio", 1)];
    println!("\n{PARKED} tasks parked on a semaphore (each in a fresh process):\n");
    println!("| runtime | workers | created and parked | bytes/task |");
    println!("| --- | ---: | ---: | ---: |");
    for (rt, workers) in runs {
        let args = ["parked", rt, &workers.to_string(), &PARKED.to_string()];
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        match child(&args) {
            Ok(out) => {
                let nums: Vec<f64> = out
                    .split_whitespace()
                    .filter_map(|w| w.parse().ok())
                    .collect();
                println!("| {rt} | {workers} | {:.2} s | {:.0} |", nums[0], nums[1]);
            }
            Err(e) => println!("| {rt} | {workers} | failed: {e} | |"),
        }
    }
}

/// `workers child ...`: one measurement in this process, then exit.
fn run_child(args: &[String]) -> ! {
    let num = |i: usize| -> u64 { args[i].parse().expect("a number") };
    match args[0].as_str() {
        "may-fanout" => {
            may::config().set_workers(num(1) as usize);
            println!("{}", may_fanout(num(2), num(3)).as_nanos());
        }
        "parked" => {
            let (workers, n) = (num(2) as usize, num(3) as usize);
            match args[1].as_str() {
                "corio" => corio_parked(workers, n),
                "tokio" => tokio_parked(workers, n),
                "may" => {
                    may::config().set_workers(workers);
                    may_parked(n)
                }
                other => panic!("unknown runtime {other}"),
            }
        }
        other => panic!("unknown child {other}"),
    }
    std::process::exit(0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("child") {
        run_child(&args[1..]);
    }
    may::config().set_workers(2);
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let wants = |group: &str| {
        filters.is_empty()
            || filters
                .iter()
                .any(|f| group.contains(f.as_str()) || f.contains(group))
    };
    let mut c = Criterion::default().configure_from_args();
    if wants("fanout") {
        let w = calibrate();
        println!("fan-out work: {w} multiply-adds (about 20 µs)");
        fanout(&mut c, w);
    }
    spawn_join(&mut c);
    pingpong(&mut c);
    c.final_summary();
    if wants("parked") && !args.iter().any(|a| a == "--test" || a == "--list") {
        parked();
    }
}
