//! [`TcpSocket`]: a TCP socket configured before it connects or listens.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

use socket2::{Domain, SockAddr, SockRef, Socket, Type};

use super::sys;
use super::{TcpListener, TcpStream};

/// A TCP socket that is neither connected nor listening yet, for the
/// options that must be set before: `SO_REUSEPORT` on a listener, buffer
/// sizes that shape the TCP window, keepalive and linger on an outgoing
/// connection. Shaped like tokio's `TcpSocket`; it ends as a
/// [`TcpStream`] ([`connect`](Self::connect)) or a [`TcpListener`]
/// ([`listen`](Self::listen)).
///
/// ```
/// use corio::net::TcpSocket;
///
/// corio::run(|| -> std::io::Result<()> {
///     // Two listeners on one port: the kernel spreads connections
///     // between them (SO_REUSEPORT).
///     let first = TcpSocket::new_v4()?;
///     first.set_reuseport(true)?;
///     first.bind("127.0.0.1:0".parse().unwrap())?;
///     let addr = first.local_addr()?;
///     let first = first.listen(1024)?;
///
///     let second = TcpSocket::new_v4()?;
///     second.set_reuseport(true)?;
///     second.bind(addr)?;
///     let _second = second.listen(1024)?;
///
///     let client = TcpSocket::new_v4()?;
///     client.set_keepalive(Some(std::time::Duration::from_secs(60)))?;
///     let stream = client.connect(addr)?;
///     assert_eq!(stream.peer_addr()?, addr);
///     # drop(first);
///     Ok(())
/// })
/// .unwrap();
/// ```
pub struct TcpSocket {
    socket: Socket,
}

impl TcpSocket {
    /// A new IPv4 TCP socket (non-blocking, close-on-exec).
    ///
    /// # Errors
    ///
    /// If the socket cannot be made; at the open-files limit the error
    /// names the limit.
    pub fn new_v4() -> io::Result<TcpSocket> {
        Self::new(Domain::IPV4)
    }

    /// A new IPv6 TCP socket (non-blocking, close-on-exec).
    ///
    /// # Errors
    ///
    /// As [`new_v4`](Self::new_v4).
    pub fn new_v6() -> io::Result<TcpSocket> {
        Self::new(Domain::IPV6)
    }

    /// A new TCP socket of the family of `addr`.
    ///
    /// # Errors
    ///
    /// As [`new_v4`](Self::new_v4).
    pub fn new_for(addr: &SocketAddr) -> io::Result<TcpSocket> {
        Self::new(Domain::for_address(*addr))
    }

    fn new(domain: Domain) -> io::Result<TcpSocket> {
        if crate::task::driver::simulated() {
            return Err(crate::Error::NotSimulated {
                operation: "TcpSocket (use TcpStream::connect or TcpListener::bind)",
            }
            .into());
        }
        Ok(TcpSocket {
            socket: sys::socket(domain, Type::STREAM)?,
        })
    }

    /// Sets `SO_REUSEADDR` (a restarted server can bind while old
    /// connections linger in `TIME_WAIT`; [`TcpListener::bind`] sets it).
    pub fn set_reuseaddr(&self, on: bool) -> io::Result<()> {
        self.socket.set_reuse_address(on)
    }

    /// Whether `SO_REUSEADDR` is set.
    pub fn reuseaddr(&self) -> io::Result<bool> {
        self.socket.reuse_address()
    }

    /// Sets `SO_REUSEPORT`: several sockets, each with it set, may bind the
    /// same address and port, and the kernel spreads incoming connections
    /// between their listeners.
    pub fn set_reuseport(&self, on: bool) -> io::Result<()> {
        self.socket.set_reuse_port(on)
    }

    /// Whether `SO_REUSEPORT` is set.
    pub fn reuseport(&self) -> io::Result<bool> {
        self.socket.reuse_port()
    }

    /// Sets the send buffer size (`SO_SNDBUF`).
    pub fn set_send_buffer_size(&self, size: usize) -> io::Result<()> {
        self.socket.set_send_buffer_size(size)
    }

    /// The send buffer size (`SO_SNDBUF`).
    pub fn send_buffer_size(&self) -> io::Result<usize> {
        self.socket.send_buffer_size()
    }

    /// Sets the receive buffer size (`SO_RCVBUF`); set before `connect` or
    /// `listen`, it also sets the window scale the connection negotiates.
    pub fn set_recv_buffer_size(&self, size: usize) -> io::Result<()> {
        self.socket.set_recv_buffer_size(size)
    }

    /// The receive buffer size (`SO_RCVBUF`).
    pub fn recv_buffer_size(&self) -> io::Result<usize> {
        self.socket.recv_buffer_size()
    }

    /// TCP keepalive, as [`TcpStream::set_keepalive`].
    pub fn set_keepalive(&self, idle: Option<Duration>) -> io::Result<()> {
        super::options::set_keepalive(&SockRef::from(&self.socket), idle)
    }

    /// Whether TCP keepalive is on.
    pub fn keepalive(&self) -> io::Result<bool> {
        self.socket.keepalive()
    }

    /// `SO_LINGER`, as [`TcpStream::set_linger`].
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        self.socket.set_linger(linger)
    }

    /// The `SO_LINGER` setting.
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        self.socket.linger()
    }

    /// Sets `TCP_NODELAY`.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.socket.set_tcp_nodelay(on)
    }

    /// Whether `TCP_NODELAY` is set.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.socket.tcp_nodelay()
    }

    /// Binds the socket to `addr` (port 0 picks a free port).
    ///
    /// # Errors
    ///
    /// `AddrInUse` and the like.
    pub fn bind(&self, addr: SocketAddr) -> io::Result<()> {
        self.socket.bind(&SockAddr::from(addr))
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not an IP socket address"))
    }

    /// Connects to `addr`, the task waiting for the handshake on the
    /// reactor, and returns the connection.
    ///
    /// # Errors
    ///
    /// As [`TcpStream::connect`].
    pub fn connect(self, addr: SocketAddr) -> io::Result<TcpStream> {
        super::tcp_stream::connect_socket(self.socket, &addr, None)
    }

    /// Like [`connect`](Self::connect), failing with `TimedOut` after
    /// `timeout`.
    ///
    /// # Errors
    ///
    /// As [`TcpStream::connect_timeout`].
    pub fn connect_timeout(self, addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        super::tcp_stream::connect_socket(
            self.socket,
            &addr,
            crate::time::now().checked_add(timeout),
        )
    }

    /// Starts listening, with room for `backlog` connections not yet
    /// accepted (capped by `net.core.somaxconn`).
    ///
    /// # Errors
    ///
    /// If the socket cannot listen (for example, it is not bound and the
    /// system refuses an automatic port).
    pub fn listen(self, backlog: u32) -> io::Result<TcpListener> {
        self.socket
            .listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
        Ok(TcpListener::from_nonblocking(sys::into_std(self.socket)))
    }
}

impl AsFd for TcpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl AsRawFd for TcpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

impl fmt::Debug for TcpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpSocket")
            .field("fd", &self.socket.as_raw_fd())
            .field("local_addr", &self.local_addr().ok())
            .finish()
    }
}
