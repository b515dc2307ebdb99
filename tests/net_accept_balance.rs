//! How the kernel spreads connections over workers that each accept in
//! their own epoll: one listener added to every epoll with
//! `EPOLLEXCLUSIVE`, one `SO_REUSEPORT` listener per worker, and (for
//! reference) one listener in every epoll without `EPOLLEXCLUSIVE`. A
//! measurement, not a check: run it with
//! `cargo test --release --test net_accept_balance -- --ignored --nocapture`
//! (its figures are in docs/performance.md).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

const WORKERS: usize = 2;
const CONNECTIONS: usize = 4000;

/// Accepts on `fds` (registered in a fresh epoll with `flags`) until `stop`;
/// returns (connections accepted, wakeups that found nothing).
fn worker(fds: Vec<RawFd>, flags: u32, stop: Arc<AtomicBool>) -> (usize, usize) {
    // SAFETY (whole function): plain epoll and accept4 syscalls on fds this
    // test owns, with buffers of the sizes passed.
    unsafe {
        let ep = libc::epoll_create1(libc::EPOLL_CLOEXEC);
        assert!(ep >= 0);
        for &fd in &fds {
            let mut ev = libc::epoll_event {
                events: flags,
                u64: fd as u64,
            };
            assert_eq!(libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev), 0);
        }
        let (mut accepted, mut empty) = (0, 0);
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 8];
        while !stop.load(Ordering::Relaxed) {
            let n = libc::epoll_wait(ep, events.as_mut_ptr(), 8, 20);
            for ev in &events[..n.max(0) as usize] {
                let fd = ev.u64 as RawFd;
                let mut got = 0;
                loop {
                    let c = libc::accept4(
                        fd,
                        std::ptr::null_mut(),
                        std::ptr::null_mut(),
                        libc::SOCK_NONBLOCK,
                    );
                    if c < 0 {
                        break;
                    }
                    libc::close(c);
                    got += 1;
                }
                accepted += got;
                if got == 0 {
                    empty += 1;
                }
            }
        }
        libc::close(ep);
        (accepted, empty)
    }
}

fn reuseport_listener(addr: SocketAddr) -> TcpListener {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.set_reuse_port(true).unwrap();
    s.set_nonblocking(true).unwrap();
    s.bind(&addr.into()).unwrap();
    s.listen(1024).unwrap();
    s.into()
}

fn measure(name: &str, listeners: Vec<Vec<TcpListener>>, flags: u32) {
    let addr = listeners[0][0].local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = listeners
        .iter()
        .map(|ls| {
            let fds = ls.iter().map(|l| l.as_raw_fd()).collect();
            let stop = stop.clone();
            thread::spawn(move || worker(fds, flags, stop))
        })
        .collect();
    thread::sleep(Duration::from_millis(50));
    // Connections in waves of 8 at once, as from concurrent clients.
    for _ in 0..CONNECTIONS / 8 {
        let wave: Vec<_> = (0..8).map(|_| TcpStream::connect(addr).unwrap()).collect();
        drop(wave);
    }
    thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let counts: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    println!(
        "{name}: accepted per worker {:?}, empty wakeups {:?}",
        counts.iter().map(|c| c.0).collect::<Vec<_>>(),
        counts.iter().map(|c| c.1).collect::<Vec<_>>()
    );
}

#[test]
#[ignore = "a measurement; see the module docs"]
fn accept_balance() {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    for _ in 0..3 {
        let shared = TcpListener::bind(any).unwrap();
        shared.set_nonblocking(true).unwrap();
        let clones = (0..WORKERS)
            .map(|_| vec![shared.try_clone().unwrap()])
            .collect();
        measure(
            "one listener, EPOLLEXCLUSIVE",
            clones,
            (libc::EPOLLIN | libc::EPOLLEXCLUSIVE) as u32,
        );

        let first = reuseport_listener(any);
        let addr = first.local_addr().unwrap();
        let mut per = vec![vec![first]];
        per.extend((1..WORKERS).map(|_| vec![reuseport_listener(addr)]));
        measure("SO_REUSEPORT per worker", per, libc::EPOLLIN as u32);

        let shared = TcpListener::bind(any).unwrap();
        shared.set_nonblocking(true).unwrap();
        let clones = (0..WORKERS)
            .map(|_| vec![shared.try_clone().unwrap()])
            .collect();
        measure(
            "one listener, every epoll (herd)",
            clones,
            libc::EPOLLIN as u32,
        );
    }
}
