//! [ureq](https://docs.rs/ureq) 3, the blocking HTTP client, over corio
//! sockets: requests made inside a task suspend the task, not the thread.
//!
//! ureq's own agent opens a `std::net::TcpStream` and resolves names with a
//! blocking `getaddrinfo`, so one slow request would stall every task of the
//! runtime. ureq lets an agent be built from parts, though
//! ([`Agent::with_parts`]), and [`agent`] puts corio in the two parts that
//! wait on the network:
//!
//! * [`TcpConnector`] opens a [`corio::net::TcpStream`](crate::net::TcpStream)
//!   (connect timeout from ureq's config) and wraps it in a [`TcpTransport`];
//! * [`HostResolver`] resolves host names with
//!   [`corio::net::lookup_host`](crate::net::lookup_host), on corio's
//!   blocking pool while the task waits.
//!
//! Everything above them is ureq's own: TLS through ureq's rustls (ring),
//! redirects, chunked and compressed bodies, CONNECT proxies, connection
//! pooling, timeouts. SOCKS proxies are not available (ureq's SOCKS
//! connector opens std sockets): a manually configured one is an error, one
//! from the environment is ignored, as in ureq without its `socks-proxy`
//! feature.
//!
//! One agent may be shared by many tasks (it is `Clone + Send + Sync`, its
//! clones share the connection pool), and by tasks of several runtimes: a
//! pooled connection is only reused by the runtime that opened it. Outside
//! a runtime the agent blocks the calling thread, like ureq's.
//!
//! # Examples
//!
//! ```no_run
//! corio::run(|| {
//!     let agent = corio::compat::ureq::agent();
//!     let pages: Vec<_> = ["http://example.com/", "https://example.org/"]
//!         .into_iter()
//!         .map(|url| {
//!             let agent = agent.clone();
//!             corio::spawn(move || -> Result<String, ureq::Error> {
//!                 agent.get(url).call()?.body_mut().read_to_string()
//!             })
//!         })
//!         .collect();
//!     for page in pages {
//!         println!("{} bytes", page.join().unwrap().unwrap().len());
//!     }
//! });
//! ```

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::{Arc, Weak};

use ::ureq::config::Config;
use ::ureq::http::Uri;
use ::ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ::ureq::unversioned::transport::{
    Buffers, ConnectProxyConnector, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout,
    RustlsConnector, ShutdownHandle, Transport,
};
use ::ureq::{Agent, Error, ProxyProtocol};

use crate::net::TcpStream;

/// An agent with ureq's default configuration whose sockets and name
/// lookups suspend the calling task. Same as
/// `agent_with(Config::default())`.
pub fn agent() -> Agent {
    agent_with(Config::default())
}

/// An agent with `config` whose sockets and name lookups suspend the
/// calling task: ureq's CONNECT-proxy connector, then [`TcpConnector`], then
/// ureq's rustls connector, with [`HostResolver`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let config = ureq::Agent::config_builder()
///     .timeout_global(Some(Duration::from_secs(10)))
///     .build();
/// let agent = corio::compat::ureq::agent_with(config);
/// # drop(agent);
/// ```
pub fn agent_with(config: Config) -> Agent {
    let connector =
        ().chain(ConnectProxyConnector::default())
            .chain(TcpConnector::default())
            .chain(RustlsConnector::default());
    Agent::with_parts(config, connector, HostResolver::default())
}

/// Runs the IO `f` within `timeout`: corio's [`timeout`](crate::time::timeout)
/// scope makes every wait in `f` fail once the budget is spent, which is
/// ureq's meaning of a [`NextTimeout`] (a budget for the whole operation,
/// not for each syscall).
fn within<T>(timeout: NextTimeout, f: impl FnOnce() -> io::Result<T>) -> Result<T, Error> {
    if timeout.after.is_zero() {
        return Err(Error::Timeout(timeout.reason));
    }
    let result = match timeout.not_zero() {
        None => f(),
        Some(budget) => match crate::time::timeout(*budget, f) {
            Ok(result) => result,
            Err(_elapsed) => return Err(Error::Timeout(timeout.reason)),
        },
    };
    result.map_err(|e| match e.kind() {
        io::ErrorKind::TimedOut => Error::Timeout(timeout.reason),
        _ => Error::Io(e),
    })
}

/// The runtime the caller runs in (its address, as an identity), `None`
/// outside a runtime; `Err` if the caller is cancelled or past a deadline.
fn current_runtime() -> Result<Option<usize>, ()> {
    crate::task::park::check_current_runtime(None)
        .map(|rt| rt.map(|p| p as usize))
        .map_err(drop)
}

/// The [`Connector`] that opens a [`corio::net::TcpStream`](crate::net::TcpStream)
/// to the resolved addresses, in place of ureq's `TcpConnector`.
///
/// Addresses are tried in turn, sharing the connect timeout between them
/// as ureq does (half of it for the first, a quarter for the second, …).
/// A transport handed in by an earlier connector of the chain (a CONNECT
/// proxy's) is passed on untouched.
#[derive(Debug, Default)]
pub struct TcpConnector(());

impl<In: Transport> Connector<In> for TcpConnector {
    type Out = Either<In, TcpTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, Error> {
        if let Some(transport) = chained {
            return Ok(Some(Either::A(transport)));
        }
        let config = details.config;
        if let Some(proxy) = config.proxy() {
            let socks = !matches!(proxy.protocol(), ProxyProtocol::Http | ProxyProtocol::Https);
            if socks && !proxy.is_from_env() && !proxy.is_no_proxy(details.uri) {
                return Err(Error::Io(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "corio::compat::ureq has no SOCKS connector (ureq's opens std sockets)",
                )));
            }
        }
        let home = current_runtime().map_err(|()| {
            Error::Io(io::Error::new(
                io::ErrorKind::Interrupted,
                "the task was cancelled or its deadline passed",
            ))
        })?;
        let stream = connect_any(&details.addrs, details.timeout)?;
        if config.no_delay() {
            stream.set_nodelay(true)?;
        }
        let buffers = LazyBuffers::new(config.input_buffer_size(), config.output_buffer_size());
        let transport = TcpTransport {
            stream: Arc::new(SharedStream(stream)),
            buffers,
            home,
        };
        (details.register_shutdown)(Arc::downgrade(&transport.stream) as Weak<dyn ShutdownHandle>)?;
        Ok(Some(Either::B(transport)))
    }
}

/// Connects to the first of `addrs` that accepts, within `timeout` in all.
fn connect_any(addrs: &[SocketAddr], timeout: NextTimeout) -> Result<TcpStream, Error> {
    // Weights 1, 1/2, 1/4, … of a total that sums to the whole budget, so a
    // dead first address cannot eat all of it.
    let total_weight = 2.0 * (1.0 - 0.5_f64.powi(addrs.len() as i32));
    let mut weight = 1.0_f64;
    let mut last = None;
    for addr in addrs {
        let attempt = match timeout.not_zero() {
            None => TcpStream::connect(addr),
            Some(budget) => {
                let share = budget.as_secs_f64() * weight / total_weight;
                let share = std::time::Duration::from_secs_f64(share)
                    .max(std::time::Duration::from_millis(10));
                TcpStream::connect_timeout(addr, share)
            }
        };
        match attempt {
            Ok(stream) => return Ok(stream),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                last = Some(Error::Timeout(timeout.reason))
            }
            Err(e) if address_specific(&e) => last = Some(Error::Io(e)),
            Err(e) => return Err(Error::Io(e)),
        }
        weight /= 2.0;
    }
    Err(last.unwrap_or_else(|| {
        Error::Io(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            "no address to connect to",
        ))
    }))
}

/// Errors after which the next address may still work.
fn address_specific(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::NetworkDown
            | io::ErrorKind::AddrNotAvailable
    )
}

/// The socket, shared with the agent's shutdown handle.
struct SharedStream(TcpStream);

impl ShutdownHandle for SharedStream {
    fn shutdown(&self) {
        // The reactor reports the shutdown to a task waiting on the socket,
        // whose read then ends; an error means it is closed already.
        let _ = self.0.shutdown(Shutdown::Both);
    }
}

/// The [`Transport`] over a [`corio::net::TcpStream`](crate::net::TcpStream)
/// made by [`TcpConnector`]: reads and writes suspend the task, with ureq's
/// timeouts as corio [`timeout`](crate::time::timeout) scopes.
pub struct TcpTransport {
    stream: Arc<SharedStream>,
    buffers: LazyBuffers,
    /// The runtime that opened the socket: a registered socket only works
    /// there, so the pool must not hand it to another one.
    home: Option<usize>,
}

impl fmt::Debug for TcpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpTransport")
            .field("peer", &self.stream.0.peer_addr().ok())
            .finish_non_exhaustive()
    }
}

impl Transport for TcpTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), Error> {
        let mut stream = &self.stream.0;
        let output = &self.buffers.output()[..amount];
        within(timeout.for_write(), || stream.write_all(output))
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        let mut stream = &self.stream.0;
        let input = self.buffers.input_append_buf();
        let n = within(timeout.for_read(), || {
            loop {
                match stream.read(input) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    result => return result,
                }
            }
        })?;
        self.buffers.input_appended(n);
        Ok(n > 0)
    }

    fn is_open(&mut self) -> bool {
        // Called under the pool's lock: must not wait, and does not.
        if current_runtime() != Ok(self.home) {
            return false;
        }
        let mut probe = [0u8];
        // An idle connection has nothing to read: a byte is garbage the
        // server sent unasked, end-of-file or an error mean it is gone.
        matches!(self.stream.0.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

/// The [`Resolver`] that looks host names up with
/// [`corio::net::lookup_host`](crate::net::lookup_host): on corio's
/// blocking pool while the task waits (an IP literal is parsed in place),
/// within ureq's resolve timeout, keeping the addresses of the configured
/// IP family.
#[derive(Debug, Default)]
pub struct HostResolver(());

impl Resolver for HostResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, Error> {
        let scheme = uri
            .scheme_str()
            .ok_or_else(|| Error::BadUri(format!("{uri} is missing scheme")))?;
        let default_port = match scheme {
            "http" => 80,
            "https" => 443,
            "socks4" | "socks4a" | "socks5" | "socks5h" => 1080,
            _ => return Err(Error::BadUri(format!("unknown scheme: {scheme}"))),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| Error::BadUri(format!("{uri} is missing host")))?;
        let port = authority.port_u16().unwrap_or(default_port);
        // `Authority::host` keeps an IPv6 literal's brackets.
        let host = authority.host();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let found = within(timeout, || crate::net::lookup_host((host, port)))?;
        let mut addrs = self.empty();
        for addr in config.ip_family().keep_wanted(found) {
            if addrs.try_push(addr).is_err() {
                break;
            }
        }
        if addrs.is_empty() {
            Err(Error::HostNotFound)
        } else {
            Ok(addrs)
        }
    }
}
