//! [`UnixDatagram`]: Unix datagram sockets.

use std::fmt;
use std::io;
use std::net::Shutdown;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::SocketAddr;
use crate::error::io_with_limit;
use crate::net::io::{Io, Options};
use crate::task::Direction;

/// A Unix datagram socket, like [`std::os::unix::net::UnixDatagram`], whose
/// receives (and sends, when the peer's queue is full) suspend the calling
/// task instead of the thread.
///
/// # Differences from std
///
/// A receive or send past its timeout fails with
/// [`io::ErrorKind::TimedOut`].
///
/// # Examples
///
/// ```
/// use corio::net::unix::UnixDatagram;
///
/// corio::run(|| -> std::io::Result<()> {
///     let (a, b) = UnixDatagram::pair()?;
///     let reader = corio::spawn(move || -> std::io::Result<Vec<u8>> {
///         let mut buf = [0; 16];
///         let n = b.recv(&mut buf)?;
///         Ok(buf[..n].to_vec())
///     });
///     a.send(b"datagram")?;
///     assert_eq!(reader.join().unwrap()?, b"datagram");
///     Ok(())
/// })
/// .unwrap();
/// ```
pub struct UnixDatagram {
    pub(crate) io: Io<std::os::unix::net::UnixDatagram>,
}

impl UnixDatagram {
    pub(crate) fn from_nonblocking(
        s: std::os::unix::net::UnixDatagram,
        opts: Arc<Options>,
    ) -> UnixDatagram {
        UnixDatagram {
            io: Io::with_options(s, opts),
        }
    }

    /// Creates a socket bound to `path`.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixDatagram> {
        UnixDatagram::from_std(std::os::unix::net::UnixDatagram::bind(path).map_err(io_with_limit)?)
    }

    /// Creates a socket bound to `addr`.
    pub fn bind_addr(addr: &SocketAddr) -> io::Result<UnixDatagram> {
        UnixDatagram::from_std(
            std::os::unix::net::UnixDatagram::bind_addr(addr).map_err(io_with_limit)?,
        )
    }

    /// Creates a socket bound to no address.
    pub fn unbound() -> io::Result<UnixDatagram> {
        UnixDatagram::from_std(std::os::unix::net::UnixDatagram::unbound().map_err(io_with_limit)?)
    }

    /// A pair of connected sockets.
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = std::os::unix::net::UnixDatagram::pair().map_err(io_with_limit)?;
        Ok((UnixDatagram::from_std(a)?, UnixDatagram::from_std(b)?))
    }

    /// Wraps a std socket, switching it to non-blocking mode; its timeouts
    /// carry over.
    pub fn from_std(socket: std::os::unix::net::UnixDatagram) -> io::Result<UnixDatagram> {
        socket.set_nonblocking(true)?;
        let opts = Options::with_timeouts(socket.read_timeout()?, socket.write_timeout()?);
        Ok(UnixDatagram::from_nonblocking(socket, Arc::new(opts)))
    }

    /// Unwraps the std socket; it stays in non-blocking mode.
    pub fn into_std(self) -> std::os::unix::net::UnixDatagram {
        self.io.into_inner()
    }

    /// Sets the default peer to the socket at `path`.
    pub fn connect<P: AsRef<Path>>(&self, path: P) -> io::Result<()> {
        self.io.get().connect(path)
    }

    /// Sets the default peer to `addr`.
    pub fn connect_addr(&self, addr: &SocketAddr) -> io::Result<()> {
        self.io.get().connect_addr(addr)
    }

    /// A new handle to the same socket, sharing its timeouts.
    pub fn try_clone(&self) -> io::Result<UnixDatagram> {
        Ok(UnixDatagram {
            io: self
                .io
                .try_clone(std::os::unix::net::UnixDatagram::try_clone)?,
        })
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get().local_addr()
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get().peer_addr()
    }

    /// Receives one datagram and its sender, waiting for it.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io.op(Direction::Read, |s| s.recv_from(buf))
    }

    /// Receives one datagram, waiting for it.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.op(Direction::Read, |s| s.recv(buf))
    }

    /// Sends a datagram to the socket at `path`.
    pub fn send_to<P: AsRef<Path>>(&self, buf: &[u8], path: P) -> io::Result<usize> {
        let path = path.as_ref();
        self.io.op(Direction::Write, |s| s.send_to(buf, path))
    }

    /// Sends a datagram to `addr`.
    pub fn send_to_addr(&self, buf: &[u8], addr: &SocketAddr) -> io::Result<usize> {
        self.io.op(Direction::Write, |s| s.send_to_addr(buf, addr))
    }

    /// Sends a datagram to the connected peer.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.io.op(Direction::Write, |s| s.send(buf))
    }

    /// Sets how long a receive may wait before failing with
    /// [`io::ErrorKind::TimedOut`]; `None` waits forever.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for `Some(Duration::ZERO)`, as in std.
    pub fn set_read_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.io.set_timeout(
            Direction::Read,
            dur,
            std::os::unix::net::UnixDatagram::set_read_timeout,
        )
    }

    /// Sets how long a send may wait before failing with
    /// [`io::ErrorKind::TimedOut`]; `None` waits forever.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for `Some(Duration::ZERO)`, as in std.
    pub fn set_write_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.io.set_timeout(
            Direction::Write,
            dur,
            std::os::unix::net::UnixDatagram::set_write_timeout,
        )
    }

    /// The receive timeout.
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.io.options().timeout(Direction::Read))
    }

    /// The send timeout.
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

    /// Waits until a datagram (or an error) is pending.
    pub fn readable(&self) -> io::Result<()> {
        self.io.ready(Direction::Read)
    }

    /// Waits until a datagram can be sent.
    pub fn writable(&self) -> io::Result<()> {
        self.io.ready(Direction::Write)
    }

    /// Receives a datagram if one is queued, or fails with
    /// [`io::ErrorKind::WouldBlock`].
    pub fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io.try_op(Direction::Read, |s| s.recv_from(buf))
    }

    /// Like [`try_recv_from`](Self::try_recv_from), from the connected peer.
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.try_op(Direction::Read, |s| s.recv(buf))
    }

    /// Sends a datagram to `path` without waiting, or fails with
    /// [`io::ErrorKind::WouldBlock`].
    pub fn try_send_to<P: AsRef<Path>>(&self, buf: &[u8], path: P) -> io::Result<usize> {
        let path = path.as_ref();
        self.io.try_op(Direction::Write, |s| s.send_to(buf, path))
    }

    /// Sends a datagram to the connected peer without waiting.
    pub fn try_send(&self, buf: &[u8]) -> io::Result<usize> {
        self.io.try_op(Direction::Write, |s| s.send(buf))
    }
}

impl fmt::Debug for UnixDatagram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.io.get().fmt(f)
    }
}
