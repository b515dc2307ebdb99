//! The registry of running runtimes (for the stall monitor and
//! `dump_on_signal`) and the stall monitor: one thread for the process
//! that looks at each runtime's running task every quarter threshold.
//!
//! It sets the `PROBED` bit of the task it finds running (see
//! `task::diag::Probe`); the task clears it when it next suspends. The same task
//! still running a threshold later with the bit still set has not
//! suspended since: a stall, reported once; the monitor then sets
//! `STALLED`, and the task's next suspension reports how long it ran and
//! where it yields.
//!
//! # Reading a running task from the monitor
//!
//! The monitor reads the header of the task a runtime is running (its id,
//! name and spawn location: immutable, thread-safe fields) while that task
//! may finish and be freed at any moment. It announces the task in the
//! runtime's `hazard` pointer, then checks that the task is still the
//! running one; the runtime, before it frees a task it has retired, checks
//! `hazard` and waits while it names that task (`task::diag::before_free`). With a
//! `SeqCst` fence on each side between the store and the load, one of the
//! two sees the other: either the monitor sees that the task is no longer
//! running and reads nothing, or the runtime sees the announcement and
//! waits for the monitor to finish. The runtime makes that check only
//! while a monitor watches it.
#![allow(unsafe_code)]

use std::sync::atomic::{Ordering, fence};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::task::context::{Scheduler, Shared};
use crate::task::core::Core;
use crate::task::diag::{PROBED, STALLED, Stall, write_stderr};

struct Entry {
    sched: *const Scheduler,
    shared: Arc<Shared>,
    threshold: Option<Duration>,
    seen: *const Core,
    since: Instant,
    reported: bool,
}

// SAFETY: the monitor and the signal thread touch only the thread-safe
// fields of the scheduler (atomics, the stall mutex), and only while the
// entry is registered: `Registration` removes it, under the registry lock,
// before the scheduler can go away.
unsafe impl Send for Entry {}

static RUNTIMES: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

fn runtimes() -> MutexGuard<'static, Vec<Entry>> {
    RUNTIMES.lock().unwrap_or_else(|e| e.into_inner())
}

/// A runtime in the registry while its `block_on` runs.
pub(crate) struct Registration(*const Scheduler);

impl Drop for Registration {
    fn drop(&mut self) {
        runtimes().retain(|e| e.sched != self.0);
    }
}

/// Registers `s` (running `block_on` on this thread) until the guard drops;
/// starts the monitor if it watches for stalls.
pub(crate) fn register(s: &Scheduler) -> Registration {
    let threshold = s.diag.stall_threshold;
    s.diag.monitored.set(threshold.is_some());
    runtimes().push(Entry {
        sched: s,
        shared: Arc::clone(&s.shared),
        threshold,
        seen: std::ptr::null(),
        since: Instant::now(),
        reported: false,
    });
    if threshold.is_some() {
        start_monitor();
    }
    Registration(s)
}

/// Asks every registered runtime to print its dump (see `dump_on_signal`):
/// its worker 0, whose dump gathers the other workers' tasks.
pub(crate) fn request_dumps() -> usize {
    let all = runtimes();
    let mut asked = 0;
    for e in all.iter().filter(|e| e.shared.index == 0) {
        // SAFETY: registered, so alive (see `Entry`); atomics only.
        unsafe { &(*e.sched).diag.dump_request }.store(true, Ordering::Release);
        crate::reactor::Driver::notify(&e.shared.driver);
        asked += 1;
    }
    asked
}

fn start_monitor() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        super::deadlock::HELPER_THREADS.fetch_add(1, Ordering::AcqRel);
        let spawned = std::thread::Builder::new()
            .name("corio-stall-monitor".into())
            .spawn(monitor);
        if spawned.is_err() {
            super::deadlock::HELPER_THREADS.fetch_sub(1, Ordering::AcqRel);
        }
    });
}

fn monitor() {
    loop {
        let tick = {
            let mut all = runtimes();
            let now = Instant::now();
            let mut tick = Duration::from_millis(100);
            for e in all.iter_mut() {
                if let Some(t) = e.threshold {
                    tick = tick.min(t / 4);
                    let report = watch(e, t, now);
                    if let Some(text) = report {
                        write_stderr(&text);
                    }
                }
            }
            tick.max(Duration::from_millis(1))
        };
        std::thread::sleep(tick);
    }
}

/// One look at runtime `e`: the report if a stall is new.
fn watch(e: &mut Entry, threshold: Duration, now: Instant) -> Option<String> {
    // SAFETY: registered, so alive (see `Entry`); atomics only.
    let s = unsafe { &*e.sched };
    let cur = s.current.get();
    if cur.is_null() || s.diag.reporting.load(Ordering::Acquire) {
        e.seen = std::ptr::null();
        return None;
    }
    s.diag.hazard.store(cur.cast_mut(), Ordering::Relaxed);
    fence(Ordering::SeqCst);
    let mut report = None;
    if s.current.get() == cur {
        // SAFETY: the task is still running, and the runtime cannot free
        // it while `hazard` names it (module docs). Thread-safe header
        // fields only.
        let header = unsafe { &(*cur).header };
        let probe = &header.probe.0;
        if cur != e.seen || probe.load(Ordering::Acquire) & PROBED == 0 {
            // A task that started running since the last look.
            probe.fetch_or(PROBED, Ordering::AcqRel);
            e.seen = cur;
            e.since = now;
            e.reported = false;
        } else if !e.reported && now.duration_since(e.since) >= threshold {
            e.reported = true;
            let describe = header.describe();
            report = Some(format!(
                "corio: stall: {describe} (spawned at {}) has been running for at least \
                 {:.3?} without yielding; worker {} runs no other task meanwhile\n",
                header.location,
                now.duration_since(e.since),
                s.shared.index,
            ));
            *s.diag.stall.lock().unwrap_or_else(|e| e.into_inner()) = Some(Stall {
                id: header.id,
                describe,
                since: e.since,
            });
            probe.fetch_or(STALLED, Ordering::AcqRel);
        }
    }
    s.diag.hazard.store(std::ptr::null_mut(), Ordering::Release);
    report
}
