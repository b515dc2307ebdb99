//! The simulation's network as the driver seam offers it
//! ([`Network`], [`NetSocket`]): what a `TcpStream`, `TcpListener` or
//! `UdpSocket` made inside a simulation holds, and the blocking operations
//! on it. Each waits like a real socket's: in the task, obeying its
//! read/write timeout, enclosing `timeout` scopes and cancellation. This is
//! to the simulated network (`crate::sim_world::net`, below the task layer)
//! what `io_op` is to the reactor: the network keeps each socket's waiters
//! as wakers and wakes them when something changes (the driver's
//! dispatch); the loop here parks the task and tries again. `corio::net`
//! sees only the traits.

use std::io;
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Wake, Waker};
use std::time::Instant;

use super::driver::world;
use crate::reactor::network::{NetSocket, Network, Proto};
use crate::sim_world::net::{Attempt, Net, Proto as SimProto, SockKind};
use crate::sim_world::rng::Rng;
use crate::sim_world::{State, World};
use crate::task::Direction;
use crate::task::WaitReason;
use crate::task::park::{Unparker, check_current, park};

/// A simulated socket, by id in its simulation's network. Closing it (its
/// drop) is the socket's close.
#[derive(Debug)]
pub(crate) struct SimSocket {
    world: u64,
    id: u64,
    /// The placeholder fd of the socket type holding this (what
    /// `corio::tasks` shows a waiting task waiting on).
    pub(crate) fd: RawFd,
}

impl Drop for SimSocket {
    fn drop(&mut self) {
        if let Some(w) = world()
            && w.id == self.world
        {
            let now = w.elapsed();
            let st = &mut *w.st.borrow_mut();
            st.net.close(self.id, now, &mut st.rng, &w.cfg);
        }
    }
}

fn outside() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "a simulated socket used outside its simulation",
    )
}

/// The calling task's host and its address.
fn here(w: &World) -> io::Result<(u32, IpAddr)> {
    let h = w.current_host();
    w.host_ip(h).map(|ip| (h, IpAddr::V4(ip))).ok_or_else(|| {
        io::Error::other("simulated sockets are used from a host's or client's tasks")
    })
}

/// Wakes a task waiting on a simulated socket: the network's waiters are
/// wakers, which know nothing of tasks.
struct UnparkWake(Unparker);

impl Wake for UnparkWake {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

impl SimSocket {
    fn new(w: &World, id: u64, fd: RawFd) -> SimSocket {
        SimSocket {
            world: w.id,
            id,
            fd,
        }
    }

    /// Runs `f` on the network, with this socket's simulation.
    fn net<R>(&self, f: impl FnOnce(&World, &mut Net, &mut Rng) -> R) -> io::Result<R> {
        let w = world().filter(|w| w.id == self.world).ok_or_else(outside)?;
        let st = &mut *w.st.borrow_mut();
        Ok(f(&w, &mut st.net, &mut st.rng))
    }

    /// Tries `attempt` until it gives an answer, parking between tries
    /// (`WouldBlock` instead when `nonblocking`).
    fn wait<R>(
        &self,
        dir: Direction,
        deadline: Option<Instant>,
        nonblocking: bool,
        mut attempt: impl FnMut(&mut Net) -> Attempt<R>,
    ) -> io::Result<R> {
        check_current(deadline)?;
        let waker = (!nonblocking).then(|| Waker::from(Arc::new(UnparkWake(Unparker::current()))));
        loop {
            let r = self.net(|_, net, _| {
                let r = attempt(net);
                if r.is_none()
                    && let Some(w) = &waker
                {
                    net.add_waiter(self.id, w.clone());
                }
                r
            })?;
            match r {
                Some(r) => return r,
                None if nonblocking => return Err(io::ErrorKind::WouldBlock.into()),
                None => park(
                    WaitReason::Io {
                        fd: self.fd,
                        direction: dir,
                    },
                    deadline,
                )?,
            }
        }
    }

    /// The connected peer of a UDP socket, if any.
    fn udp_peer(&self) -> io::Result<Option<SocketAddr>> {
        self.net(|_, net, _| match net.sock(self.id).map(|s| &s.kind) {
            Some(SockKind::Udp(u)) => u.peer,
            _ => None,
        })
    }
}

impl NetSocket for SimSocket {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.net(|_, net, _| match net.sock(self.id).map(|s| &s.kind) {
            Some(SockKind::Stream(s)) => Ok(s.local),
            Some(SockKind::Listener(l)) => Ok(l.local),
            Some(SockKind::Udp(u)) => Ok(u.local),
            None => Err(io::ErrorKind::NotConnected.into()),
        })?
    }

    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.net(|_, net, _| match net.sock(self.id).map(|s| &s.kind) {
            Some(SockKind::Stream(s)) => Ok(s.peer),
            Some(SockKind::Udp(u)) => u.peer.ok_or_else(|| io::ErrorKind::NotConnected.into()),
            _ => Err(io::ErrorKind::NotConnected.into()),
        })?
    }

    fn accept(
        &self,
        deadline: Option<Instant>,
        nonblocking: bool,
        fd: RawFd,
    ) -> io::Result<(Box<dyn NetSocket>, SocketAddr)> {
        let (id, peer) = self.wait(Direction::Read, deadline, nonblocking, |net| {
            net.accept(self.id)
        })?;
        let conn = SimSocket {
            world: self.world,
            id,
            fd,
        };
        Ok((Box::new(conn), peer))
    }

    fn read(
        &self,
        bufs: &mut [&mut [u8]],
        peek: bool,
        deadline: Option<Instant>,
        nonblocking: bool,
    ) -> io::Result<usize> {
        self.wait(Direction::Read, deadline, nonblocking, |net| {
            net.read(self.id, bufs, peek)
        })
    }

    fn write(&self, bufs: &[&[u8]]) -> io::Result<usize> {
        let bytes: Vec<u8> = bufs.concat();
        check_current(None)?;
        self.net(|w, net, rng| net.write(self.id, bytes, w.elapsed(), rng, &w.cfg))?
    }

    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let (r, wr) = match how {
            Shutdown::Read => (true, false),
            Shutdown::Write => (false, true),
            Shutdown::Both => (true, true),
        };
        self.net(|w, net, rng| net.shutdown(self.id, r, wr, w.elapsed(), rng, &w.cfg))?
    }

    fn readable(&self, deadline: Option<Instant>) -> io::Result<()> {
        self.wait(Direction::Read, deadline, false, |net| {
            net.readable(self.id).then_some(Ok(()))
        })
    }

    fn writable(&self, deadline: Option<Instant>) -> io::Result<()> {
        // Simulated sends never wait.
        check_current(deadline).map_err(Into::into)
    }

    fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        let bytes = buf.to_vec();
        check_current(None)?;
        let (to, to_host) = world().map(|w| resolve_host(&w, to)).ok_or_else(outside)?;
        self.net(|w, net, rng| net.udp_send(self.id, bytes, to, to_host, w.elapsed(), rng, &w.cfg))?
    }

    fn recv_from(
        &self,
        buf: &mut [u8],
        peek: bool,
        deadline: Option<Instant>,
        nonblocking: bool,
        connected: bool,
    ) -> io::Result<(usize, SocketAddr)> {
        if connected && self.udp_peer()?.is_none() {
            return Err(io::ErrorKind::NotConnected.into());
        }
        self.wait(Direction::Read, deadline, nonblocking, |net| {
            net.udp_recv(self.id, buf, peek)
        })
    }

    fn connect_peer(&self, to: SocketAddr) -> io::Result<()> {
        let to = world()
            .map(|w| resolve_host(&w, to).0)
            .ok_or_else(outside)?;
        self.net(|_, net, _| match net.sock(self.id).map(|s| &mut s.kind) {
            Some(SockKind::Udp(u)) => {
                u.peer = Some(to);
                Ok(())
            }
            _ => Err(io::ErrorKind::NotConnected.into()),
        })?
    }
}

/// `to` with a loopback or unspecified address turned into the calling
/// host's, and the host it is on.
fn resolve_host(w: &World, to: SocketAddr) -> (SocketAddr, Option<u32>) {
    let to = if to.ip().is_loopback() || to.ip().is_unspecified() {
        match w.host_ip(w.current_host()) {
            Some(ip) => SocketAddr::new(IpAddr::V4(ip), to.port()),
            None => to,
        }
    } else {
        to
    };
    let host = World::host_of_ip(&w.st.borrow(), to.ip());
    (to, host)
}

/// The simulation's network, as its driver provides it to `corio::net`.
pub(crate) struct SimNetwork(pub(crate) Rc<World>);

impl Network for SimNetwork {
    /// Binds a TCP listener or a UDP socket on the calling task's host.
    fn bind(&self, proto: Proto, addr: SocketAddr, fd: RawFd) -> io::Result<Box<dyn NetSocket>> {
        let w = &*self.0;
        let (host, ip) = here(w)?;
        let proto = match proto {
            Proto::Tcp => SimProto::Tcp,
            Proto::Udp => SimProto::Udp,
        };
        let id = w.st.borrow_mut().net.bind(proto, host, ip, addr)?;
        Ok(Box::new(SimSocket::new(w, id, fd)))
    }

    /// Connects to `to` from the calling task's host, waiting for the
    /// handshake (up to `deadline`).
    fn connect(
        &self,
        to: SocketAddr,
        deadline: Option<Instant>,
        fd: RawFd,
    ) -> io::Result<Box<dyn NetSocket>> {
        let w = &*self.0;
        check_current(deadline)?;
        let (host, ip) = here(w)?;
        let (to, to_host) = resolve_host(w, to);
        let Some(to_host) = to_host else {
            return Err(io::Error::new(
                io::ErrorKind::HostUnreachable,
                format!("no simulated host has the address {}", to.ip()),
            ));
        };
        let now = w.elapsed();
        let id = {
            let st = &mut *w.st.borrow_mut();
            let State { net, rng, .. } = st;
            net.connect(host, ip, to_host, to, now, rng, &w.cfg)?
        };
        let sock = SimSocket::new(w, id, fd);
        sock.wait(Direction::Write, deadline, false, |net| net.connected(id))?;
        Ok(Box::new(sock))
    }

    /// The addresses `host:port` stands for inside a simulation: a
    /// simulated host's name, `localhost` (the calling host), or an IP
    /// literal.
    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        let w = &*self.0;
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        if host == "localhost" {
            let (_, ip) = here(w)?;
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        match w.lookup(host) {
            Some(ip) => Ok(vec![SocketAddr::new(IpAddr::V4(ip), port)]),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no simulated host is named {host:?}"),
            )),
        }
    }
}
