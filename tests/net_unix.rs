//! Unix domain sockets: streams (listener, connect, pair, half-close,
//! timeouts), datagrams (paths and pairs), abstract addresses.

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::path::PathBuf;
use std::time::Duration;

use corio::net::unix::{UnixDatagram, UnixListener, UnixStream};
use corio::time::timeout;

/// A fresh directory for socket files, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("corio-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn stream_listener_and_half_close() {
    let dir = TempDir::new("stream");
    let path = dir.path("sock");
    corio::run(move || {
        let listener = UnixListener::bind(&path).unwrap();
        assert_eq!(
            listener.local_addr().unwrap().as_pathname(),
            Some(path.as_path())
        );
        let server = corio::spawn(move || {
            for _ in 0..20 {
                let mut s = listener.incoming().next().unwrap().unwrap();
                let mut req = Vec::new();
                s.read_to_end(&mut req).unwrap();
                s.write_all(&req).unwrap();
            }
        });
        for i in 0..20 {
            let mut c = UnixStream::connect(&path).unwrap();
            assert_eq!(c.peer_addr().unwrap().as_pathname(), Some(path.as_path()));
            let msg = format!("message {i}");
            c.write_all(msg.as_bytes()).unwrap();
            c.shutdown(Shutdown::Write).unwrap();
            let mut back = String::new();
            c.read_to_string(&mut back).unwrap();
            assert_eq!(back, msg);
        }
        server.join().unwrap();
        let missing = UnixStream::connect(dir_missing(&path)).unwrap_err();
        assert_eq!(missing.kind(), ErrorKind::NotFound);
    });
}

fn dir_missing(path: &std::path::Path) -> PathBuf {
    path.with_file_name("no-such-socket")
}

#[test]
fn stream_pair_timeouts_and_readiness() {
    corio::run(|| {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let err = (&a).read(&mut [0; 4]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut);
        assert_eq!(
            a.try_read(&mut [0; 4]).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
        assert!(timeout(Duration::from_millis(10), || b.readable()).is_err());
        let writer = corio::spawn(move || {
            b.writable().unwrap();
            (&b).write_all(b"pair").unwrap();
            b
        });
        a.readable().unwrap();
        let mut buf = [0; 4];
        (&a).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"pair");
        let b = writer.join().unwrap();
        drop(b);
        assert_eq!(
            (&a).read(&mut buf).unwrap(),
            0,
            "end of file after the peer closed"
        );
        let clone = a.try_clone().unwrap();
        assert_eq!(
            clone.read_timeout().unwrap(),
            Some(Duration::from_millis(20))
        );
    });
}

#[cfg(target_os = "linux")]
#[test]
fn abstract_address() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("corio-test-{}", std::process::id());
    let addr = corio::net::unix::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    corio::run(move || {
        let listener = UnixListener::bind_addr(&addr).unwrap();
        let client = corio::spawn(move || {
            let mut c = UnixStream::connect_addr(&addr).unwrap();
            c.write_all(b"abstract").unwrap();
        });
        let (mut s, _) = listener.accept().unwrap();
        let mut got = String::new();
        s.read_to_string(&mut got).unwrap();
        assert_eq!(got, "abstract");
        client.join().unwrap();
    });
}

#[test]
fn datagrams() {
    let dir = TempDir::new("dgram");
    let (pa, pb) = (dir.path("a"), dir.path("b"));
    corio::run(move || {
        let a = UnixDatagram::bind(&pa).unwrap();
        let b = UnixDatagram::bind(&pb).unwrap();
        let receiver = corio::spawn(move || {
            let mut buf = [0; 32];
            let (n, from) = b.recv_from(&mut buf).unwrap();
            (buf[..n].to_vec(), from.as_pathname().map(|p| p.to_owned()))
        });
        corio::yield_now();
        a.send_to(b"to b", &pb).unwrap();
        let (msg, from) = receiver.join().unwrap();
        assert_eq!(msg, b"to b");
        assert_eq!(from.as_deref(), Some(pa.as_path()));

        let (x, y) = UnixDatagram::pair().unwrap();
        y.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
        assert_eq!(y.recv(&mut [0; 4]).unwrap_err().kind(), ErrorKind::TimedOut);
        assert_eq!(
            y.try_recv(&mut [0; 4]).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
        x.send(b"pair").unwrap();
        y.readable().unwrap();
        let mut buf = [0; 8];
        assert_eq!(y.try_recv(&mut buf).unwrap(), 4);

        let unbound = UnixDatagram::unbound().unwrap();
        unbound.connect(&pa).unwrap();
        unbound.send(b"connected").unwrap();
        let mut buf = [0; 16];
        let n = a.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"connected");
    });
}

#[test]
fn works_outside_a_runtime() {
    let (mut a, b) = UnixStream::pair().unwrap();
    let t = std::thread::spawn(move || {
        let mut s = String::new();
        (&b).read_to_string(&mut s).unwrap();
        s
    });
    a.write_all(b"plain thread").unwrap();
    drop(a);
    assert_eq!(t.join().unwrap(), "plain thread");
}

/// A stream read into an empty buffer returns `Ok(0)` at once, leaving
/// waiting data for the next read; a datagram receive into an empty buffer
/// still waits for a datagram, as in std.
#[test]
fn reads_into_an_empty_buffer() {
    corio::run(|| {
        let (a, b) = UnixStream::pair().unwrap();
        let r = timeout(Duration::from_secs(2), || {
            assert_eq!((&a).read(&mut []).unwrap(), 0);
            assert_eq!((&a).read_vectored(&mut []).unwrap(), 0);
            assert_eq!(a.try_read(&mut []).unwrap(), 0);
        });
        assert!(r.is_ok(), "a read into an empty buffer waited");
        (&b).write_all(b"y").unwrap();
        assert_eq!((&a).read(&mut []).unwrap(), 0);
        let mut buf = [0; 4];
        assert_eq!((&a).read(&mut buf).unwrap(), 1);

        let (d, _e) = UnixDatagram::pair().unwrap();
        assert!(timeout(Duration::from_millis(10), || d.recv(&mut [])).is_err());
    });
}
