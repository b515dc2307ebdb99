//! Several workers, corio only, timed with `Instant` (not criterion: a
//! quick run that fits beside other work on a small machine):
//!
//! ```text
//! cargo bench --bench workers                 # every workload
//! cargo bench --bench workers -- fanout       # one of: fanout spawn pingpong parked
//! ```
//!
//! * `fanout`: 100,000 tasks of about 20 µs of CPU work each, spawned from
//!   the main task and joined, with 1 and 2 workers;
//! * `spawn`: spawn + join from one task, with 1 worker and onto worker 1
//!   of 2 (`spawn_on`);
//! * `pingpong`: a round trip between two tasks through two channels, on
//!   one worker and on two;
//! * `parked`: 1,000,000 tasks parked on one semaphore with `workers(2)`
//!   (`parked1`: with one worker, for comparison):
//!   creation time and resident memory per task (in a child process).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use corio::runtime::Builder;

fn spin(d: Duration) -> u64 {
    let t = Instant::now();
    let mut x = 0u64;
    while t.elapsed() < d {
        for i in 0..64 {
            x = black_box(x.wrapping_mul(31).wrapping_add(i));
        }
    }
    x
}

fn fanout(workers: usize) -> Duration {
    let rt = Builder::new().workers(workers).build().unwrap();
    rt.block_on(|| {
        let t = Instant::now();
        let hs: Vec<_> = (0..100_000)
            .map(|_| corio::spawn(|| spin(Duration::from_micros(20))))
            .collect();
        for h in hs {
            black_box(h.join().unwrap());
        }
        t.elapsed()
    })
}

fn spawn_join(workers: usize, n: u32) -> Duration {
    let rt = Builder::new().workers(workers).build().unwrap();
    rt.block_on(move || {
        let target = workers - 1;
        let t = Instant::now();
        for i in 0..n {
            black_box(corio::spawn_on(target, move || i).join().unwrap());
        }
        t.elapsed() / n
    })
}

fn pingpong(workers: usize, n: u32) -> Duration {
    let rt = Builder::new().workers(workers).build().unwrap();
    rt.block_on(move || {
        let (tx, rx) = corio::sync::mpsc::sync_channel::<u32>(1);
        let (back_tx, back_rx) = corio::sync::mpsc::sync_channel::<u32>(1);
        let echo = corio::spawn_on(workers - 1, move || {
            for v in rx.iter() {
                back_tx.send(v).unwrap();
            }
        });
        let t = Instant::now();
        for i in 0..n {
            tx.send(i).unwrap();
            black_box(back_rx.recv().unwrap());
        }
        let per = t.elapsed() / n;
        drop(tx);
        echo.join().unwrap();
        per
    })
}

fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib * 1024
}

fn parked(n: usize, workers: usize) {
    let rt = Builder::new().workers(workers).build().unwrap();
    rt.block_on(move || {
        let gate = Arc::new(corio::sync::Semaphore::new(0));
        let started = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut hs = Vec::with_capacity(n);
        let before = rss();
        let t = Instant::now();
        for _ in 0..n {
            let (gate, started) = (gate.clone(), started.clone());
            hs.push(corio::spawn(move || {
                started.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                drop(gate.acquire());
            }));
        }
        while started.load(std::sync::atomic::Ordering::Relaxed) < n {
            corio::time::sleep(Duration::from_millis(1));
        }
        let took = t.elapsed();
        let bytes = (rss() - before) / n as u64;
        println!(
            "parked: {n} tasks on {workers} worker(s): created and parked in {took:.2?}, {bytes} bytes/task"
        );
        gate.add_permits(n);
        for h in hs {
            h.join().unwrap();
        }
    });
}

fn main() {
    let which: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let on = |w: &str| which.is_empty() || which.iter().any(|a| a == w);
    if on("fanout") {
        let one = fanout(1);
        let two = fanout(2);
        println!(
            "fanout: 100,000 x 20 us: 1 worker {one:.2?}, 2 workers {two:.2?} ({:.2}x)",
            one.as_secs_f64() / two.as_secs_f64()
        );
    }
    if on("spawn") {
        println!(
            "spawn+join: 1 worker {:?}, onto worker 1 of 2 {:?}",
            spawn_join(1, 200_000),
            spawn_join(2, 100_000)
        );
    }
    if on("pingpong") {
        println!(
            "pingpong round trip: same worker {:?}, across workers {:?}",
            pingpong(1, 200_000),
            pingpong(2, 100_000)
        );
    }
    if on("parked") {
        parked(1_000_000, 2);
    }
    if which.iter().any(|a| a == "parked1") {
        parked(1_000_000, 1);
    }
}
