//! The part every corio socket shares: the non-blocking fd, its lazy
//! registration with the reactor, and the std-style options (timeouts,
//! non-blocking mode) that decide how long an operation may wait.

use std::io;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::io_op::{self, LazyRegistration, Registered};
use crate::reactor;
use crate::task::Direction;

/// Options that std keeps in the socket (`SO_RCVTIMEO`, `SO_SNDTIMEO`,
/// `O_NONBLOCK`), so handles made by `try_clone` share them. corio's fds are
/// always `O_NONBLOCK`, so it keeps its own copy, shared the same way.
#[derive(Debug, Default)]
pub(crate) struct Options {
    /// Nanoseconds; 0 means none (std rejects a zero timeout).
    read_timeout: AtomicU64,
    write_timeout: AtomicU64,
    /// `set_nonblocking(true)`: fail with `WouldBlock` instead of waiting.
    nonblocking: AtomicBool,
}

fn to_nanos(d: Option<Duration>) -> u64 {
    d.map_or(0, |d| {
        u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
    })
}

impl Options {
    /// Options that start with the timeouts std reports for a socket.
    pub(crate) fn with_timeouts(read: Option<Duration>, write: Option<Duration>) -> Options {
        let o = Options::default();
        o.set_timeout(Direction::Read, read);
        o.set_timeout(Direction::Write, write);
        o
    }

    fn slot(&self, dir: Direction) -> &AtomicU64 {
        match dir {
            Direction::Read => &self.read_timeout,
            Direction::Write => &self.write_timeout,
        }
    }

    pub(crate) fn set_timeout(&self, dir: Direction, d: Option<Duration>) {
        self.slot(dir).store(to_nanos(d), Ordering::Relaxed);
    }

    /// The timeout for `dir`, exactly as set.
    pub(crate) fn timeout(&self, dir: Direction) -> Option<Duration> {
        match self.slot(dir).load(Ordering::Relaxed) {
            0 => None,
            n => Some(Duration::from_nanos(n)),
        }
    }

    #[inline]
    pub(crate) fn deadline(&self, dir: Direction) -> Option<Instant> {
        match self.slot(dir).load(Ordering::Relaxed) {
            0 => None,
            n => crate::time::now().checked_add(Duration::from_nanos(n)),
        }
    }

    pub(crate) fn set_nonblocking(&self, on: bool) {
        self.nonblocking.store(on, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn is_nonblocking(&self) -> bool {
        self.nonblocking.load(Ordering::Relaxed)
    }
}

/// A non-blocking socket `S` and its reactor registration (owned together
/// by [`Registered`], which deletes the fd from the poller before it closes
/// it), with its options.
pub(crate) struct Io<S: AsFd> {
    io: Registered<S>,
    opts: Arc<Options>,
}

/// Whether a stream transfer of `len` bytes that moved `n` drained the
/// socket: a read that returned fewer (but some) bytes emptied the receive
/// buffer, a write that took fewer filled the send buffer. Knowing it saves
/// the `WouldBlock` syscall that would otherwise find out (reactor rule 2).
/// Reads only where the poller reports a FIN that came with the data, which
/// a short read cannot tell apart.
#[inline]
fn drained(dir: Direction, len: usize) -> impl Fn(&usize) -> bool {
    let applies = dir == Direction::Write || reactor::DRAIN_READS;
    move |&n| applies && n > 0 && n < len
}

/// Whether a stream operation is a read of `len == 0` bytes, which returns
/// `Ok(0)` at once, without waiting or a syscall, as `Read` documents ("the
/// buffer specified was 0 bytes in length") and as std's empty
/// `read_vectored` on a socket does. The kernel would otherwise have a
/// zero-length stream read wait for data that it then leaves unread.
/// (Datagram receives into no room still wait for, and consume, a
/// datagram, as in std: that is what they mean.)
#[inline]
fn empty_read(dir: Direction, len: usize) -> bool {
    dir == Direction::Read && len == 0
}

impl<S: AsFd> Io<S> {
    /// Wraps `sock`, which must already be `O_NONBLOCK`.
    pub(crate) fn new(sock: S) -> Io<S> {
        Io::with_options(sock, Arc::default())
    }

    pub(crate) fn with_options(sock: S, opts: Arc<Options>) -> Io<S> {
        Io {
            io: Registered::new(sock),
            opts,
        }
    }

    pub(crate) fn get(&self) -> &S {
        self.io.get()
    }

    /// Re-registers with the calling task's worker if the socket is
    /// registered with another (see `Registered::rebind`).
    pub(crate) fn rebind(&mut self) -> bool {
        self.io.rebind()
    }

    /// The fd and its registration, for a `select` readiness arm.
    pub(crate) fn source(&self) -> (std::os::fd::BorrowedFd<'_>, &LazyRegistration) {
        self.io.source()
    }

    pub(crate) fn options(&self) -> &Arc<Options> {
        &self.opts
    }

    /// A new `Io` for a `dup` of the socket made by `dup` (the std type's
    /// `try_clone`), sharing this one's options; at the open-files limit
    /// the error names it.
    pub(crate) fn try_clone(&self, dup: impl FnOnce(&S) -> io::Result<S>) -> io::Result<Io<S>> {
        let sock = dup(self.io.get()).map_err(crate::error::io_with_limit)?;
        Ok(Io::with_options(sock, Arc::clone(&self.opts)))
    }

    /// Sets the timeout for `dir`: first through `apply` (the std type's
    /// setter, which refuses a zero duration as std does and keeps the
    /// value for `into_std`), then in the options corio's waits use.
    pub(crate) fn set_timeout(
        &self,
        dir: Direction,
        dur: Option<Duration>,
        apply: impl FnOnce(&S, Option<Duration>) -> io::Result<()>,
    ) -> io::Result<()> {
        apply(self.io.get(), dur)?;
        self.opts.set_timeout(dir, dur);
        Ok(())
    }

    /// The socket, deregistered from the reactor (still `O_NONBLOCK`).
    pub(crate) fn into_inner(self) -> S {
        self.io.into_inner()
    }

    /// Runs `op` until it does not return `WouldBlock`, waiting for `dir`
    /// readiness in between, up to the socket's timeout for `dir`; in
    /// non-blocking mode, tries once.
    pub(crate) fn op<R>(
        &self,
        dir: Direction,
        mut op: impl FnMut(&S) -> io::Result<R>,
    ) -> io::Result<R> {
        self.op_drain(dir, move |s| op(s), |_| false)
    }

    /// [`op`](Self::op) for a stream read or write of `len` bytes: a short
    /// transfer clears readiness (see `io_op::io_op_drain`). A read into
    /// no room is `Ok(0)` at once (see [`empty_read`]).
    #[inline]
    pub(crate) fn stream_op(
        &self,
        dir: Direction,
        len: usize,
        op: impl FnMut(&S) -> io::Result<usize>,
    ) -> io::Result<usize> {
        if empty_read(dir, len) {
            return Ok(0);
        }
        self.op_drain(dir, op, drained(dir, len))
    }

    #[inline]
    fn op_drain<R>(
        &self,
        dir: Direction,
        mut op: impl FnMut(&S) -> io::Result<R>,
        drained: impl Fn(&R) -> bool,
    ) -> io::Result<R> {
        let fd = self.io.get().as_fd();
        if self.opts.is_nonblocking() {
            return io_op::try_op(fd, self.io.reg(), dir, || op(self.io.get()), drained);
        }
        let deadline = self.opts.deadline(dir);
        io_op::io_op_drain(
            fd,
            self.io.reg(),
            dir,
            deadline,
            || op(self.io.get()),
            drained,
        )
    }

    /// Runs `op` once without waiting; `WouldBlock` clears readiness so that
    /// the next [`ready`](Self::ready) waits for the OS.
    pub(crate) fn try_op<R>(
        &self,
        dir: Direction,
        mut op: impl FnMut(&S) -> io::Result<R>,
    ) -> io::Result<R> {
        io_op::try_op(
            self.io.get().as_fd(),
            self.io.reg(),
            dir,
            || op(self.io.get()),
            |_| false,
        )
    }

    /// [`try_op`](Self::try_op) for a stream transfer of `len` bytes; a
    /// read into no room is `Ok(0)` (see [`empty_read`]).
    pub(crate) fn try_stream_op(
        &self,
        dir: Direction,
        len: usize,
        mut op: impl FnMut(&S) -> io::Result<usize>,
    ) -> io::Result<usize> {
        if empty_read(dir, len) {
            return Ok(0);
        }
        io_op::try_op(
            self.io.get().as_fd(),
            self.io.reg(),
            dir,
            || op(self.io.get()),
            drained(dir, len),
        )
    }

    /// Waits until the socket may be ready for `dir` (`readable()` /
    /// `writable()`); enclosing `timeout` scopes and cancellation apply.
    pub(crate) fn ready(&self, dir: Direction) -> io::Result<()> {
        io_op::wait_ready(self.io.get().as_fd(), self.io.reg(), dir, None)
    }

    /// Waits for `dir` readiness until `deadline`: used by connect.
    pub(crate) fn op_until<R>(
        &self,
        dir: Direction,
        deadline: Option<Instant>,
        mut op: impl FnMut(&S) -> io::Result<R>,
    ) -> io::Result<R> {
        io_op::io_op(self.io.get().as_fd(), self.io.reg(), dir, deadline, || {
            op(self.io.get())
        })
    }
}

/// The cold half of a by-value stream `Read`/`Write`: after an error, if
/// it is [`Error::WrongWorker`](crate::Error::WrongWorker), re-registers
/// `stream` with the calling worker (nobody else can be waiting on a
/// stream held by value) and runs `op` again. Out of line, so that the
/// by-value impls inline the borrowed ones once.
#[cold]
#[inline(never)]
pub(crate) fn rebound<T: Rebind, R>(
    e: io::Error,
    stream: &mut T,
    op: impl FnOnce(&mut T) -> io::Result<R>,
) -> io::Result<R> {
    if io_op::is_wrong_worker(&e) && stream.rebind() {
        op(stream)
    } else {
        Err(e)
    }
}

/// A stream type that can re-register its fd with the calling worker.
pub(crate) trait Rebind {
    /// See [`Io::rebind`].
    fn rebind(&mut self) -> bool;
}

/// `Read` and `Write` for a stream type `$t` (with an `io: Io<_>` field
/// whose socket implements them for `&S`) and for `&$t`.
macro_rules! stream_read_write {
    ($t:ty) => {
        impl $crate::net::io::Rebind for $t {
            fn rebind(&mut self) -> bool {
                self.io.rebind()
            }
        }

        impl ::std::io::Read for &$t {
            #[inline]
            fn read(&mut self, buf: &mut [u8]) -> ::std::io::Result<usize> {
                if let Some(p) = $crate::net::provided::Provided::provided(*self) {
                    return $crate::net::provided::read(
                        p,
                        self.io.options(),
                        &mut [buf],
                        false,
                        false,
                    );
                }
                let len = buf.len();
                self.io.stream_op($crate::task::Direction::Read, len, |s| {
                    ::std::io::Read::read(&mut &*s, buf)
                })
            }

            #[inline]
            fn read_vectored(
                &mut self,
                bufs: &mut [::std::io::IoSliceMut<'_>],
            ) -> ::std::io::Result<usize> {
                if let Some(p) = $crate::net::provided::Provided::provided(*self) {
                    return $crate::net::provided::read_vectored(p, self.io.options(), bufs, false);
                }
                let len = bufs.iter().map(|b| b.len()).sum();
                self.io.stream_op($crate::task::Direction::Read, len, |s| {
                    ::std::io::Read::read_vectored(&mut &*s, bufs)
                })
            }
        }

        impl ::std::io::Read for $t {
            #[inline]
            fn read(&mut self, buf: &mut [u8]) -> ::std::io::Result<usize> {
                // Moved here from another worker by value: nobody else
                // can be waiting on it, so it may re-register here.
                match ::std::io::Read::read(&mut &*self, buf) {
                    Err(e) => {
                        $crate::net::io::rebound(e, self, |s| ::std::io::Read::read(&mut &*s, buf))
                    }
                    r => r,
                }
            }

            #[inline]
            fn read_vectored(
                &mut self,
                bufs: &mut [::std::io::IoSliceMut<'_>],
            ) -> ::std::io::Result<usize> {
                // Moved here from another worker by value: nobody else
                // can be waiting on it, so it may re-register here.
                match ::std::io::Read::read_vectored(&mut &*self, bufs) {
                    Err(e) => $crate::net::io::rebound(e, self, |s| {
                        ::std::io::Read::read_vectored(&mut &*s, bufs)
                    }),
                    r => r,
                }
            }
        }

        impl ::std::io::Write for &$t {
            #[inline]
            fn write(&mut self, buf: &[u8]) -> ::std::io::Result<usize> {
                if let Some(p) = $crate::net::provided::Provided::provided(*self) {
                    return $crate::net::provided::write(p, buf);
                }
                self.io
                    .stream_op($crate::task::Direction::Write, buf.len(), |s| {
                        ::std::io::Write::write(&mut &*s, buf)
                    })
            }

            #[inline]
            fn write_vectored(
                &mut self,
                bufs: &[::std::io::IoSlice<'_>],
            ) -> ::std::io::Result<usize> {
                if let Some(p) = $crate::net::provided::Provided::provided(*self) {
                    return $crate::net::provided::write_vectored(p, bufs);
                }
                let len = bufs.iter().map(|b| b.len()).sum();
                self.io.stream_op($crate::task::Direction::Write, len, |s| {
                    ::std::io::Write::write_vectored(&mut &*s, bufs)
                })
            }

            #[inline]
            fn flush(&mut self) -> ::std::io::Result<()> {
                Ok(())
            }
        }

        impl ::std::io::Write for $t {
            #[inline]
            fn write(&mut self, buf: &[u8]) -> ::std::io::Result<usize> {
                // Moved here from another worker by value: nobody else
                // can be waiting on it, so it may re-register here.
                match ::std::io::Write::write(&mut &*self, buf) {
                    Err(e) => $crate::net::io::rebound(e, self, |s| {
                        ::std::io::Write::write(&mut &*s, buf)
                    }),
                    r => r,
                }
            }

            #[inline]
            fn write_vectored(
                &mut self,
                bufs: &[::std::io::IoSlice<'_>],
            ) -> ::std::io::Result<usize> {
                // Moved here from another worker by value: nobody else
                // can be waiting on it, so it may re-register here.
                match ::std::io::Write::write_vectored(&mut &*self, bufs) {
                    Err(e) => $crate::net::io::rebound(e, self, |s| {
                        ::std::io::Write::write_vectored(&mut &*s, bufs)
                    }),
                    r => r,
                }
            }

            #[inline]
            fn flush(&mut self) -> ::std::io::Result<()> {
                Ok(())
            }
        }
    };
}

pub(crate) use stream_read_write;
