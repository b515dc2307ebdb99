//! Socket options shared by [`TcpStream`](super::TcpStream) and
//! [`TcpSocket`](super::TcpSocket).

use std::io;
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};

/// `SO_KEEPALIVE` on with `TCP_KEEPIDLE` = `idle`, or off.
pub(crate) fn set_keepalive(s: &SockRef<'_>, idle: Option<Duration>) -> io::Result<()> {
    match idle {
        Some(idle) => s.set_tcp_keepalive(&TcpKeepalive::new().with_time(idle)),
        None => s.set_keepalive(false),
    }
}
