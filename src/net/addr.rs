//! Addresses: [`ToSocketAddrs`], and name resolution that never blocks the
//! scheduler thread.
//!
//! `getaddrinfo` blocks for as long as DNS takes. Inside a task, corio runs
//! it on the blocking pool ([`corio::unblock`](crate::unblock)) and parks
//! the task until the answer comes; IP literals (`"127.0.0.1:80"`, `(Ipv4Addr, u16)`, …) are
//! parsed in place and never leave the thread. Outside a runtime the lookup
//! simply blocks the calling thread, like std.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Something that can be turned into socket addresses: corio's version of
/// [`std::net::ToSocketAddrs`], implemented for the same types.
///
/// Host names are resolved on a thread pool while the calling task is
/// suspended (its state in [`corio::tasks`](crate::tasks) is
/// `Waiting(Blocking)`), so a slow DNS server never stalls the other tasks;
/// IP literals are parsed without any lookup.
///
/// # Differences from std
///
/// The trait is sealed: it cannot be implemented outside corio, and it has
/// no public method. Use [`lookup_host`] to resolve a name yourself.
///
/// # Examples
///
/// ```
/// use std::net::{Ipv4Addr, SocketAddr};
///
/// corio::run(|| -> std::io::Result<()> {
///     let a: Vec<SocketAddr> = corio::net::lookup_host("127.0.0.1:80")?.collect();
///     let b: Vec<SocketAddr> = corio::net::lookup_host((Ipv4Addr::LOCALHOST, 80))?.collect();
///     assert_eq!(a, b);
///     Ok(())
/// })
/// .unwrap();
/// ```
pub trait ToSocketAddrs: sealed::Sealed {}

pub(crate) mod sealed {
    use std::io;
    use std::net::SocketAddr;

    /// What a [`ToSocketAddrs`](super::ToSocketAddrs) value needs.
    #[derive(Debug)]
    pub enum Resolve {
        /// Parsed without a lookup.
        Ready(io::Result<Vec<SocketAddr>>),
        /// `"host:port"`, for `getaddrinfo`.
        Lookup(String),
        /// `(host, port)`, for `getaddrinfo`.
        LookupPort(String, u16),
    }

    /// The method behind [`ToSocketAddrs`](super::ToSocketAddrs).
    pub trait Sealed {
        /// The addresses, or the lookup to make.
        fn to_resolve(&self) -> Resolve;
    }
}

use sealed::{Resolve, Sealed};

macro_rules! literal {
    ($($t:ty),*) => {$(
        impl Sealed for $t {
            fn to_resolve(&self) -> Resolve {
                Resolve::Ready(std::net::ToSocketAddrs::to_socket_addrs(self).map(Iterator::collect))
            }
        }
        impl ToSocketAddrs for $t {}
    )*};
}

literal!(
    SocketAddr,
    SocketAddrV4,
    SocketAddrV6,
    (IpAddr, u16),
    (Ipv4Addr, u16),
    (Ipv6Addr, u16)
);

impl Sealed for [SocketAddr] {
    fn to_resolve(&self) -> Resolve {
        Resolve::Ready(Ok(self.to_vec()))
    }
}
impl ToSocketAddrs for [SocketAddr] {}

impl Sealed for str {
    fn to_resolve(&self) -> Resolve {
        match self.parse::<SocketAddr>() {
            Ok(a) => Resolve::Ready(Ok(vec![a])),
            Err(_) => Resolve::Lookup(self.to_owned()),
        }
    }
}
impl ToSocketAddrs for str {}

impl Sealed for String {
    fn to_resolve(&self) -> Resolve {
        self.as_str().to_resolve()
    }
}
impl ToSocketAddrs for String {}

impl Sealed for (&str, u16) {
    fn to_resolve(&self) -> Resolve {
        match self.0.parse::<IpAddr>() {
            Ok(ip) => Resolve::Ready(Ok(vec![SocketAddr::new(ip, self.1)])),
            Err(_) => Resolve::LookupPort(self.0.to_owned(), self.1),
        }
    }
}
impl ToSocketAddrs for (&str, u16) {}

impl Sealed for (String, u16) {
    fn to_resolve(&self) -> Resolve {
        (self.0.as_str(), self.1).to_resolve()
    }
}
impl ToSocketAddrs for (String, u16) {}

impl<T: Sealed + ?Sized> Sealed for &T {
    fn to_resolve(&self) -> Resolve {
        (**self).to_resolve()
    }
}
impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {}

/// Resolves `host` to socket addresses without blocking the scheduler
/// thread: a host name is looked up on a thread pool while the task is
/// suspended; an IP literal is parsed in place.
///
/// Like `std::net::ToSocketAddrs::to_socket_addrs`, a string must carry a
/// port (`"example.com:80"`), or be given as `(host, port)`.
///
/// # Errors
///
/// What `getaddrinfo` reports (unknown host, no network), an
/// `InvalidInput` error for a string without a port, or a cancellation or
/// `timeout` of the calling task.
///
/// # Examples
///
/// ```
/// corio::run(|| {
///     let addrs: Vec<_> = corio::net::lookup_host(("localhost", 8080)).unwrap().collect();
///     assert!(addrs.iter().all(|a| a.port() == 8080 && a.ip().is_loopback()));
/// });
/// ```
pub fn lookup_host<A: ToSocketAddrs>(host: A) -> io::Result<std::vec::IntoIter<SocketAddr>> {
    resolve(&host).map(Vec::into_iter)
}

/// The addresses `addr` stands for (see [`lookup_host`]).
pub(crate) fn resolve<A: ToSocketAddrs + ?Sized>(addr: &A) -> io::Result<Vec<SocketAddr>> {
    fn lookup(r: Resolve) -> io::Result<Vec<SocketAddr>> {
        use std::net::ToSocketAddrs as _;
        match r {
            Resolve::Ready(r) => r,
            Resolve::Lookup(s) => s.to_socket_addrs().map(Iterator::collect),
            Resolve::LookupPort(h, p) => (h.as_str(), p).to_socket_addrs().map(Iterator::collect),
        }
    }
    match addr.to_resolve() {
        Resolve::Ready(r) => r,
        lookup_needed => match super::provided::network() {
            // On a network the runtime's driver provides (a simulation's),
            // names are that network's.
            Some(net) => {
                let (host, port) = match lookup_needed {
                    Resolve::LookupPort(h, p) => (h, p),
                    Resolve::Lookup(s) => {
                        let invalid = || {
                            io::Error::new(io::ErrorKind::InvalidInput, "invalid socket address")
                        };
                        let (h, p) = s.rsplit_once(':').ok_or_else(invalid)?;
                        (h.to_owned(), p.parse().map_err(|_| invalid())?)
                    }
                    Resolve::Ready(r) => return r,
                };
                net.resolve(&host, port)
            }
            // On the blocking pool in a task (a cancellation or an expired
            // `timeout` stops the wait); outside a task, blocking the
            // thread is what the caller asked for.
            None => crate::pool::unblock_io(move || lookup(lookup_needed)),
        },
    }
}

/// Tries `f` on each address `addr` stands for, returning the first success
/// or the last error, as std does for `connect` and `bind`.
pub(crate) fn each_addr<A: ToSocketAddrs + ?Sized, T>(
    addr: &A,
    mut f: impl FnMut(&SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for a in resolve(addr)? {
        match f(&a) {
            Ok(v) => return Ok(v),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any addresses",
        )
    }))
}
