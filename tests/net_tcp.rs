//! TCP on loopback: data transfer, half-close, reset, refused and timed-out
//! connects, socket timeouts, `timeout` scopes, concurrent use, the
//! readiness API, cancellation, the task table, idle CPU, and the same
//! calls outside a runtime.

mod common;

use std::io::{self, ErrorKind, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use corio::net::{TcpListener, TcpStream};
use corio::task::{Direction, TaskState, WaitReason};
use corio::time::{sleep, timeout};

fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, peer) = l.accept().unwrap();
    assert_eq!(peer, c.local_addr().unwrap());
    (c, s)
}

/// Lets the other tasks run until `pred` holds (bounded, so a bug fails
/// instead of hanging).
fn yield_until(mut pred: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if pred() {
            return;
        }
        corio::yield_now();
    }
    panic!("condition never became true");
}

#[test]
fn echo_on_loopback() {
    corio::run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = corio::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = vec![0; 100_000];
            s.read_exact(&mut buf).unwrap();
            s.write_all(&buf).unwrap();
        });
        let mut c = TcpStream::connect(addr).unwrap();
        assert_eq!(c.peer_addr().unwrap(), addr);
        c.set_nodelay(true).unwrap();
        assert!(c.nodelay().unwrap());
        c.set_ttl(42).unwrap();
        assert_eq!(c.ttl().unwrap(), 42);
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
        c.write_all(&data).unwrap();
        let mut back = vec![0; data.len()];
        c.read_exact(&mut back).unwrap();
        assert_eq!(back, data);
        server.join().unwrap();
        assert!(c.take_error().unwrap().is_none());
    });
}

#[test]
fn connect_by_name_resolves_off_thread() {
    corio::run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        // "localhost" may resolve to ::1 first, where nothing listens: the
        // next address is tried, as in std.
        let c = TcpStream::connect(("localhost", port)).unwrap();
        let (s, _) = listener.accept().unwrap();
        assert_eq!(s.peer_addr().unwrap(), c.local_addr().unwrap());
        let err = TcpStream::connect("no-port-here").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    });
}

/// The FIN often arrives in the same event as the last data; the next read
/// must still see end-of-file (the short-read shortcut must not hide it).
#[test]
fn half_close_with_data_then_fin() {
    corio::run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = corio::spawn(move || {
            for _ in 0..50 {
                let (mut s, _) = listener.accept().unwrap();
                let mut request = Vec::new();
                s.read_to_end(&mut request).unwrap();
                // Half-closed by the client: this end can still write.
                s.write_all(&request).unwrap();
                s.write_all(b" done").unwrap();
            }
        });
        for i in 0..50 {
            let mut c = TcpStream::connect(addr).unwrap();
            let msg = format!("request {i}");
            c.write_all(msg.as_bytes()).unwrap();
            c.shutdown(Shutdown::Write).unwrap();
            let mut reply = String::new();
            c.read_to_string(&mut reply).unwrap();
            assert_eq!(reply, format!("{msg} done"));
        }
        server.join().unwrap();
    });
}

#[test]
fn reset_by_peer() {
    corio::run(|| {
        let (c, s) = pair();
        // Linger 0: close sends RST instead of FIN.
        socket2::SockRef::from(&c)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        let reader = corio::spawn(move || {
            let mut buf = [0; 16];
            (&s).read(&mut buf).map(|_| ()).map_err(|e| e.kind())
        });
        yield_until(|| {
            corio::tasks()
                .iter()
                .any(|t| matches!(t.state(), TaskState::Waiting(WaitReason::Io { .. })))
        });
        drop(c);
        assert_eq!(reader.join().unwrap(), Err(ErrorKind::ConnectionReset));
    });
}

#[test]
fn write_to_reset_connection_fails() {
    corio::run(|| {
        let (mut c, s) = pair();
        socket2::SockRef::from(&s)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(s);
        let chunk = [0u8; 64 * 1024];
        let err = loop {
            if let Err(e) = c.write_all(&chunk) {
                break e;
            }
        };
        assert!(
            matches!(
                err.kind(),
                ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
            ),
            "{err:?}"
        );
    });
}

#[test]
fn connection_refused() {
    let addr = common::closed_port();
    corio::run(move || {
        let err = TcpStream::connect(addr).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    });
    // Outside a runtime too.
    let err = TcpStream::connect(addr).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
}

#[test]
fn connect_timeout() {
    let (_listener, _fillers, addr) = common::black_hole();
    corio::run(move || {
        // Other tasks keep running while the connect waits.
        let ticker = corio::spawn(|| {
            for _ in 0..5 {
                sleep(Duration::from_millis(10));
            }
        });
        let t = Instant::now();
        let err = TcpStream::connect_timeout(&addr, Duration::from_millis(150)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut);
        assert!(t.elapsed() >= Duration::from_millis(150));
        assert!(t.elapsed() < Duration::from_secs(5));
        assert!(ticker.is_finished());
        let zero = TcpStream::connect_timeout(&addr, Duration::ZERO).unwrap_err();
        assert_eq!(zero.kind(), ErrorKind::InvalidInput);
        // A `timeout` scope bounds a plain connect the same way.
        let r = timeout(Duration::from_millis(50), || TcpStream::connect(addr));
        assert!(r.is_err());
    });
    // Outside a runtime, the thread blocks until the timeout.
    let err = TcpStream::connect_timeout(&addr, Duration::from_millis(50)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
}

#[test]
fn read_and_write_timeouts() {
    corio::run(|| {
        let (mut c, s) = pair();
        assert_eq!(c.read_timeout().unwrap(), None);
        c.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
        assert_eq!(c.read_timeout().unwrap(), Some(Duration::from_millis(30)));
        let t = Instant::now();
        let err = c.read(&mut [0; 8]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut);
        assert!(t.elapsed() >= Duration::from_millis(30));
        // The timeout is per call: data that arrives in time is read.
        (&s).write_all(b"late").unwrap();
        let mut buf = [0; 4];
        c.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"late");

        let zero = c.set_read_timeout(Some(Duration::ZERO)).unwrap_err();
        assert_eq!(zero.kind(), ErrorKind::InvalidInput);

        // The peer does not read: the send buffer fills, then writes time out.
        c.set_write_timeout(Some(Duration::from_millis(30)))
            .unwrap();
        assert_eq!(c.write_timeout().unwrap(), Some(Duration::from_millis(30)));
        let chunk = vec![0u8; 256 * 1024];
        let err = loop {
            if let Err(e) = c.write(&chunk) {
                break e;
            }
        };
        assert_eq!(err.kind(), ErrorKind::TimedOut);

        // Clones share the timeouts, as in std.
        let c2 = c.try_clone().unwrap();
        assert_eq!(c2.write_timeout().unwrap(), Some(Duration::from_millis(30)));
        c.set_read_timeout(None).unwrap();
        assert_eq!(c2.read_timeout().unwrap(), None);
        drop(s);
    });
}

#[test]
fn nested_timeout_scopes_around_reads() {
    corio::run(|| {
        let (c, _s) = pair();
        let mut buf = [0; 8];
        // The inner scope expires first; the outer one is untouched.
        let t = Instant::now();
        let outer = timeout(Duration::from_secs(10), || {
            let inner = timeout(Duration::from_millis(30), || (&c).read(&mut buf));
            assert!(inner.is_err(), "inner timeout must elapse");
            "outer finished"
        });
        assert_eq!(outer, Ok("outer finished"));
        assert!(t.elapsed() < Duration::from_secs(5));

        // The outer scope is earlier: the read inside the inner scope fails
        // at the outer deadline, and the outer scope reports Elapsed even
        // though the code inside swallowed the error.
        let t = Instant::now();
        let outer = timeout(Duration::from_millis(30), || {
            let inner = timeout(Duration::from_secs(10), || (&c).read(&mut buf));
            match inner {
                Ok(Err(e)) => assert_eq!(e.kind(), ErrorKind::TimedOut),
                other => panic!("expected a timed-out read, got {other:?}"),
            }
        });
        assert!(outer.is_err());
        assert!(t.elapsed() >= Duration::from_millis(30));
        assert!(t.elapsed() < Duration::from_secs(5));

        // A socket timeout and a scope: the earlier one wins.
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let r = timeout(Duration::from_millis(20), || (&c).read(&mut buf));
        assert!(r.is_err());
    });
}

#[test]
fn concurrent_read_and_write_on_one_socket() {
    const LEN: usize = 4 << 20;
    corio::run(|| {
        let (c, s) = pair();
        // The far end echoes everything back.
        let echo = corio::spawn(move || io::copy(&mut &s, &mut &s).unwrap());
        let c = Rc::new(c);
        let writer = {
            let c = Rc::clone(&c);
            corio::spawn_local(move || {
                let data: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
                (&*c).write_all(&data).unwrap();
                c.shutdown(Shutdown::Write).unwrap();
            })
        };
        let reader = {
            let c = Rc::clone(&c);
            corio::spawn_local(move || {
                let mut got = Vec::with_capacity(LEN);
                (&*c).read_to_end(&mut got).unwrap();
                got
            })
        };
        // 4 MiB cannot fit in the socket buffers: both tasks have to wait
        // on the same fd at some point, in different directions.
        let mut seen_both = false;
        while !reader.is_finished() {
            let fd = c.as_raw_fd();
            let dirs: Vec<_> = corio::tasks()
                .iter()
                .filter_map(|t| match t.state() {
                    TaskState::Waiting(WaitReason::Io { fd: f, direction }) if f == fd => {
                        Some(direction)
                    }
                    _ => None,
                })
                .collect();
            seen_both |= dirs.contains(&Direction::Read) && dirs.contains(&Direction::Write);
            corio::yield_now();
        }
        writer.join().unwrap();
        let got = reader.join().unwrap();
        assert_eq!(got.len(), LEN);
        assert!(got.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
        assert_eq!(echo.join().unwrap(), LEN as u64);
        assert!(seen_both, "reader and writer never waited at the same time");
    });
}

#[test]
fn readiness_api() {
    corio::run(|| {
        let (c, s) = pair();
        let mut buf = [0; 64];
        // Nothing there: try_read does not wait.
        assert_eq!(
            s.try_read(&mut buf).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
        let writer = corio::spawn(move || {
            sleep(Duration::from_millis(10));
            c.writable().unwrap();
            assert_eq!(c.try_write(b"ready").unwrap(), 5);
            c
        });
        let n = loop {
            s.readable().unwrap();
            match s.try_read(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(&buf[..n], b"ready");
        let c = writer.join().unwrap();
        // Fill the send buffer with try_write alone: it ends in WouldBlock.
        let chunk = vec![0u8; 64 * 1024];
        let err = loop {
            if let Err(e) = c.try_write(&chunk) {
                break e;
            }
        };
        assert_eq!(err.kind(), ErrorKind::WouldBlock);
        // readable() obeys timeout scopes.
        let (_c2, s2) = pair();
        assert!(timeout(Duration::from_millis(10), || s2.readable()).is_err());
    });
}

#[test]
fn nonblocking_mode() {
    corio::run(|| {
        let (c, s) = pair();
        s.set_nonblocking(true).unwrap();
        let err = (&s).read(&mut [0; 8]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WouldBlock);
        (&c).write_all(b"x").unwrap();
        s.readable().unwrap();
        assert_eq!((&s).read(&mut [0; 8]).unwrap(), 1);
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        assert_eq!(l.accept().unwrap_err().kind(), ErrorKind::WouldBlock);
    });
}

#[test]
fn peek_waits_and_keeps_data() {
    corio::run(|| {
        let (mut c, s) = pair();
        let peeker = corio::spawn(move || {
            let mut buf = [0; 8];
            let n = s.peek(&mut buf).unwrap();
            let mut again = vec![0; n];
            (&s).read_exact(&mut again).unwrap();
            (buf[..n].to_vec(), again)
        });
        sleep(Duration::from_millis(5));
        c.write_all(b"peek").unwrap();
        let (peeked, read) = peeker.join().unwrap();
        assert_eq!(peeked, b"peek");
        assert_eq!(read, b"peek");
    });
}

#[test]
fn cancel_a_blocked_read() {
    corio::run(|| {
        let (_c, s) = pair();
        let reader = corio::spawn(move || {
            let err = (&s).read(&mut [0; 8]).unwrap_err();
            assert!(corio::Error::is_cancellation(&err), "{err:?}");
            assert_ne!(err.kind(), ErrorKind::Interrupted);
            // read_exact must not retry a cancellation forever.
            let err = (&s).read_exact(&mut [0; 8]).unwrap_err();
            assert!(corio::Error::is_cancellation(&err));
        });
        yield_until(|| {
            corio::tasks().iter().any(|t| {
                t.id() == reader.id()
                    && matches!(t.state(), TaskState::Waiting(WaitReason::Io { .. }))
            })
        });
        reader.cancel();
        assert!(reader.join().unwrap_err().is_cancelled());
    });
}

#[test]
fn task_table_shows_io_waits() {
    corio::run(|| {
        let (c, s) = pair();
        let (rfd, wfd) = (s.as_raw_fd(), c.as_raw_fd());
        let reader = corio::Builder::new()
            .name("reader")
            .spawn(move || (&s).read(&mut [0; 8]).map(drop))
            .unwrap();
        let writer = corio::Builder::new()
            .name("writer")
            .spawn(move || -> io::Result<()> {
                let chunk = vec![0u8; 1 << 20];
                loop {
                    (&c).write_all(&chunk)?;
                }
            })
            .unwrap();
        let state = |name: &str| {
            corio::tasks()
                .into_iter()
                .find(|t| t.name() == Some(name))
                .map(|t| t.state())
        };
        yield_until(|| {
            state("reader")
                == Some(TaskState::Waiting(WaitReason::Io {
                    fd: rfd,
                    direction: Direction::Read,
                }))
                && state("writer")
                    == Some(TaskState::Waiting(WaitReason::Io {
                        fd: wfd,
                        direction: Direction::Write,
                    }))
        });
        let dump = corio::inspect::dump();
        assert!(dump.contains(&format!("io (read fd {rfd})")), "{dump}");
        assert!(dump.contains(&format!("io (write fd {wfd})")), "{dump}");
        reader.cancel();
        writer.cancel();
        assert!(reader.join().unwrap_err().is_cancelled());
        assert!(writer.join().unwrap_err().is_cancelled());
    });
}

/// A runtime whose tasks all wait (on IO and a far timer) sleeps in the
/// poller: under 1% of a CPU over a second.
#[test]
fn idle_runtime_uses_no_cpu() {
    corio::run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let (_c, s) = pair();
        let _acceptor = corio::spawn(move || listener.accept().map(drop));
        let _reader = corio::spawn(move || (&s).read(&mut [0; 8]).map(drop));
        let _sleeper = corio::spawn(|| sleep(Duration::from_secs(60)));
        corio::yield_now();
        // The runtime runs on this thread, so the thread's CPU time is the
        // runtime's.
        let before = common::thread_cpu();
        sleep(Duration::from_secs(1));
        let used = common::thread_cpu() - before;
        assert!(
            used < Duration::from_millis(10),
            "idle runtime used {used:?} of CPU in 1 s"
        );
    });
}

#[test]
fn works_outside_a_runtime() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0; 5];
        s.read_exact(&mut buf).unwrap();
        s.write_all(&buf).unwrap();
        s
    });
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(b"plain").unwrap();
    let mut buf = [0; 5];
    c.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"plain");
    let _server_end = server.join().unwrap();
    c.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    assert_eq!(c.read(&mut buf).unwrap_err().kind(), ErrorKind::TimedOut);
    // A `timeout` scope applies on a plain thread too.
    let r = timeout(Duration::from_millis(20), || {
        c.set_read_timeout(None).unwrap();
        c.read(&mut buf)
    });
    assert!(r.is_err());
}

#[test]
fn std_conversions() {
    let (c, s) = corio::run(|| {
        let (c, s) = pair();
        c.set_read_timeout(Some(Duration::from_millis(250)))
            .unwrap();
        (c.into_std(), s.into_std())
    });
    // Back in std, still non-blocking; the timeout came along (the kernel
    // rounds it to its clock tick).
    let t = c.read_timeout().unwrap().unwrap();
    assert!(t.abs_diff(Duration::from_millis(250)) < Duration::from_millis(20));
    c.set_nonblocking(false).unwrap();
    (&s).write_all(b"std").unwrap();
    let mut buf = [0; 3];
    (&c).read_exact(&mut buf).unwrap();
    corio::run(move || {
        let c = TcpStream::from_std(c).unwrap();
        let t = c.read_timeout().unwrap().unwrap();
        assert!(t.abs_diff(Duration::from_millis(250)) < Duration::from_millis(20));
        let s = TcpStream::from_std(s).unwrap();
        (&s).write_all(b"back").unwrap();
        let mut buf = [0; 4];
        (&c).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"back");
        // Through raw fds.
        use std::os::fd::{FromRawFd, IntoRawFd};
        let fd = c.into_raw_fd();
        // SAFETY: `fd` was just released by `into_raw_fd` and is owned by
        // nobody else.
        let c = unsafe { TcpStream::from_raw_fd(fd) };
        (&s).write_all(b"raw").unwrap();
        let mut buf = [0; 3];
        (&c).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"raw");
    });
}

/// A socket registered by one runtime reports an error in another instead
/// of waiting for events nobody delivers; `into_std`/`from_std` moves it.
#[test]
fn a_socket_stays_with_the_runtime_that_registered_it() {
    let (c, s) = corio::run(|| {
        let (c, s) = pair();
        // Wait once, so that the stream registers with this runtime.
        c.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
        assert!((&c).read(&mut [0; 1]).is_err());
        c.set_read_timeout(None).unwrap();
        (c, s)
    });
    corio::run(move || {
        let err = (&c).read(&mut [0; 1]).unwrap_err();
        assert!(err.to_string().contains("another runtime"), "{err}");
        assert!(matches!(
            err.get_ref().and_then(|e| e.downcast_ref::<corio::Error>()),
            Some(corio::Error::WrongRuntime)
        ));
        let c = TcpStream::from_std(c.into_std()).unwrap();
        let reader = corio::spawn(move || {
            let mut buf = [0; 4];
            (&c).read_exact(&mut buf).map(|_| buf)
        });
        corio::yield_now();
        (&s).write_all(b"moved").unwrap();
        assert_eq!(&reader.join().unwrap().unwrap(), b"move");
    });
}

/// Like std's, corio's sockets can be sent to and shared with other threads.
#[test]
fn sockets_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<TcpStream>();
    assert_send_sync::<TcpListener>();
    assert_send_sync::<corio::net::UdpSocket>();
    assert_send_sync::<corio::net::unix::UnixStream>();
    assert_send_sync::<corio::net::unix::UnixListener>();
    assert_send_sync::<corio::net::unix::UnixDatagram>();
}

/// `timeout(Duration::ZERO, read)` with data waiting: either the read ran
/// (the deadline check read the loop's slightly older clock) and returns
/// the bytes, or the deadline stopped it before it took anything — never
/// `Elapsed` with the bytes gone. Outside a runtime the check reads the
/// real clock: always `Elapsed`, and the bytes stay.
#[test]
fn a_zero_timeout_read_returns_what_it_took() {
    corio::run(|| {
        let (c, s) = pair();
        (&s).write_all(b"ready").unwrap();
        c.readable().unwrap();
        let mut buf = [0; 16];
        let mut elapsed = 0;
        let n = loop {
            match timeout(Duration::ZERO, || (&c).read(&mut buf)) {
                Ok(r) => break r.unwrap(),
                Err(_) => {
                    // Nothing was taken: the bytes are still queued.
                    let mut peeked = [0; 16];
                    let r = timeout(Duration::from_secs(10), || c.peek(&mut peeked));
                    assert_eq!(r.unwrap().unwrap(), 5, "the bytes are gone");
                    elapsed += 1;
                    assert!(elapsed < 100, "the read never ran");
                }
            }
        };
        assert_eq!(&buf[..n], b"ready");
    });
    let (c, s) = corio::run(pair);
    (&s).write_all(b"ready").unwrap();
    let mut buf = [0; 16];
    assert!(timeout(Duration::ZERO, || (&c).read(&mut buf)).is_err());
    assert_eq!(c.peek(&mut buf).unwrap(), 5);
}

/// Reads under tiny `timeout`s, racing a writer on another thread: each
/// `Elapsed` took nothing, each read that took bytes returns them, so the
/// stream comes out whole and in order.
#[test]
fn reads_under_tiny_timeouts_keep_every_byte() {
    const LEN: usize = 2 << 20;
    let data: Vec<u8> = (0..LEN).map(|i| (i * 31 / 7) as u8).collect();
    // Made outside the runtime, so that the reader's runtime registers `c`.
    let (c, s) = pair();
    let sent = data.clone();
    let writer = std::thread::spawn(move || {
        let mut s = s;
        let mut at = 0;
        let mut k = 0;
        while at < LEN {
            k += 1;
            let end = (at + 1 + k * 997 % 30_000).min(LEN);
            s.write_all(&sent[at..end]).unwrap();
            at = end;
            if k % 8 == 0 {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    });
    let got = corio::run(move || {
        let mut got = Vec::with_capacity(LEN);
        let mut buf = vec![0; 64 << 10];
        let mut k = 0u64;
        loop {
            k += 1;
            match timeout(Duration::from_micros(k % 40), || (&c).read(&mut buf)) {
                Ok(Ok(0)) => break,
                Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
                Ok(Err(e)) => panic!("read failed: {e}"),
                Err(_) => {}
            }
        }
        got
    });
    writer.join().unwrap();
    assert_eq!(got.len(), LEN);
    assert!(got == data, "the stream was corrupted");
}

/// A read or peek into an empty buffer returns `Ok(0)` at once, with no
/// data waiting (and no runtime), without taking any.
#[test]
fn reads_into_an_empty_buffer_return_at_once() {
    let check = || {
        let (c, s) = pair();
        let start = Instant::now();
        assert_eq!((&c).read(&mut []).unwrap(), 0);
        assert_eq!(c.peek(&mut []).unwrap(), 0);
        assert_eq!((&c).read_vectored(&mut []).unwrap(), 0);
        assert_eq!(c.try_read(&mut []).unwrap(), 0);
        c.set_nonblocking(true).unwrap();
        assert_eq!((&c).read(&mut []).unwrap(), 0);
        c.set_nonblocking(false).unwrap();
        assert!(start.elapsed() < Duration::from_secs(5));
        // Data waiting stays for the next read.
        (&s).write_all(b"x").unwrap();
        assert_eq!((&c).read(&mut []).unwrap(), 0);
        let mut buf = [0; 4];
        assert_eq!((&c).read(&mut buf).unwrap(), 1);
    };
    // Under a deadline, so that a read that waited would fail.
    corio::run(|| {
        let r = timeout(Duration::from_secs(2), check);
        assert!(r.is_ok(), "a read into an empty buffer waited");
    });
    // A plain thread would block: a read timeout turns that into an error.
    let (c, _s) = corio::run(pair);
    c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    assert_eq!((&c).read(&mut []).unwrap(), 0);
    assert_eq!(c.peek(&mut []).unwrap(), 0);
}
