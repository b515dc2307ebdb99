//! [`UdpSocket`]: datagrams, with receives that suspend the task.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, SockAddr, SockRef, Type};

use super::addr::{ToSocketAddrs, each_addr, resolve};
use super::io::{Io, Options};
use super::provided::{self, NetSocket, Proto};
use super::sys;
use crate::task::Direction;

/// A UDP socket, like [`std::net::UdpSocket`], whose receives (and sends,
/// when the send buffer is full) suspend the calling task instead of the
/// thread.
///
/// # Differences from std
///
/// * Host names given to [`bind`](Self::bind), [`connect`](Self::connect)
///   and [`send_to`](Self::send_to) are resolved on a thread pool (see
///   [`ToSocketAddrs`]).
/// * A receive or send that runs past its timeout fails with
///   [`io::ErrorKind::TimedOut`] (std on Unix reports `WouldBlock`).
/// * Every blocking call is a cancellation point and obeys enclosing
///   [`time::timeout`](crate::time::timeout) scopes.
///
/// # Examples
///
/// ```
/// use corio::net::UdpSocket;
///
/// corio::run(|| -> std::io::Result<()> {
///     let a = UdpSocket::bind("127.0.0.1:0")?;
///     let b = UdpSocket::bind("127.0.0.1:0")?;
///     a.send_to(b"hi", b.local_addr()?)?;
///     let mut buf = [0; 16];
///     let (n, from) = b.recv_from(&mut buf)?;
///     assert_eq!((&buf[..n], from), (&b"hi"[..], a.local_addr()?));
///     Ok(())
/// })
/// .unwrap();
/// ```
pub struct UdpSocket {
    pub(crate) io: Io<std::net::UdpSocket>,
    /// A socket of the network the runtime's driver provides (`io` then
    /// holds an unbound placeholder socket, for the fd traits and options).
    provided: Option<Box<dyn NetSocket>>,
}

impl UdpSocket {
    pub(crate) fn from_nonblocking(s: std::net::UdpSocket, opts: Arc<Options>) -> UdpSocket {
        UdpSocket {
            io: Io::with_options(s, opts),
            provided: None,
        }
    }

    /// Creates a socket bound to `addr` (port 0 picks a free port), trying
    /// each address it resolves to in turn.
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        each_addr(&addr, |a| {
            if let Some(net) = provided::network() {
                let (placeholder, fd) = provided::placeholder(Type::DGRAM)?;
                let sock = net.bind(Proto::Udp, *a, fd)?;
                let mut socket =
                    UdpSocket::from_nonblocking(sys::into_std(placeholder), Arc::default());
                socket.provided = Some(sock);
                return Ok(socket);
            }
            let socket = sys::socket(Domain::for_address(*a), Type::DGRAM)?;
            socket.bind(&SockAddr::from(*a))?;
            Ok(UdpSocket::from_nonblocking(
                sys::into_std(socket),
                Arc::default(),
            ))
        })
    }

    /// Wraps a [`std::net::UdpSocket`], switching it to non-blocking mode;
    /// its timeouts carry over.
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        socket.set_nonblocking(true)?;
        let opts = Options::with_timeouts(socket.read_timeout()?, socket.write_timeout()?);
        Ok(UdpSocket::from_nonblocking(socket, Arc::new(opts)))
    }

    /// Unwraps the [`std::net::UdpSocket`]; it stays in non-blocking mode
    /// (see [`TcpStream::into_std`](super::TcpStream::into_std)).
    pub fn into_std(self) -> std::net::UdpSocket {
        self.io.into_inner()
    }

    /// Receives one datagram, waiting for it; returns its length and
    /// sender. A datagram longer than `buf` is truncated.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        if let Some(p) = &self.provided {
            return provided::recv(&**p, self.io.options(), buf, false, false, false);
        }
        self.io.op(Direction::Read, |s| s.recv_from(buf))
    }

    /// Like [`recv_from`](Self::recv_from), leaving the datagram queued.
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        if let Some(p) = &self.provided {
            return provided::recv(&**p, self.io.options(), buf, true, false, false);
        }
        self.io.op(Direction::Read, |s| s.peek_from(buf))
    }

    /// Sends `buf` to `addr` (its first address, as in std).
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `addr` resolves to nothing; what `sendto(2)`
    /// reports.
    pub fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        let Some(addr) = resolve(&addr)?.into_iter().next() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no addresses to send data to",
            ));
        };
        if let Some(p) = &self.provided {
            return p.send_to(buf, addr);
        }
        self.io.op(Direction::Write, |s| s.send_to(buf, addr))
    }

    /// The address of the peer set by [`connect`](Self::connect).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        if let Some(p) = &self.provided {
            return p.peer_addr();
        }
        self.io.get().peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        if let Some(p) = &self.provided {
            return p.local_addr();
        }
        self.io.get().local_addr()
    }

    /// A new handle to the same socket, sharing its timeouts.
    pub fn try_clone(&self) -> io::Result<UdpSocket> {
        if self.provided.is_some() {
            return Err(crate::Error::NotSimulated {
                operation: "UdpSocket::try_clone",
            }
            .into());
        }
        Ok(UdpSocket {
            provided: None,
            io: self.io.try_clone(std::net::UdpSocket::try_clone)?,
        })
    }

    /// Sets how long a receive may wait before failing with
    /// [`io::ErrorKind::TimedOut`]; `None` waits forever.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for `Some(Duration::ZERO)`, as in std.
    pub fn set_read_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.io
            .set_timeout(Direction::Read, dur, std::net::UdpSocket::set_read_timeout)
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
            std::net::UdpSocket::set_write_timeout,
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

    /// Sets `SO_BROADCAST`.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.io.get().set_broadcast(on)
    }

    /// Whether `SO_BROADCAST` is set.
    pub fn broadcast(&self) -> io::Result<bool> {
        self.io.get().broadcast()
    }

    /// Sets `IP_MULTICAST_LOOP`.
    pub fn set_multicast_loop_v4(&self, on: bool) -> io::Result<()> {
        self.io.get().set_multicast_loop_v4(on)
    }

    /// Whether `IP_MULTICAST_LOOP` is set.
    pub fn multicast_loop_v4(&self) -> io::Result<bool> {
        self.io.get().multicast_loop_v4()
    }

    /// Sets `IP_MULTICAST_TTL`.
    pub fn set_multicast_ttl_v4(&self, ttl: u32) -> io::Result<()> {
        self.io.get().set_multicast_ttl_v4(ttl)
    }

    /// The `IP_MULTICAST_TTL`.
    pub fn multicast_ttl_v4(&self) -> io::Result<u32> {
        self.io.get().multicast_ttl_v4()
    }

    /// Sets `IPV6_MULTICAST_LOOP`.
    pub fn set_multicast_loop_v6(&self, on: bool) -> io::Result<()> {
        self.io.get().set_multicast_loop_v6(on)
    }

    /// Whether `IPV6_MULTICAST_LOOP` is set.
    pub fn multicast_loop_v6(&self) -> io::Result<bool> {
        self.io.get().multicast_loop_v6()
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
    /// Linux doubles it). Datagrams that arrive while it is full are
    /// dropped.
    pub fn set_recv_buffer_size(&self, size: usize) -> io::Result<()> {
        SockRef::from(self.io.get()).set_recv_buffer_size(size)
    }

    /// The receive buffer size (`SO_RCVBUF`).
    pub fn recv_buffer_size(&self) -> io::Result<usize> {
        SockRef::from(self.io.get()).recv_buffer_size()
    }

    /// Sets the IP time-to-live of outgoing packets.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.get().set_ttl(ttl)
    }

    /// The IP time-to-live.
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.get().ttl()
    }

    /// Joins an IPv4 multicast group on `interface`.
    pub fn join_multicast_v4(&self, multiaddr: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        self.io.get().join_multicast_v4(multiaddr, interface)
    }

    /// Joins an IPv6 multicast group on interface number `interface`.
    pub fn join_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.io.get().join_multicast_v6(multiaddr, interface)
    }

    /// Leaves an IPv4 multicast group.
    pub fn leave_multicast_v4(&self, multiaddr: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        self.io.get().leave_multicast_v4(multiaddr, interface)
    }

    /// Leaves an IPv6 multicast group.
    pub fn leave_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.io.get().leave_multicast_v6(multiaddr, interface)
    }

    /// Takes the pending socket error (`SO_ERROR`), if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.get().take_error()
    }

    /// Sets the default peer: [`send`](Self::send) goes to it and only its
    /// datagrams are received. Uses the first address that works.
    pub fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        if let Some(p) = &self.provided {
            return each_addr(&addr, |a| p.connect_peer(*a));
        }
        each_addr(&addr, |a| self.io.get().connect(a))
    }

    /// Sends `buf` to the connected peer.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        if let Some(p) = &self.provided {
            return p.send_to(buf, p.peer_addr()?);
        }
        self.io.op(Direction::Write, |s| s.send(buf))
    }

    /// Receives one datagram from the connected peer, waiting for it.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(p) = &self.provided {
            return provided::recv(&**p, self.io.options(), buf, false, false, true).map(|r| r.0);
        }
        self.io.op(Direction::Read, |s| s.recv(buf))
    }

    /// Like [`recv`](Self::recv), leaving the datagram queued.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(p) = &self.provided {
            return provided::recv(&**p, self.io.options(), buf, true, false, true).map(|r| r.0);
        }
        self.io.op(Direction::Read, |s| s.peek(buf))
    }

    /// In non-blocking mode, calls fail with [`io::ErrorKind::WouldBlock`]
    /// instead of waiting.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.io.options().set_nonblocking(nonblocking);
        Ok(())
    }

    /// Waits until a datagram (or an error) is pending. Readiness can be
    /// spurious: loop on [`try_recv`](Self::try_recv) /
    /// [`try_recv_from`](Self::try_recv_from).
    pub fn readable(&self) -> io::Result<()> {
        if let Some(p) = &self.provided {
            return p.readable(None);
        }
        self.io.ready(Direction::Read)
    }

    /// Waits until a datagram can be sent.
    pub fn writable(&self) -> io::Result<()> {
        if let Some(p) = &self.provided {
            return p.writable(None);
        }
        self.io.ready(Direction::Write)
    }

    /// Receives a datagram if one is queued, or fails with
    /// [`io::ErrorKind::WouldBlock`].
    pub fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        if let Some(p) = &self.provided {
            return provided::recv(&**p, self.io.options(), buf, false, true, false);
        }
        self.io.try_op(Direction::Read, |s| s.recv_from(buf))
    }

    /// Like [`try_recv_from`](Self::try_recv_from), from the connected peer.
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(p) = &self.provided {
            return provided::recv(&**p, self.io.options(), buf, false, true, true).map(|r| r.0);
        }
        self.io.try_op(Direction::Read, |s| s.recv(buf))
    }

    /// Sends a datagram to `addr` if the send buffer has room, or fails
    /// with [`io::ErrorKind::WouldBlock`]. Takes a resolved address: a
    /// lookup could not be "tried".
    pub fn try_send_to(&self, buf: &[u8], addr: SocketAddr) -> io::Result<usize> {
        if let Some(p) = &self.provided {
            return p.send_to(buf, addr);
        }
        self.io.try_op(Direction::Write, |s| s.send_to(buf, addr))
    }

    /// Like [`try_send_to`](Self::try_send_to), to the connected peer.
    pub fn try_send(&self, buf: &[u8]) -> io::Result<usize> {
        if let Some(p) = &self.provided {
            return p.send_to(buf, p.peer_addr()?);
        }
        self.io.try_op(Direction::Write, |s| s.send(buf))
    }
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.io.get().fmt(f)
    }
}
