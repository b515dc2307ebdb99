//! What the servers among the examples share to use every core: the
//! `--workers N` default, and one listening socket per worker.

use std::io;

use corio::net::{TcpListener, TcpSocket};

/// The default of `--workers`: every core the process may use.
pub fn all_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Parses the value of `--workers` (at least 1).
pub fn parse_workers(value: &str) -> Option<usize> {
    value.parse().ok().filter(|&n| n > 0)
}

/// `n` sockets listening on `addr`, one per worker, with `SO_REUSEPORT`:
/// the kernel spreads new connections over them by a hash of the
/// connection's addresses. (Measured on 2 cores, this balanced within 1.5%,
/// where one listener watched by every worker's epoll with
/// `EPOLLEXCLUSIVE` went up to 69/31; see docs/performance.md.) Port 0
/// picks a free port for the first; the others join it.
pub fn listeners(addr: &str, n: usize) -> io::Result<Vec<TcpListener>> {
    let cannot = |e: io::Error| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}"));
    let mut at = std::net::ToSocketAddrs::to_socket_addrs(addr)
        .map_err(cannot)?
        .next()
        .ok_or_else(|| cannot(io::Error::new(io::ErrorKind::InvalidInput, "no address")))?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        let listener = (|| {
            let socket = TcpSocket::new_for(&at)?;
            socket.set_reuseaddr(true)?;
            if n > 1 {
                socket.set_reuseport(true)?;
            }
            socket.bind(at)?;
            socket.listen(1024)
        })()
        .map_err(cannot)?;
        at = listener.local_addr()?;
        out.push(listener);
    }
    Ok(out)
}
