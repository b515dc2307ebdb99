//! Fixed workloads for instruction counting under callgrind, corio beside
//! tokio (current thread) and may (one worker): the timing benchmarks in
//! `benches/core.rs` are noisy on a shared machine, instruction counts are
//! not.
//!
//! ```sh
//! cargo bench --bench core_count --no-run
//! B=$(ls -t target/release/deps/core_count-* | grep -v '\.d$' | head -1)
//! for rt in corio tokio may; do for n in 100000 200000; do
//!   valgrind --tool=callgrind --callgrind-out-file=/dev/null $B yield $rt $n 2>&1 | grep refs
//! done; done
//! ```
//!
//! The cost of one operation is the difference between the two runs divided
//! by the difference in operations (this cancels start-up costs). With no
//! arguments (as `cargo bench` runs it) it does a small run of each.

use std::hint::black_box;

fn corio_yield(n: u64) {
    corio::run(move || {
        let a = corio::spawn(move || (0..n).for_each(|_| corio::yield_now()));
        let b = corio::spawn(move || (0..n).for_each(|_| corio::yield_now()));
        a.join().unwrap();
        b.join().unwrap();
    })
}

fn tokio_yield(n: u64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async move {
        let task = move || async move {
            for _ in 0..n {
                tokio::task::yield_now().await;
            }
        };
        let a = tokio::spawn(task());
        let b = tokio::spawn(task());
        a.await.unwrap();
        b.await.unwrap();
    })
}

fn may_yield(n: u64) {
    may::config().set_workers(1);
    let task = move || (0..n).for_each(|_| may::coroutine::yield_now());
    // SAFETY: the closures use no thread-locals.
    let (a, b) = unsafe { (may::coroutine::spawn(task), may::coroutine::spawn(task)) };
    a.join().unwrap();
    b.join().unwrap();
}

const BATCH: u64 = 1000;

fn corio_spawn(n: u64) {
    corio::run(move || {
        let mut hs = Vec::with_capacity(BATCH as usize);
        for _ in 0..n / BATCH {
            hs.extend((0..BATCH).map(|i| corio::spawn(move || black_box(i))));
            for h in hs.drain(..) {
                black_box(h.join().unwrap());
            }
        }
    })
}

fn tokio_spawn(n: u64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut hs = Vec::with_capacity(BATCH as usize);
        for _ in 0..n / BATCH {
            hs.extend((0..BATCH).map(|i| tokio::spawn(async move { black_box(i) })));
            for h in hs.drain(..) {
                black_box(h.await.unwrap());
            }
        }
    })
}

fn may_spawn(n: u64) {
    may::config().set_workers(1);
    let mut hs = Vec::with_capacity(BATCH as usize);
    for _ in 0..n / BATCH {
        // SAFETY: the closures use no thread-locals.
        hs.extend((0..BATCH).map(|i| unsafe { may::coroutine::spawn(move || black_box(i)) }));
        for h in hs.drain(..) {
            black_box(h.join().unwrap());
        }
    }
}

fn corio_generator(n: u64) {
    let mut g = corio::generator::Generator::<u64, ()>::new(|y| {
        let mut i = 0;
        loop {
            y.yield_(i);
            i += 1;
        }
    });
    for _ in 0..n {
        black_box(g.resume());
    }
}

fn corosensei_generator(n: u64) {
    let mut co = corosensei::Coroutine::<(), u64, ()>::new(|y, ()| {
        let mut i = 0;
        loop {
            y.suspend(i);
            i += 1;
        }
    });
    for _ in 0..n {
        black_box(co.resume(()));
    }
}

fn run(workload: &str, runtime: &str, n: u64) {
    match (workload, runtime) {
        ("yield", "corio") => corio_yield(n),
        ("yield", "tokio") => tokio_yield(n),
        ("yield", "may") => may_yield(n),
        ("spawn", "corio") => corio_spawn(n),
        ("spawn", "tokio") => tokio_spawn(n),
        ("spawn", "may") => may_spawn(n),
        ("generator", "corio") => corio_generator(n),
        ("generator", "corosensei") => corosensei_generator(n),
        _ => panic!(
            "usage: core_count yield|spawn corio|tokio|may N, or generator corio|corosensei N"
        ),
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
        for (w, r) in [
            ("yield", "corio"),
            ("yield", "tokio"),
            ("yield", "may"),
            ("spawn", "corio"),
            ("spawn", "tokio"),
            ("spawn", "may"),
            ("generator", "corio"),
            ("generator", "corosensei"),
        ] {
            run(w, r, 10_000);
        }
        println!("core_count: ran every workload once; see the file's docs for callgrind use");
    }
}
