//! Unix domain sockets: [`UnixListener`], [`UnixStream`] and
//! [`UnixDatagram`], mirroring [`std::os::unix::net`] with calls that
//! suspend the task instead of the thread.
//!
//! # Examples
//!
//! ```
//! use std::io::{Read, Write};
//! use corio::net::unix::UnixStream;
//!
//! corio::run(|| -> std::io::Result<()> {
//!     let (mut a, mut b) = UnixStream::pair()?;
//!     let echo = corio::spawn(move || -> std::io::Result<()> {
//!         let mut buf = [0; 4];
//!         b.read_exact(&mut buf)?;
//!         b.write_all(&buf)
//!     });
//!     a.write_all(b"ping")?;
//!     let mut buf = [0; 4];
//!     a.read_exact(&mut buf)?;
//!     assert_eq!(&buf, b"ping");
//!     echo.join().unwrap()
//! })
//! .unwrap();
//! ```

mod datagram;
mod listener;
mod stream;

pub use datagram::UnixDatagram;
pub use listener::{Incoming, UnixListener};
pub use std::os::unix::net::SocketAddr;
pub use stream::UnixStream;

use std::io;
use std::path::Path;

use socket2::SockAddr;

/// The `sockaddr` for a std Unix address: a path, or (on Linux) an
/// abstract name. Unnamed addresses cannot be connected or sent to.
pub(crate) fn sockaddr(addr: &SocketAddr) -> io::Result<SockAddr> {
    if let Some(path) = addr.as_pathname() {
        return SockAddr::unix(path);
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        #[cfg(target_os = "android")]
        use std::os::android::net::SocketAddrExt;
        #[cfg(target_os = "linux")]
        use std::os::linux::net::SocketAddrExt;
        use std::os::unix::ffi::OsStrExt;
        if let Some(name) = addr.as_abstract_name() {
            // socket2 treats a leading NUL byte as the abstract namespace.
            let mut bytes = Vec::with_capacity(name.len() + 1);
            bytes.push(0);
            bytes.extend_from_slice(name);
            return SockAddr::unix(Path::new(std::ffi::OsStr::from_bytes(&bytes)));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        "cannot connect or send to an unnamed Unix socket address",
    ))
}
