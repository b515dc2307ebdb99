//! Several workers under load: a started task never changes threads, its
//! thread-locals stay valid, `spawn_local` tasks stay on their worker, and
//! no wakeup is lost between workers. Each test runs its runtime on a thread
//! and fails (instead of hanging) if it does not finish in time.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::{self, ThreadId};
use std::time::Duration;

use corio::runtime::{Builder, worker_index};

/// Runs `f` on a thread; panics if it takes longer than `limit` (a lost
/// wakeup hangs a runtime).
fn within(limit: Duration, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = std::sync::mpsc::channel();
    let t = thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    match rx.recv_timeout(limit) {
        Ok(()) => t.join().unwrap(),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(p) = t.join() {
                std::panic::resume_unwind(p)
            }
        }
        Err(_) => panic!("did not finish within {limit:?}: a lost wakeup?"),
    }
}

thread_local! {
    /// Ids of the tasks that started on this thread and have not ended.
    static STARTED_HERE: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
    static THREAD: Cell<Option<ThreadId>> = const { Cell::new(None) };
}

fn this_thread() -> ThreadId {
    THREAD.with(|t| *t.get().get_or_insert_with(|| thread::current().id()))
}

fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// Checks at every resume (and when it ends, cancelled or not) that the
/// task is on the thread it started on, with that thread's locals.
struct Pinned {
    id: usize,
    thread: ThreadId,
    worker: Option<usize>,
    checks: Arc<AtomicUsize>,
}

impl Pinned {
    fn start(id: usize, checks: Arc<AtomicUsize>) -> Pinned {
        STARTED_HERE.with(|s| s.borrow_mut().push(id));
        Pinned {
            id,
            thread: this_thread(),
            worker: worker_index(),
            checks,
        }
    }

    fn check(&self) {
        assert_eq!(
            thread::current().id(),
            self.thread,
            "task {} moved",
            self.id
        );
        assert_eq!(this_thread(), self.thread, "a thread-local changed");
        assert_eq!(worker_index(), self.worker);
        self.checks.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        self.check();
        let present = STARTED_HERE.with(|s| {
            let mut s = s.borrow_mut();
            let i = s.iter().position(|&x| x == self.id);
            i.map(|i| s.swap_remove(i)).is_some()
        });
        assert!(present, "task {}: its thread-local entry is gone", self.id);
    }
}

#[test]
fn ten_thousand_tasks_on_four_workers_never_change_threads() {
    within(Duration::from_secs(120), || {
        let rt = Builder::new().workers(4).build().unwrap();
        let checks = Arc::new(AtomicUsize::new(0));
        let c = checks.clone();
        let (done, cancelled) = rt.block_on(move || {
            use std::io::{Read, Write};
            let lock = Arc::new(corio::sync::Mutex::new(0u64));
            let handles: Vec<_> = (0..10_000usize)
                .map(|id| {
                    let (lock, checks) = (lock.clone(), c.clone());
                    corio::spawn(move || {
                        let p = Pinned::start(id, checks);
                        let mut seed = id as u64 * 2654435761 + 1;
                        for _ in 0..6 {
                            match rng(&mut seed) % 4 {
                                0 => {
                                    corio::time::sleep(Duration::from_micros(rng(&mut seed) % 500))
                                }
                                1 => corio::yield_now(),
                                2 => *lock.lock() += 1,
                                _ if id % 10 == 0 => {
                                    let (mut a, mut b) =
                                        corio::net::unix::UnixStream::pair().unwrap();
                                    let w = corio::spawn(move || {
                                        corio::yield_now();
                                        b.write_all(b"x").unwrap();
                                    });
                                    let mut buf = [0u8; 1];
                                    a.read_exact(&mut buf).unwrap();
                                    w.join().unwrap();
                                }
                                _ => corio::yield_now(),
                            }
                            p.check();
                        }
                    })
                })
                .collect();
            let mut seed = 7u64;
            let mut cancelled = 0;
            for h in &handles {
                if rng(&mut seed).is_multiple_of(5) {
                    h.cancel();
                    cancelled += 1;
                }
            }
            let mut done = 0;
            for h in handles {
                match h.join() {
                    Ok(()) => done += 1,
                    Err(e) => assert!(e.is_cancelled(), "{e}"),
                }
            }
            (done, cancelled)
        });
        assert!(done >= 10_000 - cancelled);
        assert!(checks.load(Ordering::Relaxed) > 10_000);
    });
}

#[test]
fn spawn_local_tasks_never_leave_their_worker() {
    within(Duration::from_secs(60), || {
        let rt = Builder::new().workers(2).build().unwrap();
        rt.block_on(|| {
            let hs: Vec<_> = (0..2000)
                .map(|_| {
                    corio::spawn_local(|| {
                        let w = worker_index();
                        let t = std::time::Instant::now();
                        while t.elapsed() < Duration::from_micros(20) {}
                        corio::yield_now();
                        (w, worker_index())
                    })
                })
                .collect();
            for h in hs {
                assert_eq!(h.join().unwrap(), (Some(0), Some(0)));
            }
        });
    });
}

#[test]
fn no_lost_wakeups_across_workers() {
    within(Duration::from_secs(120), || {
        let rt = Builder::new().workers(4).build().unwrap();
        rt.block_on(|| {
            const N: usize = 20_000;
            // Channels: a producer and a consumer on each pair of workers.
            let mut joins = vec![];
            for (from, to) in [(0, 1), (1, 2), (2, 3), (3, 0)] {
                let (tx, rx) = corio::sync::mpsc::sync_channel::<usize>(4);
                joins.push(corio::spawn_on(from, move || {
                    for i in 0..N {
                        tx.send(i).unwrap();
                    }
                    0
                }));
                joins.push(corio::spawn_on(to, move || rx.iter().sum::<usize>()));
            }
            // Notify ping-pong between workers 1 and 2.
            let (a, b) = (
                Arc::new(corio::sync::Notify::new()),
                Arc::new(corio::sync::Notify::new()),
            );
            let (a2, b2) = (a.clone(), b.clone());
            let ping = corio::spawn_on(1, move || {
                for _ in 0..N {
                    a2.notify_one();
                    b2.wait();
                }
            });
            let pong = corio::spawn_on(2, move || {
                for _ in 0..N {
                    a.wait();
                    b.notify_one();
                }
            });
            let total: usize = joins.into_iter().map(|h| h.join().unwrap()).sum();
            assert_eq!(total, 4 * (N * (N - 1) / 2));
            ping.join().unwrap();
            pong.join().unwrap();
        });
    });
}
