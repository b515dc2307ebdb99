//! Socket system calls the std types do not offer in non-blocking form:
//! creating a non-blocking socket, accepting into one, finishing a
//! non-blocking connect. All through `socket2`, so no unsafe code here.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use socket2::{Domain, SockRef, Socket, Type};

use crate::error::io_with_limit;
use crate::task::park::Interrupt;
use crate::task::{Direction, WaitReason};

/// A new close-on-exec, non-blocking socket.
pub(crate) fn socket(domain: Domain, ty: Type) -> io::Result<Socket> {
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    let s = Socket::new(domain, ty.nonblocking(), None).map_err(io_with_limit)?;
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    let s = {
        let s = Socket::new(domain, ty, None).map_err(io_with_limit)?;
        s.set_nonblocking(true)?;
        s
    };
    Ok(s)
}

/// Whether a non-blocking `connect` has started rather than failed.
pub(crate) fn in_progress(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINPROGRESS) | Some(libc::EINTR)
    )
}

/// The test run after a non-blocking connect each time the socket looks
/// writable: the connect's error, `Ok` once connected, or `WouldBlock`
/// while the handshake is still going.
pub(crate) fn connect_finished(s: &impl AsFd) -> io::Result<()> {
    let s = SockRef::from(s);
    if let Some(e) = s.take_error()? {
        return Err(e);
    }
    match s.peer_addr() {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Err(io::ErrorKind::WouldBlock.into()),
        Err(e) => Err(e),
    }
}

/// Accepts one connection as a non-blocking, close-on-exec socket.
/// `ECONNABORTED` (the peer gave up while queued) is skipped, as Go does.
pub(crate) fn accept(listener: &impl AsFd) -> io::Result<(Socket, SocketAddr)> {
    let l = SockRef::from(listener);
    loop {
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
        let r = l.accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC);
        #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
        let r = l.accept().and_then(|(s, a)| {
            s.set_nonblocking(true)?;
            Ok((s, a))
        });
        match r {
            Ok((s, a)) => {
                let a = a.as_socket().ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidData, "accept: not an IP address")
                })?;
                return Ok((s, a));
            }
            Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Whether an accept failed for lack of file descriptors or memory: the
/// listener stays readable, so retrying at once would spin.
pub(crate) fn is_resource_limit(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM)
    )
}

/// Suspends the task (or thread) until `at`, shown in the task table as a
/// wait on `fd` in `dir`: [`time::pause_until`](crate::time::pause_until)
/// with its interrupts as IO errors.
pub(crate) fn pause_until(at: Instant, wait: WaitReason) -> io::Result<()> {
    match crate::time::pause_until(Some(at), wait) {
        Ok(()) => Ok(()),
        // The scope's, by the real clock, though maybe not yet by the
        // loop's that `park` compared: record it as the scope's.
        Err(Interrupt::TimedOut) => Err(crate::task::park::timed_out_at(crate::time::now()).into()),
        Err(i) => Err(i.into()),
    }
}

/// The backoff after an accept failed at a resource limit: the next accept
/// first waits, 5 ms after the first failure, doubling up to 1 s (as Go's
/// `net/http` does), so a server loop that retries cannot spin the CPU.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    state: std::sync::Mutex<Option<(Instant, Duration)>>,
    armed: std::sync::atomic::AtomicBool,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_secs(1);

    /// Waits out a pending backoff.
    pub(crate) fn wait(&self, wait: WaitReason) -> io::Result<()> {
        use std::sync::atomic::Ordering;
        if !self.armed.load(Ordering::Relaxed) {
            return Ok(());
        }
        let at = self.lock().map(|(at, _)| at);
        match at {
            Some(at) => pause_until(at, wait),
            None => Ok(()),
        }
    }

    /// An accept failed at a resource limit: the next one waits longer.
    pub(crate) fn fail(&self) {
        let mut st = self.lock();
        let delay = match *st {
            Some((_, d)) => (d * 2).min(Self::MAX),
            None => Self::FIRST,
        };
        *st = Some((crate::time::now() + delay, delay));
        self.armed.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// An accept succeeded: no more waiting.
    pub(crate) fn reset(&self) {
        use std::sync::atomic::Ordering;
        if self.armed.swap(false, Ordering::Relaxed) {
            *self.lock() = None;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Instant, Duration)>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Converts a `socket2` socket into the std type `T` (an fd move).
pub(crate) fn into_std<T: From<std::os::fd::OwnedFd>>(s: Socket) -> T {
    T::from(std::os::fd::OwnedFd::from(s))
}

/// The wait reason the task table shows for a wait on `fd`.
pub(crate) fn io_wait(fd: &impl AsFd, direction: Direction) -> WaitReason {
    use std::os::fd::AsRawFd;
    WaitReason::Io {
        fd: fd.as_fd().as_raw_fd(),
        direction,
    }
}
