//! The network a driver may provide in place of the OS's (the other half
//! of the driver seam, [`Driver::network`](super::Driver::network)): what
//! `corio::net`'s types need of a socket, for a runtime whose sockets are
//! not the kernel's. The simulation (`corio::sim`) implements it over its
//! in-memory network; `net` sees only these traits.
//!
//! A `TcpStream`, `TcpListener` or `UdpSocket` made while such a network is
//! the running runtime's holds a [`NetSocket`] beside a placeholder fd (for
//! the fd traits, the options and the wait reason `corio::tasks` shows) and
//! sends every operation to it. Blocking operations wait as the real ones
//! do: in the task, until `deadline` (the socket's timeout and the
//! enclosing `timeout` scopes), failing on cancellation, or with
//! `WouldBlock` when `nonblocking`.

use std::fmt::Debug;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::RawFd;
use std::panic::{RefUnwindSafe, UnwindSafe};
use std::time::Instant;

/// The transport of a socket to bind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Proto {
    /// A TCP listener.
    Tcp,
    /// A UDP socket.
    Udp,
}

/// A network provided by the runtime's driver: binds, connects and
/// resolves host names for the calling task. `fd` is the placeholder fd of
/// the socket type that will hold the result.
pub(crate) trait Network {
    /// Binds a TCP listener or a UDP socket to `addr`.
    fn bind(&self, proto: Proto, addr: SocketAddr, fd: RawFd) -> io::Result<Box<dyn NetSocket>>;

    /// Opens a TCP connection to `addr`, waiting for it until `deadline`.
    fn connect(
        &self,
        addr: SocketAddr,
        deadline: Option<Instant>,
        fd: RawFd,
    ) -> io::Result<Box<dyn NetSocket>>;

    /// The addresses `host:port` stands for on this network.
    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>>;
}

/// A socket of a runtime-provided [`Network`]. Closing it is its drop. The
/// bounds are those of the socket types that hold one.
pub(crate) trait NetSocket: Send + Sync + UnwindSafe + RefUnwindSafe + Debug {
    /// The local address.
    fn local_addr(&self) -> io::Result<SocketAddr>;

    /// The peer's address (a stream's, or a connected UDP socket's).
    fn peer_addr(&self) -> io::Result<SocketAddr>;

    /// Accepts a connection on a listener; `fd` is the new stream's
    /// placeholder.
    fn accept(
        &self,
        deadline: Option<Instant>,
        nonblocking: bool,
        fd: RawFd,
    ) -> io::Result<(Box<dyn NetSocket>, SocketAddr)>;

    /// Reads (or, with `peek`, peeks) a stream into `bufs`.
    fn read(
        &self,
        bufs: &mut [&mut [u8]],
        peek: bool,
        deadline: Option<Instant>,
        nonblocking: bool,
    ) -> io::Result<usize>;

    /// Writes `bufs` to a stream.
    fn write(&self, bufs: &[&[u8]]) -> io::Result<usize>;

    /// Shuts down a stream's read half, write half or both.
    fn shutdown(&self, how: Shutdown) -> io::Result<()>;

    /// Waits until a read, accept or receive would not wait.
    fn readable(&self, deadline: Option<Instant>) -> io::Result<()>;

    /// Waits until a write or send would not wait.
    fn writable(&self, deadline: Option<Instant>) -> io::Result<()>;

    /// Sends a datagram to `to`.
    fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize>;

    /// Receives (or, with `peek`, peeks) a datagram; with `connected`,
    /// only from the connected peer.
    fn recv_from(
        &self,
        buf: &mut [u8],
        peek: bool,
        deadline: Option<Instant>,
        nonblocking: bool,
        connected: bool,
    ) -> io::Result<(usize, SocketAddr)>;

    /// Sets a UDP socket's default peer.
    fn connect_peer(&self, to: SocketAddr) -> io::Result<()>;
}
