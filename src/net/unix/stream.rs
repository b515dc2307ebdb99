//! [`UnixStream`]: a connected Unix stream socket.

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::Shutdown;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, Type};

use super::SocketAddr;
use crate::net::io::{Io, Options, stream_read_write};
use crate::net::sys;
use crate::task::Direction;

/// A Unix stream socket, like [`std::os::unix::net::UnixStream`], whose
/// blocking calls suspend the calling task instead of the thread.
///
/// Everything said about [`TcpStream`](crate::net::TcpStream) holds here
/// too: `Read`/`Write` for `UnixStream` and `&UnixStream`, a readiness API,
/// timeouts that fail with `TimedOut`, and blocking behaviour outside a
/// runtime.
///
/// # Differences from std
///
/// * [`connect`](Self::connect) never blocks the thread: when the
///   listener's backlog is full (`EAGAIN`, which Unix sockets report
///   without any readiness event to wait for), the task retries after a
///   short pause (1 ms, doubling up to 100 ms).
/// * A read or write past its timeout fails with [`io::ErrorKind::TimedOut`].
/// * A read or `try_read` into an empty buffer returns `Ok(0)` at
///   once, as the `Read` docs describe and an empty `read_vectored` does in
///   std; std's `read` on Linux first waits for data to arrive (which it
///   then leaves unread).
///
/// # Examples
///
/// ```
/// use std::io::{Read, Write};
/// use corio::net::unix::{UnixListener, UnixStream};
///
/// let dir = std::env::temp_dir().join(format!("corio-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("sock");
/// # let _ = std::fs::remove_file(&path);
/// corio::run(move || -> std::io::Result<()> {
///     let listener = UnixListener::bind(&path)?;
///     let server = corio::spawn(move || -> std::io::Result<()> {
///         let (mut conn, _) = listener.accept()?;
///         conn.write_all(b"hello")
///     });
///     let mut stream = UnixStream::connect(&path)?;
///     let mut s = String::new();
///     stream.read_to_string(&mut s)?;
///     assert_eq!(s, "hello");
///     server.join().unwrap()?;
///     std::fs::remove_file(&path)
/// })
/// .unwrap();
/// ```
pub struct UnixStream {
    pub(crate) io: Io<std::os::unix::net::UnixStream>,
}

impl UnixStream {
    pub(crate) fn from_nonblocking(
        s: std::os::unix::net::UnixStream,
        opts: Arc<Options>,
    ) -> UnixStream {
        UnixStream {
            io: Io::with_options(s, opts),
        }
    }

    /// Connects to the socket at `path`.
    ///
    /// # Errors
    ///
    /// `NotFound` or `ConnectionRefused` when nothing listens there, an
    /// `InvalidInput` error for a path longer than `SUN_LEN`, a
    /// cancellation or an expired [`timeout`](crate::time::timeout).
    pub fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        connect_sockaddr(&SockAddr::unix(path)?)
    }

    /// Connects to the socket at `addr` (a path, or on Linux an abstract
    /// name).
    pub fn connect_addr(addr: &SocketAddr) -> io::Result<UnixStream> {
        connect_sockaddr(&super::sockaddr(addr)?)
    }

    /// A pair of connected sockets.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// let (mut a, mut b) = corio::net::unix::UnixStream::pair().unwrap();
    /// a.write_all(b"x").unwrap();
    /// let mut buf = [0; 1];
    /// b.read_exact(&mut buf).unwrap();
    /// assert_eq!(&buf, b"x");
    /// ```
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = std::os::unix::net::UnixStream::pair().map_err(crate::error::io_with_limit)?;
        Ok((UnixStream::from_std(a)?, UnixStream::from_std(b)?))
    }

    /// Wraps a [`std::os::unix::net::UnixStream`], switching it to
    /// non-blocking mode; its timeouts carry over.
    pub fn from_std(stream: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        stream.set_nonblocking(true)?;
        let opts = Options::with_timeouts(stream.read_timeout()?, stream.write_timeout()?);
        Ok(UnixStream::from_nonblocking(stream, Arc::new(opts)))
    }

    /// Unwraps the std stream; it stays in non-blocking mode (see
    /// [`TcpStream::into_std`](crate::net::TcpStream::into_std)).
    pub fn into_std(self) -> std::os::unix::net::UnixStream {
        self.io.into_inner()
    }

    /// A new handle to the same socket, sharing its timeouts and mode.
    pub fn try_clone(&self) -> io::Result<UnixStream> {
        Ok(UnixStream {
            io: self
                .io
                .try_clone(std::os::unix::net::UnixStream::try_clone)?,
        })
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get().local_addr()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get().peer_addr()
    }

    /// Sets how long a read may wait before failing with
    /// [`io::ErrorKind::TimedOut`]; `None` waits forever.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for `Some(Duration::ZERO)`, as in std.
    pub fn set_read_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.io.set_timeout(
            Direction::Read,
            dur,
            std::os::unix::net::UnixStream::set_read_timeout,
        )
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
            std::os::unix::net::UnixStream::set_write_timeout,
        )
    }

    /// The read timeout.
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.io.options().timeout(Direction::Read))
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.io.options().timeout(Direction::Write))
    }

    /// In non-blocking mode, calls fail with [`io::ErrorKind::WouldBlock`]
    /// instead of waiting.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.io.options().set_nonblocking(nonblocking);
        Ok(())
    }

    /// Takes the pending socket error (`SO_ERROR`), if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.get().take_error()
    }

    /// Shuts down the read half, the write half, or both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.io.get().shutdown(how)
    }

    /// Waits until the stream is readable (see
    /// [`TcpStream::readable`](crate::net::TcpStream::readable)).
    pub fn readable(&self) -> io::Result<()> {
        self.io.ready(Direction::Read)
    }

    /// Waits until the stream is writable.
    pub fn writable(&self) -> io::Result<()> {
        self.io.ready(Direction::Write)
    }

    /// Reads what is there without waiting, or fails with
    /// [`io::ErrorKind::WouldBlock`].
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let len = buf.len();
        self.io
            .try_stream_op(Direction::Read, len, |s| Read::read(&mut &*s, buf))
    }

    /// Like [`try_read`](Self::try_read), into several buffers.
    pub fn try_read_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        let len = bufs.iter().map(|b| b.len()).sum();
        self.io.try_stream_op(Direction::Read, len, |s| {
            Read::read_vectored(&mut &*s, bufs)
        })
    }

    /// Writes what fits without waiting, or fails with
    /// [`io::ErrorKind::WouldBlock`].
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.io
            .try_stream_op(Direction::Write, buf.len(), |s| Write::write(&mut &*s, buf))
    }

    /// Like [`try_write`](Self::try_write), from several buffers.
    pub fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let len = bufs.iter().map(|b| b.len()).sum();
        self.io.try_stream_op(Direction::Write, len, |s| {
            Write::write_vectored(&mut &*s, bufs)
        })
    }
}

fn connect_sockaddr(addr: &SockAddr) -> io::Result<UnixStream> {
    let socket = sys::socket(Domain::UNIX, Type::STREAM)?;
    let mut pause = Duration::from_millis(1);
    loop {
        match socket.connect(addr) {
            Ok(()) => break,
            Err(e) if sys::in_progress(&e) => {
                let s = UnixStream::from_nonblocking(sys::into_std(socket), Arc::default());
                s.io.op(Direction::Write, sys::connect_finished)?;
                return Ok(s);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let wait = sys::io_wait(&socket, Direction::Write);
                sys::pause_until(Instant::now() + pause, wait)?;
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(UnixStream::from_nonblocking(
        sys::into_std(socket),
        Arc::default(),
    ))
}

stream_read_write!(UnixStream);

impl crate::net::provided::Provided for UnixStream {}

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.io.get().fmt(f)
    }
}
