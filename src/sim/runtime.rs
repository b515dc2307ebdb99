//! [`Sim`]: one corio runtime on the calling thread, on the simulation's
//! driver (`super::driver`) instead of the reactor, whose loop runs the
//! ready tasks in a seeded order and, when every task waits, polls the
//! driver through the driver seam — which jumps the virtual clock to the
//! next timer or network event and delivers the simulated network's
//! packets. The simulation's state — the clock, the hosts' addresses, the
//! network — is the [`World`] (`crate::sim_world`); what only the loop
//! needs — each host's body and root task — is here.
//!
//! A host is the set of tasks spawned, directly or not, from its body:
//! every task records the host it was spawned on (`World::on_spawn`, a
//! hook of the scheduler's spawn), so a crash cancels exactly the host's
//! tasks — each unwinds on its own stack and its destructors run.
#![allow(unsafe_code)]

use std::cell::{Cell, RefCell};
use std::fmt;
use std::ptr::NonNull;
use std::rc::Rc;
use std::time::Duration;

use super::driver::{SimDriver, Stop};
use super::net::SimNetwork;
use super::{Outcome, SimError};
use crate::JoinHandle;
use crate::sim_world::config::Config;
use crate::sim_world::{Control, NO_HOST, T_CONTROL, T_RUN, World};
use crate::task::context::{Config as RtConfig, Scheduler, abandon_task};
use crate::task::core::Core;

type HostBody = Rc<dyn Fn() -> Result<(), String>>;
type ClientBody = Box<dyn FnOnce() -> Result<(), String>>;

/// What the loop keeps of a host or client (its name and address are the
/// world's, at the same index).
struct HostEntry {
    client: bool,
    body: Option<HostBody>,
    /// A client's body, until it is started.
    client_body: Option<ClientBody>,
    root: Option<JoinHandle<Result<(), String>>>,
    /// A client that finished (or was crashed).
    done: bool,
}

/// Picks and removes the next task to run from the run queue.
fn pick(w: &World, s: &Scheduler) -> Option<NonNull<Core>> {
    let len = s.run_queue.with(|q| q.len());
    if len == 0 {
        return None;
    }
    let st = &mut *w.st.borrow_mut();
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
    driver: Rc<SimDriver>,
    // Dropped before `hosts`: the scheduler's drop unwinds the tasks still
    // alive (a simulation never run, or stepped and dropped), whose
    // destructors still see the simulation through its installed driver.
    scheduler: Scheduler,
    /// Each host's body and root task, by index (as the world's hosts).
    hosts: RefCell<Vec<HostEntry>>,
    /// A host's or client's root task ended: look at the results.
    dirty: Rc<Cell<bool>>,
    ran: bool,
}

impl fmt::Debug for Sim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sim")
            .field("seed", &self.world.cfg.seed)
            .field("elapsed", &self.world.elapsed())
            .finish_non_exhaustive()
    }
}

impl Sim {
    pub(crate) fn new(cfg: Config) -> Sim {
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
        let world = Rc::new(World::new(cfg));
        let network = Rc::new(SimNetwork(Rc::clone(&world)));
        let driver = Rc::new(SimDriver::new(Rc::clone(&world), network));
        scheduler.tick.set(world.base);
        scheduler.install_driver(Rc::clone(&driver) as _);
        Sim {
            world,
            driver,
            scheduler,
            hosts: RefCell::new(Vec::new()),
            dirty: Rc::new(Cell::new(true)),
            ran: false,
        }
    }

    fn add(&mut self, name: String, client: bool, body: Option<HostBody>, cb: Option<ClientBody>) {
        let h = self.world.add_host(name);
        self.hosts.get_mut().push(HostEntry {
            client,
            body,
            client_body: cb,
            root: None,
            done: false,
        });
        self.spawn_root(h);
    }

    fn spawn_root(&self, h: u32) {
        let (w, s) = (&self.world, &self.scheduler);
        let name = w.st.borrow().hosts[h as usize].name.clone();
        let (body, client_body) = {
            let e = &mut self.hosts.borrow_mut()[h as usize];
            (e.body.clone(), e.client_body.take())
        };
        let dirty = Rc::clone(&self.dirty);
        struct Ended(Rc<Cell<bool>>);
        impl Drop for Ended {
            fn drop(&mut self) {
                self.0.set(true);
            }
        }
        let prev = w.set_current_host(h);
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
            w.cfg.stack_size,
            std::panic::Location::caller(),
        );
        w.set_current_host(prev);
        let handle =
            spawned.unwrap_or_else(|e| panic!("corio::sim: cannot start host {name:?}: {e}"));
        self.hosts.borrow_mut()[h as usize].root = Some(handle);
        w.st.borrow_mut().hosts[h as usize].alive = true;
    }

    /// Looks at the root tasks that ended: `Ok(true)` once every client is
    /// done, the first failure as an error.
    fn collect(&self) -> Result<bool, SimError> {
        let w = &self.world;
        let mut failure = None;
        let mut all_done = true;
        {
            let hosts = &mut *self.hosts.borrow_mut();
            for (i, e) in hosts.iter_mut().enumerate() {
                if e.root.as_ref().is_some_and(JoinHandle::is_finished) {
                    let handle = e.root.take().expect("checked above");
                    let name = || w.st.borrow().hosts[i].name.clone();
                    match handle.join() {
                        Ok(Ok(())) => {}
                        Ok(Err(msg)) if failure.is_none() => {
                            failure = Some((name(), e.client, msg));
                        }
                        Err(err) if err.is_panic() && failure.is_none() => {
                            failure = Some((name(), e.client, err.to_string()));
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
                seed: w.cfg.seed,
                kind: if client { "client" } else { "host" },
                name,
                message,
                elapsed: w.elapsed(),
            }),
            None => Ok(all_done),
        }
    }

    fn apply_pending(&self) {
        while let Some(c) = self.world.next_request() {
            self.apply(c);
        }
    }

    fn apply(&self, c: Control) {
        let w = &self.world;
        match c {
            Control::Crash(name) => {
                let h = w.host_index(&name);
                self.crash_now(h);
            }
            Control::Restart(name) => {
                let h = w.host_index(&name);
                if self.hosts.borrow()[h as usize].client {
                    panic!("corio::sim: {name:?} is a client; only hosts restart");
                }
                self.crash_now(h);
                w.trace(T_CONTROL, 2, u64::from(h));
                self.spawn_root(h);
            }
            Control::Partition(a, b) => w.partition(w.host_index(&a), w.host_index(&b)),
            Control::Repair(a, b) => w.repair(w.host_index(&a), w.host_index(&b)),
        }
    }

    /// Cancels every task of host `h` (each unwinds, destructors run) and
    /// resets its connections.
    fn crash_now(&self, h: u32) {
        let (w, s) = (&self.world, &self.scheduler);
        {
            let e = &mut w.st.borrow_mut().hosts[h as usize];
            if !e.alive {
                return;
            }
            e.alive = false;
        }
        {
            let e = &mut self.hosts.borrow_mut()[h as usize];
            if e.client {
                e.done = true;
            }
        }
        w.crash_sockets(h);
        w.trace(T_CONTROL, 1, u64::from(h));
        let prev = w.set_current_host(h);
        loop {
            let victims: Vec<_> = s
                .tasks
                .borrow()
                .iter()
                .filter(|(k, _)| w.task_host(*k) == h)
                .map(|(_, t)| t.clone())
                .collect();
            if victims.is_empty() {
                break;
            }
            for t in &victims {
                abandon_task(t);
            }
        }
        w.set_current_host(prev);
        // Its sockets closed while it unwound: no FIN for a crash, and
        // nothing it left may linger.
        w.crash_sockets(h);
        let root = self.hosts.borrow_mut()[h as usize].root.take();
        drop(root);
    }

    fn waiting_clients(&self) -> Vec<String> {
        let st = self.world.st.borrow();
        self.hosts
            .borrow()
            .iter()
            .zip(&st.hosts)
            .filter(|(e, _)| e.client && !e.done)
            .map(|(_, h)| h.name.clone())
            .collect()
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
        self.dirty.set(true);
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
            self.apply_pending();
            if self.dirty.replace(false) && self.collect()? {
                return Ok(true);
            }
            let Some(core) = pick(w, s) else { break };
            // SAFETY: queued tasks are in the registry, which keeps them
            // alive until they are retired (never while queued).
            let core = unsafe { core.as_ref() };
            let key = core.header.key();
            let host = w.task_host(key);
            w.set_current_host(host);
            w.trace(T_RUN, key as u64, u64::from(host));
            s.run_task(core);
            w.set_current_host(NO_HOST);
        }
        // Wakeups from other threads (a task of the simulation woken by a
        // plain thread): they make the run depend on that thread's timing.
        if s.drain_inject() {
            return Ok(false);
        }
        // Every task waits: poll the driver through the seam, as the real
        // loop polls the reactor. It moves the clock to the next timer or
        // network event (or says why it cannot), then wakes what is due:
        // the network's waiters first, then the timers.
        let driver = s.driver();
        let timeout = s
            .timers
            .borrow()
            .first_key_value()
            .map(|((at, _), _)| at.saturating_duration_since(driver.now()));
        let mut events = s.events.borrow_mut();
        driver.poll(&mut events, timeout);
        match self.driver.take_stop() {
            None => {}
            Some(Stop::Deadlock) => {
                return Err(SimError::Deadlock {
                    seed: w.cfg.seed,
                    elapsed: w.elapsed(),
                    waiting: self.waiting_clients(),
                });
            }
            Some(Stop::TimeLimit) => {
                return Err(SimError::TimeLimit {
                    seed: w.cfg.seed,
                    limit: w.cfg.limit,
                });
            }
        }
        s.refresh_clock();
        // The simulation's waiters are wakers, not tokens: no `wake`.
        driver.dispatch(&events, &mut |_| {});
        drop(events);
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
        self.apply(c);
    }

    /// The virtual time since the simulation started.
    pub fn elapsed(&self) -> Duration {
        self.world.elapsed()
    }

    /// A hash of every event of the run so far — each task switch (which
    /// task, on which host), each clock jump, each packet delivered or
    /// lost, each crash and partition. Equal seeds give equal hashes.
    pub fn trace_hash(&self) -> u64 {
        self.world.trace_hash()
    }

    /// How many events [`trace_hash`](Self::trace_hash) has hashed.
    pub fn events(&self) -> u64 {
        self.world.events()
    }

    pub(crate) fn has_run(&self) -> bool {
        self.ran
    }

    /// The seed this simulation runs with.
    pub fn seed(&self) -> u64 {
        self.world.cfg.seed
    }
}
