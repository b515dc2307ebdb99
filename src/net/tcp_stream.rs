//! [`TcpStream`]: a TCP connection whose blocking calls suspend the task.

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, SockRef, Type};

use super::addr::{ToSocketAddrs, each_addr};
use super::io::{Io, Options};
use super::provided::{self, NetSocket};
use super::sys;
use crate::task::Direction;

/// A TCP connection, like [`std::net::TcpStream`], whose blocking calls
/// suspend the calling task instead of the thread.
///
/// The socket is always non-blocking at the OS level. When a read finds no
/// data (or a write finds the send buffer full), the task waits on the
/// reactor — its state in [`corio::tasks`](crate::tasks) is
/// `Waiting(Io { fd, direction })` — and resumes right after the call when
/// the OS reports readiness. Outside a runtime the same calls block the
/// thread, so code using `TcpStream` also works in tests and plain threads.
///
/// [`Read`] and [`Write`] are implemented for `TcpStream` and for
/// `&TcpStream`, so one task can read while another writes the same stream
/// (share it with an `Rc`/`Arc`, or use [`try_clone`](Self::try_clone)).
/// Everything built on `std::io` works on it: `BufReader`, `read_exact`,
/// `write_all`, `io::copy`, rustls' `StreamOwned`, tungstenite.
///
/// # Differences from std
///
/// * [`connect`](Self::connect) resolves host names on a thread pool (see
///   [`ToSocketAddrs`]) and connects without blocking the thread.
/// * A read or write that runs past [`set_read_timeout`](Self::set_read_timeout)
///   / [`set_write_timeout`](Self::set_write_timeout) fails with
///   [`io::ErrorKind::TimedOut`] (std on Unix reports `WouldBlock`; std
///   documents either as possible).
/// * [`set_nonblocking`](Self::set_nonblocking) makes calls fail with
///   `WouldBlock` instead of waiting, as in std; the fd itself stays
///   `O_NONBLOCK` either way.
/// * Every blocking call is a cancellation point and obeys enclosing
///   [`time::timeout`](crate::time::timeout) scopes.
/// * A read, `peek` or `try_read` into an empty buffer returns `Ok(0)` at
///   once, as the `Read` docs describe and an empty `read_vectored` does in
///   std; std's `read` on Linux first waits for data to arrive (which it
///   then leaves unread).
///
/// # Examples
///
/// ```
/// use std::io::{Read, Write};
/// use corio::net::{TcpListener, TcpStream};
///
/// corio::run(|| -> std::io::Result<()> {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     let addr = listener.local_addr()?;
///     let server = corio::spawn(move || -> std::io::Result<()> {
///         let (mut conn, _) = listener.accept()?;
///         let mut buf = [0; 5];
///         conn.read_exact(&mut buf)?;
///         conn.write_all(&buf)
///     });
///     let mut stream = TcpStream::connect(addr)?;
///     stream.write_all(b"hello")?;
///     let mut echo = [0; 5];
///     stream.read_exact(&mut echo)?;
///     assert_eq!(&echo, b"hello");
///     server.join().unwrap()
/// })
/// .unwrap();
/// ```
pub struct TcpStream {
    pub(crate) io: Io<std::net::TcpStream>,
    /// A connection of the network the runtime's driver provides (a
    /// simulation's); `io` then holds an unconnected placeholder socket,
    /// for the fd traits and options.
    pub(crate) provided: Option<Box<dyn NetSocket>>,
}

impl TcpStream {
    /// Wraps a std stream that is already non-blocking.
    pub(crate) fn from_nonblocking(s: std::net::TcpStream, opts: Arc<Options>) -> TcpStream {
        TcpStream {
            io: Io::with_options(s, opts),
            provided: None,
        }
    }

    /// A stream over the provided socket `sock`, holding `placeholder`.
    pub(crate) fn from_provided(
        sock: Box<dyn NetSocket>,
        placeholder: socket2::Socket,
    ) -> TcpStream {
        TcpStream {
            io: Io::new(placeholder.into()),
            provided: Some(sock),
        }
    }

    /// Opens a TCP connection to `addr`, trying each address it resolves
    /// to in turn, like [`std::net::TcpStream::connect`].
    ///
    /// The connect itself is non-blocking: the task waits for the
    /// handshake on the reactor.
    ///
    /// # Errors
    ///
    /// The last address's error (for example `ConnectionRefused`), a
    /// resolution error, `TimedOut` inside an expired
    /// [`timeout`](crate::time::timeout), or a cancellation. At the
    /// open-files limit the error names the limit.
    pub fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        each_addr(&addr, |a| connect_addr(a, None))
    }

    /// Opens a TCP connection to `addr`, failing with
    /// [`io::ErrorKind::TimedOut`] if it takes longer than `timeout`, like
    /// [`std::net::TcpStream::connect_timeout`].
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect); an `InvalidInput` error for a zero
    /// `timeout`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use corio::net::{TcpListener, TcpStream};
    ///
    /// corio::run(|| {
    ///     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let addr = listener.local_addr().unwrap();
    ///     let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    ///     assert_eq!(s.peer_addr().unwrap(), addr);
    /// });
    /// ```
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        if timeout.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot set a 0 duration timeout",
            ));
        }
        connect_addr(addr, crate::time::now().checked_add(timeout))
    }

    /// Wraps a connected [`std::net::TcpStream`], switching it to
    /// non-blocking mode; its read and write timeouts carry over.
    ///
    /// # Errors
    ///
    /// If the socket cannot be made non-blocking or its options read.
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        stream.set_nonblocking(true)?;
        let opts = Options::with_timeouts(stream.read_timeout()?, stream.write_timeout()?);
        Ok(TcpStream::from_nonblocking(stream, Arc::new(opts)))
    }

    /// Unwraps the [`std::net::TcpStream`], with its timeouts.
    ///
    /// The socket stays in non-blocking mode (handles made with
    /// `try_clone` share that mode and may still be in use by corio); call
    /// `set_nonblocking(false)` on it to use it with blocking std calls.
    pub fn into_std(self) -> std::net::TcpStream {
        self.io.into_inner()
    }

    /// The address of the remote peer.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        if let Some(p) = &self.provided {
            return p.peer_addr();
        }
        self.io.get().peer_addr()
    }

    /// The local address of this end.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        if let Some(p) = &self.provided {
            return p.local_addr();
        }
        self.io.get().local_addr()
    }

    /// Shuts down the read half, the write half, or both. After
    /// `Shutdown::Write` the peer reads end-of-file (a half-close) while
    /// this end can still read.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        if let Some(p) = &self.provided {
            return p.shutdown(how);
        }
        self.io.get().shutdown(how)
    }

    /// A new handle to the same socket (a `dup` of the fd), sharing its
    /// timeouts and non-blocking mode. Not needed for reading in one task
    /// and writing in another: `&TcpStream` implements `Read` and `Write`.
    pub fn try_clone(&self) -> io::Result<TcpStream> {
        if self.provided.is_some() {
            return Err(crate::Error::NotSimulated {
                operation: "TcpStream::try_clone",
            }
            .into());
        }
        Ok(TcpStream {
            io: self.io.try_clone(std::net::TcpStream::try_clone)?,
            provided: None,
        })
    }

    /// Sets how long a read may wait before failing with
    /// [`io::ErrorKind::TimedOut`]; `None` waits forever.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for `Some(Duration::ZERO)`, as in std.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::{ErrorKind, Read};
    /// use std::time::Duration;
    /// use corio::net::{TcpListener, TcpStream};
    ///
    /// corio::run(|| {
    ///     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let mut s = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    ///     s.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    ///     let err = s.read(&mut [0; 8]).unwrap_err();
    ///     assert_eq!(err.kind(), ErrorKind::TimedOut);
    /// });
    /// ```
    pub fn set_read_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.io
            .set_timeout(Direction::Read, dur, std::net::TcpStream::set_read_timeout)
    }

    /// Sets how long a write may wait before failing with
    /// [`io::ErrorKind::TimedOut`]; `None` waits forever.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for `Some(Duration::ZERO)`, as in std.
    pub fn set_write_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.io.set_timeout(
            Direction::Write,
            dur,
            std::net::TcpStream::set_write_timeout,
        )
    }

    /// The read timeout, as set by [`set_read_timeout`](Self::set_read_timeout).
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.io.options().timeout(Direction::Read))
    }

    /// The write timeout, as set by [`set_write_timeout`](Self::set_write_timeout).
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.io.options().timeout(Direction::Write))
    }

    /// Receives data without removing it from the queue, waiting for some
    /// to arrive like [`read`](Read::read) does. Into an empty `buf`, it
    /// returns `Ok(0)` at once, as `read` does.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(p) = &self.provided {
            return provided::read(&**p, self.io.options(), &mut [buf], true, false);
        }
        if buf.is_empty() {
            return Ok(0);
        }
        // Not `stream_op`: a short peek leaves the data queued, so it must
        // not clear readiness.
        self.io.op(Direction::Read, |s| s.peek(buf))
    }

    /// Sets `TCP_NODELAY` (disables Nagle's algorithm).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.io.get().set_nodelay(nodelay)
    }

    /// Whether `TCP_NODELAY` is set.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.io.get().nodelay()
    }

    /// Sets the IP time-to-live of outgoing packets.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.get().set_ttl(ttl)
    }

    /// The IP time-to-live of outgoing packets.
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.get().ttl()
    }

    /// Turns TCP keepalive on, with `idle` the time a connection stays
    /// silent before the first probe (`SO_KEEPALIVE`, `TCP_KEEPIDLE`), or
    /// off with `None`. Dead peers are then noticed by the kernel, and a
    /// read waiting on them fails instead of waiting forever.
    pub fn set_keepalive(&self, idle: Option<Duration>) -> io::Result<()> {
        super::options::set_keepalive(&SockRef::from(self.io.get()), idle)
    }

    /// Whether TCP keepalive is on (`SO_KEEPALIVE`).
    pub fn keepalive(&self) -> io::Result<bool> {
        SockRef::from(self.io.get()).keepalive()
    }

    /// Sets `SO_LINGER`: with `Some(d)`, closing the socket waits up to `d`
    /// for unsent data (`Some(Duration::ZERO)` resets the connection at
    /// close); `None` restores the default (close returns at once, the
    /// kernel sends what is left in the background).
    ///
    /// A lingering close blocks the *thread* in `close(2)`; prefer
    /// [`shutdown`](Self::shutdown) and a read to the end where that matters.
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        SockRef::from(self.io.get()).set_linger(linger)
    }

    /// The `SO_LINGER` setting.
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        SockRef::from(self.io.get()).linger()
    }

    /// Sets the send buffer size (`SO_SNDBUF`; the kernel may round it,
    /// Linux doubles it).
    pub fn set_send_buffer_size(&self, size: usize) -> io::Result<()> {
        SockRef::from(self.io.get()).set_send_buffer_size(size)
    }

    /// The send buffer size (`SO_SNDBUF`).
    pub fn send_buffer_size(&self) -> io::Result<usize> {
        SockRef::from(self.io.get()).send_buffer_size()
    }

    /// Sets the receive buffer size (`SO_RCVBUF`; the kernel may round it,
    /// Linux doubles it).
    pub fn set_recv_buffer_size(&self, size: usize) -> io::Result<()> {
        SockRef::from(self.io.get()).set_recv_buffer_size(size)
    }

    /// The receive buffer size (`SO_RCVBUF`).
    pub fn recv_buffer_size(&self) -> io::Result<usize> {
        SockRef::from(self.io.get()).recv_buffer_size()
    }

    /// Takes the pending socket error (`SO_ERROR`), if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.get().take_error()
    }

    /// In non-blocking mode, reads and writes fail with
    /// [`io::ErrorKind::WouldBlock`] instead of waiting. Shared with
    /// `try_clone`d handles, as in std.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.io.options().set_nonblocking(nonblocking);
        Ok(())
    }

    /// Waits until the stream is readable: data, end-of-file or an error is
    /// pending. Part of the readiness API, with [`try_read`](Self::try_read).
    ///
    /// Readiness can be spurious: a `try_read` after it may still fail
    /// with `WouldBlock`, so loop.
    ///
    /// # Errors
    ///
    /// `TimedOut` in an expired [`timeout`](crate::time::timeout) scope, or
    /// a cancellation.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::{ErrorKind, Write};
    /// use corio::net::{TcpListener, TcpStream};
    ///
    /// corio::run(|| -> std::io::Result<()> {
    ///     let listener = TcpListener::bind("127.0.0.1:0")?;
    ///     let mut client = TcpStream::connect(listener.local_addr()?)?;
    ///     let (server, _) = listener.accept()?;
    ///     client.write_all(b"ping")?;
    ///     let mut buf = [0; 16];
    ///     let n = loop {
    ///         server.readable()?;
    ///         match server.try_read(&mut buf) {
    ///             Ok(n) => break n,
    ///             Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
    ///             Err(e) => return Err(e),
    ///         }
    ///     };
    ///     assert_eq!(&buf[..n], b"ping");
    ///     Ok(())
    /// })
    /// .unwrap();
    /// ```
    pub fn readable(&self) -> io::Result<()> {
        if let Some(p) = &self.provided {
            return p.readable(None);
        }
        self.io.ready(Direction::Read)
    }

    /// Waits until the stream is writable (or has an error pending). See
    /// [`readable`](Self::readable).
    pub fn writable(&self) -> io::Result<()> {
        if let Some(p) = &self.provided {
            return p.writable(None);
        }
        self.io.ready(Direction::Write)
    }

    /// Reads what is there without waiting: [`io::ErrorKind::WouldBlock`]
    /// if nothing is. Pair it with [`readable`](Self::readable).
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(p) = &self.provided {
            return provided::read(&**p, self.io.options(), &mut [buf], false, true);
        }
        let len = buf.len();
        self.io
            .try_stream_op(Direction::Read, len, |s| Read::read(&mut &*s, buf))
    }

    /// Like [`try_read`](Self::try_read), into several buffers.
    pub fn try_read_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        if let Some(p) = &self.provided {
            return provided::read_vectored(&**p, self.io.options(), bufs, true);
        }
        let len = bufs.iter().map(|b| b.len()).sum();
        self.io.try_stream_op(Direction::Read, len, |s| {
            Read::read_vectored(&mut &*s, bufs)
        })
    }

    /// Writes what fits without waiting: [`io::ErrorKind::WouldBlock`] if
    /// nothing does. Pair it with [`writable`](Self::writable).
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        if let Some(p) = &self.provided {
            return provided::write(&**p, buf);
        }
        self.io
            .try_stream_op(Direction::Write, buf.len(), |s| Write::write(&mut &*s, buf))
    }

    /// Like [`try_write`](Self::try_write), from several buffers.
    pub fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if let Some(p) = &self.provided {
            return provided::write_vectored(&**p, bufs);
        }
        let len = bufs.iter().map(|b| b.len()).sum();
        self.io.try_stream_op(Direction::Write, len, |s| {
            Write::write_vectored(&mut &*s, bufs)
        })
    }
}

/// Connects a non-blocking socket to `addr`, waiting for the handshake up
/// to `deadline`.
fn connect_addr(addr: &SocketAddr, deadline: Option<Instant>) -> io::Result<TcpStream> {
    if let Some(net) = provided::network() {
        let (placeholder, fd) = provided::placeholder(Type::STREAM)?;
        let sock = net.connect(*addr, deadline, fd)?;
        return Ok(TcpStream::from_provided(sock, placeholder));
    }
    let socket = sys::socket(Domain::for_address(*addr), Type::STREAM)?;
    connect_socket(socket, addr, deadline)
}

/// Connects a fresh non-blocking `socket` (options already set) to `addr`,
/// the task waiting on the reactor for the handshake.
pub(crate) fn connect_socket(
    socket: socket2::Socket,
    addr: &SocketAddr,
    deadline: Option<Instant>,
) -> io::Result<TcpStream> {
    match socket.connect(&SockAddr::from(*addr)) {
        Ok(()) => {}
        Err(e) if sys::in_progress(&e) => {}
        Err(e) => return Err(e),
    }
    let stream = TcpStream::from_nonblocking(socket.into(), Arc::default());
    stream
        .io
        .op_until(Direction::Write, deadline, sys::connect_finished)?;
    Ok(stream)
}

super::io::stream_read_write!(TcpStream);

impl provided::Provided for TcpStream {
    #[inline]
    fn provided(&self) -> Option<&dyn NetSocket> {
        self.provided.as_deref()
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.io.get().fmt(f)
    }
}
