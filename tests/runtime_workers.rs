//! Several workers per runtime: placement, handles, shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use corio::runtime::{Builder, Handle, worker_index};

#[test]
fn spawn_on_places_tasks_and_they_stay() {
    let rt = Builder::new().workers(3).build().unwrap();
    rt.block_on(|| {
        assert_eq!(worker_index(), Some(0));
        let hs: Vec<_> = (0..3)
            .map(|w| {
                corio::spawn_on(w, move || {
                    let mut seen = vec![];
                    for _ in 0..10 {
                        seen.push(worker_index().unwrap());
                        corio::yield_now();
                    }
                    (w, seen)
                })
            })
            .collect();
        for h in hs {
            let (w, seen) = h.join().unwrap();
            assert!(seen.iter().all(|&s| s == w), "{w}: {seen:?}");
        }
    });
}

#[test]
fn idle_workers_take_never_started_tasks() {
    let rt = Builder::new().workers(2).build().unwrap();
    let on = rt.block_on(|| {
        let hs: Vec<_> = (0..2000)
            .map(|_| {
                corio::spawn(|| {
                    let w = worker_index().unwrap();
                    let t = std::time::Instant::now();
                    while t.elapsed() < std::time::Duration::from_micros(50) {}
                    corio::yield_now();
                    assert_eq!(worker_index().unwrap(), w);
                    w
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    });
    assert!(on.contains(&1), "no task ran on worker 1");
    assert!(on.contains(&0), "no task ran on worker 0");
}

#[test]
fn handle_spawns_from_plain_threads() {
    let rt = Builder::new().workers(2).build().unwrap();
    let handle = rt.handle();
    let total = rt.block_on(move || {
        let ts: Vec<_> = (0..4)
            .map(|i| {
                let h = handle.clone();
                std::thread::spawn(move || h.spawn(move || i * 10).join().unwrap())
            })
            .collect();
        ts.into_iter().map(|t| t.join().unwrap()).sum::<i32>()
    });
    assert_eq!(total, 60);
    assert!(Handle::try_current().is_err());
}

#[test]
fn shutdown_unwinds_tasks_on_every_worker() {
    struct Count(Arc<AtomicUsize>);
    impl Drop for Count {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let dropped = Arc::new(AtomicUsize::new(0));
    let rt = Builder::new().workers(3).build().unwrap();
    let d = dropped.clone();
    rt.block_on(move || {
        for w in 0..3 {
            let c = Count(d.clone());
            drop(corio::spawn_on(w, move || {
                let _c = c;
                corio::time::sleep(std::time::Duration::from_secs(3600));
            }));
        }
        corio::time::sleep(std::time::Duration::from_millis(20));
    });
    assert_eq!(dropped.load(Ordering::SeqCst), 3);
}
