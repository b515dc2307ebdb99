//! Mapped lock guards and `RwLockWriteGuard::downgrade`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use corio::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

#[test]
fn a_mapped_mutex_guard_holds_the_lock_and_hands_it_to_the_next_waiter() {
    corio::run(|| {
        let m = Arc::new(Mutex::new((0u32, vec![1, 2, 3])));
        let mut part = MutexGuard::map(m.lock(), |pair| &mut pair.1);
        let waiter = {
            let m = Arc::clone(&m);
            corio::spawn(move || m.lock().1.len())
        };
        corio::yield_now();
        assert!(
            !waiter.is_finished(),
            "the mapped guard still holds the lock"
        );
        part.push(4);
        // A second guard cannot exist while the first lives; narrow the
        // same guard further instead.
        let mut element = corio::sync::MappedMutexGuard::map(part, |v| &mut v[0]);
        *element += 10;
        drop(element);
        assert_eq!(waiter.join().unwrap(), 4);
        assert_eq!(m.lock().1, [11, 2, 3, 4]);
    });
}

#[test]
fn try_map_gives_the_guard_back_and_map_unlocks_when_the_closure_panics() {
    let m = Mutex::new(vec![1]);
    let g = match MutexGuard::try_map(m.lock(), |v| v.get_mut(5)) {
        Ok(_) => panic!("no element 5"),
        Err(g) => g,
    };
    assert_eq!(g.len(), 1);
    let chained = corio::sync::MappedMutexGuard::map(MutexGuard::map(g, |v| v), |v| &mut v[0]);
    assert_eq!(*chained, 1);
    drop(chained);
    assert!(!m.is_locked());

    let r = catch_unwind(AssertUnwindSafe(|| {
        let _part = MutexGuard::map(m.lock(), |_| -> &mut i32 { panic!("in map") });
    }));
    assert!(r.is_err());
    assert!(
        !m.is_locked(),
        "the guard unlocked while unwinding out of map"
    );
}

#[test]
fn mapped_rwlock_guards_keep_their_lock_kind() {
    let lock = RwLock::new((1, String::from("x")));
    {
        let name = RwLockReadGuard::map(lock.read(), |p| &p.1);
        assert_eq!(&*name, "x");
        assert!(lock.try_read().is_some(), "a mapped read guard shares");
        assert!(lock.try_write().is_none());
    }
    {
        let mut n = RwLockWriteGuard::map(lock.write(), |p| &mut p.0);
        *n += 1;
        assert!(lock.try_read().is_none(), "a mapped write guard excludes");
    }
    assert_eq!(lock.read().0, 2);
    assert!(lock.try_write().is_some());
}

#[test]
fn downgrade_lets_queued_readers_in_but_not_a_writer() {
    corio::run(|| {
        let lock = Arc::new(RwLock::new(0));
        let mut w = lock.write();
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let lock = Arc::clone(&lock);
                corio::spawn(move || *lock.read())
            })
            .collect();
        corio::yield_now();
        let writer = {
            let lock = Arc::clone(&lock);
            corio::spawn(move || {
                *lock.write() = 100;
            })
        };
        corio::yield_now();
        *w = 7;
        let r = RwLockWriteGuard::downgrade(w);
        for h in readers {
            assert_eq!(h.join().unwrap(), 7, "readers saw the downgraded value");
        }
        assert!(
            !writer.is_finished(),
            "the writer waits for the downgraded reader"
        );
        assert_eq!(*r, 7);
        drop(r);
        writer.join().unwrap();
        assert_eq!(*lock.read(), 100);
    });
}

#[test]
fn downgrade_across_threads() {
    let lock = Arc::new(RwLock::new(0));
    let w = lock.write();
    let l2 = Arc::clone(&lock);
    let t = std::thread::spawn(move || *l2.read());
    std::thread::sleep(Duration::from_millis(20));
    let r = RwLockWriteGuard::downgrade(w);
    assert_eq!(t.join().unwrap(), 0);
    drop(r);
}
