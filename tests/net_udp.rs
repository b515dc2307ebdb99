//! UDP on loopback: send_to/recv_from, connected sockets, peeking,
//! timeouts, the readiness API, and a receive that suspends only its task.

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use corio::net::UdpSocket;
use corio::time::{sleep, timeout};

fn socket() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").unwrap()
}

#[test]
fn send_to_and_recv_from() {
    corio::run(|| {
        let (a, b) = (socket(), socket());
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        // The receiver waits in its own task while this one sends.
        let receiver = corio::spawn(move || {
            let mut buf = [0; 64];
            let mut got = Vec::new();
            for _ in 0..3 {
                let (n, from) = b.recv_from(&mut buf).unwrap();
                got.push((buf[..n].to_vec(), from));
            }
            got
        });
        corio::yield_now();
        for msg in [&b"one"[..], b"two", b"three"] {
            assert_eq!(a.send_to(msg, b_addr).unwrap(), msg.len());
        }
        let got = receiver.join().unwrap();
        assert_eq!(
            got,
            vec![
                (b"one".to_vec(), a_addr),
                (b"two".to_vec(), a_addr),
                (b"three".to_vec(), a_addr)
            ]
        );
    });
}

#[test]
fn connected_send_recv_and_peek() {
    corio::run(|| {
        let (a, b) = (socket(), socket());
        a.connect(b.local_addr().unwrap()).unwrap();
        b.connect(a.local_addr().unwrap()).unwrap();
        assert_eq!(a.peer_addr().unwrap(), b.local_addr().unwrap());
        a.send(b"hello").unwrap();
        let mut buf = [0; 16];
        assert_eq!(b.peek(&mut buf).unwrap(), 5);
        let (n, from) = b.peek_from(&mut buf).unwrap();
        assert_eq!((n, from), (5, a.local_addr().unwrap()));
        assert_eq!(b.recv(&mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"hello");
        // Addresses as strings and (host, port) pairs, like std.
        let port = a.local_addr().unwrap().port();
        let c = socket();
        c.send_to(b"str", format!("127.0.0.1:{port}")).unwrap();
        c.send_to(b"pair", ("127.0.0.1", port)).unwrap();
        // `a` is connected to `b`: datagrams from `c` are filtered out.
        a.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        assert_eq!(a.recv(&mut buf).unwrap_err().kind(), ErrorKind::TimedOut);
        let err = c.send_to(b"none", "").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    });
}

#[test]
fn recv_timeout_and_timeout_scope() {
    corio::run(|| {
        let s = socket();
        s.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
        assert_eq!(s.read_timeout().unwrap(), Some(Duration::from_millis(30)));
        let t = Instant::now();
        let err = s.recv_from(&mut [0; 8]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut);
        assert!(t.elapsed() >= Duration::from_millis(30));
        s.set_read_timeout(None).unwrap();
        let r = timeout(Duration::from_millis(20), || s.recv(&mut [0; 8]));
        assert!(r.is_err());
        assert_eq!(
            s.set_write_timeout(Some(Duration::ZERO))
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidInput
        );
    });
}

#[test]
fn readiness_api() {
    corio::run(|| {
        let (a, b) = (socket(), socket());
        let b_addr = b.local_addr().unwrap();
        let mut buf = [0; 16];
        assert_eq!(
            b.try_recv_from(&mut buf).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
        assert!(timeout(Duration::from_millis(10), || b.readable()).is_err());
        let sender = corio::spawn(move || {
            sleep(Duration::from_millis(5));
            a.writable().unwrap();
            a.try_send_to(b"dgram", b_addr).unwrap()
        });
        let (n, _) = loop {
            b.readable().unwrap();
            match b.try_recv_from(&mut buf) {
                Ok(r) => break r,
                Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(&buf[..n], b"dgram");
        assert_eq!(sender.join().unwrap(), 5);
    });
}

#[test]
fn works_outside_a_runtime() {
    let (a, b) = (socket(), socket());
    let b_addr = b.local_addr().unwrap();
    let t = std::thread::spawn(move || {
        let mut buf = [0; 8];
        let (n, _) = b.recv_from(&mut buf).unwrap();
        buf[..n].to_vec()
    });
    std::thread::sleep(Duration::from_millis(10));
    a.send_to(b"thread", b_addr).unwrap();
    assert_eq!(t.join().unwrap(), b"thread");
    let std_socket = a.into_std();
    let a = UdpSocket::from_std(std_socket).unwrap();
    a.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    assert_eq!(a.recv(&mut [0; 4]).unwrap_err().kind(), ErrorKind::TimedOut);
}
