//! 10,000 concurrent TCP connections served by one runtime thread, and no
//! file descriptor left open afterwards.
//!
//! Both ends of 10,000 connections would need 20,000 descriptors, the hard
//! open-files limit here, so the clients run in a child process: this test
//! binary started again with `CORIO_NET_MANY_ADDR` set, which turns the
//! `client_process` test into the client.

mod common;

use std::cell::Cell;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::Duration;

use corio::net::{TcpListener, TcpStream};
use corio::time::{sleep, timeout};

const CONNECTIONS: usize = 10_000;
const ENV: &str = "CORIO_NET_MANY_ADDR";

#[test]
fn ten_thousand_connections_on_one_thread() {
    let fds_before = common::open_fds();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "client_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV, addr.to_string())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let runtime_thread = std::thread::current().id();
    let peak_fds = corio::run(move || {
        let answered = Rc::new(Cell::new(0usize));
        let counter = Rc::clone(&answered);
        let _acceptor = corio::spawn_local(move || {
            for stream in listener.incoming() {
                let mut s = stream.unwrap();
                let counter = Rc::clone(&counter);
                let _conn = corio::spawn_local(move || {
                    // Every connection is served on the runtime's thread.
                    assert_eq!(std::thread::current().id(), runtime_thread);
                    let mut id = [0; 8];
                    s.read_exact(&mut id).unwrap();
                    s.write_all(&id).unwrap();
                    counter.set(counter.get() + 1);
                    // Hold the connection open until the runtime ends.
                    let _ = s.read(&mut [0; 1]);
                });
            }
        });
        let all = timeout(Duration::from_secs(60), || {
            while answered.get() < CONNECTIONS {
                sleep(Duration::from_millis(5));
            }
        });
        assert!(all.is_ok(), "only {} connections answered", answered.get());
        // All of them are open at once, each with its own waiting task.
        assert!(corio::tasks().len() > CONNECTIONS);
        common::open_fds()
        // Returning ends the runtime: every connection task is unwound and
        // its stream closed.
    });
    assert!(peak_fds >= fds_before + CONNECTIONS, "peak {peak_fds}");
    let status = child.wait().unwrap();
    assert!(status.success(), "client process failed: {status}");
    assert_eq!(common::open_fds(), fds_before, "file descriptors leaked");
}

/// The client side, run in the child process (a no-op otherwise).
#[test]
fn client_process() {
    let Ok(addr) = std::env::var(ENV) else {
        return;
    };
    corio::run(move || {
        let connecting = Rc::new(Cell::new(0usize));
        let clients: Vec<_> = (0..CONNECTIONS as u64)
            .map(|i| {
                let (addr, connecting) = (addr.clone(), Rc::clone(&connecting));
                corio::spawn_local(move || {
                    // Keep the connect storm within the listen backlog.
                    while connecting.get() >= 256 {
                        corio::yield_now();
                    }
                    connecting.set(connecting.get() + 1);
                    let s = TcpStream::connect(addr.as_str());
                    connecting.set(connecting.get() - 1);
                    let mut s = s.unwrap();
                    s.write_all(&i.to_le_bytes()).unwrap();
                    let mut echo = [0; 8];
                    s.read_exact(&mut echo).unwrap();
                    assert_eq!(u64::from_le_bytes(echo), i);
                    // Wait for the server to close.
                    assert_eq!(s.read(&mut [0; 1]).unwrap(), 0);
                })
            })
            .collect();
        for c in clients {
            c.join().unwrap();
        }
    });
}
