//! [`TcpListener`]: accepts TCP connections, suspending the task while none
//! is pending.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use socket2::{Domain, SockAddr, Type};

use super::addr::{ToSocketAddrs, each_addr};
use super::io::Io;
use super::provided::{self, NetSocket, Proto};
use super::sys::{self, Backoff};
use super::tcp_stream::TcpStream;
use crate::error::io_with_limit;
use crate::task::Direction;

/// A TCP server socket, like [`std::net::TcpListener`], whose
/// [`accept`](Self::accept) suspends the calling task (or, outside a
/// runtime, blocks the thread) until a connection arrives.
///
/// # Differences from std
///
/// * [`bind`](Self::bind) listens with the largest backlog the system
///   allows (`net.core.somaxconn`) rather than std's fixed one.
/// * When `accept` fails because the process ran out of file descriptors
///   (`EMFILE`) or the system out of memory for sockets, the error names
///   the open-files limit, and the *next* `accept` first waits a little
///   (5 ms, doubling up to 1 s while the failures go on): the pending
///   connection keeps the listener readable, so a server loop that retries
///   at once would otherwise spin the CPU until descriptors are freed.
/// * `ECONNABORTED` (a client that gave up while queued) is skipped
///   instead of returned.
///
/// # Examples
///
/// A server that handles each connection in its own task:
///
/// ```no_run
/// use std::io::{self, Read, Write};
/// use corio::net::{TcpListener, TcpStream};
///
/// fn handle(mut stream: TcpStream) -> io::Result<()> {
///     let mut buf = [0; 4096];
///     loop {
///         let n = stream.read(&mut buf)?;
///         if n == 0 {
///             return Ok(());
///         }
///         stream.write_all(&buf[..n])?;
///     }
/// }
///
/// corio::run(|| -> io::Result<()> {
///     let listener = TcpListener::bind("127.0.0.1:7000")?;
///     for stream in listener.incoming() {
///         let stream = stream?;
///         let _detached = corio::spawn(move || handle(stream));
///     }
///     Ok(())
/// })
/// .unwrap();
/// ```
pub struct TcpListener {
    pub(crate) io: Io<std::net::TcpListener>,
    backoff: Backoff,
    /// A listener of the network the runtime's driver provides (`io` then
    /// holds an unbound placeholder socket).
    provided: Option<Box<dyn NetSocket>>,
}

impl TcpListener {
    pub(crate) fn from_nonblocking(l: std::net::TcpListener) -> TcpListener {
        TcpListener {
            io: Io::new(l),
            backoff: Backoff::default(),
            provided: None,
        }
    }

    /// Creates a listener bound to `addr` (port 0 picks a free port),
    /// trying each address it resolves to in turn.
    ///
    /// Like std, it sets `SO_REUSEADDR`, so a server can be restarted
    /// while old connections linger in `TIME_WAIT`.
    ///
    /// # Errors
    ///
    /// The last address's error (for example `AddrInUse`), or a resolution
    /// error.
    ///
    /// # Examples
    ///
    /// ```
    /// let listener = corio::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// assert_ne!(listener.local_addr().unwrap().port(), 0);
    /// ```
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        each_addr(&addr, bind_addr)
    }

    /// Wraps a [`std::net::TcpListener`], switching it to non-blocking
    /// mode.
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        listener.set_nonblocking(true)?;
        Ok(TcpListener::from_nonblocking(listener))
    }

    /// Unwraps the [`std::net::TcpListener`]; it stays in non-blocking
    /// mode (see [`TcpStream::into_std`]).
    pub fn into_std(self) -> std::net::TcpListener {
        self.io.into_inner()
    }

    /// The local address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        if let Some(p) = &self.provided {
            return p.local_addr();
        }
        self.io.get().local_addr()
    }

    /// A new handle to the same listening socket (a `dup` of the fd).
    pub fn try_clone(&self) -> io::Result<TcpListener> {
        if self.provided.is_some() {
            return Err(crate::Error::NotSimulated {
                operation: "TcpListener::try_clone",
            }
            .into());
        }
        Ok(TcpListener {
            io: self.io.try_clone(std::net::TcpListener::try_clone)?,
            backoff: Backoff::default(),
            provided: None,
        })
    }

    /// Accepts a connection, suspending the task until one arrives. The
    /// new stream is non-blocking, close-on-exec, with no timeouts.
    ///
    /// # Errors
    ///
    /// At the open-files limit, an error whose message names the limit (its
    /// inner error is [`corio::Error::FdLimit`](crate::Error::FdLimit); see
    /// the type docs for the backoff that follows). `TimedOut` in an expired
    /// [`timeout`](crate::time::timeout) scope, a cancellation, or what
    /// `accept(2)` reports.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        if let Some(p) = &self.provided {
            let (placeholder, fd) = provided::placeholder(Type::STREAM)?;
            let (conn, peer) = p.accept(None, false, fd)?;
            return Ok((TcpStream::from_provided(conn, placeholder), peer));
        }
        let fd = self.io.get();
        self.backoff.wait(sys::io_wait(fd, Direction::Read))?;
        match self.io.op(Direction::Read, sys::accept) {
            Ok((s, addr)) => {
                self.backoff.reset();
                Ok((
                    TcpStream::from_nonblocking(sys::into_std(s), Arc::default()),
                    addr,
                ))
            }
            Err(e) if sys::is_resource_limit(&e) => {
                self.backoff.fail();
                Err(io_with_limit(e))
            }
            Err(e) => Err(e),
        }
    }

    /// An endless iterator over incoming connections: each item is the
    /// result of [`accept`](Self::accept) (without the peer address).
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// Sets the IP time-to-live of accepted connections' packets.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.get().set_ttl(ttl)
    }

    /// The IP time-to-live.
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.get().ttl()
    }

    /// Takes the pending socket error (`SO_ERROR`), if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.get().take_error()
    }

    /// In non-blocking mode, `accept` fails with
    /// [`io::ErrorKind::WouldBlock`] instead of waiting.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.io.options().set_nonblocking(nonblocking);
        Ok(())
    }
}

fn bind_addr(addr: &SocketAddr) -> io::Result<TcpListener> {
    if let Some(net) = provided::network() {
        let (placeholder, fd) = provided::placeholder(Type::STREAM)?;
        let sock = net.bind(Proto::Tcp, *addr, fd)?;
        let mut listener = TcpListener::from_nonblocking(sys::into_std(placeholder));
        listener.provided = Some(sock);
        return Ok(listener);
    }
    let socket = sys::socket(Domain::for_address(*addr), Type::STREAM)?;
    socket.set_reuse_address(true)?;
    socket.bind(&SockAddr::from(*addr))?;
    // A negative backlog means "the system's maximum" (net.core.somaxconn).
    socket.listen(-1)?;
    Ok(TcpListener::from_nonblocking(sys::into_std(socket)))
}

/// The iterator returned by [`TcpListener::incoming`].
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;

    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.io.get().fmt(f)
    }
}
