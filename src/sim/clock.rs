//! corio's clock: [`crate::time::now`] reads the simulation's virtual time
//! on a thread that runs one, and `Instant::now()` everywhere else.
//!
//! The real path pays one relaxed load of a process-wide count of live
//! simulations (a plain `mov`) before the `Instant::now()` it made before;
//! only while some simulation exists, on any thread, does a read also
//! look at the thread's runtime to see whether it is simulated.

use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use super::runtime::World;

/// How many simulations exist in the process.
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// Counts one simulation as live while it exists.
pub(crate) struct Live(());

impl Live {
    pub(crate) fn new() -> Live {
        LIVE.fetch_add(1, Ordering::Relaxed);
        Live(())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The time: virtual inside a simulation, real elsewhere.
#[inline]
pub(crate) fn now() -> Instant {
    if LIVE.load(Ordering::Relaxed) == 0 {
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
    if LIVE.load(Ordering::Relaxed) == 0 {
        return None;
    }
    crate::task::context::with_scheduler(|s| s.sim.as_ref().map(f)).flatten()
}

/// Whether the calling thread is running a simulation.
pub(crate) fn in_sim() -> bool {
    with_world(|_| ()).is_some()
}
