//! `Semaphore`: owned permits, `close`, `forget_permits`.

use std::sync::Arc;
use std::time::Duration;

use corio::sync::{Semaphore, TryAcquireError};

#[test]
fn owned_permits_move_into_tasks_and_limit_concurrency() {
    corio::run(|| {
        let limit = Arc::new(Semaphore::new(3));
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let permit = Arc::clone(&limit).acquire_owned().unwrap();
            assert_eq!(permit.num_permits(), 1);
            let (running, peak) = (Arc::clone(&running), Arc::clone(&peak));
            tasks.push(corio::spawn(move || {
                let _permit = permit;
                let now = running.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                peak.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                corio::time::sleep(Duration::from_millis(1));
                running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            }));
        }
        for t in tasks {
            t.join().unwrap();
        }
        assert_eq!(peak.load(std::sync::atomic::Ordering::SeqCst), 3);
        assert_eq!(limit.available_permits(), 3);
    });
}

#[test]
fn close_wakes_every_waiter_with_an_error_and_keeps_held_permits() {
    corio::run(|| {
        let sem = Arc::new(Semaphore::new(1));
        let held = Arc::clone(&sem).acquire_owned().unwrap();
        let owned_waiters: Vec<_> = (0..3)
            .map(|_| {
                let sem = Arc::clone(&sem);
                corio::spawn(move || sem.acquire_owned().map(|_| ()))
            })
            .collect();
        let timed = {
            let sem = Arc::clone(&sem);
            corio::spawn(move || sem.acquire_timeout(Duration::from_secs(3600)).is_some())
        };
        let borrowed = {
            let sem = Arc::clone(&sem);
            corio::spawn(move || drop(sem.acquire()))
        };
        corio::yield_now();
        sem.close();
        assert!(sem.is_closed());
        for w in owned_waiters {
            assert!(w.join().unwrap().is_err(), "woken with AcquireError");
        }
        assert!(!timed.join().unwrap(), "a timed acquire returns None");
        let err = borrowed.join().unwrap_err();
        assert!(err.panic_message().unwrap().contains("closed semaphore"));

        // Later acquires fail at once; the held permit is still given back.
        assert_eq!(
            Arc::clone(&sem).try_acquire_owned().unwrap_err(),
            TryAcquireError::Closed
        );
        assert!(sem.try_acquire().is_none());
        assert!(Arc::clone(&sem).acquire_owned().is_err());
        drop(held);
        assert_eq!(sem.available_permits(), 1);
        assert!(sem.try_acquire().is_none(), "closed: no permit handed out");
    });
}

#[test]
fn close_from_a_plain_thread_wakes_a_waiting_thread() {
    let sem = Arc::new(Semaphore::new(0));
    let s2 = Arc::clone(&sem);
    let t = std::thread::spawn(move || s2.acquire_many_owned(2).is_err());
    std::thread::sleep(Duration::from_millis(20));
    sem.close();
    assert!(t.join().unwrap());
}

#[test]
fn forget_permits_removes_only_available_ones() {
    let sem = Arc::new(Semaphore::new(5));
    let p = sem.try_acquire_many(2).unwrap();
    assert_eq!(sem.forget_permits(10), 3);
    assert_eq!(sem.available_permits(), 0);
    assert_eq!(
        Arc::clone(&sem).try_acquire_owned().unwrap_err(),
        TryAcquireError::NoPermits
    );
    drop(p);
    assert_eq!(sem.available_permits(), 2);
    let owned = Arc::clone(&sem).try_acquire_many_owned(2).unwrap();
    assert!(Arc::ptr_eq(owned.semaphore(), &sem));
    owned.forget();
    assert_eq!(sem.available_permits(), 0);
}

#[test]
fn an_owned_permit_is_send() {
    fn assert_send<T: Send + 'static>(_: &T) {}
    let sem = Arc::new(Semaphore::new(1));
    let permit = sem.acquire_owned().unwrap();
    assert_send(&permit);
}
