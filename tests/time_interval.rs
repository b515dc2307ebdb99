//! `time::interval`: the schedule, and each missed-tick behaviour.

use std::time::{Duration, Instant};

use corio::time::{MissedTickBehavior, interval, interval_at};

const P: Duration = Duration::from_millis(20);

#[test]
fn ticks_follow_the_schedule_without_drift() {
    corio::run(|| {
        let start = Instant::now();
        let mut every = interval_at(start, P);
        assert_eq!(every.tick(), start, "the first tick is at once");
        for k in 1..=3u32 {
            // Work between ticks does not shift the schedule.
            corio::time::sleep(Duration::from_millis(3));
            assert_eq!(every.tick(), start + P * k);
            assert!(Instant::now() >= start + P * k, "a tick never fires early");
        }
        assert_eq!(every.period(), P);
        assert_eq!(every.missed_tick_behavior(), MissedTickBehavior::Burst);
    });
}

/// Blocks the thread (a busy task) for `d` so that ticks are missed.
fn busy(d: Duration) {
    std::thread::sleep(d);
}

#[test]
fn burst_fires_the_missed_ticks_at_once() {
    corio::run(|| {
        let start = Instant::now();
        let mut every = interval_at(start, P);
        every.tick();
        busy(P * 3 + P / 2);
        let before = Instant::now();
        let ticks: Vec<_> = (0..3).map(|_| every.tick()).collect();
        assert_eq!(ticks, [start + P, start + P * 2, start + P * 3]);
        // They were all due: none of them waited.
        assert!(every.next_tick() > before);
        assert_eq!(every.next_tick(), start + P * 4);
    });
}

#[test]
fn delay_restarts_the_schedule_after_a_late_tick() {
    corio::run(|| {
        let start = Instant::now();
        let mut every = interval_at(start, P);
        every.set_missed_tick_behavior(MissedTickBehavior::Delay);
        every.tick();
        busy(P * 3 + P / 2);
        let fired = Instant::now();
        let late = every.tick();
        assert_eq!(late, start + P, "the late tick reports its scheduled time");
        assert!(every.next_tick() >= fired + P);
        let next = every.tick();
        assert!(next >= fired + P);
    });
}

#[test]
fn skip_drops_missed_ticks_and_keeps_the_grid() {
    corio::run(|| {
        let start = Instant::now();
        let mut every = interval_at(start, P);
        every.set_missed_tick_behavior(MissedTickBehavior::Skip);
        every.tick();
        busy(P * 3 + P / 2);
        assert_eq!(every.tick(), start + P);
        let after = Instant::now();
        let next = every.next_tick();
        assert!(next > after, "no missed tick is fired");
        let on_grid = next.duration_since(start).as_nanos() % P.as_nanos();
        assert_eq!(on_grid, 0, "the next tick is on the original schedule");
        assert!(next <= after + P);
    });
}

#[test]
fn reset_moves_the_next_tick() {
    let mut every = interval(P);
    every.tick();
    let t = Instant::now();
    every.reset_after(Duration::from_secs(60));
    assert!(every.next_tick() >= t + Duration::from_secs(60));
    every.reset_immediately();
    assert!(every.next_tick() <= Instant::now());
    every.reset();
    assert!(every.next_tick() > Instant::now());
}

#[test]
fn tick_is_a_cancellation_point() {
    corio::run(|| {
        let h = corio::spawn(|| {
            let mut every = interval(Duration::from_secs(3600));
            every.tick();
            every.tick();
        });
        corio::yield_now();
        h.cancel();
        assert!(h.join().unwrap_err().is_cancelled());
    });
}

#[test]
#[should_panic(expected = "the period must be non-zero")]
fn a_zero_period_is_refused() {
    let _ = interval(Duration::ZERO);
}
