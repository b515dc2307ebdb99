//! Deterministic simulation: the same corio program on a virtual clock, a
//! simulated network and a seeded scheduler.
//!
//! A [`Sim`] runs simulated hosts and clients — ordinary corio code using
//! [`spawn`](crate::spawn), [`sync`](crate::sync), [`time`](crate::time)
//! and [`net`](crate::net) — on one thread. Time is virtual: when every
//! task waits, the clock jumps to the next timer or packet, so an hour of
//! sleeps takes milliseconds. Which ready task runs next, every latency,
//! every lost datagram derives from one seed, so a failing seed replays
//! its run event for event. [`check`] runs a scenario over many seeds, on
//! all cores.
//!
//! The API follows turmoil's: [`Builder`] (seed, latency, loss, resets,
//! PCT scheduling), [`Sim::host`], [`Sim::client`], [`Sim::run`],
//! [`Sim::crash`], [`Sim::restart`], [`Sim::partition`], [`Sim::repair`].
//!
//! Inside a simulation, read the time with [`corio::time::now`](crate::time::now)
//! (or `Instant`s from it), not `std::time::Instant::now()`, which keeps
//! reading the real clock. Files, processes and signals are not simulated:
//! they fail with [`Error::NotSimulated`](crate::Error::NotSimulated).
//! See `docs/simulation.md` for what is modelled and how to reproduce a
//! failure.
//!
//! # Examples
//!
//! A UDP ping over a lossy network, retried until answered:
//!
//! ```
//! use std::time::Duration;
//! use corio::net::UdpSocket;
//!
//! let mut sim = corio::sim::Builder::new().seed(3).loss(0.3).build();
//! sim.host("echo", || {
//!     let sock = UdpSocket::bind("0.0.0.0:9000")?;
//!     let mut buf = [0; 64];
//!     loop {
//!         let (n, from) = sock.recv_from(&mut buf)?;
//!         sock.send_to(&buf[..n], from)?;
//!     }
//! });
//! sim.client("pinger", || {
//!     let sock = UdpSocket::bind("0.0.0.0:0")?;
//!     sock.set_read_timeout(Some(Duration::from_millis(100)))?;
//!     let mut buf = [0; 64];
//!     loop {
//!         sock.send_to(b"ping", "echo:9000")?;
//!         match sock.recv_from(&mut buf) {
//!             Ok((n, _)) => return Ok(assert_eq!(&buf[..n], b"ping")),
//!             Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
//!             Err(e) => return Err(e.into()),
//!         }
//!     }
//! });
//! sim.run().unwrap();
//! ```

use std::fmt;
use std::time::Duration;

use crate::sim_world::Control;

mod check;
mod config;
mod driver;
mod net;
mod runtime;

pub use check::{CheckFailure, SEED_VAR, check};
pub use config::Builder;
pub use runtime::Sim;

/// What a host's or client's body returns (as in turmoil): `Ok(())`, or
/// any error, which fails the run.
pub type Result<T = (), E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

/// What a [`check`] scenario returns: `()` (a panic is the only failure)
/// or a `Result` (such as [`Sim::run`]'s) whose error fails the seed.
pub trait Outcome: 'static {
    /// `Err` with a description if this result is a failure.
    ///
    /// # Errors
    ///
    /// The failure, as text.
    fn into_outcome(self) -> std::result::Result<(), String>;
}

impl Outcome for () {
    fn into_outcome(self) -> std::result::Result<(), String> {
        Ok(())
    }
}

impl<T: 'static, E: fmt::Display + 'static> Outcome for std::result::Result<T, E> {
    fn into_outcome(self) -> std::result::Result<(), String> {
        self.map(drop).map_err(|e| e.to_string())
    }
}

/// Why a simulation run failed. Every variant names the seed; its message
/// says how to replay the run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// A client or host returned an error or panicked.
    #[error(
        "corio::sim: {kind} {name:?} failed at {elapsed:?} of virtual time: {message}\n\
         seed {seed}; replay with corio::sim::Builder::new().seed({seed}) \
         (or CORIO_SIM_SEED={seed} for corio::sim::check)"
    )]
    Failed {
        /// The seed of the run.
        seed: u64,
        /// `"client"` or `"host"`.
        kind: &'static str,
        /// Its name.
        name: String,
        /// The error it returned, or its panic message.
        message: String,
        /// When, in virtual time.
        elapsed: Duration,
    },
    /// Every task waits, with no timer or packet left to wake one, while
    /// clients have not finished.
    #[error(
        "corio::sim: deadlock at {elapsed:?} of virtual time: every task waits and nothing \
         is left to wake one; clients not finished: {waiting:?}\n\
         seed {seed}; replay with corio::sim::Builder::new().seed({seed}) \
         (or CORIO_SIM_SEED={seed} for corio::sim::check)"
    )]
    Deadlock {
        /// The seed of the run.
        seed: u64,
        /// When, in virtual time.
        elapsed: Duration,
        /// The clients still running.
        waiting: Vec<String>,
    },
    /// The run reached [`Builder::time_limit`].
    #[error(
        "corio::sim: the clients had not finished after {limit:?} of virtual time\n\
         seed {seed}; replay with corio::sim::Builder::new().seed({seed}) \
         (or CORIO_SIM_SEED={seed} for corio::sim::check)"
    )]
    TimeLimit {
        /// The seed of the run.
        seed: u64,
        /// The limit.
        limit: Duration,
    },
}

impl SimError {
    /// The seed of the failed run.
    pub fn seed(&self) -> u64 {
        match self {
            SimError::Failed { seed, .. }
            | SimError::Deadlock { seed, .. }
            | SimError::TimeLimit { seed, .. } => *seed,
        }
    }
}

fn request(c: Control) {
    driver::world()
        .unwrap_or_else(|| panic!("corio::sim: not inside a simulation"))
        .request(c);
}

/// Crashes host `name` from inside the simulation (a fault-injecting
/// client, say): as [`Sim::crash`], once the calling task next waits or
/// yields.
///
/// # Panics
///
/// Outside a simulation; if there is no host `name` (when applied).
pub fn crash(name: &str) {
    request(Control::Crash(name.to_owned()));
}

/// Restarts host `name` from inside the simulation: as [`Sim::restart`].
///
/// # Panics
///
/// As [`crash`].
pub fn restart(name: &str) {
    request(Control::Restart(name.to_owned()));
}

/// Cuts the network between `a` and `b` from inside the simulation: as
/// [`Sim::partition`].
///
/// # Panics
///
/// As [`crash`].
pub fn partition(a: &str, b: &str) {
    request(Control::Partition(a.to_owned(), b.to_owned()));
}

/// Repairs the network between `a` and `b` from inside the simulation: as
/// [`Sim::repair`].
///
/// # Panics
///
/// As [`crash`].
pub fn repair(a: &str, b: &str) {
    request(Control::Repair(a.to_owned(), b.to_owned()));
}

/// Whether the calling thread is running a simulation.
///
/// ```
/// assert!(!corio::sim::is_simulated());
/// let mut sim = corio::sim::Builder::new().build();
/// sim.client("c", || {
///     assert!(corio::sim::is_simulated());
///     Ok(())
/// });
/// sim.run().unwrap();
/// ```
pub fn is_simulated() -> bool {
    crate::task::driver::simulated()
}
