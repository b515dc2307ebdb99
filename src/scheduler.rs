//! The per-thread loop: runs ready tasks, polls the runtime's driver (the
//! reactor, or one installed in its place) and wakes what it found, takes
//! wakeups from other threads and fires timers, until the main task of
//! `block_on` finishes. The state it runs on — task registry, run queue,
//! timers — is the task layer's per-thread context
//! ([`crate::task::context`]); the park/unpark protocol its wakeups serve is
//! [`crate::task::park`]'s.
#![allow(unsafe_code)]

use std::ptr::{self, NonNull};
use std::sync::atomic::Ordering;
use std::time::Duration;

use corosensei::CoroutineResult;

use crate::reactor::Driver;
use crate::task::context::Scheduler;
use crate::task::core::Core;
use crate::task::park::Unparker;
use crate::task::{JoinHandle, Outcome, Transition};

/// The longest an idle loop sleeps without looking at its inject queue.
const IDLE_RECHECK: Duration = Duration::from_secs(1);

impl Scheduler {
    /// Runs `f` as the main task until it finishes, then unwinds every other
    /// task; returns the main task's handle (finished). On a deadlock
    /// (`corio::inspect`), stops early: the main task is unwound too.
    #[track_caller]
    pub(crate) fn block_on<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T,
        T: 'static,
    {
        struct Shutdown<'a>(&'a Scheduler);
        impl Drop for Shutdown<'_> {
            fn drop(&mut self) {
                self.0.main.set(ptr::null());
                // The other workers unwind their tasks meanwhile.
                if self.0.multi.get()
                    && let Some(group) = self.0.group.get()
                {
                    group.stop();
                }
                self.0.shutdown();
            }
        }
        let shutdown = Shutdown(self);
        let size = self.default_stack_size();
        let location = std::panic::Location::caller();
        // SAFETY: `f` and `T` may borrow from our caller. The main task either
        // finishes inside `run_until_main`, or `shutdown` — run by the guard
        // above on every exit path, unwinding included — unwinds it before
        // this function returns.
        let handle = unsafe { self.spawn_unchecked(f, Some("main".into()), size, location) }
            .unwrap_or_else(|e| panic!("corio: cannot start the main task: {e}"));
        self.main.set(handle.core_ptr());
        self.run_until_main();
        drop(shutdown);
        handle
    }

    /// Runs tasks until the main task has finished.
    fn run_until_main(&self) {
        // The metrics count task runs from the budget, when it is reset
        // (`inspect::metrics`): no counter of their own per switch.
        let interval = self.config.event_interval;
        let mut budget = interval;
        loop {
            loop {
                let next = self.run_queue.pop();
                let Some(core) = next else { break };
                // SAFETY: queued tasks are in `tasks` (they are removed only
                // when finished, and a finished task is never queued; shutdown
                // clears the queue).
                let main_done = self.run_task(unsafe { core.as_ref() });
                budget -= 1;
                if main_done {
                    return self.count_runs(interval - budget);
                }
                if budget == 0 {
                    self.count_runs(interval);
                    budget = interval;
                    self.poll_events(false);
                }
            }
            self.count_runs(interval - budget);
            budget = interval;
            self.poll_events(true);
            if self.diag.deadlocked.get() {
                return;
            }
        }
    }

    /// The loop of a worker other than the first: runs tasks until the
    /// main task of `block_on` (on worker 0) has returned.
    pub(crate) fn run_worker(&self) {
        let Some(group) = self.group.get() else {
            return;
        };
        let mut budget = self.config.event_interval;
        loop {
            while let Some(core) = self.run_queue.pop() {
                // SAFETY: as in `run_until_main`.
                self.run_task(unsafe { core.as_ref() });
                budget -= 1;
                if budget == 0 {
                    self.count_runs(self.config.event_interval);
                    budget = self.config.event_interval;
                    self.poll_events(false);
                    if group.stopping.load(Ordering::Acquire) {
                        return;
                    }
                }
            }
            self.count_runs(self.config.event_interval - budget);
            budget = self.config.event_interval;
            if group.stopping.load(Ordering::Acquire) {
                return;
            }
            self.poll_events(true);
        }
    }

    /// Resumes one task until it suspends or ends; returns whether it was
    /// the main task of `block_on` and finished. Always inlined: called
    /// from several loops (each worker's, the simulation's) it was not,
    /// which cost a yield 16 instructions. (The result, not a flag the loop
    /// reads after every run: a suspended task returns a constant `false`,
    /// so the loop's test is folded away on that path.)
    #[inline(always)]
    pub(crate) fn run_task(&self, core: &Core) -> bool {
        core.local(self).advance(Transition::Resume);
        self.current.set(core);
        // SAFETY: only `run_task` and `abandon` borrow the coroutine, never
        // both at once (the running task cannot reach its own coroutine).
        let slot = unsafe { &mut *core.coroutine.get() };
        let coroutine = match slot {
            Some(coroutine) => coroutine,
            None => {
                // First run: take a stack from this worker's pool (the most
                // recently freed, or a fresh one) and make the coroutine on
                // it. (A finished task, whose coroutine is gone, is never
                // queued.)
                let stack = match crate::stack::take(core.header.stack_size) {
                    Ok(stack) => stack,
                    Err(e) => return self.fail_start(core, e),
                };
                core.header.set_stack_guard(stack.guard_range());
                // SAFETY: the vtable belongs to this block, which has not run.
                slot.insert(unsafe { (core.header.vtable.start)(NonNull::from(core), stack) })
            }
        };
        let result = {
            // The task's `tracing` span, with the feature (else nothing).
            let _span = crate::task::trace::enter(self, core);
            coroutine.resume(())
        };
        self.current.set(ptr::null());
        match result {
            // The task recorded its own transition before suspending.
            CoroutineResult::Yield(()) => false,
            CoroutineResult::Return(outcome) => self.finish(core, outcome),
        }
    }

    /// Records that `core` finished with `outcome` and retires it; returns
    /// whether it was the main task of `block_on`.
    #[inline(always)]
    fn finish(&self, core: &Core, outcome: Outcome) -> bool {
        core.local(self).advance(Transition::Finish(outcome));
        crate::task::diag::count_finish(self, outcome);
        crate::task::diag::on_finish(self, core);
        crate::task::trace::finished(self, core, outcome);
        let main_done = ptr::eq(core, self.main.get());
        self.retire(core);
        main_done
    }

    /// Finishes a task that could not get a stack for its first run: it
    /// never runs, and its `JoinHandle` gets a `JoinError` carrying the
    /// error, which names the limit and how to raise it
    /// (`JoinError::start_error`). Returns whether it was the main task.
    #[cold]
    #[inline(never)]
    fn fail_start(&self, core: &Core, error: crate::error::Error) -> bool {
        self.current.set(ptr::null());
        // SAFETY: the vtable belongs to this block.
        unsafe { (core.header.vtable.complete_not_started)(NonNull::from(core), error) };
        // Retiring drops its closure: it has no coroutine.
        self.finish(core, Outcome::Cancelled)
    }

    /// Counts `n` task runs (see `Counters::switches`).
    #[inline]
    fn count_runs(&self, n: u32) {
        self.shared.counters.switches.add(u64::from(n));
    }

    /// Polls for IO events, wakeups from other threads and expired timers.
    /// With `block`, waits until one of them arrives (or the next timer).
    fn poll_events(&self, block: bool) {
        if self
            .diag
            .dump_request
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            crate::inspect::signal::serve_dump_request(self);
        }
        if self.multi.get() {
            self.balance();
        }
        let woke = self.drain_inject();
        let idle = block && !woke && self.run_queue.is_empty();
        // Every task waits and neither a timer nor IO can wake one: sleep
        // briefly, then look for a deadlock (`corio::inspect`).
        let quiet = idle && crate::inspect::deadlock::quiet(self);
        if !quiet {
            self.diag.quiet_since.set(None);
            if self.multi.get() {
                self.shared.stuck.store(false, Ordering::Release);
            }
        }
        let timeout = if quiet
            && self
                .diag
                .quiet_since
                .get()
                .is_none_or(|since| since.elapsed() < 2 * crate::inspect::deadlock::GRACE)
        {
            Some(crate::inspect::deadlock::GRACE)
        } else if idle {
            // Never sleep unboundedly: an idle loop looks at its inject queue
            // at least every IDLE_RECHECK even without a notify. A defence
            // only (one hang of an fs test, a task waiting on the blocking
            // pool, was seen once in CI and not reproduced since); it costs
            // one wakeup per second of idleness.
            let next_timer = self
                .timers
                .borrow()
                .first_key_value()
                .map(|((at, _), _)| at.saturating_duration_since(self.clock_now()));
            Some(next_timer.map_or(IDLE_RECHECK, |t| t.min(IDLE_RECHECK)))
        } else {
            Some(Duration::ZERO)
        };
        // The reactor statically (the real runtime's path), any other
        // driver through the seam's trait object.
        match &self.installed {
            None => self.wait_on(&self.shared.driver, timeout, idle),
            Some(installed) => self.wait_on(&*installed.0, timeout, idle),
        }
        self.refresh_clock();
        self.fire_timers();
        if quiet && self.run_queue.is_empty() {
            crate::inspect::deadlock::check(self);
        }
    }

    /// Polls `driver` for up to `timeout` (unless it has nothing to poll
    /// and the timeout is zero) and wakes what it found, and the tasks
    /// woken from other threads meanwhile.
    #[inline(always)]
    fn wait_on<D: Driver + ?Sized>(&self, driver: &D, timeout: Option<Duration>, idle: bool) {
        if timeout != Some(Duration::ZERO) || driver.has_sources() {
            // Rule 2's other half: a wakeup injected after our drain but
            // before `sleeping` was set must not be slept through.
            let timeout = if timeout == Some(Duration::ZERO) || self.shared.inject.sleep() {
                timeout
            } else {
                Some(Duration::ZERO)
            };
            let mut events = self.events.borrow_mut();
            let counters = &self.shared.counters;
            counters.polls.bump();
            let parked_from = (timeout != Some(Duration::ZERO)).then(std::time::Instant::now);
            let rest = idle && self.multi.get();
            if rest {
                self.set_idle(true);
            }
            driver.poll(&mut events, timeout);
            if let Some(from) = parked_from {
                counters.parked.add_duration(from.elapsed());
            }
            self.shared.inject.awake();
            if rest {
                self.set_idle(false);
            }
            driver.dispatch(&events, &mut |token| {
                // SAFETY: every waiter token is a task's `Core` (`io_op`
                // lists nothing else, and a driver hands `wake` only the
                // tokens listed with it: `Driver::dispatch`), and a waiter's entry is removed
                // before its task leaves the wait (reactor rule 3), so the
                // task is alive and still in that wait; we are on its
                // runtime thread.
                let core = unsafe { token.cast::<Core>().as_ref() };
                let finished = core.local(self).state.get().is_finished();
                debug_assert!(!finished, "a reactor waiter entry outlived its task");
                counters.io_events.bump();
                self.unpark_local(core)
            });
            drop(events);
            if !self.drain_inject() && idle {
                self.drain_inject_unflagged();
            }
        }
    }

    /// Takes whatever is in the inject queue even if the flag says nothing
    /// is (see `IDLE_RECHECK`).
    fn drain_inject_unflagged(&self) {
        for item in self.shared.inject.take_unflagged() {
            self.receive(item);
        }
    }

    // Inlined like `run_task`, which the simulation's loop also calls.
    #[inline(always)]
    pub(crate) fn drain_inject(&self) -> bool {
        let mut any = false;
        for item in self.shared.inject.take() {
            any |= self.receive(item);
        }
        any
    }

    #[inline(always)]
    pub(crate) fn fire_timers(&self) {
        let now = self.tick.get();
        loop {
            let expired = {
                let mut timers = self.timers.borrow_mut();
                match timers.first_entry() {
                    Some(e) if e.key().0 <= now => Some(e.remove_entry()),
                    _ => None,
                }
            };
            match expired {
                Some((key, task)) => {
                    let timer = &task.core().local(self).timer;
                    if timer.get() == Some(key) {
                        timer.set(None);
                    }
                    self.shared.counters.timers_fired.bump();
                    Unparker::Task(task).unpark();
                }
                None => break,
            }
        }
    }
}
