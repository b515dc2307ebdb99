//! Socket options: keepalive, linger, buffer sizes, `SO_REUSEPORT` through
//! `TcpSocket`.

use std::io::{Read, Write};
use std::time::Duration;

use corio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};

#[test]
fn stream_options_round_trip() {
    corio::run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let s = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        assert!(!s.keepalive().unwrap());
        s.set_keepalive(Some(Duration::from_secs(30))).unwrap();
        assert!(s.keepalive().unwrap());
        s.set_keepalive(None).unwrap();
        assert!(!s.keepalive().unwrap());

        assert_eq!(s.linger().unwrap(), None);
        s.set_linger(Some(Duration::from_secs(2))).unwrap();
        assert_eq!(s.linger().unwrap(), Some(Duration::from_secs(2)));

        s.set_send_buffer_size(64 * 1024).unwrap();
        s.set_recv_buffer_size(64 * 1024).unwrap();
        // The kernel may round up (Linux doubles), never below the request.
        assert!(s.send_buffer_size().unwrap() >= 64 * 1024);
        assert!(s.recv_buffer_size().unwrap() >= 64 * 1024);
    });
}

#[test]
fn linger_zero_resets_the_connection_at_close() {
    corio::run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        client.set_linger(Some(Duration::ZERO)).unwrap();
        drop(client);
        let mut buf = [0u8; 8];
        let err = server.read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
    });
}

#[test]
fn reuseport_listeners_share_a_port_and_both_accept() {
    corio::run(|| {
        let make = |addr: std::net::SocketAddr| {
            let s = TcpSocket::new_v4().unwrap();
            s.set_reuseport(true).unwrap();
            assert!(s.reuseport().unwrap());
            s.bind(addr).unwrap();
            s
        };
        let first = make("127.0.0.1:0".parse().unwrap());
        let addr = first.local_addr().unwrap();
        let second = make(addr);
        let listeners = [first.listen(128).unwrap(), second.listen(128).unwrap()];

        // Without SO_REUSEPORT the same bind fails.
        let plain = TcpSocket::new_v4().unwrap();
        assert_eq!(
            plain.bind(addr).unwrap_err().kind(),
            std::io::ErrorKind::AddrInUse
        );

        // Connections from many source ports land on both listeners.
        let mut clients = Vec::new();
        for _ in 0..64 {
            clients.push(TcpStream::connect(addr).unwrap());
        }
        let mut accepted = [0usize; 2];
        for (i, l) in listeners.iter().enumerate() {
            l.set_nonblocking(true).unwrap();
            while l.accept().is_ok() {
                accepted[i] += 1;
            }
        }
        assert_eq!(accepted[0] + accepted[1], 64);
        assert!(accepted[0] > 0 && accepted[1] > 0, "{accepted:?}");
    });
}

#[test]
fn tcp_socket_connects_with_options_and_reports_refusal() {
    corio::run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = corio::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut line = [0u8; 5];
            s.read_exact(&mut line).unwrap();
            line
        });
        let socket = TcpSocket::new_for(&addr).unwrap();
        socket.set_nodelay(true).unwrap();
        socket.set_keepalive(Some(Duration::from_secs(10))).unwrap();
        socket.set_recv_buffer_size(32 * 1024).unwrap();
        let mut stream = socket.connect(addr).unwrap();
        assert!(stream.nodelay().unwrap());
        assert!(stream.keepalive().unwrap());
        stream.write_all(b"hello").unwrap();
        assert_eq!(&server.join().unwrap(), b"hello");

        // A port nobody listens on.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let err = TcpSocket::new_v4().unwrap().connect(closed).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    });
}

#[test]
fn udp_buffer_sizes() {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_recv_buffer_size(128 * 1024).unwrap();
    s.set_send_buffer_size(16 * 1024).unwrap();
    assert!(s.recv_buffer_size().unwrap() >= 128 * 1024);
    assert!(s.send_buffer_size().unwrap() >= 16 * 1024);
}
