//! [`Sim`]: one corio runtime on the calling thread whose loop, instead of
//! polling the OS, runs the ready tasks in a seeded order, jumps the
//! virtual clock to the next timer or network event when every task
//! waits, and delivers the simulated network's packets.
//!
//! A host is the set of tasks spawned, directly or not, from its body:
//! every task records the host it was spawned on (`World::on_spawn`, a
//! hook of the scheduler's spawn), so a crash cancels exactly the host's
//! tasks — each unwinds on its own stack and its destructors run.
#![allow(unsafe_code)]

use std::cell::{Cell, RefCell};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::ptr::NonNull;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::clock::Live;
use super::config::{Config, Schedule};
use super::net::Net;
use super::rng::Rng;
use super::{Outcome, SimError};
use crate::JoinHandle;
use crate::task::context::{Config as RtConfig, Scheduler, abandon_task};
use crate::task::core::Core;

/// No host (the simulation itself).
const NO_HOST: u32 = u32::MAX;

/// Trace record tags.
const T_RUN: u64 = 1;
const T_TIME: u64 = 2;
pub(crate) const T_NET: u64 = 3;
const T_CONTROL: u64 = 4;
const T_SPAWN: u64 = 5;

type HostBody = Rc<dyn Fn() -> Result<(), String>>;
type ClientBody = Box<dyn FnOnce() -> Result<(), String>>;

struct HostEntry {
    name: String,
    ip: Ipv4Addr,
    client: bool,
    body: Option<HostBody>,
    /// A client's body, until it is started.
    client_body: Option<ClientBody>,
    alive: bool,
    root: Option<JoinHandle<Result<(), String>>>,
    /// A client that finished (or was crashed).
    done: bool,
}

/// A control action requested from inside a task, applied between tasks.
#[derive(Clone, Debug)]
pub(crate) enum Control {
    Crash(String),
    Restart(String),
    Partition(String, String),
    Repair(String, String),
}

struct Pct {
    /// Step numbers at which the running task drops, in decreasing order.
    change_points: Vec<u64>,
    next_low: u64,
}

/// The simulation's state, shared by the loop, the scheduler's hooks and
/// the simulated sockets (through the thread's runtime).
pub(crate) struct World {
    pub(crate) cfg: Config,
    /// Distinguishes this world's sockets from another's.
    pub(crate) id: u64,
    base: Instant,
    elapsed: Cell<Duration>,
    pub(crate) st: RefCell<State>,
    trace: Cell<u64>,
    events: Cell<u64>,
    current_host: Cell<u32>,
    /// A host's or client's root task ended: look at the results.
    dirty: Rc<Cell<bool>>,
    pending: RefCell<Vec<Control>>,
}

pub(crate) struct State {
    pub(crate) rng: Rng,
    pub(crate) net: Net,
    hosts: Vec<HostEntry>,
    task_host: Vec<u32>,
    prio: Vec<u64>,
    pct: Option<Pct>,
    steps: u64,
}

impl World {
    /// The virtual time.
    pub(crate) fn now(&self) -> Instant {
        self.base + self.elapsed.get()
    }

    pub(crate) fn elapsed(&self) -> Duration {
        self.elapsed.get()
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

    /// The host of the running task (or of the host being started).
    pub(crate) fn current_host(&self) -> u32 {
        self.current_host.get()
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

    fn host_index(&self, name: &str) -> u32 {
        self.st
            .borrow()
            .hosts
            .iter()
            .position(|h| h.name == name)
            .unwrap_or_else(|| panic!("corio::sim: no host named {name:?}")) as u32
    }

    pub(crate) fn request(&self, c: Control) {
        self.pending.borrow_mut().push(c);
    }

    /// Picks and removes the next task to run from the run queue.
    fn pick(&self, s: &Scheduler) -> Option<NonNull<Core>> {
        let len = s.run_queue.with(|q| q.len());
        if len == 0 {
            return None;
        }
        let st = &mut *self.st.borrow_mut();
        st.steps += 1;
        let i = match &mut st.pct {
            None => st.rng.below(len as u64) as usize,
            Some(pct) => {
                let prio = &mut st.prio;
                let best = |q: &std::collections::VecDeque<NonNull<Core>>, prio: &[u64]| {
                    (0..q.len())
                        .max_by_key(|&i| {
                            // SAFETY: queued tasks are alive (they are in
                            // the scheduler's registry).
                            let key = unsafe { q[i].as_ref() }.header.key();
                            prio.get(key).copied().unwrap_or(0)
                        })
                        .unwrap_or(0)
                };
                let mut i = s.run_queue.with(|q| best(q, prio));
                if pct.change_points.last() == Some(&st.steps) {
                    pct.change_points.pop();
                    let key = s.run_queue.with(|q| {
                        // SAFETY: as above.
                        unsafe { q[i].as_ref() }.header.key()
                    });
                    if let Some(p) = prio.get_mut(key) {
                        *p = pct.next_low;
                        pct.next_low = pct.next_low.saturating_sub(1);
                    }
                    i = s.run_queue.with(|q| best(q, prio));
                }
                i
            }
        };
        s.run_queue.with(|q| q.swap_remove_back(i))
    }

    fn spawn_root(self: &Rc<World>, s: &Scheduler, h: u32) {
        let (name, body, client_body) = {
            let st = &mut *self.st.borrow_mut();
            let e = &mut st.hosts[h as usize];
            (e.name.clone(), e.body.clone(), e.client_body.take())
        };
        let dirty = Rc::clone(&self.dirty);
        struct Ended(Rc<Cell<bool>>);
        impl Drop for Ended {
            fn drop(&mut self) {
                self.0.set(true);
            }
        }
        let prev = self.current_host.replace(h);
        let spawned = s.spawn(
            move || {
                let _ended = Ended(dirty);
                match (body, client_body) {
                    (Some(b), _) => b(),
                    (None, Some(c)) => c(),
                    (None, None) => Ok(()),
                }
            },
            Some(name.as_str().into()),
            self.cfg.stack_size,
            std::panic::Location::caller(),
        );
        self.current_host.set(prev);
        let handle =
            spawned.unwrap_or_else(|e| panic!("corio::sim: cannot start host {name:?}: {e}"));
        let st = &mut *self.st.borrow_mut();
        st.hosts[h as usize].root = Some(handle);
        st.hosts[h as usize].alive = true;
    }

    /// Looks at the root tasks that ended: `Ok(true)` once every client is
    /// done, the first failure as an error.
    fn collect(&self) -> Result<bool, SimError> {
        let mut failure = None;
        let mut all_done = true;
        {
            let st = &mut *self.st.borrow_mut();
            for e in &mut st.hosts {
                if e.root.as_ref().is_some_and(JoinHandle::is_finished) {
                    let handle = e.root.take().expect("checked above");
                    match handle.join() {
                        Ok(Ok(())) => {}
                        Ok(Err(msg)) if failure.is_none() => {
                            failure = Some((e.name.clone(), e.client, msg));
                        }
                        Err(err) if err.is_panic() && failure.is_none() => {
                            failure = Some((e.name.clone(), e.client, err.to_string()));
                        }
                        _ => {}
                    }
                    if e.client {
                        e.done = true;
                    }
                }
                if e.client && !e.done {
                    all_done = false;
                }
            }
        }
        match failure {
            Some((name, client, message)) => Err(SimError::Failed {
                seed: self.cfg.seed,
                kind: if client { "client" } else { "host" },
                name,
                message,
                elapsed: self.elapsed(),
            }),
            None => Ok(all_done),
        }
    }

    fn apply_pending(self: &Rc<World>, s: &Scheduler) {
        loop {
            let next = {
                let mut p = self.pending.borrow_mut();
                if p.is_empty() {
                    return;
                }
                p.remove(0)
            };
            self.apply(s, next);
        }
    }

    fn apply(self: &Rc<World>, s: &Scheduler, c: Control) {
        match c {
            Control::Crash(name) => {
                let h = self.host_index(&name);
                self.crash_now(s, h);
            }
            Control::Restart(name) => {
                let h = self.host_index(&name);
                if self.st.borrow().hosts[h as usize].client {
                    panic!("corio::sim: {name:?} is a client; only hosts restart");
                }
                self.crash_now(s, h);
                self.trace(T_CONTROL, 2, u64::from(h));
                self.spawn_root(s, h);
            }
            Control::Partition(a, b) => {
                let (a, b) = (self.host_index(&a), self.host_index(&b));
                self.trace(T_CONTROL, 3, u64::from(a) << 32 | u64::from(b));
                self.st.borrow_mut().net.partition(a, b);
            }
            Control::Repair(a, b) => {
                let (a, b) = (self.host_index(&a), self.host_index(&b));
                self.trace(T_CONTROL, 4, u64::from(a) << 32 | u64::from(b));
                let now = self.elapsed();
                let st = &mut *self.st.borrow_mut();
                st.net.repair(a, b, now, &mut st.rng, &self.cfg);
            }
        }
    }

    /// Cancels every task of host `h` (each unwinds, destructors run) and
    /// resets its connections.
    fn crash_now(&self, s: &Scheduler, h: u32) {
        {
            let st = &mut *self.st.borrow_mut();
            let e = &mut st.hosts[h as usize];
            if !e.alive {
                return;
            }
            e.alive = false;
            if e.client {
                e.done = true;
            }
            let now = self.elapsed.get();
            st.net.crash_host(h, now, &mut st.rng, &self.cfg);
        }
        self.trace(T_CONTROL, 1, u64::from(h));
        let prev = self.current_host.replace(h);
        loop {
            let victims: Vec<_> = {
                let st = self.st.borrow();
                s.tasks
                    .borrow()
                    .iter()
                    .filter(|(k, _)| st.task_host.get(*k) == Some(&h))
                    .map(|(_, t)| t.clone())
                    .collect()
            };
            if victims.is_empty() {
                break;
            }
            for t in &victims {
                abandon_task(t);
            }
        }
        self.current_host.set(prev);
        // Its sockets closed while it unwound: no FIN for a crash, and
        // nothing it left may linger.
        let now = self.elapsed.get();
        let st = &mut *self.st.borrow_mut();
        st.net.crash_host(h, now, &mut st.rng, &self.cfg);
        st.hosts[h as usize].root = None;
    }

    /// Delivers the network events due now and wakes their waiters.
    fn deliver_due(&self) {
        loop {
            let wake = {
                let st = &mut *self.st.borrow_mut();
                let now = self.elapsed.get();
                let State {
                    rng, net, hosts, ..
                } = st;
                let alive: Vec<bool> = hosts.iter().map(|h| h.alive).collect();
                match net.deliver_next(now, rng, &self.cfg, &alive, self) {
                    Some(w) => w,
                    None => return,
                }
            };
            for u in wake {
                u.unpark();
            }
        }
    }
}

/// A simulation: simulated hosts and clients, running real corio code on
/// one thread with a virtual clock, a simulated network and a seeded
/// scheduler. Made by [`Builder::build`](super::Builder::build).
///
/// Everything a run does — which task runs next, every latency, every loss
/// — derives from the seed, so a seed replays its run event for event
/// ([`trace_hash`](Self::trace_hash) tells).
///
/// # Examples
///
/// ```
/// use std::io::{Read, Write};
/// use corio::net::{TcpListener, TcpStream};
///
/// let mut sim = corio::sim::Builder::new().seed(1).build();
/// sim.host("server", || {
///     let listener = TcpListener::bind("0.0.0.0:7000")?;
///     loop {
///         let (mut s, _) = listener.accept()?;
///         let _echo = corio::spawn(move || {
///             let mut buf = [0; 4];
///             s.read_exact(&mut buf).unwrap();
///             s.write_all(&buf).unwrap();
///         });
///     }
/// });
/// sim.client("client", || {
///     let mut s = TcpStream::connect("server:7000")?;
///     s.write_all(b"ping")?;
///     let mut buf = [0; 4];
///     s.read_exact(&mut buf)?;
///     assert_eq!(&buf, b"ping");
///     Ok(())
/// });
/// sim.run().unwrap();
/// assert!(sim.elapsed() > std::time::Duration::ZERO);
/// ```
pub struct Sim {
    world: Rc<World>,
    // Dropped before `_live`: the scheduler's drop unwinds the tasks still
    // alive (a simulation never run, or stepped and dropped), whose
    // destructors still see the simulation through it.
    scheduler: Scheduler,
    ran: bool,
    _live: Live,
}

impl fmt::Debug for Sim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sim")
            .field("seed", &self.world.cfg.seed)
            .field("elapsed", &self.world.elapsed())
            .finish_non_exhaustive()
    }
}

static NEXT_WORLD: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Sim {
    pub(crate) fn new(cfg: Config) -> Sim {
        let live = Live::new();
        let stack_size = crate::stack::checked_size(cfg.stack_size)
            .unwrap_or_else(|e| panic!("corio::sim: {e}"));
        crate::task::panic_hook::install();
        let mut scheduler = Scheduler::new(RtConfig {
            stack_size,
            worker: 0,
            event_interval: 128,
            stall_threshold: None,
        })
        .unwrap_or_else(|e| panic!("corio::sim: cannot create the runtime: {e}"));
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
        let base = Instant::now();
        let world = Rc::new(World {
            id: NEXT_WORLD.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            base,
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
            dirty: Rc::new(Cell::new(true)),
            pending: RefCell::new(Vec::new()),
            cfg,
        });
        scheduler.tick.set(base);
        scheduler.sim = Some(Rc::clone(&world));
        Sim {
            world,
            scheduler,
            ran: false,
            _live: live,
        }
    }

    fn add(&mut self, name: String, client: bool, body: Option<HostBody>, cb: Option<ClientBody>) {
        let h = {
            let st = &mut *self.world.st.borrow_mut();
            assert!(
                st.hosts.iter().all(|e| e.name != name),
                "corio::sim: a host named {name:?} exists already"
            );
            let n = st.hosts.len() as u32 + 1;
            let ip = Ipv4Addr::new(10, 0, (n >> 8) as u8, n as u8);
            st.hosts.push(HostEntry {
                name,
                ip,
                client,
                body,
                client_body: cb,
                alive: false,
                root: None,
                done: false,
            });
            st.hosts.len() as u32 - 1
        };
        self.world.spawn_root(&self.scheduler, h);
    }

    /// Adds a host named `name` (its address is 10.0.x.y; other hosts reach
    /// it by name, as in `"name:port"`) running `f` — a server, usually,
    /// that runs until the simulation ends. [`restart`](Self::restart)
    /// runs `f` again, which is why it is `Fn`. A host whose `f` returns an
    /// error or panics fails the run. As in turmoil, `f` returns
    /// [`corio::sim::Result`](super::Result), so `?` takes any error.
    ///
    /// # Panics
    ///
    /// If a host or client of that name exists.
    pub fn host<F>(&mut self, name: impl Into<String>, f: F)
    where
        F: Fn() -> super::Result + 'static,
    {
        let body: HostBody = Rc::new(move || f().into_outcome());
        self.add(name.into(), false, Some(body), None);
    }

    /// Adds a client named `name` running `f`: [`run`](Self::run) returns
    /// once every client has finished, with the first failure — an error
    /// returned or a panic.
    ///
    /// # Panics
    ///
    /// If a host or client of that name exists.
    pub fn client<F>(&mut self, name: impl Into<String>, f: F)
    where
        F: FnOnce() -> super::Result + 'static,
    {
        let body: ClientBody = Box::new(move || f().into_outcome());
        self.add(name.into(), true, None, Some(body));
    }

    /// Runs until every client has finished; then cancels the hosts (each
    /// task unwinds, destructors run).
    ///
    /// # Errors
    ///
    /// The first client or host that failed ([`SimError::Failed`]), every
    /// task waiting with nothing left to wake it ([`SimError::Deadlock`]),
    /// or the virtual time limit ([`SimError::TimeLimit`]). The error names
    /// the seed and how to replay it; it is also printed on stderr.
    pub fn run(&mut self) -> Result<(), SimError> {
        self.ran = true;
        self.world.dirty.set(true);
        crate::overflow::install(crate::task::core::report_overflow);
        let result = {
            let _enter = self.scheduler.enter();
            let r = loop {
                match self.step_entered() {
                    Ok(true) => break Ok(()),
                    Ok(false) => {}
                    Err(e) => break Err(e),
                }
            };
            self.scheduler.shutdown();
            r
        };
        if let Err(e) = &result
            && !self.world.cfg.quiet
        {
            eprintln!("{e}");
        }
        result
    }

    /// Runs the tasks that are ready now, in the seeded order, until all
    /// wait; then moves the clock to the next timer or network event and
    /// delivers it. Returns `Ok(true)` once every client has finished.
    ///
    /// # Errors
    ///
    /// As [`run`](Self::run).
    pub fn step(&mut self) -> Result<bool, SimError> {
        let _enter = self.scheduler.enter();
        self.step_entered()
    }

    fn step_entered(&self) -> Result<bool, SimError> {
        let s = &self.scheduler;
        let w = &self.world;
        loop {
            w.apply_pending(s);
            if w.dirty.replace(false) && w.collect()? {
                return Ok(true);
            }
            let Some(core) = w.pick(s) else { break };
            // SAFETY: queued tasks are in the registry, which keeps them
            // alive until they are retired (never while queued).
            let core = unsafe { core.as_ref() };
            let key = core.header.key();
            let host = w.st.borrow().task_host.get(key).copied().unwrap_or(NO_HOST);
            w.current_host.set(host);
            w.trace(T_RUN, key as u64, u64::from(host));
            s.run_task(core);
            w.current_host.set(NO_HOST);
        }
        // Wakeups from other threads (a task of the simulation woken by a
        // plain thread): they make the run depend on that thread's timing.
        if s.drain_inject() {
            return Ok(false);
        }
        let next_timer = s
            .timers
            .borrow()
            .first_key_value()
            .map(|((at, _), _)| at.saturating_duration_since(w.base));
        let next_net = w.st.borrow().net.next_time();
        let next = match (next_timer, next_net) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => match a.or(b) {
                Some(t) => t,
                None => {
                    return Err(SimError::Deadlock {
                        seed: w.cfg.seed,
                        elapsed: w.elapsed(),
                        waiting: w.waiting_clients(),
                    });
                }
            },
        };
        let next = next.max(w.elapsed());
        if next > w.cfg.limit {
            return Err(SimError::TimeLimit {
                seed: w.cfg.seed,
                limit: w.cfg.limit,
            });
        }
        if next != w.elapsed() {
            w.elapsed.set(next);
            w.trace(T_TIME, next.as_nanos() as u64, 0);
        }
        s.refresh_clock();
        w.deliver_due();
        s.fire_timers();
        Ok(false)
    }

    /// Crashes host `name`: every task it runs is cancelled (each unwinds
    /// on its own stack, running its destructors), its sockets vanish and
    /// its peers' connections are reset. Inside a task, use
    /// [`corio::sim::crash`](super::crash).
    ///
    /// # Panics
    ///
    /// If there is no host `name`.
    pub fn crash(&mut self, name: &str) {
        self.control(Control::Crash(name.to_owned()));
    }

    /// Starts host `name`'s body again, crashing it first if it runs.
    ///
    /// # Panics
    ///
    /// If there is no host `name`, or it is a client.
    pub fn restart(&mut self, name: &str) {
        self.control(Control::Restart(name.to_owned()));
    }

    /// Cuts the network between `a` and `b`, both ways: datagrams are
    /// lost, TCP segments and connection attempts wait for the
    /// [`repair`](Self::repair).
    ///
    /// # Panics
    ///
    /// If there is no host `a` or `b`.
    pub fn partition(&mut self, a: &str, b: &str) {
        self.control(Control::Partition(a.to_owned(), b.to_owned()));
    }

    /// Undoes [`partition`](Self::partition): held TCP segments go on
    /// their way.
    ///
    /// # Panics
    ///
    /// If there is no host `a` or `b`.
    pub fn repair(&mut self, a: &str, b: &str) {
        self.control(Control::Repair(a.to_owned(), b.to_owned()));
    }

    fn control(&mut self, c: Control) {
        let _enter = self.scheduler.enter();
        self.world.apply(&self.scheduler, c);
    }

    /// The virtual time since the simulation started.
    pub fn elapsed(&self) -> Duration {
        self.world.elapsed()
    }

    /// A hash of every event of the run so far — each task switch (which
    /// task, on which host), each clock jump, each packet delivered or
    /// lost, each crash and partition. Equal seeds give equal hashes.
    pub fn trace_hash(&self) -> u64 {
        self.world.trace.get()
    }

    /// How many events [`trace_hash`](Self::trace_hash) has hashed.
    pub fn events(&self) -> u64 {
        self.world.events.get()
    }

    pub(crate) fn has_run(&self) -> bool {
        self.ran
    }

    /// The seed this simulation runs with.
    pub fn seed(&self) -> u64 {
        self.world.cfg.seed
    }
}

impl World {
    fn waiting_clients(&self) -> Vec<String> {
        self.st
            .borrow()
            .hosts
            .iter()
            .filter(|h| h.client && !h.done)
            .map(|h| h.name.clone())
            .collect()
    }
}
