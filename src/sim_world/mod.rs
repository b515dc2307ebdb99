//! The simulated world: the state of a `corio::sim` simulation. It knows
//! nothing of tasks: a task is its key in the scheduler's registry, a host
//! is its index, a waiter is a `std::task::Waker`.
//!
//! * [`World`]: the virtual clock, the hosts (name, address, alive), the
//!   host each task belongs to and its PCT priority, the trace hash, the
//!   control actions requested from inside tasks, and the network;
//! * [`config`]: the settings `corio::sim::Builder` makes;
//! * [`rng`]: the seeded generator every random choice derives from;
//! * [`net`]: the in-memory network — sockets, packets on the virtual
//!   clock, and the wakers of the tasks that wait on a socket.
//!
//! Only `corio::sim` uses it: its driver (installed in the simulated
//! runtime's scheduler through the driver seam) reads the clock, records
//! each spawn ([`World::on_spawn`]), advances the clock and delivers the
//! network's events; its sockets (`corio::sim`'s `net`, which
//! `corio::net` sees as the driver's network) operate on the network. The
//! layers below `sim` see none of it.

use std::cell::{Cell, RefCell};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub(crate) mod config;
pub(crate) mod net;
pub(crate) mod rng;

use config::{Config, Schedule};
use net::Net;
use rng::Rng;

/// No host (the simulation itself).
pub(crate) const NO_HOST: u32 = u32::MAX;

/// Trace record tags.
pub(crate) const T_RUN: u64 = 1;
pub(crate) const T_TIME: u64 = 2;
pub(crate) const T_NET: u64 = 3;
pub(crate) const T_CONTROL: u64 = 4;
const T_SPAWN: u64 = 5;

/// Distinguishes one world's sockets from another's.
static NEXT_WORLD: AtomicU64 = AtomicU64::new(1);

/// A simulated host as the network sees it.
pub(crate) struct Host {
    pub(crate) name: String,
    pub(crate) ip: Ipv4Addr,
    pub(crate) alive: bool,
}

/// A control action requested from inside a task, applied between tasks.
#[derive(Clone, Debug)]
pub(crate) enum Control {
    Crash(String),
    Restart(String),
    Partition(String, String),
    Repair(String, String),
}

/// The PCT schedule's change points.
pub(crate) struct Pct {
    /// Step numbers at which the running task drops, in decreasing order.
    pub(crate) change_points: Vec<u64>,
    pub(crate) next_low: u64,
}

/// The simulation's state, shared by the loop, its driver and the
/// simulated sockets (which find it through the thread's runtime).
pub(crate) struct World {
    pub(crate) cfg: Config,
    /// Distinguishes this world's sockets from another's.
    pub(crate) id: u64,
    pub(crate) base: Instant,
    elapsed: Cell<Duration>,
    pub(crate) st: RefCell<State>,
    trace: Cell<u64>,
    events: Cell<u64>,
    current_host: Cell<u32>,
    pending: RefCell<Vec<Control>>,
}

/// The mutable part of a [`World`].
pub(crate) struct State {
    pub(crate) rng: Rng,
    pub(crate) net: Net,
    pub(crate) hosts: Vec<Host>,
    /// The host of each task, by registry key.
    pub(crate) task_host: Vec<u32>,
    /// The PCT priority of each task, by registry key.
    pub(crate) prio: Vec<u64>,
    pub(crate) pct: Option<Pct>,
    /// Task switches so far.
    pub(crate) steps: u64,
}

impl World {
    /// A world at virtual time zero, configured by `cfg`.
    pub(crate) fn new(cfg: Config) -> World {
        let mut rng = Rng::new(cfg.seed);
        let pct = match cfg.schedule {
            Schedule::Random => None,
            Schedule::Pct { depth, steps } => {
                let mut change_points: Vec<u64> =
                    (1..depth).map(|_| 1 + rng.below(steps)).collect();
                change_points.sort_unstable_by(|a, b| b.cmp(a));
                Some(Pct {
                    change_points,
                    next_low: u64::from(depth),
                })
            }
        };
        World {
            id: NEXT_WORLD.fetch_add(1, Ordering::Relaxed),
            base: Instant::now(),
            elapsed: Cell::new(Duration::ZERO),
            st: RefCell::new(State {
                rng,
                net: Net::default(),
                hosts: Vec::new(),
                task_host: Vec::new(),
                prio: Vec::new(),
                pct,
                steps: 0,
            }),
            trace: Cell::new(0xcbf2_9ce4_8422_2325 ^ cfg.seed),
            events: Cell::new(0),
            current_host: Cell::new(NO_HOST),
            pending: RefCell::new(Vec::new()),
            cfg,
        }
    }

    /// The virtual time.
    pub(crate) fn now(&self) -> Instant {
        self.base + self.elapsed.get()
    }

    pub(crate) fn elapsed(&self) -> Duration {
        self.elapsed.get()
    }

    /// Moves the clock to `to` (virtual time since the start).
    pub(crate) fn advance(&self, to: Duration) {
        if to != self.elapsed.get() {
            self.elapsed.set(to);
            self.trace(T_TIME, to.as_nanos() as u64, 0);
        }
    }

    /// Mixes a record into the trace hash (FNV-1a over words).
    pub(crate) fn trace(&self, tag: u64, a: u64, b: u64) {
        let mut h = self.trace.get();
        for w in [tag, a, b] {
            h = (h ^ w).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.trace.set(h);
        self.events.set(self.events.get() + 1);
    }

    /// The trace hash so far.
    pub(crate) fn trace_hash(&self) -> u64 {
        self.trace.get()
    }

    /// How many records the trace hash holds.
    pub(crate) fn events(&self) -> u64 {
        self.events.get()
    }

    /// The host of the running task (or of the host being started).
    pub(crate) fn current_host(&self) -> u32 {
        self.current_host.get()
    }

    /// Makes `host` the current host; returns the previous one.
    pub(crate) fn set_current_host(&self, host: u32) -> u32 {
        self.current_host.replace(host)
    }

    /// The scheduler's spawn hook: the new task `key` belongs to the host
    /// of its spawner. Out of line, to keep the real spawn path short.
    #[cold]
    #[inline(never)]
    pub(crate) fn on_spawn(&self, key: u32) {
        let host = self.current_host.get();
        {
            let st = &mut *self.st.borrow_mut();
            let k = key as usize;
            if st.task_host.len() <= k {
                st.task_host.resize(k + 1, NO_HOST);
                st.prio.resize(k + 1, 0);
            }
            st.task_host[k] = host;
            if st.pct.is_some() {
                st.prio[k] = st.rng.next_u64() | (1 << 63);
            }
        }
        self.trace(T_SPAWN, u64::from(key), u64::from(host));
    }

    /// The host of task `key`.
    pub(crate) fn task_host(&self, key: usize) -> u32 {
        self.st
            .borrow()
            .task_host
            .get(key)
            .copied()
            .unwrap_or(NO_HOST)
    }

    pub(crate) fn host_ip(&self, host: u32) -> Option<Ipv4Addr> {
        self.st.borrow().hosts.get(host as usize).map(|h| h.ip)
    }

    /// The host whose address is `ip`.
    pub(crate) fn host_of_ip(st: &State, ip: IpAddr) -> Option<u32> {
        st.hosts
            .iter()
            .position(|h| IpAddr::V4(h.ip) == ip)
            .map(|i| i as u32)
    }

    /// The address of the host named `name`.
    pub(crate) fn lookup(&self, name: &str) -> Option<Ipv4Addr> {
        self.st
            .borrow()
            .hosts
            .iter()
            .find(|h| h.name == name)
            .map(|h| h.ip)
    }

    /// Adds a host named `name` (10.0.x.y) and returns its index.
    ///
    /// # Panics
    ///
    /// If a host of that name exists.
    pub(crate) fn add_host(&self, name: String) -> u32 {
        let st = &mut *self.st.borrow_mut();
        assert!(
            st.hosts.iter().all(|e| e.name != name),
            "corio::sim: a host named {name:?} exists already"
        );
        let n = st.hosts.len() as u32 + 1;
        let ip = Ipv4Addr::new(10, 0, (n >> 8) as u8, n as u8);
        st.hosts.push(Host {
            name,
            ip,
            alive: false,
        });
        st.hosts.len() as u32 - 1
    }

    /// The index of the host named `name`.
    ///
    /// # Panics
    ///
    /// If there is none.
    pub(crate) fn host_index(&self, name: &str) -> u32 {
        self.st
            .borrow()
            .hosts
            .iter()
            .position(|h| h.name == name)
            .unwrap_or_else(|| panic!("corio::sim: no host named {name:?}")) as u32
    }

    /// Queues a control action, applied by the loop between tasks.
    pub(crate) fn request(&self, c: Control) {
        self.pending.borrow_mut().push(c);
    }

    /// The oldest control action not applied yet.
    pub(crate) fn next_request(&self) -> Option<Control> {
        let mut p = self.pending.borrow_mut();
        (!p.is_empty()).then(|| p.remove(0))
    }

    /// Cuts the network between hosts `a` and `b`.
    pub(crate) fn partition(&self, a: u32, b: u32) {
        self.trace(T_CONTROL, 3, u64::from(a) << 32 | u64::from(b));
        self.st.borrow_mut().net.partition(a, b);
    }

    /// Repairs the network between hosts `a` and `b`.
    pub(crate) fn repair(&self, a: u32, b: u32) {
        self.trace(T_CONTROL, 4, u64::from(a) << 32 | u64::from(b));
        let now = self.elapsed();
        let st = &mut *self.st.borrow_mut();
        st.net.repair(a, b, now, &mut st.rng, &self.cfg);
    }

    /// Host `h`'s sockets vanish and its connections' peers are reset.
    pub(crate) fn crash_sockets(&self, h: u32) {
        let now = self.elapsed.get();
        let st = &mut *self.st.borrow_mut();
        st.net.crash_host(h, now, &mut st.rng, &self.cfg);
    }

    /// Delivers the network events due now and wakes their waiters.
    pub(crate) fn deliver_due(&self) {
        loop {
            let wake = {
                let st = &mut *self.st.borrow_mut();
                let now = self.elapsed.get();
                let State {
                    rng, net, hosts, ..
                } = st;
                let alive: Vec<bool> = hosts.iter().map(|h| h.alive).collect();
                match net.deliver_next(now, rng, &self.cfg, &alive, |a, b| self.trace(T_NET, a, b))
                {
                    Some(w) => w,
                    None => return,
                }
            };
            for w in wake {
                w.wake();
            }
        }
    }
}
