//! The system calls `process` needs that std does not offer: non-blocking
//! pipes, pidfds, and waiting for a child without reaping it.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Sets or clears `O_NONBLOCK` on `fd` (a flag of the open file description,
/// so it is shared with every duplicate of the descriptor — including one a
/// child process inherits: pipes handed to a child must be blocking again).
pub(super) fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFL on a valid (borrowed, so open) descriptor.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let new = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    if new != flags {
        // SAFETY: F_SETFL with flags derived from F_GETFL on the same open fd.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, new) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A pidfd for the child `pid`: readable once the child has exited
/// (Linux ≥ 5.3). `Ok(None)` where the kernel or a seccomp filter does not
/// offer `pidfd_open`; the caller then waits on the blocking pool.
#[cfg(target_os = "linux")]
pub(super) fn pidfd_open(pid: u32) -> io::Result<Option<OwnedFd>> {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return Ok(None);
    };
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor
    // or -1; it touches no memory of ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::ENOSYS) | Some(libc::EPERM) | Some(libc::EINVAL) => Ok(None),
            _ => Err(err),
        };
    }
    let fd = fd as libc::c_int;
    // SAFETY: the kernel just returned this descriptor to us; nobody else
    // owns it.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// No pidfds here: the caller waits on the blocking pool.
#[cfg(not(target_os = "linux"))]
pub(super) fn pidfd_open(_pid: u32) -> io::Result<Option<OwnedFd>> {
    Ok(None)
}

/// Blocks the calling (pool) thread until the child `pid` has exited,
/// leaving it a zombie for std's `Child::try_wait` to reap (`WNOWAIT`), so
/// the exit status is recorded where std keeps it.
pub(super) fn wait_exited_no_reap(pid: u32) -> io::Result<()> {
    let pid = libc::id_t::from(pid);
    loop {
        // SAFETY: an all-zero siginfo_t is a valid value of the plain C struct.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid out-pointer for waitid.
        let rc =
            unsafe { libc::waitid(libc::P_PID, pid, &mut info, libc::WEXITED | libc::WNOWAIT) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Reaps the child `pid`, blocking the calling (pool) thread until it has
/// exited. Used for a child killed on drop, whose std handle is gone.
pub(super) fn reap(pid: u32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid out-pointer for waitpid.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return;
        }
    }
}
