//! The simulated network: sockets as in-memory state, packets as events on
//! the virtual clock. TCP is a handshake, sequenced segments (so any
//! latency, hold or reordering still delivers a byte stream in order),
//! FIN and RST; datagrams are delivered once, late, out of order or not at
//! all. No flow control: sends never wait (buffers are unbounded).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::task::Waker;
use std::time::Duration;

use super::config::Config;
use super::rng::Rng;

mod udp;

/// What a bound address belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Proto {
    Tcp,
    Udp,
}

#[derive(Debug)]
struct Packet {
    from: u32,
    to: u32,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Syn {
        client: u64,
        from: SocketAddr,
        to: SocketAddr,
    },
    SynAck {
        client: u64,
        server: u64,
    },
    Refused {
        client: u64,
    },
    /// `bytes: None` is a FIN.
    Segment {
        to: u64,
        from: u64,
        seq: u64,
        bytes: Option<Vec<u8>>,
    },
    Rst {
        to: u64,
    },
    Dgram {
        from: SocketAddr,
        to: SocketAddr,
        bytes: Vec<u8>,
    },
}

impl Kind {
    /// A code and a number for the trace.
    fn trace(&self) -> (u64, u64) {
        match self {
            Kind::Syn { client, .. } => (1, *client),
            Kind::SynAck { client, .. } => (2, *client),
            Kind::Refused { client } => (3, *client),
            Kind::Segment { to, bytes, .. } => (
                4,
                *to << 20 | bytes.as_ref().map_or(0xfffff, |b| b.len() as u64 & 0xfffff),
            ),
            Kind::Rst { to } => (5, *to),
            Kind::Dgram { to, bytes, .. } => (6, u64::from(to.port()) << 32 | bytes.len() as u64),
        }
    }
}

pub(crate) struct Stream {
    pub(crate) host: u32,
    pub(crate) local: SocketAddr,
    pub(crate) peer: SocketAddr,
    peer_id: Option<u64>,
    connecting: bool,
    refused: bool,
    rx: VecDeque<u8>,
    eof: bool,
    reset: bool,
    rd_shut: bool,
    wr_shut: bool,
    send_seq: u64,
    recv_seq: u64,
    ooo: BTreeMap<u64, Option<Vec<u8>>>,
}

pub(crate) struct Listener {
    pub(crate) local: SocketAddr,
    backlog: VecDeque<u64>,
}

pub(crate) struct Udp {
    pub(crate) host: u32,
    pub(crate) local: SocketAddr,
    pub(crate) peer: Option<SocketAddr>,
    rx: VecDeque<(Vec<u8>, SocketAddr)>,
}

pub(crate) enum SockKind {
    Stream(Stream),
    Listener(Listener),
    Udp(Udp),
}

pub(crate) struct Sock {
    pub(crate) kind: SockKind,
    host: u32,
    /// The tasks waiting on the socket, woken by any change to it: they
    /// try again (`corio::sim`'s `net` makes and keeps these wakers).
    waiters: Vec<Waker>,
}

/// The network's state.
#[derive(Default)]
pub(crate) struct Net {
    socks: BTreeMap<u64, Sock>,
    next_id: u64,
    bound: BTreeMap<(Proto, SocketAddr), u64>,
    next_port: BTreeMap<u32, u16>,
    events: BTreeMap<(Duration, u64), Packet>,
    seq: u64,
    cut: BTreeSet<(u32, u32)>,
    held: Vec<Packet>,
}

fn pair(a: u32, b: u32) -> (u32, u32) {
    (a.min(b), a.max(b))
}

fn not_connected() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "socket is not connected")
}

/// What an operation on a socket found: done, or wait and retry.
pub(crate) type Attempt<R> = Option<io::Result<R>>;

impl Net {
    /// When the next packet arrives.
    pub(crate) fn next_time(&self) -> Option<Duration> {
        self.events.first_key_value().map(|((t, _), _)| *t)
    }

    fn send(&mut self, now: Duration, rng: &mut Rng, cfg: &Config, p: Packet) {
        let at = now + rng.duration(&cfg.latency);
        self.seq += 1;
        self.events.insert((at, self.seq), p);
    }

    /// Sends a reset from host `from` to connection `conn` on host `to`.
    fn send_rst(
        &mut self,
        now: Duration,
        rng: &mut Rng,
        cfg: &Config,
        from: u32,
        to: u32,
        conn: u64,
    ) {
        let kind = Kind::Rst { to: conn };
        self.send(now, rng, cfg, Packet { from, to, kind });
    }

    pub(crate) fn sock(&mut self, id: u64) -> Option<&mut Sock> {
        self.socks.get_mut(&id)
    }

    pub(crate) fn add_waiter(&mut self, id: u64, w: Waker) {
        if let Some(s) = self.socks.get_mut(&id) {
            s.waiters.push(w);
        }
    }

    fn insert(&mut self, host: u32, kind: SockKind) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        self.socks.insert(
            id,
            Sock {
                kind,
                host,
                waiters: Vec::new(),
            },
        );
        id
    }

    fn ephemeral(&mut self, proto: Proto, ip: IpAddr, host: u32) -> io::Result<u16> {
        let next = self.next_port.entry(host).or_insert(49152);
        for _ in 0..16384 {
            let p = *next;
            *next = if p == u16::MAX { 49152 } else { p + 1 };
            if !self.bound.contains_key(&(proto, SocketAddr::new(ip, p))) {
                return Ok(p);
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "no ephemeral port left on the simulated host",
        ))
    }

    /// Binds `addr` (an unspecified, loopback or the host's own address)
    /// on host `host` whose address is `ip`.
    pub(crate) fn bind(
        &mut self,
        proto: Proto,
        host: u32,
        ip: IpAddr,
        addr: SocketAddr,
    ) -> io::Result<u64> {
        if !(addr.ip().is_unspecified() || addr.ip().is_loopback() || addr.ip() == ip) {
            return Err(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                format!(
                    "{} is not an address of this simulated host ({ip})",
                    addr.ip()
                ),
            ));
        }
        let port = match addr.port() {
            0 => self.ephemeral(proto, ip, host)?,
            p => p,
        };
        let local = SocketAddr::new(ip, port);
        if self.bound.contains_key(&(proto, local)) {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{local} is in use on the simulated host"),
            ));
        }
        let kind = match proto {
            Proto::Tcp => SockKind::Listener(Listener {
                local,
                backlog: VecDeque::new(),
            }),
            Proto::Udp => SockKind::Udp(Udp {
                host,
                local,
                peer: None,
                rx: VecDeque::new(),
            }),
        };
        let id = self.insert(host, kind);
        self.bound.insert((proto, local), id);
        Ok(id)
    }

    /// Starts a connection from host `host` (address `ip`) to `to`, which
    /// is on host `to_host`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn connect(
        &mut self,
        host: u32,
        ip: IpAddr,
        to_host: u32,
        to: SocketAddr,
        now: Duration,
        rng: &mut Rng,
        cfg: &Config,
    ) -> io::Result<u64> {
        let port = self.ephemeral(Proto::Tcp, ip, host)?;
        let local = SocketAddr::new(ip, port);
        let id = self.insert(
            host,
            SockKind::Stream(Stream {
                host,
                local,
                peer: to,
                peer_id: None,
                connecting: true,
                refused: false,
                rx: VecDeque::new(),
                eof: false,
                reset: false,
                rd_shut: false,
                wr_shut: false,
                send_seq: 0,
                recv_seq: 0,
                ooo: BTreeMap::new(),
            }),
        );
        // The port stays taken while the connection lives.
        self.bound.insert((Proto::Tcp, local), id);
        self.send(
            now,
            rng,
            cfg,
            Packet {
                from: host,
                to: to_host,
                kind: Kind::Syn {
                    client: id,
                    from: local,
                    to,
                },
            },
        );
        Ok(id)
    }

    /// The outcome of a connection attempt, once known.
    pub(crate) fn connected(&mut self, id: u64) -> Attempt<()> {
        let Some(SockKind::Stream(s)) = self.sock(id).map(|s| &mut s.kind) else {
            return Some(Err(not_connected()));
        };
        if s.refused {
            Some(Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("connection refused by simulated {}", s.peer),
            )))
        } else if s.reset {
            Some(Err(io::ErrorKind::ConnectionReset.into()))
        } else if s.connecting {
            None
        } else {
            Some(Ok(()))
        }
    }

    pub(crate) fn accept(&mut self, id: u64) -> Attempt<(u64, SocketAddr)> {
        let Some(SockKind::Listener(l)) = self.sock(id).map(|s| &mut s.kind) else {
            return Some(Err(not_connected()));
        };
        let conn = l.backlog.pop_front()?;
        let peer = match self.sock(conn).map(|s| &s.kind) {
            Some(SockKind::Stream(s)) => s.peer,
            _ => return Some(Err(io::ErrorKind::ConnectionAborted.into())),
        };
        Some(Ok((conn, peer)))
    }

    pub(crate) fn read(&mut self, id: u64, bufs: &mut [&mut [u8]], peek: bool) -> Attempt<usize> {
        let Some(SockKind::Stream(s)) = self.sock(id).map(|s| &mut s.kind) else {
            return Some(Err(not_connected()));
        };
        let want: usize = bufs.iter().map(|b| b.len()).sum();
        if want == 0 || s.rd_shut {
            return Some(Ok(0));
        }
        if !s.rx.is_empty() {
            let mut n = 0;
            for b in bufs.iter_mut() {
                let k = b.len().min(s.rx.len() - n);
                for (i, byte) in s.rx.range(n..n + k).enumerate() {
                    b[i] = *byte;
                }
                n += k;
                if n == s.rx.len() {
                    break;
                }
            }
            if !peek {
                s.rx.drain(..n);
            }
            return Some(Ok(n));
        }
        if s.reset {
            return Some(Err(io::ErrorKind::ConnectionReset.into()));
        }
        if s.eof {
            return Some(Ok(0));
        }
        if s.connecting {
            return Some(Err(not_connected()));
        }
        None
    }

    /// Readiness for the readiness API: `true` once a read would not wait.
    pub(crate) fn readable(&mut self, id: u64) -> bool {
        match self.sock(id).map(|s| &s.kind) {
            Some(SockKind::Stream(s)) => !s.rx.is_empty() || s.reset || s.eof || s.rd_shut,
            Some(SockKind::Listener(l)) => !l.backlog.is_empty(),
            Some(SockKind::Udp(u)) => !u.rx.is_empty(),
            None => true,
        }
    }

    pub(crate) fn write(
        &mut self,
        id: u64,
        bytes: Vec<u8>,
        now: Duration,
        rng: &mut Rng,
        cfg: &Config,
    ) -> io::Result<usize> {
        let Some(SockKind::Stream(s)) = self.sock(id).map(|s| &mut s.kind) else {
            return Err(not_connected());
        };
        if s.reset {
            return Err(io::ErrorKind::ConnectionReset.into());
        }
        if s.wr_shut {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let Some(peer) = s.peer_id else {
            return Err(not_connected());
        };
        let n = bytes.len();
        if n == 0 {
            return Ok(0);
        }
        let (host, peer_host) = (s.host, self.host_of(peer));
        let s = match self.sock(id).map(|s| &mut s.kind) {
            Some(SockKind::Stream(s)) => s,
            _ => unreachable!(),
        };
        if rng.chance(cfg.reset) {
            // The fault knob: this segment resets the connection instead.
            s.reset = true;
            self.send_rst(now, rng, cfg, host, peer_host, peer);
            return Ok(n);
        }
        s.send_seq += 1;
        let seq = s.send_seq;
        self.send(
            now,
            rng,
            cfg,
            Packet {
                from: host,
                to: peer_host,
                kind: Kind::Segment {
                    to: peer,
                    from: id,
                    seq,
                    bytes: Some(bytes),
                },
            },
        );
        Ok(n)
    }

    fn host_of(&self, id: u64) -> u32 {
        self.socks.get(&id).map_or(u32::MAX, |s| s.host)
    }

    /// Half-closes: `write` sends a FIN, `read` discards what comes.
    pub(crate) fn shutdown(
        &mut self,
        id: u64,
        read: bool,
        write: bool,
        now: Duration,
        rng: &mut Rng,
        cfg: &Config,
    ) -> io::Result<()> {
        let Some(SockKind::Stream(s)) = self.sock(id).map(|s| &mut s.kind) else {
            return Err(not_connected());
        };
        let Some(peer) = s.peer_id else {
            return Err(not_connected());
        };
        if read {
            s.rd_shut = true;
            s.rx.clear();
        }
        if write && !s.wr_shut && !s.reset {
            s.wr_shut = true;
            s.send_seq += 1;
            let (seq, host) = (s.send_seq, s.host);
            let to = self.host_of(peer);
            self.send(
                now,
                rng,
                cfg,
                Packet {
                    from: host,
                    to,
                    kind: Kind::Segment {
                        to: peer,
                        from: id,
                        seq,
                        bytes: None,
                    },
                },
            );
        }
        Ok(())
    }

    /// Closes socket `id` (its handle was dropped): a connection sends a
    /// FIN; a listener resets what it had not accepted.
    pub(crate) fn close(&mut self, id: u64, now: Duration, rng: &mut Rng, cfg: &Config) {
        let Some(sock) = self.socks.remove(&id) else {
            return;
        };
        match sock.kind {
            SockKind::Stream(s) => {
                self.unbind(Proto::Tcp, s.local, id);
                if let Some(peer) = s.peer_id
                    && !s.reset
                {
                    let to = self.host_of(peer);
                    let kind = if s.rx.is_empty() && !s.wr_shut {
                        Kind::Segment {
                            to: peer,
                            from: id,
                            seq: s.send_seq + 1,
                            bytes: None,
                        }
                    } else if s.rx.is_empty() {
                        return;
                    } else {
                        // Unread data: a close resets, as a real stack does.
                        Kind::Rst { to: peer }
                    };
                    self.send(
                        now,
                        rng,
                        cfg,
                        Packet {
                            from: s.host,
                            to,
                            kind,
                        },
                    );
                }
            }
            SockKind::Listener(l) => {
                self.unbind(Proto::Tcp, l.local, id);
                for conn in l.backlog {
                    self.abort(conn, now, rng, cfg);
                }
            }
            SockKind::Udp(u) => self.unbind(Proto::Udp, u.local, id),
        }
    }

    /// Drops connection `id` and resets its peer.
    fn abort(&mut self, id: u64, now: Duration, rng: &mut Rng, cfg: &Config) {
        if let Some(Sock {
            kind: SockKind::Stream(s),
            ..
        }) = self.socks.remove(&id)
        {
            self.unbind(Proto::Tcp, s.local, id);
            if let Some(peer) = s.peer_id
                && !s.reset
            {
                let to = self.host_of(peer);
                self.send_rst(now, rng, cfg, s.host, to, peer);
            }
        }
    }

    fn unbind(&mut self, proto: Proto, addr: SocketAddr, id: u64) {
        if self.bound.get(&(proto, addr)) == Some(&id) {
            self.bound.remove(&(proto, addr));
        }
    }

    /// Host `h` crashed: its sockets vanish, its connections' peers are
    /// reset.
    pub(crate) fn crash_host(&mut self, h: u32, now: Duration, rng: &mut Rng, cfg: &Config) {
        let ids: Vec<u64> = self
            .socks
            .iter()
            .filter(|(_, s)| s.host == h)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            match self.socks.get(&id).map(|s| &s.kind) {
                Some(SockKind::Stream(_)) => self.abort(id, now, rng, cfg),
                _ => self.close(id, now, rng, cfg),
            }
        }
    }

    pub(crate) fn partition(&mut self, a: u32, b: u32) {
        self.cut.insert(pair(a, b));
    }

    pub(crate) fn repair(&mut self, a: u32, b: u32, now: Duration, rng: &mut Rng, cfg: &Config) {
        let p = pair(a, b);
        self.cut.remove(&p);
        let (go, keep): (Vec<Packet>, Vec<Packet>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|k| pair(k.from, k.to) == p);
        self.held = keep;
        for packet in go {
            self.send(now, rng, cfg, packet);
        }
    }

    /// Delivers the first packet due at `now`; `None` if none is. Returns
    /// the waiters to wake; `trace` records what was delivered (or held).
    pub(crate) fn deliver_next(
        &mut self,
        now: Duration,
        rng: &mut Rng,
        cfg: &Config,
        alive: &[bool],
        mut trace: impl FnMut(u64, u64),
    ) -> Option<Vec<Waker>> {
        let entry = self.events.first_entry()?;
        if entry.key().0 > now {
            return None;
        }
        let p = entry.remove();
        let (code, n) = p.kind.trace();
        if self.cut.contains(&pair(p.from, p.to)) {
            trace(100 + code, n);
            if !matches!(p.kind, Kind::Dgram { .. }) {
                self.held.push(p);
            }
            return Some(Vec::new());
        }
        trace(code, n);
        let to_alive = alive.get(p.to as usize).copied().unwrap_or(false);
        let mut woken = Vec::new();
        match p.kind {
            Kind::Syn { client, from, to } => {
                let listener = self
                    .bound
                    .get(&(Proto::Tcp, to))
                    .copied()
                    .filter(|_| to_alive)
                    .filter(|l| {
                        matches!(
                            self.socks.get(l).map(|s| &s.kind),
                            Some(SockKind::Listener(_))
                        )
                    });
                let reply = match listener {
                    None => Kind::Refused { client },
                    Some(l) => {
                        let server = self.insert(
                            p.to,
                            SockKind::Stream(Stream {
                                host: p.to,
                                local: to,
                                peer: from,
                                peer_id: Some(client),
                                connecting: false,
                                refused: false,
                                rx: VecDeque::new(),
                                eof: false,
                                reset: false,
                                rd_shut: false,
                                wr_shut: false,
                                send_seq: 0,
                                recv_seq: 0,
                                ooo: BTreeMap::new(),
                            }),
                        );
                        let sock = self.socks.get_mut(&l).expect("checked above");
                        if let SockKind::Listener(l) = &mut sock.kind {
                            l.backlog.push_back(server);
                        }
                        woken.append(&mut sock.waiters);
                        Kind::SynAck { client, server }
                    }
                };
                self.send(
                    now,
                    rng,
                    cfg,
                    Packet {
                        from: p.to,
                        to: p.from,
                        kind: reply,
                    },
                );
            }
            Kind::SynAck { client, server } => match self.socks.get_mut(&client) {
                Some(Sock {
                    kind: SockKind::Stream(s),
                    waiters,
                    ..
                }) if s.connecting => {
                    s.connecting = false;
                    s.peer_id = Some(server);
                    woken.append(waiters);
                }
                _ => self.send_rst(now, rng, cfg, p.to, p.from, server),
            },
            Kind::Refused { client } => {
                if let Some(Sock {
                    kind: SockKind::Stream(s),
                    waiters,
                    ..
                }) = self.socks.get_mut(&client)
                {
                    s.connecting = false;
                    s.refused = true;
                    woken.append(waiters);
                }
            }
            Kind::Segment {
                to,
                from,
                seq,
                bytes,
            } => match self.socks.get_mut(&to) {
                Some(Sock {
                    kind: SockKind::Stream(s),
                    waiters,
                    ..
                }) => {
                    s.ooo.insert(seq, bytes);
                    while let Some(b) = s.ooo.remove(&(s.recv_seq + 1)) {
                        s.recv_seq += 1;
                        match b {
                            Some(b) if !s.rd_shut => s.rx.extend(b),
                            Some(_) => {}
                            None => s.eof = true,
                        }
                    }
                    woken.append(waiters);
                }
                _ => {
                    if bytes.is_some() {
                        // Data for a closed socket: reset the sender.
                        self.send_rst(now, rng, cfg, p.to, p.from, from);
                    }
                }
            },
            Kind::Rst { to } => {
                if let Some(Sock {
                    kind: SockKind::Stream(s),
                    waiters,
                    ..
                }) = self.socks.get_mut(&to)
                {
                    s.reset = true;
                    s.connecting = false;
                    woken.append(waiters);
                }
            }
            Kind::Dgram { from, to, bytes } => {
                if to_alive
                    && let Some(id) = self.bound.get(&(Proto::Udp, to)).copied()
                    && let Some(Sock {
                        kind: SockKind::Udp(u),
                        waiters,
                        ..
                    }) = self.socks.get_mut(&id)
                {
                    u.rx.push_back((bytes, from));
                    woken.append(waiters);
                }
            }
        }
        Some(woken)
    }
}
