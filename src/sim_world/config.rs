//! The settings a simulation runs with, as `corio::sim::Builder` sets them:
//! the seed, the network's fault knobs, how the next task is chosen.

use std::ops::RangeInclusive;
use std::time::Duration;

/// How the next ready task is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Schedule {
    /// Uniformly among the ready tasks, at every switch.
    Random,
    /// PCT (probabilistic concurrency testing): random distinct priorities,
    /// the highest ready task runs, and at `depth - 1` random steps among
    /// the first `steps` the running task drops below every other.
    Pct { depth: u32, steps: u64 },
}

/// The settings of a simulation.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) seed: u64,
    pub(crate) latency: RangeInclusive<Duration>,
    pub(crate) loss: f64,
    pub(crate) reset: f64,
    pub(crate) limit: Duration,
    pub(crate) schedule: Schedule,
    pub(crate) stack_size: usize,
    pub(crate) quiet: bool,
}
