//! Deadlock and stall reports, and dumps on a signal, each judged in a
//! child process (the report ends the program, or needs a process with no
//! other thread: any other thread might wake a task, so the deadlock check
//! never fires while one exists — a test harness has several). This file
//! has no harness (`harness = false`): `main` runs every case as a child
//! of itself and checks its exit status and stderr.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use corio::sync::mpsc::channel;
use corio::sync::{Mutex, Semaphore};

type Case = (&'static str, fn());

const CASES: &[Case] = &[
    ("mutex_cycle", mutex_cycle),
    ("semaphore_cycle", semaphore_cycle),
    ("join_cycle", join_cycle),
    ("cycle_across_workers", cycle_across_workers),
    (
        "semaphore_cycle_across_workers",
        semaphore_cycle_across_workers,
    ),
    ("timer_on_another_worker", timer_on_another_worker),
    ("channel_without_sender", channel_without_sender),
    ("sender_on_os_thread", sender_on_os_thread),
    ("pending_timer", pending_timer),
    ("pending_io", pending_io),
    ("blocking_pool_job", blocking_pool_job),
    ("healthy_under_load", healthy_under_load),
    ("stall", stall),
    ("dump_on_signal", dump_on_signal),
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 3 && args[1] == "--case" {
        let (_, f) = CASES
            .iter()
            .find(|(n, _)| *n == args[2])
            .expect("no such case");
        f();
        return;
    }
    // `cargo test` passes libtest's arguments: a filter runs the matching
    // cases, `--skip NAME` skips, other flags are ignored.
    let (mut filters, mut skips) = (Vec::new(), Vec::new());
    let mut rest = args[1..].iter();
    while let Some(a) = rest.next() {
        if a == "--skip" {
            skips.extend(rest.next().cloned());
        } else if ["--test-threads", "--color", "--format", "--logfile", "-Z"].contains(&a.as_str())
        {
            rest.next();
        } else if !a.starts_with('-') {
            filters.push(a.clone());
        }
    }
    let mut failed = 0;
    for (name, _) in CASES {
        let wanted = filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()));
        if !wanted || skips.iter().any(|s| name.contains(s.as_str())) {
            continue;
        }
        let (ok, why) = check(name);
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        if !ok {
            println!("{why}");
            failed += 1;
        }
    }
    if failed > 0 {
        eprintln!("{failed} case(s) failed");
        std::process::exit(1);
    }
}

/// Runs case `name` in a child process, killed after 30 s.
fn run(name: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--case", name])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env_remove("CORIO_STALL_MS")
        .env("RUST_BACKTRACE", "0");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).unwrap();
        s
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let err = reader.join().unwrap();
    (status.and_then(|s| s.code()), err)
}

fn check(name: &str) -> (bool, String) {
    let env: &[(&str, &str)] = match name {
        "healthy_under_load" => &[("CORIO_STALL_MS", "250")],
        _ => &[],
    };
    let (code, err) = run(name, env);
    let has = |s: &str| err.contains(s);
    let ok = match name {
        "mutex_cycle" => {
            code == Some(101)
                && has("corio: deadlock: all 3 tasks")
                && has("cycle: task 2 'first' → task 3 'second' → task 2 'first'")
                && has("lock on Mutex 0x")
                && has("held by task 3 'second'")
                && has("lock_both")
                && !has("probed_after_resume")
                && has("tests/diagnostics.rs")
                && err.matches("corio: deadlock").count() == 2
        }
        "semaphore_cycle" => {
            code == Some(101)
                && has("corio: deadlock: all 3 tasks")
                && has("cycle: task 2 'first' → task 3 'second' → task 2 'first'")
                && has("'first' (worker 0): waiting: acquire on Semaphore 0x")
                && has("held by task 3 'second'")
                && has("'second' (worker 0): waiting: acquire on Semaphore 0x")
                && has("held by task 2 'first'")
                && has("acquire_both")
                && err.matches("corio: deadlock").count() == 2
        }
        "cycle_across_workers" => {
            code == Some(101)
                && has("corio: deadlock: all 3 tasks")
                && has("cycle: task 2 'first' → task ")
                && has(" 'second' → task 2 'first'")
                && has("'second' (worker 1): waiting: lock on Mutex 0x")
                && !has("probed_after_resume")
                && has("held by task 2 'first'")
                && has("lock_both_in_step")
        }
        "semaphore_cycle_across_workers" => {
            code == Some(101)
                && has("corio: deadlock: all 3 tasks")
                && has("cycle: task 2 'first' → task ")
                && has(" 'second' → task 2 'first'")
                && has("'second' (worker 1): waiting: acquire on Semaphore 0x")
                && has("held by task 2 'first'")
                && has("acquire_both_in_step")
        }
        "timer_on_another_worker" => code == Some(0) && !has("corio:"),
        "join_cycle" => {
            code == Some(101)
                && has("corio: deadlock")
                && has("cycle: task 2 'a' → task 3 'b' → task 2 'a'")
                && has("join task 3 'b'")
        }
        "channel_without_sender" => {
            code == Some(101)
                && has("corio: deadlock: all 1 tasks")
                && has("waiting: channel")
                && !has("cycle:")
        }
        "sender_on_os_thread"
        | "pending_timer"
        | "pending_io"
        | "blocking_pool_job"
        | "healthy_under_load" => code == Some(0) && !has("corio:"),
        "stall" => {
            code == Some(0)
                && has("corio: stall: task 2 'hog' (spawned at tests/diagnostics.rs:")
                && has("without yielding")
                && has("corio: stall ended: task 2 'hog' ran for about")
                && has("it yields at:")
                && has("diagnostics::stall")
                && err.matches("corio: stall: ").count() == 1
        }
        "dump_on_signal" => {
            code == Some(0)
                && has("corio: dump requested by a signal")
                && has("waiting: join task")
                && has("'parked'")
        }
        _ => false,
    };
    (ok, format!("exit status {code:?}, stderr:\n{err}"))
}

fn lock_both(first: &Mutex<()>, second: &Mutex<()>) {
    let _a = first.lock();
    corio::yield_now();
    let _b = second.lock();
}

fn mutex_cycle() {
    corio::run(|| {
        let x = Arc::new(Mutex::new(()));
        let y = Arc::new(Mutex::new(()));
        let (x1, y1) = (Arc::clone(&x), Arc::clone(&y));
        let first = corio::Builder::new()
            .name("first")
            .spawn(move || lock_both(&x1, &y1))
            .unwrap();
        let second = corio::Builder::new()
            .name("second")
            .spawn(move || lock_both(&y, &x))
            .unwrap();
        first.join().unwrap();
        second.join().unwrap();
    });
}

/// Locks `first`, waits until the other task holds its first lock too,
/// then locks `second`.
fn acquire_both(first: &Semaphore, second: &Semaphore) {
    let _a = first.acquire();
    corio::yield_now();
    let _b = second.acquire();
}

fn semaphore_cycle() {
    corio::run(|| {
        let x = Arc::new(Semaphore::new(1));
        let y = Arc::new(Semaphore::new(1));
        let (x1, y1) = (Arc::clone(&x), Arc::clone(&y));
        let first = corio::Builder::new()
            .name("first")
            .spawn(move || acquire_both(&x1, &y1))
            .unwrap();
        let second = corio::Builder::new()
            .name("second")
            .spawn(move || acquire_both(&y, &x))
            .unwrap();
        first.join().unwrap();
        second.join().unwrap();
    });
}

fn lock_both_in_step(first: &Mutex<()>, second: &Mutex<()>, step: &corio::sync::Barrier) {
    let _a = first.lock();
    step.wait();
    let _b = second.lock();
}

/// Tasks "first" (worker 0) and "second" (worker 1) each take one of two
/// fresh resources, meet at a barrier, then take the other: a cycle
/// across workers, whatever `take_both` takes.
fn opposite_order_across_workers<R: Send + Sync + 'static>(
    make: fn() -> R,
    take_both: fn(&R, &R, &corio::sync::Barrier),
) {
    let rt = corio::runtime::Builder::new().workers(2).build().unwrap();
    rt.block_on(move || {
        let x = Arc::new(make());
        let y = Arc::new(make());
        let step = Arc::new(corio::sync::Barrier::new(2));
        let (x1, y1, step1) = (Arc::clone(&x), Arc::clone(&y), Arc::clone(&step));
        let first = corio::Builder::new()
            .name("first")
            .spawn_local(move || take_both(&x1, &y1, &step1))
            .unwrap();
        // Named, on worker 1: spawned there by a task of its own.
        let second = corio::spawn_on(1, move || {
            corio::Builder::new()
                .name("second")
                .spawn_local(move || take_both(&y, &x, &step))
                .unwrap()
        })
        .join()
        .unwrap();
        first.join().unwrap();
        second.join().unwrap();
    });
}

fn cycle_across_workers() {
    opposite_order_across_workers(|| Mutex::new(()), lock_both_in_step);
}

fn acquire_both_in_step(first: &Semaphore, second: &Semaphore, step: &corio::sync::Barrier) {
    let _a = first.acquire();
    step.wait();
    let _b = second.acquire();
}

fn semaphore_cycle_across_workers() {
    opposite_order_across_workers(|| Semaphore::new(1), acquire_both_in_step);
}

/// A receiver on worker 0 whose sender sleeps on worker 1: not a deadlock
/// while worker 1's timer is armed.
fn timer_on_another_worker() {
    let rt = corio::runtime::Builder::new().workers(2).build().unwrap();
    rt.block_on(|| {
        let (tx, rx) = channel::<u32>();
        let sender = corio::spawn_on(1, move || {
            corio::time::sleep(Duration::from_millis(400));
            tx.send(5).unwrap();
        });
        assert_eq!(rx.recv().unwrap(), 5);
        sender.join().unwrap();
    });
}

fn join_cycle() {
    corio::run(|| {
        let (to_a, from_main_a) = channel::<corio::JoinHandle<()>>();
        let (to_b, from_main_b) = channel::<corio::JoinHandle<()>>();
        let a = corio::Builder::new()
            .name("a")
            .spawn(move || from_main_a.recv().unwrap().join().unwrap())
            .unwrap();
        let b = corio::Builder::new()
            .name("b")
            .spawn(move || from_main_b.recv().unwrap().join().unwrap())
            .unwrap();
        let a_id = a.id();
        to_a.send(b).unwrap();
        to_b.send(a).unwrap();
        drop((to_a, to_b));
        // Wait for something that never comes, without a timer.
        let (_keep, never) = channel::<()>();
        let _ = never.recv();
        println!("unreachable {a_id}");
    });
}

fn channel_without_sender() {
    corio::run(|| {
        let (tx, rx) = channel::<()>();
        let _unused = tx;
        let _ = rx.recv();
    });
}

fn sender_on_os_thread() {
    corio::run(|| {
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(400));
            tx.send(1).unwrap();
        });
        assert_eq!(rx.recv().unwrap(), 1);
    });
}

fn pending_timer() {
    corio::run(|| {
        let (tx, rx) = channel();
        let sender = corio::spawn(move || {
            corio::time::sleep(Duration::from_millis(400));
            tx.send(1).unwrap();
        });
        assert_eq!(rx.recv().unwrap(), 1);
        sender.join().unwrap();
    });
}

fn pending_io() {
    corio::run(|| {
        // The data comes from another process, not a thread of ours.
        let mut child = corio::process::Command::new("sh")
            .args(["-c", "sleep 0.4; echo hi"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        let reader = corio::spawn(move || {
            let mut s = String::new();
            out.read_to_string(&mut s).unwrap();
            s
        });
        assert_eq!(reader.join().unwrap(), "hi\n");
        child.wait().unwrap();
    });
}

fn blocking_pool_job() {
    corio::run(|| {
        let n = corio::unblock(|| {
            std::thread::sleep(Duration::from_millis(400));
            7
        });
        assert_eq!(n, 7);
    });
}

fn healthy_under_load() {
    corio::run(|| {
        let m = Arc::new(Mutex::new(0u64));
        let mut handles = Vec::new();
        for i in 0..200 {
            let m = Arc::clone(&m);
            let (tx, rx) = corio::sync::mpsc::sync_channel::<u64>(1);
            handles.push(corio::spawn(move || {
                for k in 0..200 {
                    tx.send(k).unwrap();
                }
            }));
            handles.push(corio::spawn(move || {
                for k in rx.iter() {
                    *m.lock() += k;
                    if k % 50 == 0 {
                        corio::time::sleep(Duration::from_micros(i));
                    }
                }
            }));
        }
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(*m.lock(), 200 * (199 * 200 / 2));
    });
}

fn spin(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

fn stall() {
    let rt = corio::runtime::Builder::new()
        .stall_threshold(Duration::from_millis(100))
        .build()
        .unwrap();
    rt.block_on(|| {
        let hog = corio::Builder::new()
            .name("hog")
            .spawn(|| {
                spin(Duration::from_millis(600));
                corio::yield_now();
            })
            .unwrap();
        hog.join().unwrap();
        // Short runs are not stalls.
        for _ in 0..20 {
            spin(Duration::from_millis(5));
            corio::yield_now();
        }
    });
}

fn dump_on_signal() {
    corio::inspect::dump_on_signal(libc::SIGUSR1).unwrap();
    corio::run(|| {
        let sleeper = corio::spawn(|| corio::time::sleep(Duration::from_secs(30)));
        let parked = corio::Builder::new()
            .name("parked")
            .spawn(move || drop(sleeper.join()))
            .unwrap();
        corio::yield_now();
        // SAFETY: raising a signal is sound; its handler only writes to a socket.
        unsafe { libc::raise(libc::SIGUSR1) };
        corio::time::sleep(Duration::from_millis(300));
        parked.cancel();
        let _ = parked.join();
    });
}
