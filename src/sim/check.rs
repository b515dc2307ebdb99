//! [`check`]: one scenario over many seeds, on all cores, reporting the
//! first seed that fails.

use std::panic::{self, AssertUnwindSafe};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use super::{Builder, Outcome, Sim};

/// The environment variable that makes [`check`] run one seed only: the
/// way to replay a failure it reported.
pub const SEED_VAR: &str = "CORIO_SIM_SEED";

/// A seed for which a [`check`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "corio::sim::check: seed {seed} failed (after {passed} seeds passed): {message}\n\
     replay it with {SEED_VAR}={seed} (check then runs that seed only) or \
     corio::sim::Builder::new().seed({seed})"
)]
pub struct CheckFailure {
    /// The first failing seed, in the order the seeds were given.
    pub seed: u64,
    /// What failed: the run's error, the scenario's error, or a panic.
    pub message: String,
    /// How many seeds before it passed.
    pub passed: usize,
}

/// Runs `scenario` once for every seed in `seeds`, each on a fresh
/// [`Sim`] built with the default [`Builder`] and that seed; see
/// [`Builder::check`].
///
/// # Errors
///
/// The first failing seed (in the order given), with its error.
///
/// # Examples
///
/// ```
/// corio::sim::check(0..100, |sim| {
///     sim.client("c", || {
///         let a = corio::spawn(|| 1);
///         let b = corio::spawn(|| 2);
///         assert_eq!(a.join().unwrap() + b.join().unwrap(), 3);
///         Ok(())
///     });
/// })
/// .unwrap();
/// ```
pub fn check<S, F, R>(seeds: S, scenario: F) -> Result<(), CheckFailure>
where
    S: IntoIterator<Item = u64>,
    F: Fn(&mut Sim) -> R + Sync,
    R: Outcome,
{
    Builder::new().check(seeds, scenario)
}

impl Builder {
    /// Runs `scenario` once for every seed in `seeds`, each on a fresh
    /// [`Sim`] built from this builder with that seed: the scenario adds
    /// hosts and clients (and may call [`Sim::run`] itself, to look at the
    /// result or the simulation afterwards); if it did not run the
    /// simulation, `check` does. A run fails if `run` fails, the scenario
    /// returns an error, or it panics.
    ///
    /// The scenarios are independent, so they run on as many threads as
    /// the machine has cores; the reported failure is still the first
    /// failing seed in the order given, whatever the threads' timing. The
    /// failure is printed on stderr with how to replay it. With the
    /// environment variable `CORIO_SIM_SEED` set, only that seed runs.
    ///
    /// # Errors
    ///
    /// The first failing seed, with its error.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let failure = corio::sim::Builder::new()
    ///     .latency(Duration::from_millis(1)..Duration::from_millis(50))
    ///     .check(0..50, |sim| {
    ///         sim.client("c", || {
    ///             let n = corio::sync::Mutex::new(0);
    ///             corio::scope(|s| {
    ///                 s.spawn(|| *n.lock() += 1);
    ///                 s.spawn(|| *n.lock() *= 10);
    ///             });
    ///             // Fails for the seeds that run the multiplication first.
    ///             match *n.lock() {
    ///                 10 => Ok(()),
    ///                 other => Err(format!("got {other}").into()),
    ///             }
    ///         });
    ///     })
    ///     .unwrap_err();
    /// assert_eq!(failure.message.contains("got 1"), true);
    /// ```
    pub fn check<S, F, R>(&self, seeds: S, scenario: F) -> Result<(), CheckFailure>
    where
        S: IntoIterator<Item = u64>,
        F: Fn(&mut Sim) -> R + Sync,
        R: Outcome,
    {
        let seeds: Vec<u64> = match std::env::var(SEED_VAR)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            Some(seed) => vec![seed],
            None => seeds.into_iter().collect(),
        };
        let threads = thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(seeds.len())
            .max(1);
        let next = AtomicUsize::new(0);
        // The failure with the lowest index so far.
        let first: Mutex<Option<(usize, String)>> = Mutex::new(None);
        let worker = || {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= seeds.len() {
                    return;
                }
                if first
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_ref()
                    .is_some_and(|(f, _)| *f < i)
                {
                    return;
                }
                if let Err(message) = self.run_seed(seeds[i], &scenario) {
                    let mut first = first.lock().unwrap_or_else(|e| e.into_inner());
                    if first.as_ref().is_none_or(|(f, _)| i < *f) {
                        *first = Some((i, message));
                    }
                }
            }
        };
        if threads == 1 {
            worker();
        } else {
            thread::scope(|s| {
                for _ in 0..threads {
                    s.spawn(worker);
                }
            });
        }
        match first.into_inner().unwrap_or_else(|e| e.into_inner()) {
            None => Ok(()),
            Some((i, message)) => {
                let failure = CheckFailure {
                    seed: seeds[i],
                    message,
                    passed: i,
                };
                eprintln!("{failure}");
                Err(failure)
            }
        }
    }

    fn run_seed<F, R>(&self, seed: u64, scenario: &F) -> Result<(), String>
    where
        F: Fn(&mut Sim) -> R,
        R: Outcome,
    {
        let run = panic::catch_unwind(AssertUnwindSafe(|| {
            let mut sim = self.with_seed_of(seed).quiet().build();
            scenario(&mut sim).into_outcome()?;
            if !sim.has_run() {
                sim.run().map_err(|e| e.to_string())?;
            }
            Ok(())
        }));
        match run {
            Ok(r) => r,
            Err(payload) => Err(match payload.downcast::<String>() {
                Ok(s) => format!("panicked: {s}"),
                Err(p) => match p.downcast::<&str>() {
                    Ok(s) => format!("panicked: {s}"),
                    Err(_) => "panicked".to_owned(),
                },
            }),
        }
    }
}
