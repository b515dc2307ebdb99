//! [`UnixListener`]: accepts Unix stream connections.

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

use super::{SocketAddr, UnixStream};
use crate::error::io_with_limit;
use crate::net::io::Io;
use crate::net::sys::{self, Backoff};
use crate::task::Direction;

/// A Unix stream server socket, like
/// [`std::os::unix::net::UnixListener`], whose [`accept`](Self::accept)
/// suspends the calling task until a connection arrives.
///
/// # Differences from std
///
/// As [`TcpListener`](crate::net::TcpListener): at the open-files limit the
/// error names the limit and the next `accept` backs off instead of
/// spinning.
///
/// # Examples
///
/// See [`UnixStream`].
pub struct UnixListener {
    pub(crate) io: Io<std::os::unix::net::UnixListener>,
    backoff: Backoff,
}

impl UnixListener {
    pub(crate) fn from_nonblocking(l: std::os::unix::net::UnixListener) -> UnixListener {
        UnixListener {
            io: Io::new(l),
            backoff: Backoff::default(),
        }
    }

    /// Creates a listener bound to `path` (which must not exist yet).
    ///
    /// # Errors
    ///
    /// `AddrInUse` if the path exists, what `bind(2)` reports otherwise.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        let l = std::os::unix::net::UnixListener::bind(path).map_err(io_with_limit)?;
        UnixListener::from_std(l)
    }

    /// Creates a listener bound to `addr` (a path, or on Linux an abstract
    /// name).
    pub fn bind_addr(addr: &SocketAddr) -> io::Result<UnixListener> {
        let l = std::os::unix::net::UnixListener::bind_addr(addr).map_err(io_with_limit)?;
        UnixListener::from_std(l)
    }

    /// Wraps a std listener, switching it to non-blocking mode.
    pub fn from_std(listener: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        listener.set_nonblocking(true)?;
        Ok(UnixListener::from_nonblocking(listener))
    }

    /// Unwraps the std listener; it stays in non-blocking mode.
    pub fn into_std(self) -> std::os::unix::net::UnixListener {
        self.io.into_inner()
    }

    /// Accepts a connection, suspending the task until one arrives.
    ///
    /// # Errors
    ///
    /// As [`TcpListener::accept`](crate::net::TcpListener::accept).
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        self.backoff
            .wait(sys::io_wait(self.io.get(), Direction::Read))?;
        match self.io.op(Direction::Read, |l| l.accept()) {
            Ok((s, addr)) => {
                self.backoff.reset();
                s.set_nonblocking(true)?;
                Ok((UnixStream::from_nonblocking(s, Arc::default()), addr))
            }
            Err(e) if sys::is_resource_limit(&e) => {
                self.backoff.fail();
                Err(io_with_limit(e))
            }
            Err(e) => Err(e),
        }
    }

    /// An endless iterator over incoming connections.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// A new handle to the same listening socket.
    pub fn try_clone(&self) -> io::Result<UnixListener> {
        Ok(UnixListener {
            io: self
                .io
                .try_clone(std::os::unix::net::UnixListener::try_clone)?,
            backoff: Backoff::default(),
        })
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get().local_addr()
    }

    /// In non-blocking mode, `accept` fails with
    /// [`io::ErrorKind::WouldBlock`] instead of waiting.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.io.options().set_nonblocking(nonblocking);
        Ok(())
    }

    /// Takes the pending socket error (`SO_ERROR`), if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.get().take_error()
    }
}

/// The iterator returned by [`UnixListener::incoming`].
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a UnixListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<UnixStream>;

    fn next(&mut self) -> Option<io::Result<UnixStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.io.get().fmt(f)
    }
}
