//! What blocks the whole thread inside a corio task, measured, beside the
//! corio call that does not: asyncio's rule "never call `time.sleep()` in a
//! coroutine", for corio.
//!
//! ```sh
//! cargo run --release --example blocking_hazards
//! ```
//!
//! Each section runs the same small program twice, with the std call and
//! with its corio replacement, and prints what a user would see: the wall
//! time of ten concurrent sleeps, the longest stall of a ticker task while
//! another task reads a socket, and what happens when a `std::sync::Mutex`
//! or a `RefCell` is held across a suspension.

use std::cell::RefCell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::time::{Duration, Instant};

fn main() {
    let code = corio::run(|| {
        sleeps();
        socket_reads();
        std_mutex_across_a_suspension();
        refcell_across_a_suspension();
        0
    });
    std::process::exit(code);
}

/// Ten tasks that each sleep 50 ms.
fn sleeps() {
    let run = |std_sleep: bool| {
        let start = Instant::now();
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                corio::spawn(move || {
                    if std_sleep {
                        std::thread::sleep(Duration::from_millis(50));
                    } else {
                        corio::time::sleep(Duration::from_millis(50));
                    }
                })
            })
            .collect();
        for t in tasks {
            t.join().unwrap();
        }
        start.elapsed()
    };
    println!("10 tasks sleeping 50 ms each:");
    println!(
        "  std::thread::sleep   {:>8.1?}  (the sleeps run one after another)",
        run(true)
    );
    println!(
        "  corio::time::sleep   {:>8.1?}  (they overlap)",
        run(false)
    );
}

/// A ticker task that should run every millisecond, while another task
/// reads a socket whose peer answers after 100 ms.
fn socket_reads() {
    let run = |std_socket: bool| -> Duration {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // The peer is a plain thread: it answers after 100 ms.
        let peer = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            std::thread::sleep(Duration::from_millis(100));
            s.write_all(b"late").unwrap();
        });
        let done = Rc::new(std::cell::Cell::new(false));
        let ticker = {
            let done = Rc::clone(&done);
            corio::spawn_local(move || {
                let mut last = Instant::now();
                let mut worst = Duration::ZERO;
                while !done.get() {
                    corio::time::sleep(Duration::from_millis(1));
                    worst = worst.max(last.elapsed());
                    last = Instant::now();
                }
                worst
            })
        };
        corio::yield_now();
        let mut buf = [0u8; 4];
        if std_socket {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.read_exact(&mut buf).unwrap();
        } else {
            let mut s = corio::net::TcpStream::connect(addr).unwrap();
            s.read_exact(&mut buf).unwrap();
        }
        done.set(true);
        peer.join().unwrap();
        ticker.join().unwrap()
    };
    println!("longest stall of a 1 ms ticker while another task waits 100 ms for a socket:");
    println!(
        "  std::net::TcpStream   {:>8.1?}  (the read blocked the thread)",
        run(true)
    );
    println!("  corio::net::TcpStream {:>8.1?}", run(false));
}

/// Task A holds a lock across a sleep; task B wants it meanwhile.
fn std_mutex_across_a_suspension() {
    println!("a lock held across a suspension, wanted by another task meanwhile:");
    let m = Rc::new(std::sync::Mutex::new(0));
    let holder = {
        let m = Rc::clone(&m);
        corio::spawn_local(move || {
            let _g = m.lock().unwrap();
            corio::time::sleep(Duration::from_millis(10));
        })
    };
    corio::yield_now();
    // `m.lock()` here would block the thread forever: the holder can only
    // release the lock when this thread runs it again. `try_lock` shows it.
    match m.try_lock() {
        Err(std::sync::TryLockError::WouldBlock) => println!(
            "  std::sync::Mutex      held by a suspended task: lock() would deadlock the thread"
        ),
        other => println!(
            "  std::sync::Mutex      unexpected: {:?}",
            other.map(|_| ())
        ),
    }
    holder.join().unwrap();

    let m = Rc::new(corio::sync::Mutex::new(0));
    let holder = {
        let m = Rc::clone(&m);
        corio::spawn_local(move || {
            let mut g = m.lock();
            corio::time::sleep(Duration::from_millis(10));
            *g += 1;
        })
    };
    corio::yield_now();
    let start = Instant::now();
    let value = *m.lock(); // suspends this task until the holder is done
    holder.join().unwrap();
    println!(
        "  corio::sync::Mutex    waited {:.1?} for the holder, then read {value}",
        start.elapsed()
    );
}

/// Task A keeps a `RefCell` borrowed across a yield; task B borrows it.
fn refcell_across_a_suspension() {
    println!("a RefCell borrowed across a suspension:");
    let cell = Rc::new(RefCell::new(Vec::<u32>::new()));
    let writer = {
        let cell = Rc::clone(&cell);
        corio::spawn_local(move || {
            let mut v = cell.borrow_mut();
            v.push(1);
            corio::yield_now(); // the borrow is still alive here
            v.push(2);
        })
    };
    corio::yield_now();
    match cell.try_borrow() {
        Err(_) => println!("  RefCell               still mutably borrowed: borrow() would panic"),
        Ok(v) => println!("  RefCell               unexpectedly free: {v:?}"),
    }
    writer.join().unwrap();
    println!(
        "  fix: end the borrow before the suspension, or use corio::sync::Mutex: {:?}",
        cell.borrow()
    );
}
