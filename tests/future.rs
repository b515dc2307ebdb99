//! The future bridge: `corio::block_on` and `JoinHandle` as a `Future`, with
//! real async crates.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::Duration;

use corio::task::{TaskState, WaitReason};
use futures::StreamExt;

/// A future that completes after `wakes` wakeups, each fired from a plain
/// thread, counting its polls.
struct WokenFromThread {
    left: usize,
    polls: Arc<AtomicUsize>,
    pending_wake: Arc<Mutex<Option<thread::JoinHandle<()>>>>,
}

impl Future for WokenFromThread {
    type Output = usize;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        if let Some(t) = self.pending_wake.lock().unwrap().take() {
            t.join().unwrap();
        }
        if self.left == 0 {
            return Poll::Ready(self.polls.load(Ordering::SeqCst));
        }
        self.left -= 1;
        let waker: Waker = cx.waker().clone();
        let t = thread::spawn(move || {
            thread::sleep(Duration::from_millis(1));
            waker.wake();
        });
        *self.pending_wake.lock().unwrap() = Some(t);
        Poll::Pending
    }
}

fn woken_from_thread(wakes: usize) -> WokenFromThread {
    WokenFromThread {
        left: wakes,
        polls: Arc::new(AtomicUsize::new(0)),
        pending_wake: Arc::new(Mutex::new(None)),
    }
}

#[test]
fn block_on_in_a_task_is_woken_from_other_threads() {
    corio::run(|| {
        let ticks = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (t2, s2) = (Arc::clone(&ticks), Arc::clone(&stop));
        let ticker = corio::spawn(move || {
            while !s2.load(Ordering::SeqCst) {
                t2.fetch_add(1, Ordering::SeqCst);
                corio::yield_now();
            }
        });
        let polls = corio::block_on(woken_from_thread(20));
        // One poll per wake plus the first, no busy polling.
        assert_eq!(polls, 21);
        // The task suspended, not the thread: the ticker ran meanwhile.
        assert!(ticks.load(Ordering::SeqCst) > 0);
        stop.store(true, Ordering::SeqCst);
        ticker.join().unwrap();
    });
}

#[test]
fn a_task_in_block_on_shows_wait_reason_future() {
    corio::run(|| {
        let (tx, rx) = async_channel::bounded::<u8>(1);
        let h = corio::spawn(move || corio::block_on(rx.recv()).unwrap());
        corio::yield_now();
        let state = corio::tasks()
            .into_iter()
            .find(|t| t.id() == h.id())
            .unwrap()
            .state();
        assert_eq!(state, TaskState::Waiting(WaitReason::Future));
        corio::block_on(tx.send(9)).unwrap();
        assert_eq!(h.join().unwrap(), 9);
    });
}

#[test]
fn block_on_outside_a_task_blocks_the_thread() {
    assert_eq!(corio::block_on(async { 5 }), 5);
    assert_eq!(corio::block_on(woken_from_thread(3)), 4);
    let (tx, rx) = async_channel::unbounded::<u32>();
    let sender = thread::spawn(move || {
        for i in 0..100 {
            tx.send_blocking(i).unwrap();
        }
    });
    let got: Vec<u32> = corio::block_on(rx.collect());
    assert_eq!(got, (0..100).collect::<Vec<_>>());
    sender.join().unwrap();
}

#[test]
fn async_channel_between_corio_tasks_and_a_plain_thread() {
    corio::run(|| {
        let (tx, rx) = async_channel::bounded::<u64>(4);
        // Producers: two corio tasks and a plain thread.
        let producers: Vec<_> = (0..2)
            .map(|p| {
                let tx = tx.clone();
                corio::spawn(move || {
                    for i in 0..500 {
                        corio::block_on(tx.send(p * 1000 + i)).unwrap();
                    }
                })
            })
            .collect();
        let tx3 = tx.clone();
        let thread = thread::spawn(move || {
            for i in 0..500 {
                tx3.send_blocking(5000 + i).unwrap();
            }
        });
        drop(tx);
        let consumer = corio::spawn(move || {
            let mut sum = 0;
            let mut n = 0;
            while let Ok(v) = corio::block_on(rx.recv()) {
                sum += v;
                n += 1;
            }
            (n, sum)
        });
        for p in producers {
            p.join().unwrap();
        }
        // Joining a thread blocks: do it on the pool, so the consumer runs.
        corio::unblock(move || thread.join().unwrap());
        let expect: u64 = (0..500).map(|i| i + (1000 + i) + (5000 + i)).sum();
        assert_eq!(consumer.join().unwrap(), (1500, expect));
    });
}

#[test]
fn async_lock_mutex_across_corio_tasks() {
    corio::run(|| {
        let counter = Arc::new(async_lock::Mutex::new(0u32));
        let handles: Vec<_> = (0..10)
            .map(|_| {
                let counter = Arc::clone(&counter);
                corio::spawn(move || {
                    for _ in 0..10 {
                        let mut guard = corio::block_on(counter.lock());
                        let v = *guard;
                        // Suspend while holding the lock: the others queue.
                        corio::time::sleep(Duration::from_micros(100));
                        *guard = v + 1;
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(*corio::block_on(counter.lock()), 100);
    });
}

#[test]
fn futures_streams_and_combinators() {
    corio::run(|| {
        let (mut tx, rx) = futures::channel::mpsc::channel::<u32>(2);
        let producer = corio::spawn(move || {
            for i in 1..=10 {
                corio::block_on(futures::SinkExt::send(&mut tx, i)).unwrap();
            }
        });
        let doubled: Vec<u32> = corio::block_on(
            rx.map(|x| x * 2)
                .filter(|x| {
                    let keep = x % 3 != 0;
                    async move { keep }
                })
                .collect(),
        );
        assert_eq!(doubled, [2, 4, 8, 10, 14, 16, 20]);
        producer.join().unwrap();

        let (a, b) = corio::block_on(futures::future::join(async { 1 }, async { 2 }));
        assert_eq!(a + b, 3);
    });
}

#[test]
fn join_handles_are_futures() {
    corio::run(|| {
        let handles: Vec<_> = (0..5u64)
            .map(|i| {
                corio::spawn(move || {
                    corio::time::sleep(Duration::from_millis(5 - i));
                    i * i
                })
            })
            .collect();
        let results = corio::block_on(futures::future::join_all(handles));
        let squares: Vec<u64> = results.into_iter().map(Result::unwrap).collect();
        assert_eq!(squares, [0, 1, 4, 9, 16]);

        let failed = corio::spawn(|| -> u8 { panic!("awaited panic") });
        let err = corio::block_on(failed).unwrap_err();
        assert_eq!(err.panic_message(), Some("awaited panic"));

        // Already finished when first polled.
        let done = corio::spawn(|| 3);
        corio::yield_now();
        assert!(done.is_finished());
        assert_eq!(corio::block_on(done).unwrap(), 3);
    });
}

#[test]
fn a_join_handle_awaited_by_an_executor_on_another_thread() {
    let (tx, rx) = std::sync::mpsc::channel();
    let awaiter = thread::spawn(move || {
        let h: corio::JoinHandle<&str> = rx.recv().unwrap();
        futures::executor::block_on(h).unwrap()
    });
    corio::run(move || {
        let h = corio::spawn(|| {
            corio::time::sleep(Duration::from_millis(20));
            "done"
        });
        tx.send(h).unwrap();
        corio::time::sleep(Duration::from_millis(40));
    });
    assert_eq!(awaiter.join().unwrap(), "done");
}

#[test]
fn cancelling_a_task_in_block_on_drops_the_future() {
    struct SetOnDrop(Arc<AtomicBool>);
    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    corio::run(|| {
        let dropped = Arc::new(AtomicBool::new(false));
        let guard = SetOnDrop(Arc::clone(&dropped));
        let h = corio::spawn(move || {
            corio::block_on(async move {
                let _guard = guard;
                futures::future::pending::<()>().await
            })
        });
        corio::yield_now();
        assert!(!dropped.load(Ordering::SeqCst));
        h.cancel();
        assert!(h.join().unwrap_err().is_cancelled());
        assert!(dropped.load(Ordering::SeqCst));
    });
}

#[test]
fn timeout_around_block_on() {
    corio::run(|| {
        let r = corio::time::timeout(Duration::from_millis(10), || {
            corio::block_on(futures::future::pending::<()>())
        });
        assert!(r.is_err());
        let r = corio::time::timeout(Duration::from_secs(10), || corio::block_on(async { 7 }));
        assert_eq!(r, Ok(7));
    });
}

#[test]
fn a_panic_in_poll_reaches_the_task() {
    corio::run(|| {
        let h = corio::spawn(|| corio::block_on(async { panic!("poll panic") }));
        assert_eq!(h.join().unwrap_err().panic_message(), Some("poll panic"));
    });
}

#[test]
fn the_waker_is_send_and_sync_and_survives_the_runtime() {
    fn assert_send_sync<T: Send + Sync>(_: &T) {}
    let stash: Arc<Mutex<Option<Waker>>> = Arc::default();
    let stash2 = Arc::clone(&stash);
    corio::run(move || {
        corio::block_on(std::future::poll_fn(|cx| {
            assert_send_sync(cx.waker());
            *stash2.lock().unwrap() = Some(cx.waker().clone());
            Poll::Ready(())
        }));
    });
    // The runtime is gone: waking is a harmless no-op, from any thread.
    let waker = stash.lock().unwrap().take().unwrap();
    thread::spawn(move || waker.wake()).join().unwrap();
}

/// An async `yield_now`: wakes itself and returns `Pending` once.
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[test]
fn a_future_that_yields_lets_the_other_tasks_run() {
    corio::run(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let flag2 = Arc::clone(&flag);
        // Set by another task of this thread: the spinning future below
        // only finishes if block_on lets that task run.
        let setter = corio::spawn(move || flag2.store(true, Ordering::SeqCst));
        let spins = corio::block_on(async {
            let mut spins = 0;
            while !flag.load(Ordering::SeqCst) {
                YieldNow(false).await;
                spins += 1;
            }
            spins
        });
        assert!(spins >= 1);
        setter.join().unwrap();
    });
}
