//! The simulated world as the layers above see it through the task layer:
//! corio's clock ([`now`], which [`crate::time::now`] is), whether the
//! thread runs a simulation ([`in_sim`]) and the simulation itself
//! ([`with_world`]), all read from the thread's scheduler (`Scheduler::sim`).
//!
//! The real path of [`now`] pays one relaxed load of a process-wide count of
//! live simulations (a plain `mov`) before the `Instant::now()` it made
//! before; only while some simulation exists, on any thread, does a read
//! also look at the thread's runtime to see whether it is simulated.

use std::rc::Rc;
use std::time::Instant;

use crate::sim_world::{World, any_live};

/// The time: virtual inside a simulation, real elsewhere.
#[inline]
pub(crate) fn now() -> Instant {
    if !any_live() {
        Instant::now()
    } else {
        now_slow()
    }
}

#[cold]
#[inline(never)]
fn now_slow() -> Instant {
    with_world(|w| w.now()).unwrap_or_else(Instant::now)
}

/// Runs `f` with the simulation this thread is running, if any.
#[inline]
pub(crate) fn with_world<R>(f: impl FnOnce(&Rc<World>) -> R) -> Option<R> {
    if !any_live() {
        return None;
    }
    super::context::with_scheduler(|s| s.sim.as_ref().map(f)).flatten()
}

/// Whether the calling thread is running a simulation.
pub(crate) fn in_sim() -> bool {
    with_world(|_| ()).is_some()
}
