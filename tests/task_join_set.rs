//! `JoinSet`, `CancelHandle` and `CancellationToken`: groups of tasks,
//! completion order, and stopping a group.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use corio::sync::CancellationToken;
use corio::task::JoinSet;

#[test]
fn join_next_returns_results_in_completion_order() {
    corio::run(|| {
        let mut set = JoinSet::new();
        for ms in [40u64, 0, 20, 10, 30] {
            set.spawn(move || {
                corio::time::sleep(Duration::from_millis(ms));
                ms
            });
        }
        assert_eq!(set.len(), 5);
        let mut order = Vec::new();
        while let Some(r) = set.join_next() {
            order.push(r.unwrap());
        }
        assert_eq!(order, [0, 10, 20, 30, 40]);
        assert!(set.is_empty());
        assert!(
            set.join_next().is_none(),
            "an empty set returns None at once"
        );
    });
}

#[test]
fn a_panicking_member_is_reported_and_the_others_still_finish() {
    corio::run(|| {
        let mut set = JoinSet::new();
        set.spawn(|| 1);
        set.spawn(|| -> i32 { panic!("member failed") });
        set.spawn(|| 3);
        let mut ok = Vec::new();
        let mut panics = 0;
        while let Some(r) = set.join_next() {
            match r {
                Ok(v) => ok.push(v),
                Err(e) => {
                    assert!(e.is_panic());
                    assert_eq!(e.panic_message(), Some("member failed"));
                    panics += 1;
                }
            }
        }
        ok.sort();
        assert_eq!((ok, panics), (vec![1, 3], 1));
    });
}

struct CountDrop(Arc<AtomicUsize>);
impl Drop for CountDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn cancel_all_and_drop_cancel_every_member_running_destructors() {
    corio::run(|| {
        let dropped = Arc::new(AtomicUsize::new(0));
        let mut set = JoinSet::new();
        for _ in 0..10 {
            let guard = CountDrop(Arc::clone(&dropped));
            set.spawn(move || {
                let _guard = guard;
                corio::time::sleep(Duration::from_secs(3600));
            });
        }
        corio::yield_now();
        set.cancel_all();
        let mut cancelled = 0;
        while let Some(r) = set.join_next() {
            assert!(r.unwrap_err().is_cancelled());
            cancelled += 1;
        }
        assert_eq!(cancelled, 10);
        assert_eq!(dropped.load(Ordering::SeqCst), 10);

        // Dropping the set cancels too, including members that never ran.
        let mut set = JoinSet::new();
        for _ in 0..5 {
            let guard = CountDrop(Arc::clone(&dropped));
            set.spawn(move || {
                let _guard = guard;
                corio::time::sleep(Duration::from_secs(3600));
            });
        }
        drop(set);
        corio::time::sleep(Duration::from_millis(10));
        assert_eq!(dropped.load(Ordering::SeqCst), 15);
    });
}

#[test]
fn join_all_and_shutdown() {
    corio::run(|| {
        let mut set = JoinSet::new();
        for i in 0..5 {
            set.spawn_local(move || std::rc::Rc::new(i));
        }
        let mut all: Vec<i32> = set.join_all().into_iter().map(|rc| *rc).collect();
        all.sort();
        assert_eq!(all, [0, 1, 2, 3, 4]);

        let mut set = JoinSet::new();
        for _ in 0..3 {
            set.spawn(|| corio::time::sleep(Duration::from_secs(3600)));
        }
        set.shutdown();
        assert!(set.is_empty());
    });
}

#[test]
fn join_all_resumes_a_members_panic() {
    let r = std::panic::catch_unwind(|| {
        corio::run(|| {
            let mut set = JoinSet::new();
            set.spawn(|| panic!("boom in member"));
            set.join_all()
        })
    });
    let payload = r.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom in member"));
}

#[test]
fn cancellation_token_cancels_attached_tasks_children_and_wakes_waiters() {
    corio::run(|| {
        let root = CancellationToken::new();
        let child = root.child_token();
        let grandchild = child.child_token();
        let sleepers: Vec<_> = (0..3)
            .map(|_| {
                let h = corio::spawn(|| corio::time::sleep(Duration::from_secs(3600)));
                grandchild.attach(&h);
                h
            })
            .collect();
        let waiter = {
            let t = child.clone();
            corio::spawn(move || {
                t.cancelled();
                t.is_cancelled()
            })
        };
        corio::yield_now();
        assert!(!grandchild.is_cancelled());
        // A child cancelled alone leaves its parent alone.
        let sibling = root.child_token();
        sibling.cancel();
        assert!(!root.is_cancelled());
        assert!(!child.is_cancelled());

        root.cancel();
        assert!(child.is_cancelled() && grandchild.is_cancelled());
        for h in sleepers {
            assert!(h.join().unwrap_err().is_cancelled());
        }
        assert!(waiter.join().unwrap());
        // Attaching to a cancelled token cancels at once; so does a child.
        let late = corio::spawn(|| corio::time::sleep(Duration::from_secs(3600)));
        root.attach(&late);
        assert!(late.join().unwrap_err().is_cancelled());
        assert!(root.child_token().is_cancelled());
    });
}

#[test]
fn cancellation_token_from_a_plain_thread_and_drop_guard() {
    let token = CancellationToken::new();
    let guard = token.clone().drop_guard();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        drop(guard);
    });
    corio::run(|| {
        assert!(!token.cancelled_timeout(Duration::from_millis(1)));
        token.cancelled();
    });
    t.join().unwrap();
    let kept = CancellationToken::new();
    let t2 = kept.clone().drop_guard().disarm();
    assert!(!t2.is_cancelled() && !kept.is_cancelled());
}
