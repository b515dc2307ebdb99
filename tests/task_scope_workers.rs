//! Scope children on other workers (`Scope::spawn_on`, `Scope::spawn_send`):
//! they borrow the parent's locals across threads, stay on their worker,
//! report their panics, are cancelled with the parent and waited for.

use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use corio::runtime::worker_index;

const HOUR: Duration = Duration::from_secs(3600);

fn runtime(workers: usize) -> corio::Runtime {
    corio::runtime::Builder::new()
        .workers(workers)
        .build()
        .unwrap()
}

struct Counted<'a>(&'a AtomicUsize);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn children_on_other_workers_mutate_the_parents_locals_and_stay_put() {
    runtime(3).block_on(|| {
        let mut data: Vec<u64> = (0..100).collect();
        let (left, right) = data.split_at_mut(50);
        let seen = corio::scope(|s| {
            let work = |chunk: &mut [u64], factor: u64| {
                let mut seen = vec![worker_index()];
                for x in chunk.iter_mut() {
                    *x *= factor;
                    if *x % 7 == 0 {
                        corio::yield_now();
                        seen.push(worker_index());
                    }
                }
                corio::time::sleep(Duration::from_millis(5));
                seen.push(worker_index());
                seen
            };
            let a = s.spawn_on(1, move || work(left, 10));
            let b = s.spawn_on(2, move || work(right, 100));
            (a.join().unwrap(), b.join().unwrap())
        });
        assert!(seen.0.iter().all(|&w| w == Some(1)), "{seen:?}");
        assert!(seen.1.iter().all(|&w| w == Some(2)), "{seen:?}");
        assert_eq!(worker_index(), Some(0));
        let expect: Vec<u64> = (0..100)
            .map(|i| if i < 50 { i * 10 } else { i * 100 })
            .collect();
        assert_eq!(data, expect);
    });
}

#[test]
fn an_unjoined_child_is_still_waited_for() {
    runtime(2).block_on(|| {
        let mut total = 0u64;
        let values = [1u64, 2, 3];
        corio::scope(|s| {
            s.spawn_on(1, || {
                corio::time::sleep(Duration::from_millis(20));
                total = values.iter().sum();
            });
        });
        assert_eq!(total, 6);
    });
}

#[test]
fn a_panicking_remote_child_is_reported_on_its_handle() {
    runtime(2).block_on(|| {
        let r = corio::scope(|s| {
            let h = s.spawn_on(1, || -> u32 { panic!("remote boom") });
            h.join()
        });
        let e = r.unwrap_err();
        assert!(e.is_panic());
        let payload = e.into_panic();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"remote boom"));
    });
}

#[test]
fn an_unjoined_remote_panic_cancels_siblings_and_comes_back() {
    runtime(3).block_on(|| {
        let drops = AtomicUsize::new(0);
        let r = panic::catch_unwind(AssertUnwindSafe(|| {
            corio::scope(|s| {
                s.spawn_on(2, || {
                    let _g = Counted(&drops);
                    corio::time::sleep(HOUR);
                });
                s.spawn(|| {
                    let _g = Counted(&drops);
                    corio::time::sleep(HOUR);
                });
                s.spawn_on(1, || {
                    corio::time::sleep(Duration::from_millis(10));
                    panic!("remote failure");
                });
            })
        }));
        let payload = r.unwrap_err();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"remote failure"));
        assert_eq!(drops.load(Ordering::SeqCst), 2);
    });
}

#[test]
fn cancelling_the_parent_cancels_remote_children_and_waits_for_them() {
    let drops = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let (d, st) = (Arc::clone(&drops), Arc::clone(&started));
    runtime(3).block_on(move || {
        let parent = corio::spawn_local(move || {
            let local_drops = AtomicUsize::new(0);
            let _outer = Counted(&d);
            corio::scope(|s| {
                for w in [1, 2] {
                    let (local_drops, d, st) = (&local_drops, &d, &st);
                    s.spawn_on(w, move || {
                        let _g = Counted(local_drops);
                        let _h = Counted(d);
                        st.fetch_add(1, Ordering::SeqCst);
                        corio::time::sleep(HOUR);
                    });
                }
            });
            unreachable!("the scope unwinds with the cancellation");
        });
        let t = Instant::now();
        while started.load(Ordering::SeqCst) < 2 {
            assert!(t.elapsed() < Duration::from_secs(10));
            corio::time::sleep(Duration::from_millis(1));
        }
        parent.cancel();
        assert!(parent.join().unwrap_err().is_cancelled());
        // Both children's destructors and the parent's own ran.
        assert_eq!(drops.load(Ordering::SeqCst), 3);
    });
}

#[test]
fn many_send_children_complete_and_some_run_elsewhere() {
    runtime(4).block_on(|| {
        let input: Vec<u64> = (0..1000).collect();
        let mut out = vec![0u64; 1000];
        let mut wheres = vec![None; 1000];
        corio::scope(|s| {
            for ((x, o), w) in input.iter().zip(out.iter_mut()).zip(wheres.iter_mut()) {
                s.spawn_send(move || {
                    *w = worker_index();
                    // A little work, so that the parent's worker stays busy
                    // and hands children to idle ones.
                    let t = Instant::now();
                    while t.elapsed() < Duration::from_micros(50) {
                        std::hint::spin_loop();
                    }
                    *o = x * 2;
                    corio::yield_now();
                    assert_eq!(worker_index(), *w, "a started child never moves");
                });
            }
        });
        assert!(out.iter().zip(&input).all(|(o, x)| *o == x * 2));
        assert!(wheres.iter().all(Option::is_some));
        let elsewhere = wheres.iter().filter(|w| **w != Some(0)).count();
        assert!(elsewhere > 0, "no child ran off worker 0");
    });
}

#[test]
fn spawn_on_out_of_range_panics_naming_the_rule() {
    runtime(2).block_on(|| {
        let r = panic::catch_unwind(AssertUnwindSafe(|| {
            corio::scope(|s| {
                s.spawn_on(2, || ());
            });
        }));
        let payload = r.unwrap_err();
        let msg = payload.downcast_ref::<String>().unwrap();
        assert!(msg.contains("worker 2 is out of range"), "{msg}");
        assert!(msg.contains("2 workers"), "{msg}");
    });
}

#[test]
fn on_the_parents_worker_or_with_one_worker_a_child_is_local() {
    runtime(2).block_on(|| {
        let mut n = 0;
        corio::scope(|s| {
            let h = s.spawn_on(0, || {
                n += 1;
                worker_index()
            });
            assert_eq!(h.join().unwrap(), Some(0));
        });
        assert_eq!(n, 1);
    });
    corio::run(|| {
        let mut n = 0;
        corio::scope(|s| {
            s.spawn_send(|| n += 1);
        });
        assert_eq!(n, 1);
    });
}

#[test]
fn the_builder_names_a_child_on_another_worker() {
    runtime(2).block_on(|| {
        let mut seen = None;
        corio::scope(|s| {
            s.builder()
                .name("far")
                .stack_size(128 * 1024)
                .spawn_on(1, || {
                    seen = Some((corio::current().name().map(str::to_owned), worker_index()));
                })
                .unwrap();
            s.builder()
                .name("movable")
                .spawn_send(|| assert_eq!(corio::current().name(), Some("movable")))
                .unwrap();
        });
        assert_eq!(seen, Some((Some("far".to_owned()), Some(1))));
    });
}

#[test]
fn shutdown_waits_for_remote_children_of_an_unwound_parent() {
    let drops = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let (d, st) = (Arc::clone(&drops), Arc::clone(&started));
    runtime(2).block_on(move || {
        let _detached = corio::spawn_local(move || {
            let borrowed = AtomicUsize::new(0);
            corio::scope(|s| {
                let (borrowed, d, st) = (&borrowed, &d, &st);
                s.spawn_on(1, move || {
                    let _g = Counted(borrowed);
                    let _h = Counted(d);
                    st.fetch_add(1, Ordering::SeqCst);
                    corio::time::sleep(HOUR);
                });
            });
        });
        while started.load(Ordering::SeqCst) == 0 {
            corio::time::sleep(Duration::from_millis(1));
        }
        // The main task returns: shutdown unwinds the parent, whose scope
        // waits for its child on worker 1.
    });
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}
