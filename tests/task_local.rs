//! `task_local!`: a value per task, created on first use, destroyed when the
//! task ends (however it ends); one per thread outside tasks.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

static DROPS: AtomicUsize = AtomicUsize::new(0);

struct Tracked(u32);

impl Drop for Tracked {
    fn drop(&mut self) {
        DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

corio::task_local! {
    static COUNTER: Cell<u32> = Cell::new(0);
    static NAMES: RefCell<Vec<String>> = RefCell::new(Vec::new());
    static TRACKED: Tracked = Tracked(7);
}

#[test]
fn each_task_has_its_own_value() {
    corio::run(|| {
        COUNTER.set(100);
        let tasks: Vec<_> = (1..=4)
            .map(|i| {
                corio::spawn(move || {
                    assert_eq!(COUNTER.get(), 0, "fresh per task");
                    COUNTER.set(i);
                    corio::yield_now(); // the others set theirs meanwhile
                    NAMES.with_borrow_mut(|n| n.push(format!("t{i}")));
                    (COUNTER.replace(0), NAMES.take())
                })
            })
            .collect();
        for (i, t) in (1..=4).zip(tasks) {
            assert_eq!(t.join().unwrap(), (i, vec![format!("t{i}")]));
        }
        assert_eq!(COUNTER.get(), 100, "the main task's value is untouched");
    });
}

/// One test for the three endings, so `DROPS` is not shared with another
/// test running in parallel.
#[test]
fn values_are_destroyed_when_the_task_ends() {
    corio::run(|| {
        let before = DROPS.load(Ordering::SeqCst);
        // Returned.
        corio::spawn(|| TRACKED.with(|t| t.0)).join().unwrap();
        assert_eq!(DROPS.load(Ordering::SeqCst), before + 1);
        // Panicked.
        let e = corio::spawn(|| {
            TRACKED.with(|_| ());
            panic!("boom");
        })
        .join()
        .unwrap_err();
        assert!(e.is_panic());
        assert_eq!(DROPS.load(Ordering::SeqCst), before + 2);
        // Cancelled while blocked.
        let h = corio::spawn(|| {
            TRACKED.with(|_| ());
            corio::time::sleep(Duration::from_secs(3600));
        });
        corio::yield_now();
        h.cancel();
        assert!(h.join().unwrap_err().is_cancelled());
        assert_eq!(DROPS.load(Ordering::SeqCst), before + 3);
        // Never touched: never created.
        corio::spawn(|| ()).join().unwrap();
        assert_eq!(DROPS.load(Ordering::SeqCst), before + 3);
    });
}

#[test]
fn plain_threads_get_one_value_each() {
    COUNTER.set(5);
    let other = std::thread::spawn(|| {
        COUNTER.set(9);
        COUNTER.get()
    });
    assert_eq!(other.join().unwrap(), 9);
    assert_eq!(COUNTER.get(), 5);
}

#[test]
fn a_destructor_may_use_other_keys_but_not_a_destroyed_one() {
    corio::task_local! {
        static SEEN: Arc<AtomicUsize> = Arc::new(AtomicUsize::new(0));
        static OUTER: Outer = Outer;
    }
    struct Outer;
    impl Drop for Outer {
        fn drop(&mut self) {
            // Destroyed in reverse order of creation: SEEN is still there.
            SEEN.with(|s| s.fetch_add(1, Ordering::SeqCst));
            // OUTER itself is gone.
            assert!(OUTER.try_with(|_| ()).is_err());
        }
    }
    corio::run(|| {
        let seen = corio::spawn(|| {
            let seen = SEEN.with(Arc::clone);
            OUTER.with(|_| ());
            seen
        })
        .join()
        .unwrap();
        assert_eq!(seen.load(Ordering::SeqCst), 1);
    });
}
