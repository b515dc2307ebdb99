//! The simulation's driver: what wakes a simulated runtime, behind the same
//! seam ([`Driver`]) as the epoll reactor. [`Sim`](super::Sim) installs it
//! in its scheduler in place of the reactor, so the scheduler's clock (and
//! with it `corio::time`) reads the virtual clock, the scheduler tells it
//! every spawn, and `corio::net` finds its network (`super::net`) through
//! `task::driver::network`.
//!
//! Its [`poll`](Driver::poll) is the simulation's "wait for what is next":
//! it moves the virtual clock to the earlier of the next timer (the
//! timeout the loop passes) and the next network event, or, with neither,
//! records a deadlock — or the time limit, when that is past it; its
//! [`dispatch`](Driver::dispatch) delivers the network's due events and
//! wakes their waiters. It never blocks in real time, so wakeups from other
//! threads need no notify: they wait in the inject queue, which the loop
//! drains before it polls. Which ready task runs next is not the driver's
//! business: that is the loop's seeded choice (`runtime::pick`).

use std::any::Any;
use std::cell::Cell;
use std::ptr::NonNull;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::reactor::network::Network;
use crate::reactor::{Driver, Events};
use crate::sim_world::World;
use crate::task::driver::with_installed;

/// Why a poll found nothing to move the clock to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// No timer and no network event is left: nothing can wake a task.
    Deadlock,
    /// The next one is past the configured time limit.
    TimeLimit,
}

/// The driver of a simulated runtime.
pub(crate) struct SimDriver {
    pub(crate) world: Rc<World>,
    network: Rc<dyn Network>,
    /// What the last poll stopped on, for the loop to report.
    stop: Cell<Option<Stop>>,
}

impl SimDriver {
    /// The driver of `world`, providing `network` (its sockets).
    pub(crate) fn new(world: Rc<World>, network: Rc<dyn Network>) -> SimDriver {
        SimDriver {
            network,
            world,
            stop: Cell::new(None),
        }
    }

    /// Why the last poll did not move the clock, if it did not.
    pub(crate) fn take_stop(&self) -> Option<Stop> {
        self.stop.take()
    }
}

impl Driver for SimDriver {
    fn poll(&self, events: &mut Events, timeout: Option<Duration>) {
        events.clear();
        let w = &self.world;
        let now = w.elapsed();
        let next_timer = timeout.map(|t| now.checked_add(t).unwrap_or(Duration::MAX));
        let next_net = w.st.borrow().net.next_time();
        let next = match (next_timer, next_net) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => match a.or(b) {
                Some(t) => t,
                None => return self.stop.set(Some(Stop::Deadlock)),
            },
        };
        let next = next.max(now);
        if next > w.cfg.limit {
            return self.stop.set(Some(Stop::TimeLimit));
        }
        w.advance(next);
    }

    fn notify(&self) {}

    fn has_sources(&self) -> bool {
        self.world.st.borrow().net.next_time().is_some()
    }

    fn dispatch(&self, _events: &Events, _wake: &mut dyn FnMut(NonNull<()>)) {
        // The network's waiters are wakers: it wakes them itself.
        self.world.deliver_due();
    }

    fn now(&self) -> Instant {
        self.world.now()
    }

    fn spawned(&self, key: u32) {
        self.world.on_spawn(key);
    }

    fn simulated(&self) -> bool {
        true
    }

    fn network(&self) -> Option<Rc<dyn Network>> {
        Some(Rc::clone(&self.network))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The simulation this thread runs, if any.
pub(crate) fn world() -> Option<Rc<World>> {
    with_installed(|d| {
        d.as_any()
            .downcast_ref::<SimDriver>()
            .map(|s| Rc::clone(&s.world))
    })
    .flatten()
}
