//! Fixed workloads of `benches/sync.rs` for instruction counting under
//! callgrind, corio beside tokio (current thread) and may (one worker):
//! timings are noisy on a shared machine, instruction counts are not.
//!
//! ```sh
//! cargo bench --bench sync_count --no-run
//! B=$(ls -t target/release/deps/sync_count-* | grep -v '\.d$' | head -1)
//! for w in pingpong throughput mutex; do for rt in corio tokio may; do
//!   for n in 100000 200000; do
//!     valgrind --tool=callgrind --callgrind-out-file=/dev/null $B $w $rt $n 2>&1 | grep refs
//!   done
//! done; done
//! ```
//!
//! `pingpong_timeout` (corio and tokio only: may has no scoped timeout) is
//! the ping-pong with both loops inside a one-hour timeout; `semaphore`
//! (corio and tokio) an uncontended acquire and release of a one-permit
//! semaphore.
//!
//! The cost of one operation is the difference between the two runs divided
//! by the difference in operations (this cancels start-up costs). With no
//! arguments (as `cargo bench` runs it) it does a small run of each.

use std::hint::black_box;

// The ping-pong workload is shared with sync.rs.
#[path = "sync/ping_pong.rs"]
mod ping_pong;

use ping_pong::{Plain, Timeout};

/// Runs `f` in a may coroutine (one worker) and waits for it.
fn may_run(f: impl FnOnce() + Send + 'static) {
    may::config().set_workers(1);
    // SAFETY: the closures use no thread-locals.
    unsafe { may::coroutine::spawn(f) }.join().unwrap();
}

const CAPACITY: usize = 128;

fn corio_throughput(n: u64) {
    corio::run(move || {
        let (tx, rx) = corio::sync::mpsc::sync_channel::<u64>(CAPACITY);
        let consumer = corio::spawn(move || rx.iter().fold(0u64, |a, v| a ^ v));
        for i in 0..n {
            tx.send(i).unwrap();
        }
        drop(tx);
        black_box(consumer.join().unwrap());
    })
}

fn tokio_throughput(n: u64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async move {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(CAPACITY);
        let consumer = tokio::spawn(async move {
            let mut a = 0u64;
            while let Some(v) = rx.recv().await {
                a ^= v;
            }
            a
        });
        for i in 0..n {
            tx.send(i).await.unwrap();
        }
        drop(tx);
        black_box(consumer.await.unwrap());
    })
}

fn may_throughput(n: u64) {
    may_run(move || {
        let (tx, rx) = may::sync::mpsc::channel::<u64>();
        // SAFETY: as in `may_run`.
        let consumer = unsafe {
            may::coroutine::spawn(move || {
                let mut a = 0u64;
                while let Ok(v) = rx.recv() {
                    a ^= v;
                }
                a
            })
        };
        for i in 0..n {
            tx.send(i).unwrap();
        }
        drop(tx);
        black_box(consumer.join().unwrap());
    })
}

fn corio_mutex(n: u64) {
    corio::run(move || {
        let m = corio::sync::Mutex::new(0u64);
        for _ in 0..n {
            *black_box(&m).lock() += 1;
        }
    })
}

fn tokio_mutex(n: u64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async move {
        let m = tokio::sync::Mutex::new(0u64);
        for _ in 0..n {
            *black_box(&m).lock().await += 1;
        }
    })
}

fn may_mutex(n: u64) {
    may_run(move || {
        let m = may::sync::Mutex::new(0u64);
        for _ in 0..n {
            *black_box(&m).lock().unwrap() += 1;
        }
    })
}

fn corio_semaphore(n: u64) {
    corio::run(move || {
        let s = corio::sync::Semaphore::new(1);
        for _ in 0..n {
            drop(black_box(black_box(&s).acquire()));
        }
    })
}

fn tokio_semaphore(n: u64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async move {
        let s = tokio::sync::Semaphore::new(1);
        for _ in 0..n {
            drop(black_box(black_box(&s).acquire().await.unwrap()));
        }
    })
}

fn run(workload: &str, runtime: &str, n: u64) {
    match (workload, runtime) {
        ("pingpong", "corio") => {
            ping_pong::corio::<Plain>(n);
        }
        ("pingpong", "tokio") => {
            ping_pong::tokio_runtime::<Plain>().block_on(ping_pong::tokio::<Plain>(n));
        }
        ("pingpong", "may") => may_run(move || {
            ping_pong::may(n);
        }),
        ("pingpong_timeout", "corio") => {
            ping_pong::corio::<Timeout>(n);
        }
        ("pingpong_timeout", "tokio") => {
            ping_pong::tokio_runtime::<Timeout>().block_on(ping_pong::tokio::<Timeout>(n));
        }
        ("throughput", "corio") => corio_throughput(n),
        ("throughput", "tokio") => tokio_throughput(n),
        ("throughput", "may") => may_throughput(n),
        ("mutex", "corio") => corio_mutex(n),
        ("mutex", "tokio") => tokio_mutex(n),
        ("mutex", "may") => may_mutex(n),
        ("semaphore", "corio") => corio_semaphore(n),
        ("semaphore", "tokio") => tokio_semaphore(n),
        _ => panic!("unknown workload {workload} {runtime}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if let [workload, runtime, n] = args.as_slice() {
        run(workload, runtime, n.parse().expect("N is a number"));
    } else {
        for w in ["pingpong", "throughput", "mutex"] {
            for r in ["corio", "tokio", "may"] {
                run(w, r, 10_000);
            }
        }
        for w in ["pingpong_timeout", "semaphore"] {
            for r in ["corio", "tokio"] {
                run(w, r, 10_000);
            }
        }
        println!("sync_count: ran every workload once; see the file's docs for callgrind use");
    }
}
