//! The running runtime's driver as the layers above the task layer see it:
//! corio's clock ([`now`], which [`crate::time::now`] is), whether the
//! driver stands for the OS ([`simulated`]), the network it provides in
//! place of the OS's ([`network`]), and the installed driver itself
//! ([`with_installed`], for the layer that installed it), all read from the
//! thread's scheduler (`Scheduler::installed`). None of them knows which
//! driver it is.
//!
//! The real path of [`now`] pays one relaxed load of a process-wide count of
//! runtimes on an installed driver (a plain `mov`) before the
//! `Instant::now()` it made before; only while such a runtime exists, on any
//! thread, does a read also look at the thread's runtime.

use std::rc::Rc;
use std::time::Instant;

use crate::reactor::network::Network;
use crate::reactor::{Driver, any_installed};

/// The time: the running runtime's driver's (virtual in a simulation), or
/// the real clock.
#[inline]
pub(crate) fn now() -> Instant {
    if !any_installed() {
        Instant::now()
    } else {
        now_slow()
    }
}

#[cold]
#[inline(never)]
fn now_slow() -> Instant {
    super::context::with_scheduler(|s| s.clock_now()).unwrap_or_else(Instant::now)
}

/// Runs `f` with the driver installed in the thread's runtime in place of
/// its reactor, if any.
#[inline]
pub(crate) fn with_installed<R>(f: impl FnOnce(&dyn Driver) -> R) -> Option<R> {
    if !any_installed() {
        return None;
    }
    super::context::with_scheduler(|s| s.installed.as_ref().map(|i| f(&*i.0))).flatten()
}

/// Whether the thread's runtime runs on a driver that stands for the OS
/// (a simulation): real fds, the blocking pool, processes and signals are
/// not served there.
pub(crate) fn simulated() -> bool {
    with_installed(|d| d.simulated()) == Some(true)
}

/// The network the thread's runtime provides in place of the OS's, if any.
pub(crate) fn network() -> Option<Rc<dyn Network>> {
    with_installed(|d| d.network()).flatten()
}
