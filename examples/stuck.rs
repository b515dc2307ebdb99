//! The three ways a cooperative program gets stuck, and what corio tells
//! you about each (see docs/debugging.md):
//!
//! * `stuck deadlock`: two tasks each hold a mutex and wait for the other's.
//!   The runtime sees that nothing can wake them, prints every task with its
//!   backtrace and the cycle of the wait graph, and `run` panics with
//!   `corio: deadlock: ...` (exit status 101).
//! * `stuck stall`: a task computes for half a second without yielding. The
//!   stall monitor (`runtime::Builder::stall_threshold`, or the
//!   `CORIO_STALL_MS` environment variable) reports it while it runs, then
//!   how long it ran and where it yielded.
//! * `stuck dump`: tasks waiting on a lock, a join, a socket, a timer and a
//!   channel; `corio::inspect::dump()` shows each with what it waits on, its
//!   backtrace and the wait graph. Then the same dump through a signal
//!   (`corio::inspect::dump_on_signal(SIGQUIT)`, like `kill -QUIT <pid>`).

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use corio::sync::Mutex;

fn main() {
    let arg = std::env::args().nth(1);
    match arg.as_deref() {
        Some("deadlock") => deadlock(),
        Some("stall") => stall(),
        Some("dump") => dump(),
        other => {
            match other {
                Some(a) => eprintln!("stuck: unknown argument {a:?}"),
                None => eprintln!("stuck: missing argument"),
            }
            eprintln!("usage: stuck deadlock|stall|dump");
            std::process::exit(2);
        }
    }
}

/// Locks `first`, lets the other task run, then locks `second`.
fn transfer(first: &Mutex<u64>, second: &Mutex<u64>) {
    let mut from = first.lock();
    corio::yield_now();
    let mut to = second.lock();
    *from -= 1;
    *to += 1;
}

fn deadlock() {
    corio::run(|| {
        let a = Arc::new(Mutex::new(100));
        let b = Arc::new(Mutex::new(100));
        let (a1, b1) = (Arc::clone(&a), Arc::clone(&b));
        let ab = corio::Builder::new()
            .name("a-to-b")
            .spawn(move || transfer(&a1, &b1))
            .unwrap();
        let ba = corio::Builder::new()
            .name("b-to-a")
            .spawn(move || transfer(&b, &a))
            .unwrap();
        ab.join().unwrap();
        ba.join().unwrap();
        println!("unreachable: both transfers finished");
    });
}

/// Busy for `d` without yielding: the mistake the stall monitor catches.
fn compute_without_yielding(d: Duration) -> u64 {
    let start = Instant::now();
    let mut x = 0u64;
    while start.elapsed() < d {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
    }
    x
}

fn stall() {
    let rt = corio::runtime::Builder::new()
        .stall_threshold(Duration::from_millis(100))
        .build()
        .unwrap();
    rt.block_on(|| {
        let ticker = corio::Builder::new()
            .name("ticker")
            .spawn(|| {
                for _ in 0..5 {
                    corio::time::sleep(Duration::from_millis(10));
                }
            })
            .unwrap();
        let hog = corio::Builder::new()
            .name("hog")
            .spawn(|| {
                let x = compute_without_yielding(Duration::from_millis(500));
                corio::yield_now();
                x
            })
            .unwrap();
        hog.join().unwrap();
        ticker.join().unwrap();
    });
    println!("stall: done");
}

fn dump() {
    corio::inspect::dump_on_signal(libc::SIGQUIT).expect("dump_on_signal");
    corio::run(|| {
        let m = Arc::new(Mutex::new(()));
        let guard = m.lock();
        let m2 = Arc::clone(&m);
        let locker = corio::Builder::new()
            .name("locker")
            .spawn(move || drop(m2.lock()))
            .unwrap();
        let sleeper = corio::Builder::new()
            .name("sleeper")
            .spawn(|| corio::time::sleep(Duration::from_secs(30)))
            .unwrap();
        let sleeper_id = sleeper.id();
        let joiner = corio::Builder::new()
            .name("joiner")
            .spawn(move || drop(sleeper.join()))
            .unwrap();
        let listener = corio::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = corio::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let reader = corio::Builder::new()
            .name("reader")
            .spawn(move || {
                let mut buf = [0u8; 16];
                (&server).read(&mut buf).map(|_| ())
            })
            .unwrap();
        let (tx, rx) = corio::sync::mpsc::channel::<()>();
        let receiver = corio::Builder::new()
            .name("receiver")
            .spawn(move || rx.recv().ok())
            .unwrap();
        corio::yield_now();
        print!("{}", corio::inspect::dump());
        // The same through a signal: printed to stderr by this runtime at
        // its next switch.
        // SAFETY: raising a signal is always sound; its handler only writes
        // to a socket.
        unsafe { libc::raise(libc::SIGQUIT) };
        corio::time::sleep(Duration::from_millis(100));
        drop(guard);
        locker.join().unwrap();
        joiner.cancel();
        let _ = joiner.join();
        drop(client);
        reader.join().unwrap().unwrap();
        drop(tx);
        receiver.join().unwrap();
        println!("dump: done (task {sleeper_id} was cancelled with its joiner)");
    });
}
