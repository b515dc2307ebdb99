//! Structured concurrency: children borrow the parent's locals; the scope
//! never returns or unwinds past them; failures cancel siblings and come
//! back typed.

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use corio::sync::mpsc;

const HOUR: Duration = Duration::from_secs(3600);

struct Counted<'a>(&'a AtomicUsize);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn children_borrow_and_the_scope_waits_for_them() {
    corio::run(|| {
        let mut data = vec![1, 2, 3];
        let sum = Cell::new(0);
        let text = String::from("hello world");
        let (first_word, rest) = corio::scope(|s| {
            let sum = &sum;
            for x in &data {
                s.spawn(move || {
                    corio::time::sleep(Duration::from_millis(*x));
                    sum.set(sum.get() + x);
                });
            }
            // A child may return a borrow.
            let h = s.spawn(|| text.split(' ').next().unwrap());
            let rest = s.spawn(|| &text[6..]);
            (h.join().unwrap(), rest.join().unwrap())
        });
        // Every child finished before the scope returned.
        assert_eq!(sum.get(), 6);
        assert_eq!((first_word, rest), ("hello", "world"));
        data.push(4); // the borrows are over
    });
}

#[test]
fn children_can_spawn_siblings_and_scopes_nest() {
    corio::run(|| {
        let count = AtomicUsize::new(0);
        corio::scope(|s| {
            s.spawn(|| {
                s.spawn(|| count.fetch_add(1, Ordering::SeqCst));
                corio::scope(|inner| {
                    for _ in 0..3 {
                        inner.spawn(|| {
                            corio::yield_now();
                            count.fetch_add(1, Ordering::SeqCst);
                        });
                    }
                });
                count.fetch_add(1, Ordering::SeqCst);
            });
        });
        assert_eq!(count.load(Ordering::SeqCst), 5);
    });
}

#[test]
fn a_panicking_child_cancels_its_siblings_and_the_panic_comes_back() {
    corio::run(|| {
        let drops = AtomicUsize::new(0);
        let finished = AtomicUsize::new(0);
        let r = panic::catch_unwind(AssertUnwindSafe(|| {
            corio::scope(|s| {
                for _ in 0..3 {
                    s.spawn(|| {
                        let _g = Counted(&drops);
                        corio::time::sleep(HOUR);
                        finished.fetch_add(1, Ordering::SeqCst);
                    });
                }
                s.spawn(|| {
                    corio::yield_now();
                    panic!("child failed");
                });
                assert!(!s.has_failed());
            })
        }));
        let payload = r.expect_err("the child's panic is resumed");
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"child failed"));
        assert_eq!(drops.load(Ordering::SeqCst), 3, "siblings unwound");
        assert_eq!(finished.load(Ordering::SeqCst), 0, "siblings cancelled");
    });
}

#[test]
fn a_joined_panic_is_the_joiners() {
    corio::run(|| {
        let v = corio::scope(|s| {
            let h = s.spawn(|| -> u32 { panic!("mine") });
            let e = h.join().unwrap_err();
            assert_eq!(e.panic_message(), Some("mine"));
            7
        });
        assert_eq!(v, 7);
    });
}

#[test]
fn try_scope_collects_every_error_and_cancels_the_rest() {
    corio::run(|| {
        let drops = AtomicUsize::new(0);
        let r: Result<u32, _> = corio::try_scope(|s| {
            s.spawn_try(|| {
                let _g = Counted(&drops);
                corio::time::sleep(HOUR);
                Ok(())
            });
            // Two failures in one step: both are reported, in order.
            let (go_tx, go_rx) = mpsc::sync_channel::<()>(0);
            s.spawn_try(move || {
                go_rx.recv().unwrap();
                Err::<(), _>("second")
            });
            s.spawn_try(move || {
                corio::yield_now();
                go_tx.try_send(()).map_err(|_| "rendezvous")?;
                Err::<(), _>("first")
            });
            Ok(1)
        });
        let e = r.unwrap_err();
        assert_eq!(e.errors(), ["first", "second"]);
        assert_eq!(*e.first(), "first");
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert_eq!(
            e.to_string(),
            "2 tasks of the scope failed; the first: first"
        );
    });
}

#[test]
fn try_scope_success_and_joined_errors() {
    corio::run(|| {
        let r: Result<u32, String> = corio::try_scope(|s| {
            let a = s.spawn_try(|| Ok::<_, String>(20));
            let b = s.spawn_try(|| Ok(22));
            Ok(a.join().unwrap()? + b.join().unwrap()?)
        })
        .map_err(|e| e.into_first());
        assert_eq!(r, Ok(42));

        // An error the body joined (and returned) is reported once.
        let r: Result<(), _> = corio::try_scope(|s| {
            let h = s.spawn_try(|| Err::<(), _>("bad input"));
            h.join().unwrap()?;
            Ok(())
        });
        assert_eq!(r.unwrap_err().into_errors(), ["bad input"]);
    });
}

#[test]
fn a_body_error_cancels_the_children() {
    corio::run(|| {
        let drops = AtomicUsize::new(0);
        let r: Result<(), _> = corio::try_scope(|s| {
            s.spawn(|| {
                let _g = Counted(&drops);
                corio::time::sleep(HOUR);
            });
            corio::yield_now();
            Err("body")
        });
        assert_eq!(r.unwrap_err().into_errors(), ["body"]);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn a_panicking_body_cancels_and_waits_before_unwinding() {
    corio::run(|| {
        let drops = AtomicUsize::new(0);
        let r = panic::catch_unwind(AssertUnwindSafe(|| {
            corio::scope(|s| {
                s.spawn(|| {
                    let _g = Counted(&drops);
                    corio::time::sleep(HOUR);
                });
                corio::yield_now();
                panic!("body failed");
            })
        }));
        assert!(r.is_err());
        assert_eq!(drops.load(Ordering::SeqCst), 1, "children went first");
    });
}

/// A child unwound in place while it waits on a socket (its scope's body
/// panicked) leaves no waiter entry behind: data arriving on that socket
/// later is dispatched to nobody, and the socket keeps working.
#[test]
fn a_child_unwound_while_reading_leaves_the_socket_usable() {
    use std::io::{Read, Write};
    corio::run(|| {
        let (a, b) = corio::net::unix::UnixStream::pair().unwrap();
        let r = panic::catch_unwind(AssertUnwindSafe(|| {
            corio::scope(|s| {
                s.spawn(|| {
                    let mut buf = [0u8; 8];
                    let _ = (&a).read(&mut buf);
                });
                corio::yield_now(); // the child is now waiting on `a`
                panic!("body failed");
            })
        }));
        assert!(r.is_err());
        // The child's task block is gone; an event on `a` must not reach it.
        (&b).write_all(b"hello").unwrap();
        corio::time::sleep(Duration::from_millis(20));
        let mut buf = [0u8; 5];
        (&a).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
        assert_eq!(corio::tasks().len(), 1);
    });
}

#[test]
fn a_cancelled_parent_cancels_and_waits_for_its_children() {
    corio::run(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let d = Arc::clone(&drops);
        let parent = corio::spawn(move || {
            let local = AtomicUsize::new(0);
            corio::scope(|s| {
                for _ in 0..3 {
                    s.spawn(|| {
                        let _g = Counted(&local);
                        corio::time::sleep(HOUR);
                    });
                }
                corio::time::sleep(HOUR); // the parent is cancelled here
            });
            d.fetch_add(100, Ordering::SeqCst); // not reached
        });
        corio::yield_now();
        parent.cancel();
        assert!(parent.join().unwrap_err().is_cancelled());
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        // No child is left behind.
        assert_eq!(corio::tasks().len(), 1);
    });
}

#[test]
fn an_expired_timeout_cancels_the_children_of_a_waiting_scope() {
    corio::run(|| {
        let stopped = AtomicUsize::new(0);
        let r = corio::time::timeout(Duration::from_millis(10), || {
            corio::scope(|s| {
                s.spawn(|| {
                    let _g = Counted(&stopped);
                    corio::time::sleep(HOUR);
                });
            });
        });
        assert!(r.is_err());
        assert_eq!(stopped.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn runtime_shutdown_unwinds_children_before_their_parent() {
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let o = Arc::clone(&order);
    corio::run(move || {
        let _detached = corio::spawn(move || {
            let log = RefCell::new(Vec::new());
            struct Guard<'a>(&'a RefCell<Vec<&'static str>>, &'static str);
            impl Drop for Guard<'_> {
                fn drop(&mut self) {
                    self.0.borrow_mut().push(self.1);
                }
            }
            struct Report(
                Arc<std::sync::Mutex<Vec<&'static str>>>,
                *const RefCell<Vec<&'static str>>,
            );
            let _report = Report(o, &log);
            impl Drop for Report {
                fn drop(&mut self) {
                    // SAFETY (test): `log` outlives this guard (declared
                    // before it in the same frame).
                    let log = unsafe { &*self.1 };
                    self.0.lock().unwrap().extend(log.borrow().iter());
                }
            }
            corio::scope(|s| {
                s.spawn(|| {
                    let _g = Guard(&log, "child");
                    corio::time::sleep(HOUR);
                });
                let _g = Guard(&log, "parent body");
                corio::time::sleep(HOUR);
            });
        });
        for _ in 0..3 {
            corio::yield_now(); // the parent and its child start and wait
        }
        // The main task returns: the runtime unwinds everything left.
    });
    // The parent's body unwinds first (the runtime unwinds it), then its
    // scope unwinds the child, and only then the parent's frame goes.
    assert_eq!(*order.lock().unwrap(), ["parent body", "child"]);
}

#[test]
fn scoped_handles_report_and_cancel() {
    corio::run(|| {
        corio::scope(|s| {
            let h = s.spawn(|| corio::time::sleep(HOUR));
            corio::yield_now();
            assert!(!h.is_finished());
            h.cancel();
            assert!(h.join().unwrap_err().is_cancelled());
            // A cancelled child is not a failure.
            assert!(!s.has_failed());
        });
    });
}

#[test]
fn scope_builder_names_and_sizes_children() {
    corio::run(|| {
        let mut seen = Vec::new();
        corio::scope(|s| {
            let h = s
                .builder()
                .name("child-a")
                .stack_size(128 * 1024)
                .spawn(|| corio::current().name().map(String::from))
                .unwrap();
            seen.push(h.join().unwrap());
            // A stack size out of range spawns nothing and says why.
            let err = s.builder().stack_size(usize::MAX).spawn(|| ()).unwrap_err();
            assert!(
                matches!(err, corio::Error::InvalidStackSize { .. }),
                "{err}"
            );
            // The scope still ends normally after the refused child.
        });
        assert_eq!(seen, [Some("child-a".to_string())]);

        let r: Result<(), corio::task::ScopeError<&str>> = corio::try_scope(|s| {
            s.builder()
                .name("fails")
                .spawn_try(|| -> Result<(), &str> { Err("bad input") })
                .unwrap();
            Ok(())
        });
        assert_eq!(r.unwrap_err().into_first(), "bad input");
    });
}
