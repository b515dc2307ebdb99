//! Networking: TCP, UDP and Unix sockets whose blocking calls suspend the
//! task instead of the thread.
//!
//! The types mirror [`std::net`] and [`std::os::unix::net`] — same names,
//! same methods, `std::io::Read`/`Write` for `T` and `&T` — so code written
//! for std works unchanged inside a corio task, including crates built on
//! `std::io` (httparse, rustls' `StreamOwned`, tungstenite, serde readers).
//!
//! # How a call waits
//!
//! Every socket is non-blocking at the OS level. A call first tries the
//! system call; if it would block, the task registers with its runtime's
//! reactor (once per socket), shows up in [`corio::tasks`](crate::tasks) as
//! `Waiting(Io { fd, direction })`, and suspends. When the OS reports the
//! socket ready the task is queued again and the call retries, returning to
//! the caller as if it had simply blocked. Meanwhile the thread runs other
//! tasks.
//!
//! * **Deadlines.** `set_read_timeout`/`set_write_timeout` work as in std
//!   (the call fails with [`io::ErrorKind::TimedOut`](std::io::ErrorKind::TimedOut)),
//!   and every call obeys the enclosing [`time::timeout`](crate::time::timeout)
//!   scopes — nested scopes take the earliest deadline.
//! * **Cancellation.** Every blocking call is a cancellation point: in a
//!   cancelled task it fails with [`corio::Error::Cancelled`](crate::Error::Cancelled)
//!   (kind `Other`, never `Interrupted`, so `read_exact`/`write_all` do not
//!   retry it).
//! * **Outside a runtime** the same calls block the thread (in `poll(2)`),
//!   so libraries and tests can use these types anywhere.
//! * **Concurrent use.** Readers and writers wait separately: one task may
//!   read a socket while another writes it, through `&TcpStream`.
//! * **Name resolution** runs on a thread pool (see [`ToSocketAddrs`]); IP
//!   literals never leave the thread.
//! * **One runtime per socket.** A socket registers with the runtime of the
//!   first task that waits on it; a task of another runtime that then uses
//!   it gets [`Error::WrongRuntime`](crate::Error::WrongRuntime) (in an
//!   `io::Error` of kind `Other`) rather than waiting for events nobody
//!   delivers — also when two runtimes first use it at the same moment:
//!   one registers it, the other gets the error. Hand
//!   sockets to another runtime before any task waits on them (a freshly
//!   accepted stream is not registered yet), or pass them through
//!   `into_std`/`from_std`. The workers of one runtime (see
//!   [`runtime::Builder::workers`](crate::runtime::Builder::workers)) each
//!   have their own reactor: a stream moved by value to a task on another
//!   worker re-registers there at its next owned (`&mut`) read or write —
//!   nobody else can be waiting on it then; one shared by reference and
//!   used from another worker gets
//!   [`Error::WrongWorker`](crate::Error::WrongWorker) instead of waiting.
//! * **Simulation.** Inside a [`sim`](crate::sim) simulation the same
//!   types run over an in-memory network (host names resolve to the
//!   simulated hosts); see `docs/simulation.md` for what is modelled.
//! * **Readiness API.** `readable()`/`writable()` wait without doing IO;
//!   `try_read`/`try_write` (`try_recv`/`try_send` for datagrams) do IO
//!   without waiting — for protocol code that manages its own buffers.
//!
//! # Examples
//!
//! An echo server and a client, on one thread:
//!
//! ```
//! use std::io::{BufRead, BufReader, Write};
//! use corio::net::{TcpListener, TcpStream};
//!
//! corio::run(|| -> std::io::Result<()> {
//!     let listener = TcpListener::bind("127.0.0.1:0")?;
//!     let addr = listener.local_addr()?;
//!     let _server = corio::spawn(move || -> std::io::Result<()> {
//!         for stream in listener.incoming() {
//!             let stream = stream?;
//!             let _echo = corio::spawn(move || std::io::copy(&mut &stream, &mut &stream));
//!         }
//!         Ok(())
//!     });
//!     let stream = TcpStream::connect(addr)?;
//!     (&stream).write_all(b"hello\n")?;
//!     let mut line = String::new();
//!     BufReader::new(&stream).read_line(&mut line)?;
//!     assert_eq!(line, "hello\n");
//!     Ok(())
//! })
//! .unwrap();
//! ```

mod addr;
mod fd;
pub(crate) mod io;
mod options;
pub(crate) mod provided;
mod sys;
mod tcp_listener;
mod tcp_socket;
mod tcp_stream;
mod udp;
pub mod unix;

pub use addr::{ToSocketAddrs, lookup_host};
pub use std::net::{
    AddrParseError, IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, SocketAddrV4, SocketAddrV6,
};
pub use tcp_listener::{Incoming, TcpListener};
pub use tcp_socket::TcpSocket;
pub use tcp_stream::TcpStream;
pub use udp::UdpSocket;
