//! [`Interval`]: a task that does something every period.

use std::time::{Duration, Instant};

/// A late tick that is later than this is "missed", and
/// [`MissedTickBehavior`] decides what follows; smaller delays are the
/// scheduler's ordinary jitter and change nothing.
const TOLERANCE: Duration = Duration::from_millis(5);

/// What an [`Interval`] does when ticks were missed because the task did
/// not call [`tick`](Interval::tick) in time (it was busy, or its thread
/// was). Shaped like tokio's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MissedTickBehavior {
    /// Fire the missed ticks at once, one per `tick` call, until the
    /// interval has caught up with its original schedule (the default).
    #[default]
    Burst,
    /// Start a new schedule one period after the late tick.
    Delay,
    /// Drop the missed ticks and fire at the next instant of the original
    /// schedule.
    Skip,
}

impl MissedTickBehavior {
    /// The tick after one scheduled at `scheduled` that fired at `now`.
    fn next(self, scheduled: Instant, now: Instant, period: Duration) -> Instant {
        match self {
            MissedTickBehavior::Burst => scheduled + period,
            MissedTickBehavior::Delay => now + period,
            MissedTickBehavior::Skip => {
                let late = now.duration_since(scheduled).as_nanos();
                let period_ns = period.as_nanos();
                let into_period = u64::try_from(late % period_ns).unwrap_or(0);
                now + period - Duration::from_nanos(into_period)
            }
        }
    }
}

/// Ticks every `period`, the first tick at once — tokio's
/// `time::interval`. See [`Interval`].
///
/// # Panics
///
/// If `period` is zero.
///
/// ```
/// use std::time::{Duration, Instant};
///
/// corio::run(|| {
///     let start = Instant::now();
///     let mut every = corio::time::interval(Duration::from_millis(10));
///     for _ in 0..3 {
///         every.tick(); // at 0, 10 and 20 ms
///     }
///     assert!(start.elapsed() >= Duration::from_millis(20));
/// });
/// ```
pub fn interval(period: Duration) -> Interval {
    interval_at(crate::time::now(), period)
}

/// Ticks every `period`, the first tick at `start`.
///
/// # Panics
///
/// If `period` is zero.
pub fn interval_at(start: Instant, period: Duration) -> Interval {
    assert!(
        !period.is_zero(),
        "corio::time::interval: the period must be non-zero"
    );
    Interval {
        next: start,
        period,
        missed: MissedTickBehavior::default(),
    }
}

/// A schedule of ticks, made by [`interval`] or [`interval_at`]. Unlike a
/// loop around [`sleep`](super::sleep), the schedule does not drift by the
/// time the work between ticks takes.
#[derive(Debug)]
pub struct Interval {
    next: Instant,
    period: Duration,
    missed: MissedTickBehavior,
}

impl Interval {
    /// Waits for the next tick and returns the instant it was scheduled
    /// for. A cancellation point (like [`sleep`](super::sleep)): a
    /// cancelled task unwinds from here, and an expired
    /// [`timeout`](super::timeout) unwinds to itself.
    pub fn tick(&mut self) -> Instant {
        let scheduled = self.next;
        if crate::time::now() < scheduled {
            super::sleep_until(scheduled);
        }
        let now = crate::time::now();
        self.next = if now > scheduled + TOLERANCE {
            self.missed.next(scheduled, now, self.period)
        } else {
            scheduled + self.period
        };
        scheduled
    }

    /// The instant of the next tick.
    pub fn next_tick(&self) -> Instant {
        self.next
    }

    /// Restarts the schedule: the next tick is one period from now.
    pub fn reset(&mut self) {
        self.next = crate::time::now() + self.period;
    }

    /// Restarts the schedule with the next tick at once.
    pub fn reset_immediately(&mut self) {
        self.next = crate::time::now();
    }

    /// Restarts the schedule with the next tick after `after`.
    pub fn reset_after(&mut self, after: Duration) {
        self.next = crate::time::now() + after;
    }

    /// Restarts the schedule with the next tick at `at`.
    pub fn reset_at(&mut self, at: Instant) {
        self.next = at;
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// What happens to missed ticks.
    pub fn missed_tick_behavior(&self) -> MissedTickBehavior {
        self.missed
    }

    /// Sets what happens to missed ticks.
    pub fn set_missed_tick_behavior(&mut self, behavior: MissedTickBehavior) {
        self.missed = behavior;
    }
}
