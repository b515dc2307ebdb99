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
fn an_idle_worker_gets_tasks_while_their_spawner_is_still_busy() {
    // The spawner never suspends below, so its worker never polls: the
    // tasks reach the idle worker at the spawn itself, or not at all.
    let rt = Builder::new().workers(2).build().unwrap();
    rt.block_on(|| {
        let ran_elsewhere = Arc::new(AtomicUsize::new(0));
        let start = std::time::Instant::now();
        let mut handles = vec![];
        while ran_elsewhere.load(Ordering::Acquire) == 0 {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(10),
                "no task ran on the idle worker while the spawner was busy"
            );
            let ran = Arc::clone(&ran_elsewhere);
            handles.push(corio::spawn(move || {
                if worker_index() != Some(0) {
                    ran.fetch_add(1, Ordering::AcqRel);
                }
            }));
            std::thread::sleep(std::time::Duration::from_micros(100));
        }
        for h in handles {
            h.join().unwrap();
        }
    });
}

#[test]
fn handle_spawns_from_plain_threads() {
    let rt = Builder::new().workers(2).build().unwrap();
    let handle = rt.handle();
    let total = rt.block_on(move || {
        // The main task waits on a corio channel: blocking worker 0's
        // thread would stall the tasks placed on it.
        let (tx, rx) = corio::sync::mpsc::channel();
        for i in 0..4 {
            let (h, tx) = (handle.clone(), tx.clone());
            std::thread::spawn(move || tx.send(h.spawn(move || i * 10).join().unwrap()).unwrap());
        }
        drop(tx);
        rx.iter().sum::<i32>()
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

/// A connected pair, the first already registered with the calling
/// worker's reactor (a read on it waited).
fn registered_pair() -> (corio::net::TcpStream, corio::net::TcpStream) {
    use std::io::Read;
    let listener = corio::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = corio::net::TcpStream::connect(addr).unwrap();
    let (server, _) = listener.accept().unwrap();
    server
        .set_read_timeout(Some(std::time::Duration::from_millis(5)))
        .unwrap();
    let mut b = [0u8; 1];
    let e = (&server).read(&mut b).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
    server.set_read_timeout(None).unwrap();
    (server, client)
}

#[test]
fn a_socket_moved_by_value_to_another_worker_reregisters_there() {
    use std::io::{Read, Write};
    let rt = Builder::new().workers(2).build().unwrap();
    rt.block_on(|| {
        let (mut server, mut client) = registered_pair();
        let (tx, rx) = corio::sync::mpsc::channel();
        let reader = corio::spawn_on(1, move || {
            let mut s: corio::net::TcpStream = rx.recv().unwrap();
            let mut b = [0u8; 5];
            // Waits on worker 1's reactor for data sent later.
            s.read_exact(&mut b).unwrap();
            s.write_all(b"pong!").unwrap();
            (b, worker_index())
        });
        server.write_all(b"").unwrap();
        let _ = &mut server;
        tx.send(server).unwrap();
        corio::time::sleep(std::time::Duration::from_millis(10));
        client.write_all(b"ping!").unwrap();
        let mut b = [0u8; 5];
        client.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"pong!");
        assert_eq!(reader.join().unwrap(), (*b"ping!", Some(1)));
    });
}

#[test]
fn a_shared_socket_used_from_another_worker_fails_with_a_typed_error() {
    use std::io::Read;
    let rt = Builder::new().workers(2).build().unwrap();
    rt.block_on(|| {
        let (server, _client) = registered_pair();
        let server = Arc::new(server);
        let s = server.clone();
        let e = corio::spawn_on(1, move || (&*s).read(&mut [0u8; 1]).unwrap_err())
            .join()
            .unwrap();
        let inner = e.get_ref().and_then(|e| e.downcast_ref::<corio::Error>());
        assert!(
            matches!(
                inner,
                Some(corio::Error::WrongWorker {
                    registered: 0,
                    current: 1
                })
            ),
            "{e}"
        );
    });
}

#[test]
fn tasks_spawned_through_a_handle_run_at_the_next_block_on_or_are_cancelled_at_drop() {
    let rt = Builder::new().workers(2).build().unwrap();
    let handle = rt.handle();
    // Before block_on: queued until a block_on runs the workers.
    let early = std::thread::spawn({
        let handle = handle.clone();
        move || handle.spawn(|| 5)
    })
    .join()
    .unwrap();
    let early_on_1 = handle.spawn_on(1, || 6);
    let got = rt.block_on(move || early.join().unwrap() + early_on_1.join().unwrap());
    assert_eq!(got, 11);
    drop(rt);
    // The runtime is gone: the task is never run, and its join says so
    // instead of waiting for ever.
    let late = handle.spawn(|| 7);
    assert!(late.join().unwrap_err().is_cancelled());
}

#[test]
fn tasks_handed_to_a_runtime_that_never_runs_them_are_cancelled_at_drop() {
    let rt = Builder::new().workers(2).build().unwrap();
    let handle = rt.handle();
    let on_0 = std::thread::spawn({
        let handle = handle.clone();
        move || handle.spawn_on(0, || 1)
    })
    .join()
    .unwrap();
    let on_1 = handle.spawn_on(1, || 2);
    drop(rt);
    assert!(on_0.join().unwrap_err().is_cancelled());
    assert!(on_1.join().unwrap_err().is_cancelled());
}

#[test]
fn pinned_workers_run_and_report_their_index() {
    let rt = Builder::new().workers(2).pin_workers(true).build().unwrap();
    assert_eq!(rt.workers(), 2);
    let got = rt.block_on(|| {
        let other = corio::spawn_on(1, worker_index).join().unwrap();
        (worker_index(), other)
    });
    assert_eq!(got, (Some(0), Some(1)));
}

#[test]
fn spawn_on_a_worker_out_of_range_panics_with_the_rule() {
    let rt = Builder::new().workers(2).build().unwrap();
    let msg =
        rt.block_on(|| std::panic::catch_unwind(|| drop(corio::spawn_on(2, || ()))).unwrap_err());
    let msg = msg.downcast_ref::<String>().unwrap();
    assert!(
        msg.contains("worker 2 is out of range (the runtime has 2 workers)"),
        "{msg}"
    );
}

#[test]
fn inspect_sees_every_worker_and_names_holders_across_them() {
    use corio::sync::Mutex;
    use corio::sync::mpsc::channel;
    let rt = Builder::new().workers(3).build().unwrap();
    rt.block_on(|| {
        let lock = Arc::new(Mutex::new(()));
        let (locked_tx, locked_rx) = channel::<()>();
        let (release_tx, release_rx) = channel::<()>();
        let l = Arc::clone(&lock);
        let holder = corio::spawn_on(2, move || {
            let _g = l.lock();
            locked_tx.send(()).unwrap();
            release_rx.recv().unwrap();
        });
        locked_rx.recv().unwrap();
        let l = Arc::clone(&lock);
        let waiter = corio::spawn_on(1, move || drop(l.lock()));
        // Let the waiter reach the lock.
        let t = std::time::Instant::now();
        let table = loop {
            let table = corio::inspect::tasks();
            let w = table.iter().find(|t| t.id() == waiter.id());
            if w.is_some_and(|w| w.blocked_on().is_some()) {
                break table;
            }
            assert!(
                t.elapsed().as_secs() < 10,
                "the waiter never waited: {table:#?}"
            );
            corio::time::sleep(std::time::Duration::from_millis(5));
        };
        let h = table.iter().find(|t| t.id() == holder.id()).unwrap();
        let w = table.iter().find(|t| t.id() == waiter.id()).unwrap();
        assert_eq!((h.worker(), w.worker()), (2, 1));
        assert_eq!(w.blocked_on(), Some(holder.id()));
        let wait = w.wait().unwrap();
        assert!(wait.starts_with("lock on Mutex 0x"), "{wait}");
        assert!(
            wait.ends_with(&format!("held by task {}", holder.id())),
            "{wait}"
        );
        let main = table.iter().find(|t| t.worker() == 0).unwrap();
        assert_eq!(main.state(), corio::task::TaskState::Running);
        // The dump gathers every worker too, with the backtraces.
        let dump = corio::inspect::dump();
        assert!(
            dump.contains(&format!("task {} (worker 2)", holder.id())),
            "{dump}"
        );
        assert!(dump.contains("inspect_sees_every_worker"), "{dump}");
        release_tx.send(()).unwrap();
        holder.join().unwrap();
        waiter.join().unwrap();
    });
}

/// The runtime's metrics once `done` holds of them: a worker counts a
/// task's end just after its joiner may have woken (on another thread),
/// and its runs at its next poll.
fn metrics_when(
    done: impl Fn(&corio::runtime::RuntimeMetrics) -> bool,
) -> corio::runtime::RuntimeMetrics {
    let t = std::time::Instant::now();
    loop {
        let m = corio::runtime::metrics();
        if done(&m) || t.elapsed().as_secs() >= 10 {
            return m;
        }
        corio::time::sleep(std::time::Duration::from_millis(2));
    }
}

#[test]
fn metrics_count_every_worker() {
    let rt = Builder::new().workers(2).build().unwrap();
    rt.block_on(|| {
        for w in [0, 1, 1] {
            corio::spawn_on(w, corio::yield_now).join().unwrap();
        }
        let m = metrics_when(|m| m.tasks_returned == 3 && m.workers[1].switches >= 4);
        assert_eq!(m.workers.len(), 2);
        assert_eq!(m.workers[0].tasks_spawned, 2, "{m:?}"); // and main
        assert_eq!(m.workers[1].tasks_spawned, 2, "{m:?}");
        assert_eq!(m.workers[1].tasks_returned, 2, "{m:?}");
        assert_eq!(m.workers[1].tasks_alive, 0, "{m:?}");
        assert_eq!(m.tasks_alive, 1, "{m:?}"); // main
        assert!(m.workers[1].switches >= 4, "{m:?}");
    });
    let m = rt.metrics();
    assert_eq!(m.tasks_spawned, 4);
    assert_eq!(m.tasks_returned, 4);
    assert_eq!(m.tasks_alive, 0);
    assert!(
        m.workers[1].busy + m.workers[1].parked > std::time::Duration::ZERO,
        "{m:?}"
    );
}

#[test]
fn never_started_tasks_taken_by_idle_workers_are_counted() {
    let rt = Builder::new().workers(2).build().unwrap();
    rt.block_on(|| {
        // Tasks move only to a worker that is idle when they are handed
        // out; on a loaded machine worker 1 may not be yet, so try rounds.
        let (mut moved, mut spawned) = (0u64, 0u64);
        for _ in 0..50 {
            let hs: Vec<_> = (0..2000)
                .map(|_| corio::spawn(|| worker_index().unwrap()))
                .collect();
            spawned += 2000;
            moved += hs
                .into_iter()
                .map(|h| h.join().unwrap())
                .filter(|&w| w == 1)
                .count() as u64;
            if moved > 0 {
                break;
            }
            corio::time::sleep(std::time::Duration::from_millis(10));
        }
        assert!(moved > 0, "no task moved");
        let m = metrics_when(|m| m.tasks_returned == spawned);
        assert_eq!(m.workers[0].tasks_stolen, moved, "{m:?}");
        assert_eq!(m.tasks_stolen, moved, "{m:?}");
        assert_eq!(m.workers[1].tasks_returned, moved, "{m:?}");
        assert_eq!(m.tasks_alive, 1, "{m:?}");
    });
}
