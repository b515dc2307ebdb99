//! The ping-pong workload, shared by `benches/sync.rs` (time) and
//! `benches/sync_count.rs` (instructions): two tasks pass a number back and
//! forth through two channels of capacity 1 (may: unbounded, it has no
//! bounded channel). Each function returns the time its `iters` round trips
//! took, set-up and tear-down excluded.
//!
//! The corio and tokio loops run inside a [`Scope`]: [`Plain`] adds nothing
//! (the wrapper is the identity and compiles away), [`Timeout`] puts both
//! loops inside a timeout of an hour — what a deadline costs every wait,
//! with the same code around it.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// How the two loops are wrapped.
pub trait Scope: 'static {
    /// Whether the tokio runtime needs its timer.
    const TOKIO_TIMER: bool;
    /// Runs a corio loop.
    fn corio<T>(f: impl FnOnce() -> T) -> T;
    /// Wraps a tokio loop (`Send`, for `tokio::spawn`).
    fn tokio<T: Send>(f: impl Future<Output = T> + Send) -> impl Future<Output = T> + Send;
}

/// No wrapper.
pub struct Plain;

impl Scope for Plain {
    const TOKIO_TIMER: bool = false;

    #[inline(always)]
    fn corio<T>(f: impl FnOnce() -> T) -> T {
        f()
    }

    #[inline(always)]
    fn tokio<T: Send>(f: impl Future<Output = T> + Send) -> impl Future<Output = T> + Send {
        f
    }
}

/// Both loops inside a one-hour timeout (`corio::time::timeout`,
/// `tokio::time::timeout`; the tokio runtime needs its timer enabled).
pub struct Timeout;

const HOUR: Duration = Duration::from_secs(3600);

impl Scope for Timeout {
    const TOKIO_TIMER: bool = true;

    #[inline(always)]
    fn corio<T>(f: impl FnOnce() -> T) -> T {
        corio::time::timeout(HOUR, f).unwrap()
    }

    async fn tokio<T: Send>(f: impl Future<Output = T> + Send) -> T {
        tokio::time::timeout(HOUR, f).await.unwrap()
    }
}

/// Each whole test body (set-up included) runs in the scope, so that with
/// [`Plain`] the loops sit exactly where they would without one.
pub fn corio<S: Scope>(iters: u64) -> Duration {
    corio::run(move || {
        S::corio(|| {
            let (ping_tx, ping_rx) = corio::sync::mpsc::sync_channel::<u64>(1);
            let (pong_tx, pong_rx) = corio::sync::mpsc::sync_channel::<u64>(1);
            let echo = corio::spawn(move || {
                S::corio(|| {
                    for v in ping_rx.iter() {
                        pong_tx.send(v).unwrap();
                    }
                })
            });
            let start = Instant::now();
            for i in 0..iters {
                ping_tx.send(i).unwrap();
                black_box(pong_rx.recv().unwrap());
            }
            let elapsed = start.elapsed();
            drop(ping_tx);
            echo.join().unwrap();
            elapsed
        })
    })
}

/// A current-thread tokio runtime for [`tokio`] with scope `S`.
pub fn tokio_runtime<S: Scope>() -> tokio::runtime::Runtime {
    let mut builder = tokio::runtime::Builder::new_current_thread();
    if S::TOKIO_TIMER {
        builder.enable_time();
    }
    builder.build().unwrap()
}

/// Run it with `block_on` on a [`tokio_runtime`] of the same scope.
pub fn tokio<S: Scope>(iters: u64) -> impl Future<Output = Duration> {
    S::tokio(async move {
        let (ping_tx, mut ping_rx) = tokio::sync::mpsc::channel::<u64>(1);
        let (pong_tx, mut pong_rx) = tokio::sync::mpsc::channel::<u64>(1);
        let echo = tokio::spawn(S::tokio(async move {
            while let Some(v) = ping_rx.recv().await {
                pong_tx.send(v).await.unwrap();
            }
        }));
        let start = Instant::now();
        for i in 0..iters {
            ping_tx.send(i).await.unwrap();
            black_box(pong_rx.recv().await.unwrap());
        }
        let elapsed = start.elapsed();
        drop(ping_tx);
        echo.await.unwrap();
        elapsed
    })
}

/// Run it inside a may coroutine, with one worker.
pub fn may(iters: u64) -> Duration {
    let (ping_tx, ping_rx) = may::sync::mpsc::channel::<u64>();
    let (pong_tx, pong_rx) = may::sync::mpsc::channel::<u64>();
    // SAFETY: the closure touches no thread-locals (may's spawn is unsafe
    // because its coroutines may move between workers).
    let echo = unsafe {
        may::coroutine::spawn(move || {
            while let Ok(v) = ping_rx.recv() {
                pong_tx.send(v).unwrap();
            }
        })
    };
    let start = Instant::now();
    for i in 0..iters {
        ping_tx.send(i).unwrap();
        black_box(pong_rx.recv().unwrap());
    }
    let elapsed = start.elapsed();
    drop(ping_tx);
    echo.join().unwrap();
    elapsed
}
