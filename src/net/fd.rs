//! File-descriptor conversions (`AsFd`, `AsRawFd`, `FromRawFd`,
//! `IntoRawFd`, `OwnedFd`) for every socket type, as std has them.
//!
//! The only unsafe code of `net`: `FromRawFd::from_raw_fd` is an unsafe
//! trait method, whose contract (the caller hands over an open fd it owns)
//! is exactly the one `OwnedFd::from_raw_fd` needs.
#![allow(unsafe_code)]

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

use super::unix::{UnixDatagram, UnixListener, UnixStream};
use super::{TcpListener, TcpStream, UdpSocket};

macro_rules! fd_impls {
    ($t:ident, $std:ty, $wrap:expr) => {
        impl AsFd for $t {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.io.get().as_fd()
            }
        }

        impl AsRawFd for $t {
            fn as_raw_fd(&self) -> RawFd {
                self.io.get().as_raw_fd()
            }
        }

        /// Takes ownership of a socket fd and switches it to non-blocking
        /// mode (corio's sockets always are).
        impl From<OwnedFd> for $t {
            fn from(fd: OwnedFd) -> $t {
                let s = <$std>::from(fd);
                // Cannot fail for an open socket; if the fd is not one, every
                // later call reports the error.
                let _ = s.set_nonblocking(true);
                $wrap(s)
            }
        }

        impl From<$t> for OwnedFd {
            fn from(s: $t) -> OwnedFd {
                s.into_std().into()
            }
        }

        /// Takes ownership of a socket fd and switches it to non-blocking
        /// mode (corio's sockets always are).
        impl FromRawFd for $t {
            unsafe fn from_raw_fd(fd: RawFd) -> $t {
                // SAFETY: the caller of `from_raw_fd` guarantees that `fd` is
                // open and owned by nobody else, which is what
                // `OwnedFd::from_raw_fd` requires.
                let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                $t::from(owned)
            }
        }

        impl IntoRawFd for $t {
            fn into_raw_fd(self) -> RawFd {
                self.into_std().into_raw_fd()
            }
        }
    };
}

fd_impls!(TcpStream, std::net::TcpStream, |s| {
    TcpStream::from_nonblocking(s, Default::default())
});
fd_impls!(
    TcpListener,
    std::net::TcpListener,
    TcpListener::from_nonblocking
);
fd_impls!(UdpSocket, std::net::UdpSocket, |s| {
    UdpSocket::from_nonblocking(s, Default::default())
});
fd_impls!(UnixStream, std::os::unix::net::UnixStream, |s| {
    UnixStream::from_nonblocking(s, Default::default())
});
fd_impls!(
    UnixListener,
    std::os::unix::net::UnixListener,
    UnixListener::from_nonblocking
);
fd_impls!(UnixDatagram, std::os::unix::net::UnixDatagram, |s| {
    UnixDatagram::from_nonblocking(s, Default::default())
});
