//! Sockets provided by the runtime's driver (a simulation's network)
//! instead of the kernel: a socket type made while the running runtime's
//! driver offers a [`Network`] holds the [`NetSocket`] it returned beside
//! a placeholder fd, and each of its operations tests that `Option` once
//! and hands the call over. What the network is, this layer never knows.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;

use socket2::{Domain, Type};

use super::io::Options;
use super::sys;
pub(crate) use crate::reactor::network::{NetSocket, Network, Proto};
use crate::task::Direction;

/// The network the running runtime's driver provides, if any (one relaxed
/// load when no runtime of the process has such a driver).
#[inline]
pub(crate) fn network() -> Option<Rc<dyn Network>> {
    crate::task::driver::network()
}

/// An unconnected socket of type `ty` for a type holding a provided
/// socket (its fd traits, options, and the fd `corio::tasks` shows a task
/// waiting on it waits on), and its fd.
pub(crate) fn placeholder(ty: Type) -> io::Result<(socket2::Socket, RawFd)> {
    let socket = sys::socket(Domain::IPV4, ty)?;
    let fd = socket.as_raw_fd();
    Ok((socket, fd))
}

/// The provided socket behind a stream type, if it has one (only TCP
/// streams can), for the impls of `stream_read_write!`.
pub(crate) trait Provided {
    fn provided(&self) -> Option<&dyn NetSocket> {
        None
    }
}

/// A stream read (or peek) with `opts`' timeout and mode; `try_only`:
/// never wait.
pub(crate) fn read(
    sock: &dyn NetSocket,
    opts: &Options,
    bufs: &mut [&mut [u8]],
    peek: bool,
    try_only: bool,
) -> io::Result<usize> {
    let deadline = opts.deadline(Direction::Read);
    sock.read(bufs, peek, deadline, try_only || opts.is_nonblocking())
}

/// [`read`] into `IoSliceMut`s.
pub(crate) fn read_vectored(
    sock: &dyn NetSocket,
    opts: &Options,
    bufs: &mut [IoSliceMut<'_>],
    try_only: bool,
) -> io::Result<usize> {
    let mut slices: Vec<&mut [u8]> = bufs.iter_mut().map(|b| &mut **b).collect();
    read(sock, opts, &mut slices, false, try_only)
}

/// A stream write of `buf`.
pub(crate) fn write(sock: &dyn NetSocket, buf: &[u8]) -> io::Result<usize> {
    sock.write(&[buf])
}

/// A stream write from `IoSlice`s.
pub(crate) fn write_vectored(sock: &dyn NetSocket, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    let slices: Vec<&[u8]> = bufs.iter().map(|b| &**b).collect();
    sock.write(&slices)
}

/// A datagram receive with `opts`' timeout and mode, only from the
/// connected peer if `connected`.
pub(crate) fn recv(
    sock: &dyn NetSocket,
    opts: &Options,
    buf: &mut [u8],
    peek: bool,
    try_only: bool,
    connected: bool,
) -> io::Result<(usize, SocketAddr)> {
    let deadline = opts.deadline(Direction::Read);
    sock.recv_from(
        buf,
        peek,
        deadline,
        try_only || opts.is_nonblocking(),
        connected,
    )
}
