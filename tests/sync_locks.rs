//! Mutex, RwLock, Semaphore, Barrier, WaitGroup, Notify, Event, Condvar:
//! exclusion, FIFO order, try forms, timeouts, wait reasons, and waiters
//! that give up without taking a wakeup from the next one.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use corio::sync::{Barrier, Condvar, Event, Mutex, Notify, RwLock, Semaphore, WaitGroup};
use corio::task::{TaskState, WaitReason};

fn state_of(id: corio::TaskId) -> TaskState {
    corio::tasks()
        .into_iter()
        .find(|t| t.id() == id)
        .map(|t| t.state())
        .expect("task alive")
}

#[test]
fn mutex_excludes_tasks_and_threads() {
    let m = Arc::new(Mutex::new(0u64));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let m = Arc::clone(&m);
            thread::spawn(move || {
                for _ in 0..2_000 {
                    let mut g = m.lock();
                    let v = *g;
                    thread::yield_now();
                    *g = v + 1;
                }
            })
        })
        .collect();
    corio::run({
        let m = Arc::clone(&m);
        move || {
            let tasks: Vec<_> = (0..4)
                .map(|_| {
                    let m = Arc::clone(&m);
                    corio::spawn(move || {
                        for _ in 0..1_000 {
                            let mut g = m.lock();
                            let v = *g;
                            corio::yield_now(); // held across a suspension
                            *g = v + 1;
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.join().unwrap();
            }
        }
    });
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(*m.lock(), 8_000);
}

#[test]
fn mutex_waiters_are_served_in_order() {
    corio::run(|| {
        let m = Rc::new(Mutex::new(Vec::new()));
        let g = m.lock();
        let tasks: Vec<_> = (0..5)
            .map(|i| {
                let m = Rc::clone(&m);
                corio::spawn_local(move || m.lock().push(i))
            })
            .collect();
        corio::yield_now();
        assert_eq!(
            state_of(tasks[0].id()),
            TaskState::Waiting(WaitReason::Lock)
        );
        // A newcomer cannot barge in while others wait.
        assert!(m.try_lock().is_none());
        drop(g);
        for t in tasks {
            t.join().unwrap();
        }
        assert_eq!(*m.lock(), [0, 1, 2, 3, 4]);
    });
}

#[test]
fn mutex_try_and_timeout() {
    corio::run(|| {
        let m = Mutex::new(1);
        let g = m.lock();
        assert!(m.is_locked());
        assert!(m.try_lock().is_none());
        let t = Instant::now();
        assert!(m.try_lock_for(Duration::from_millis(20)).is_none());
        assert!(t.elapsed() >= Duration::from_millis(20));
        drop(g);
        assert_eq!(*m.try_lock_for(Duration::from_millis(20)).unwrap(), 1);
        assert_eq!(m.into_inner(), 1);
    });
}

#[test]
fn a_timed_out_lock_waiter_does_not_take_the_next_ones_turn() {
    corio::run(|| {
        let m = Rc::new(Mutex::new(()));
        let g = m.lock();
        let m1 = Rc::clone(&m);
        let gives_up =
            corio::spawn_local(move || m1.try_lock_for(Duration::from_millis(5)).is_some());
        let m2 = Rc::clone(&m);
        let patient = corio::spawn_local(move || {
            let _g = m2.lock();
        });
        corio::time::sleep(Duration::from_millis(20));
        assert!(!gives_up.join().unwrap());
        drop(g);
        patient.join().unwrap();
        assert!(!m.is_locked());
    });
}

#[test]
fn rwlock_readers_share_writers_exclude_and_nobody_starves() {
    corio::run(|| {
        let l = Rc::new(RwLock::new(0));
        let r1 = l.read();
        let r2 = l.try_read().expect("readers share");
        assert!(l.try_write().is_none());
        let lw = Rc::clone(&l);
        let writer = corio::spawn_local(move || *lw.write() += 1);
        corio::yield_now();
        assert_eq!(state_of(writer.id()), TaskState::Waiting(WaitReason::Lock));
        // A reader arriving after a waiting writer queues behind it.
        assert!(l.try_read().is_none());
        let lr = Rc::clone(&l);
        let late_reader = corio::spawn_local(move || *lr.read());
        corio::yield_now();
        drop((r1, r2));
        assert_eq!(late_reader.join().unwrap(), 1, "the writer went first");
        writer.join().unwrap();
        assert!(l.try_write_for(Duration::from_millis(5)).is_some());
        let w = l.write();
        assert!(l.try_read_for(Duration::from_millis(5)).is_none());
        drop(w);
    });
}

#[test]
fn semaphore_limits_and_serves_in_order() {
    corio::run(|| {
        let sem = Rc::new(Semaphore::new(3));
        let inside = Rc::new(AtomicUsize::new(0));
        let max = Rc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let (sem, inside, max) = (Rc::clone(&sem), Rc::clone(&inside), Rc::clone(&max));
                corio::spawn_local(move || {
                    let _p = sem.acquire();
                    let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    max.fetch_max(n, Ordering::SeqCst);
                    corio::time::sleep(Duration::from_millis(1));
                    inside.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for t in tasks {
            t.join().unwrap();
        }
        assert_eq!(max.load(Ordering::SeqCst), 3);
        assert_eq!(sem.available_permits(), 3);

        // A large request at the front is not overtaken by small ones.
        let order = Rc::new(RefCell::new(Vec::new()));
        let all = sem.acquire_many(3);
        let (s1, o1) = (Rc::clone(&sem), Rc::clone(&order));
        let big = corio::spawn_local(move || {
            let _p = s1.acquire_many(2);
            o1.borrow_mut().push("big");
        });
        corio::yield_now();
        assert_eq!(
            state_of(big.id()),
            TaskState::Waiting(WaitReason::Semaphore)
        );
        let (s2, o2) = (Rc::clone(&sem), Rc::clone(&order));
        let small = corio::spawn_local(move || {
            let _p = s2.acquire();
            o2.borrow_mut().push("small");
        });
        corio::yield_now();
        drop(all);
        big.join().unwrap();
        small.join().unwrap();
        assert_eq!(*order.borrow(), ["big", "small"]);
    });
}

#[test]
fn semaphore_timeout_frees_the_queue_for_those_behind() {
    corio::run(|| {
        let sem = Rc::new(Semaphore::new(1));
        let one = sem.acquire();
        let s1 = Rc::clone(&sem);
        // Wants 2 (more than exist while `one` is held) and gives up.
        let greedy = corio::spawn_local(move || {
            s1.acquire_many_timeout(2, Duration::from_millis(5))
                .is_some()
        });
        let s2 = Rc::clone(&sem);
        let modest = corio::spawn_local(move || s2.acquire().num_permits());
        corio::yield_now();
        drop(one); // 1 permit: not enough for `greedy`, which blocks `modest`
        assert!(!greedy.join().unwrap());
        assert_eq!(modest.join().unwrap(), 1);
        assert!(sem.try_acquire().is_some());
        sem.try_acquire().unwrap().forget();
        assert_eq!(sem.available_permits(), 0);
        sem.add_permits(2);
        assert_eq!(sem.available_permits(), 2);
    });
}

#[test]
fn barrier_releases_together_and_is_reusable() {
    corio::run(|| {
        let b = Arc::new(Barrier::new(3));
        let arrived = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..3)
            .map(|_| {
                let (b, arrived) = (Arc::clone(&b), Arc::clone(&arrived));
                corio::spawn(move || {
                    let mut leaders = 0;
                    for round in 1..=3 {
                        arrived.fetch_add(1, Ordering::SeqCst);
                        if b.wait().is_leader() {
                            leaders += 1;
                        }
                        assert!(arrived.load(Ordering::SeqCst) >= 3 * round);
                    }
                    leaders
                })
            })
            .collect();
        let leaders: usize = tasks.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(leaders, 3, "one leader per round");
        // A waiter that times out withdraws.
        let b = Barrier::new(2);
        assert!(b.wait_timeout(Duration::from_millis(5)).is_none());
        let b = Arc::new(b);
        let b2 = Arc::clone(&b);
        let other = corio::spawn(move || b2.wait().is_leader());
        let me = b.wait().is_leader();
        assert!(me ^ other.join().unwrap());
    });
}

#[test]
fn wait_group_waits_for_every_clone() {
    corio::run(|| {
        let wg = WaitGroup::new();
        let done = Arc::new(AtomicUsize::new(0));
        for i in 0..5 {
            let (wg, done) = (wg.clone(), Arc::clone(&done));
            drop(corio::spawn(move || {
                corio::time::sleep(Duration::from_millis(i));
                done.fetch_add(1, Ordering::SeqCst);
                drop(wg);
            }));
        }
        assert_eq!(wg.count(), 6);
        let held = wg.clone();
        let wg = wg
            .wait_timeout(Duration::from_millis(30))
            .expect_err("`held` remains");
        assert_eq!(done.load(Ordering::SeqCst), 5);
        drop(held);
        wg.wait();
    });
}

#[test]
fn wait_group_from_threads() {
    let wg = WaitGroup::new();
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let wg = wg.clone();
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(5));
                drop(wg);
            })
        })
        .collect();
    corio::run(move || wg.wait());
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn notify_stores_one_permit_and_wakes_in_order() {
    corio::run(|| {
        let n = Rc::new(Notify::new());
        n.notify_one();
        n.notify_one(); // one permit only
        assert!(n.wait_timeout(Duration::from_millis(5)));
        assert!(!n.wait_timeout(Duration::from_millis(5)));

        let order = Rc::new(RefCell::new(Vec::new()));
        let tasks: Vec<_> = (0..3)
            .map(|i| {
                let (n, order) = (Rc::clone(&n), Rc::clone(&order));
                corio::spawn_local(move || {
                    n.wait();
                    order.borrow_mut().push(i);
                })
            })
            .collect();
        corio::yield_now();
        assert_eq!(
            state_of(tasks[0].id()),
            TaskState::Waiting(WaitReason::Event)
        );
        n.notify_one();
        corio::yield_now();
        assert_eq!(*order.borrow(), [0]);
        n.notify_waiters();
        for t in tasks {
            t.join().unwrap();
        }
        assert_eq!(*order.borrow(), [0, 1, 2]);
    });
}

#[test]
fn a_notification_is_not_lost_on_a_waiter_that_gave_up() {
    corio::run(|| {
        let n = Rc::new(Notify::new());
        let n1 = Rc::clone(&n);
        let impatient = corio::spawn_local(move || n1.wait_timeout(Duration::from_millis(5)));
        let n2 = Rc::clone(&n);
        let patient = corio::spawn_local(move || n2.wait());
        corio::time::sleep(Duration::from_millis(20)); // the first gave up
        assert!(!impatient.join().unwrap());
        n.notify_one();
        patient.join().unwrap();

        // And one cancelled while waiting.
        let n3 = Rc::clone(&n);
        let cancelled = corio::spawn_local(move || n3.wait());
        let n4 = Rc::clone(&n);
        let next = corio::spawn_local(move || n4.wait());
        corio::yield_now();
        cancelled.cancel();
        assert!(cancelled.join().unwrap_err().is_cancelled());
        n.notify_one();
        next.join().unwrap();
    });
}

#[test]
fn event_set_clear_wait() {
    let e = Arc::new(Event::new());
    let e2 = Arc::clone(&e);
    let t = thread::spawn(move || e2.wait());
    corio::run({
        let e = Arc::clone(&e);
        move || {
            assert!(!e.wait_timeout(Duration::from_millis(5)));
            let waiters: Vec<_> = (0..3)
                .map(|_| {
                    let e = Arc::clone(&e);
                    corio::spawn(move || e.wait())
                })
                .collect();
            corio::yield_now();
            e.set();
            for w in waiters {
                w.join().unwrap();
            }
            e.wait(); // stays set
            e.clear();
            assert!(!e.is_set());
            assert!(!e.wait_timeout(Duration::from_millis(5)));
        }
    });
    t.join().unwrap();
}

#[test]
fn condvar_wait_while_and_notify_order() {
    corio::run(|| {
        let pair = Rc::new((Mutex::new(0u32), Condvar::new()));
        let waiters: Vec<_> = (1..=3)
            .map(|want| {
                let pair = Rc::clone(&pair);
                corio::spawn_local(move || {
                    let (m, cv) = &*pair;
                    let g = cv.wait_while(m.lock(), |v| *v < want);
                    *g
                })
            })
            .collect();
        corio::yield_now();
        assert_eq!(
            state_of(waiters[0].id()),
            TaskState::Waiting(WaitReason::Event)
        );
        for v in 1..=3 {
            *pair.0.lock() = v;
            pair.1.notify_all();
            corio::yield_now();
        }
        let got: Vec<u32> = waiters.into_iter().map(|w| w.join().unwrap()).collect();
        assert_eq!(got, [1, 2, 3]);

        let (m, cv) = &*pair;
        let (g, r) = cv.wait_timeout(m.lock(), Duration::from_millis(5));
        assert!(r.timed_out());
        assert_eq!(*g, 3);
        drop(g);
        let (g, r) = cv.wait_timeout_while(m.lock(), Duration::from_millis(5), |v| *v == 3);
        assert!(r.timed_out());
        drop(g);
        assert!(!m.is_locked());
    });
}

#[test]
fn condvar_across_threads() {
    let pair = Arc::new((Mutex::new(false), Condvar::new()));
    let p2 = Arc::clone(&pair);
    let t = thread::spawn(move || {
        let (m, cv) = &*p2;
        let g = cv.wait_while(m.lock(), |ready| !*ready);
        assert!(*g);
    });
    corio::run(move || {
        corio::time::sleep(Duration::from_millis(5));
        *pair.0.lock() = true;
        pair.1.notify_all();
    });
    t.join().unwrap();
}
