//! The OS readiness poller under the reactor, behind one `cfg` switch.
//!
//! # Interface
//!
//! * [`Poller::add`] registers an fd once, edge-triggered, for reading and
//!   writing, under a `usize` key; [`Poller::delete`] removes it (before the
//!   fd is closed).
//! * [`Poller::wait`] fills [`Events`] with `(key, readable, writable,
//!   closed)`; `closed` means the peer shut down its writing half (or the
//!   socket hung up or failed): a final state, after which reads never
//!   block again. [`REPORTS_CLOSED`] says whether the platform reports it.
//! * [`Poller::notify`] wakes a `wait` from any thread.
//!
//! # Platforms
//!
//! On Linux and Android the poller is `epoll` driven directly: one
//! `epoll_wait` per poll (the `polling` crate adds a `timerfd_settime`, an
//! `epoll_ctl` re-arm and an eventfd read to every wait, which is most of the
//! syscall cost per request under load), and `EPOLLRDHUP` is reported, which
//! `polling` does not expose. Timeouts are exact to the nanosecond with
//! `epoll_pwait2` (Linux ≥ 5.11); older kernels get `epoll_wait` with the
//! timeout rounded up to milliseconds, so a timer never fires early.
//!
//! Elsewhere it is the `polling` crate in edge mode, without `closed` — and
//! on Linux too with the `polling-backend` cargo feature, which CI uses to
//! run the network tests over this portable path as well.
#![allow(unsafe_code)]

#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    not(feature = "polling-backend")
))]
pub(crate) use epoll::{Events, Poller, REPORTS_CLOSED};
#[cfg(any(
    not(any(target_os = "linux", target_os = "android")),
    feature = "polling-backend"
))]
pub(crate) use portable::{Events, Poller, REPORTS_CLOSED};

/// One readiness event.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Event {
    pub(crate) key: usize,
    pub(crate) readable: bool,
    pub(crate) writable: bool,
    /// The read side is closed for good (`EPOLLRDHUP`/`EPOLLHUP`/`EPOLLERR`).
    pub(crate) closed: bool,
}

#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    not(feature = "polling-backend")
))]
mod epoll {
    use std::io;
    use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::Event;

    pub(crate) const REPORTS_CLOSED: bool = true;

    /// The key of the eventfd that `notify` writes.
    const NOTIFY_KEY: u64 = u64::MAX;

    const READ_FLAGS: u32 =
        (libc::EPOLLIN | libc::EPOLLPRI | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR)
            as u32;
    const WRITE_FLAGS: u32 = (libc::EPOLLOUT | libc::EPOLLHUP | libc::EPOLLERR) as u32;
    const CLOSED_FLAGS: u32 = (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;

    pub(crate) struct Poller {
        epoll: OwnedFd,
        eventfd: OwnedFd,
        /// A notification is pending: later `notify` calls skip the write.
        notified: AtomicBool,
    }

    fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(rc)
        }
    }

    impl Poller {
        pub(crate) fn new() -> io::Result<Poller> {
            // SAFETY: plain syscall; a non-negative result is a new fd we own.
            let epoll = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
            // SAFETY: `epoll` was just created and is owned by nobody else.
            let epoll = unsafe { OwnedFd::from_raw_fd(epoll) };
            // SAFETY: plain syscall; a non-negative result is a new fd we own.
            let efd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
            // SAFETY: `efd` was just created and is owned by nobody else.
            let eventfd = unsafe { OwnedFd::from_raw_fd(efd) };
            let poller = Poller {
                epoll,
                eventfd,
                notified: AtomicBool::new(false),
            };
            // Both fds are owned by the poller and live exactly as long as
            // the epoll instance, so this registration needs no deletion.
            poller.ctl(
                libc::EPOLL_CTL_ADD,
                poller.eventfd.as_raw_fd(),
                (libc::EPOLLIN | libc::EPOLLET) as u32,
                NOTIFY_KEY,
            )?;
            Ok(poller)
        }

        fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, key: u64) -> io::Result<()> {
            let mut ev = libc::epoll_event { events, u64: key };
            // SAFETY: `ev` is a valid epoll_event for the duration of the
            // call; the epoll fd is open (owned by `self`).
            cvt(unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut ev) })?;
            Ok(())
        }

        /// Registers `fd`, edge-triggered, for reading, writing and the read
        /// side closing.
        ///
        /// # Safety
        ///
        /// `fd` must be deleted with [`delete`](Self::delete) before it is
        /// closed: otherwise the kernel keeps reporting events for the open
        /// file behind it (if it was duplicated) under a key that may have
        /// been reused.
        pub(crate) unsafe fn add(&self, fd: RawFd, key: usize) -> io::Result<()> {
            let events = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
            self.ctl(libc::EPOLL_CTL_ADD, fd, events, key as u64)
        }

        /// Removes `fd`.
        pub(crate) fn delete(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
            self.ctl(libc::EPOLL_CTL_DEL, fd.as_raw_fd(), 0, 0)
        }

        /// Waits for events until `timeout` (`None`: forever). A signal
        /// interrupting the wait makes it return with no events.
        pub(crate) fn wait(
            &self,
            events: &mut Events,
            timeout: Option<Duration>,
        ) -> io::Result<()> {
            events.list.clear();
            let n = self.epoll_wait(&mut events.list, timeout);
            if n < 0 {
                let e = io::Error::last_os_error();
                return if e.kind() == io::ErrorKind::Interrupted {
                    Ok(())
                } else {
                    Err(e)
                };
            }
            // SAFETY: the kernel initialised the first `n` entries.
            unsafe { events.list.set_len(n as usize) };
            if self.notified.swap(false, Ordering::AcqRel)
                && events.list.iter().any(|e| e.u64 == NOTIFY_KEY)
            {
                // Reset the counter; the next write makes a new edge anyway.
                let mut buf = [0u8; 8];
                // SAFETY: `buf` is 8 writable bytes, what an eventfd read needs.
                unsafe { libc::read(self.eventfd.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
            }
            Ok(())
        }

        /// One `epoll_pwait2` (nanosecond timeout, Linux ≥ 5.11), or
        /// `epoll_wait` with the timeout rounded up to milliseconds where
        /// the kernel lacks it. Returns what the syscall returned.
        fn epoll_wait(
            &self,
            list: &mut Vec<libc::epoll_event>,
            timeout: Option<Duration>,
        ) -> isize {
            let cap = list.capacity() as libc::c_int;
            #[cfg(target_os = "linux")]
            {
                use std::sync::atomic::AtomicBool;
                static NO_PWAIT2: AtomicBool = AtomicBool::new(false);
                if !NO_PWAIT2.load(Ordering::Relaxed) {
                    let ts = timeout.map(|d| libc::timespec {
                        tv_sec: d.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
                        tv_nsec: d.subsec_nanos() as _,
                    });
                    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const _);
                    // SAFETY: the buffer has room for `cap` events (the
                    // kernel writes at most that many); `ts_ptr` is null or
                    // points to a timespec that outlives the call; a null
                    // signal mask leaves the mask alone.
                    let n = unsafe {
                        libc::syscall(
                            libc::SYS_epoll_pwait2,
                            self.epoll.as_raw_fd(),
                            list.as_mut_ptr(),
                            cap,
                            ts_ptr,
                            std::ptr::null::<libc::sigset_t>(),
                            0usize,
                        )
                    };
                    // ENOSYS: an older kernel; EPERM: a seccomp filter that
                    // does not know the syscall.
                    let missing = n < 0
                        && matches!(
                            io::Error::last_os_error().raw_os_error(),
                            Some(libc::ENOSYS) | Some(libc::EPERM)
                        );
                    if !missing {
                        return n as isize;
                    }
                    NO_PWAIT2.store(true, Ordering::Relaxed);
                }
            }
            let ms = match timeout {
                None => -1,
                // Round up: waking early would make the caller spin until
                // the timer is due.
                Some(d) => d
                    .as_nanos()
                    .div_ceil(1_000_000)
                    .min(libc::c_int::MAX as u128) as libc::c_int,
            };
            // SAFETY: the buffer has room for `cap` events; the kernel writes
            // at most that many and returns how many it wrote.
            unsafe { libc::epoll_wait(self.epoll.as_raw_fd(), list.as_mut_ptr(), cap, ms) as isize }
        }

        /// Wakes the current or next `wait`, from any thread.
        pub(crate) fn notify(&self) -> io::Result<()> {
            if !self.notified.swap(true, Ordering::AcqRel) {
                let one = 1u64.to_ne_bytes();
                // SAFETY: `one` is 8 readable bytes, what an eventfd write needs.
                let rc = unsafe { libc::write(self.eventfd.as_raw_fd(), one.as_ptr().cast(), 8) };
                if rc < 0 {
                    let e = io::Error::last_os_error();
                    // EAGAIN: the counter is saturated, so a wakeup is pending.
                    if e.kind() != io::ErrorKind::WouldBlock {
                        return Err(e);
                    }
                }
            }
            Ok(())
        }
    }

    /// A buffer of events from one `wait`.
    pub(crate) struct Events {
        list: Vec<libc::epoll_event>,
    }

    impl Events {
        pub(crate) fn new() -> Events {
            Events {
                list: Vec::with_capacity(1024),
            }
        }

        pub(crate) fn clear(&mut self) {
            self.list.clear();
        }

        pub(crate) fn is_empty(&self) -> bool {
            self.list.is_empty()
        }

        pub(crate) fn iter(&self) -> impl Iterator<Item = Event> + '_ {
            self.list.iter().filter(|e| e.u64 != NOTIFY_KEY).map(|e| {
                let flags = e.events;
                Event {
                    key: e.u64 as usize,
                    readable: flags & READ_FLAGS != 0,
                    writable: flags & WRITE_FLAGS != 0,
                    closed: flags & CLOSED_FLAGS != 0,
                }
            })
        }
    }
}

#[cfg(any(
    not(any(target_os = "linux", target_os = "android")),
    feature = "polling-backend"
))]
mod portable {
    use std::io;
    use std::os::fd::{BorrowedFd, RawFd};
    use std::time::Duration;

    use super::Event;

    pub(crate) const REPORTS_CLOSED: bool = false;

    pub(crate) struct Poller(polling::Poller);

    impl Poller {
        pub(crate) fn new() -> io::Result<Poller> {
            polling::Poller::new().map(Poller)
        }

        /// # Safety
        ///
        /// As `polling::Poller::add`: `fd` must be deleted before it is
        /// closed.
        pub(crate) unsafe fn add(&self, fd: RawFd, key: usize) -> io::Result<()> {
            // SAFETY: forwarded from this function's contract.
            unsafe {
                self.0
                    .add_with_mode(fd, polling::Event::all(key), polling::PollMode::Edge)
            }
        }

        pub(crate) fn delete(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
            self.0.delete(fd)
        }

        pub(crate) fn wait(
            &self,
            events: &mut Events,
            timeout: Option<Duration>,
        ) -> io::Result<()> {
            self.0.wait(&mut events.0, timeout).map(drop)
        }

        pub(crate) fn notify(&self) -> io::Result<()> {
            self.0.notify()
        }
    }

    pub(crate) struct Events(polling::Events);

    impl Events {
        pub(crate) fn new() -> Events {
            Events(polling::Events::new())
        }

        pub(crate) fn clear(&mut self) {
            self.0.clear();
        }

        pub(crate) fn is_empty(&self) -> bool {
            self.0.is_empty()
        }

        pub(crate) fn iter(&self) -> impl Iterator<Item = Event> + '_ {
            self.0.iter().map(|e| Event {
                key: e.key,
                readable: e.readable,
                writable: e.writable,
                closed: false,
            })
        }
    }
}
