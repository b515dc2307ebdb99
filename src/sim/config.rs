//! [`Builder`]: the seed and the fault knobs of a simulation.

use std::ops::{Bound, RangeBounds};
use std::time::Duration;

use super::runtime::Sim;
use crate::sim_world::config::{Config, Schedule};

/// Configures a simulation: the seed every random choice derives from, and
/// the faults the network injects. Modelled on turmoil's builder.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let mut sim = corio::sim::Builder::new()
///     .seed(42)
///     .latency(Duration::from_millis(1)..Duration::from_millis(20))
///     .loss(0.05)
///     .build();
/// sim.client("c", || {
///     corio::time::sleep(Duration::from_secs(3600));
///     Ok(())
/// });
/// sim.run().unwrap();
/// // An hour of virtual time, in well under a second of real time.
/// assert_eq!(sim.elapsed(), Duration::from_secs(3600));
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct Builder {
    cfg: Config,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            cfg: Config {
                seed: 0,
                latency: Duration::from_millis(1)..=Duration::from_millis(10),
                loss: 0.0,
                reset: 0.0,
                limit: Duration::from_secs(24 * 3600),
                schedule: Schedule::Random,
                stack_size: crate::stack::DEFAULT_STACK_SIZE,
                quiet: false,
            },
        }
    }
}

impl Builder {
    /// The defaults: seed 0, latency 1–10 ms, no loss, no resets, random
    /// scheduling, a limit of one virtual day.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// The seed: equal seeds give equal runs, event for event.
    pub fn seed(mut self, seed: u64) -> Builder {
        self.cfg.seed = seed;
        self
    }

    /// The one-way latency of every TCP segment and datagram, drawn
    /// uniformly from `range` for each (`a..b` or `a..=b`). Datagrams with
    /// different latencies arrive out of order; TCP keeps its order.
    pub fn latency(mut self, range: impl RangeBounds<Duration>) -> Builder {
        let lo = match range.start_bound() {
            Bound::Included(d) => *d,
            Bound::Excluded(d) => *d + Duration::from_nanos(1),
            Bound::Unbounded => Duration::ZERO,
        };
        let hi = match range.end_bound() {
            Bound::Included(d) => *d,
            Bound::Excluded(d) => d.saturating_sub(Duration::from_nanos(1)).max(lo),
            Bound::Unbounded => lo,
        };
        self.cfg.latency = lo..=hi.max(lo);
        self
    }

    /// The probability (0.0–1.0) that a datagram is lost.
    pub fn loss(mut self, probability: f64) -> Builder {
        self.cfg.loss = probability.clamp(0.0, 1.0);
        self
    }

    /// The probability (0.0–1.0) that a TCP segment resets its connection
    /// instead of arriving: both ends then fail with `ConnectionReset`.
    pub fn reset(mut self, probability: f64) -> Builder {
        self.cfg.reset = probability.clamp(0.0, 1.0);
        self
    }

    /// The most virtual time a run may take before [`Sim::run`] fails with
    /// [`SimError::TimeLimit`](super::SimError::TimeLimit) (default one day).
    pub fn time_limit(mut self, limit: Duration) -> Builder {
        self.cfg.limit = limit;
        self
    }

    /// Schedules by PCT (probabilistic concurrency testing) instead of a
    /// uniform choice at every switch: tasks get random priorities, the
    /// highest ready one runs, and at `depth - 1` random points among the
    /// first `steps` task switches the running task drops to the lowest
    /// priority. Finds bugs that need a few specific orderings with a known
    /// probability (at least 1/(n·steps^(depth-1)) for n tasks).
    pub fn pct(mut self, depth: u32, steps: u64) -> Builder {
        self.cfg.schedule = Schedule::Pct {
            depth: depth.max(1),
            steps: steps.max(1),
        };
        self
    }

    /// The stack size of the simulation's tasks (default
    /// [`DEFAULT_STACK_SIZE`](crate::stack::DEFAULT_STACK_SIZE), as in a runtime).
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.cfg.stack_size = bytes;
        self
    }

    /// Creates the simulation.
    ///
    /// # Panics
    ///
    /// If the runtime under it cannot be created (the stack size is
    /// invalid, or no file descriptor is left for its poller).
    pub fn build(self) -> Sim {
        Sim::new(self.cfg)
    }

    pub(crate) fn quiet(mut self) -> Builder {
        self.cfg.quiet = true;
        self
    }

    pub(crate) fn with_seed_of(&self, seed: u64) -> Builder {
        self.clone().seed(seed)
    }
}
