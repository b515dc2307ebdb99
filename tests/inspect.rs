//! `corio::inspect`: the dump's content (spawn locations, wait objects,
//! backtraces, the wait graph), tracing parked tasks without disturbing
//! them, and metrics.

use std::sync::Arc;
use std::time::Duration;

use corio::sync::{Mutex, Semaphore};
use corio::task::{TaskState, WaitReason};

#[inline(never)]
fn park_on_channel_here(rx: corio::sync::mpsc::Receiver<u32>) -> u32 {
    rx.recv().unwrap()
}

#[test]
fn dump_shows_location_wait_object_and_backtrace() {
    corio::run(|| {
        let m = Arc::new(Mutex::new(0));
        let held = m.lock();
        let m2 = Arc::clone(&m);
        let line = line!() + 3; // the `.spawn(` below
        let waiter = corio::Builder::new()
            .name("locker")
            .spawn(move || *m2.lock() += 1)
            .unwrap();
        let (tx, rx) = corio::sync::mpsc::channel();
        let chan = corio::Builder::new()
            .name("receiver")
            .spawn(move || park_on_channel_here(rx))
            .unwrap();
        corio::yield_now();
        let table = corio::tasks();
        let info = table.iter().find(|t| t.id() == waiter.id()).unwrap();
        assert_eq!(info.location().file(), file!());
        assert_eq!(info.location().line(), line);
        assert_eq!(info.worker(), 0);
        let wait = info.wait().unwrap();
        assert!(wait.starts_with("lock on Mutex 0x"), "{wait}");
        assert!(
            wait.ends_with("held by task 1 'main'") || wait.contains("'main'"),
            "{wait}"
        );
        let main_id = corio::current().id();
        assert_eq!(info.blocked_on(), Some(main_id));
        let dump = corio::inspect::dump();
        assert!(
            dump.contains("locker") && dump.contains("receiver"),
            "{dump}"
        );
        assert!(dump.contains("park_on_channel_here"), "{dump}");
        assert!(
            dump.contains("Mutex<T>::lock") || dump.contains("mutex::Mutex"),
            "{dump}"
        );
        assert!(dump.contains("wait graph:"), "{dump}");
        assert!(dump.contains("inspect.rs"), "{dump}");
        // The dumping task's own stack too.
        assert!(
            dump.contains("dump_shows_location_wait_object_and_backtrace"),
            "{dump}"
        );
        drop(held);
        tx.send(7).unwrap();
        waiter.join().unwrap();
        assert_eq!(chan.join().unwrap(), 7);
    });
}

#[test]
fn join_wait_names_the_target_and_timer_time_left() {
    corio::run(|| {
        let sleeper = corio::spawn(|| corio::time::sleep(Duration::from_secs(30)));
        let id = sleeper.id();
        let joiner = corio::spawn(move || sleeper.join());
        corio::yield_now();
        corio::yield_now();
        let table = corio::tasks();
        let j = table.iter().find(|t| t.id() == joiner.id()).unwrap();
        assert_eq!(j.wait(), Some(format!("join task {id}").as_str()));
        assert_eq!(j.blocked_on(), Some(id));
        let s = table.iter().find(|t| t.id() == id).unwrap();
        let w = s.wait().unwrap();
        assert!(w.starts_with("timer, ") && w.ends_with(" s left"), "{w}");
        // Debug shows what the accessors show, nothing internal.
        let debug = format!("{j:?}");
        assert!(
            debug.contains("blocked_on: Some(") && debug.contains("location"),
            "{debug}"
        );
        assert!(
            !debug.contains("holder_elsewhere") && !debug.contains("addr"),
            "{debug}"
        );
        joiner.cancel();
        let _ = joiner.join();
    });
}

#[test]
fn io_wait_shows_the_addresses() {
    corio::run(|| {
        let listener = corio::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = corio::net::TcpStream::connect(addr).unwrap();
        let (server, peer) = listener.accept().unwrap();
        let reader = corio::spawn(move || {
            let mut buf = [0u8; 1];
            std::io::Read::read(&mut &server, &mut buf)
        });
        corio::yield_now();
        let info = corio::tasks()
            .into_iter()
            .find(|t| t.id() == reader.id())
            .unwrap();
        let w = info.wait().unwrap();
        assert!(w.starts_with("read fd "), "{w}");
        assert!(w.contains(&format!("{addr} ← {peer}")), "{w}");
        drop(client);
        reader.join().unwrap().unwrap();
    });
}

/// A dump of 100,000 parked tasks resumes each of them to trace it: none
/// may lose a wakeup or change state.
#[test]
fn dumping_many_parked_tasks_changes_nothing() {
    const N: usize = 100_000;
    corio::run(|| {
        let gate = Arc::new(corio::sync::Event::new());
        let (tx, rx) = corio::sync::mpsc::channel::<usize>();
        let notified: Vec<_> = (0..N)
            .map(|i| {
                let gate = Arc::clone(&gate);
                let tx = tx.clone();
                corio::Builder::new()
                    .stack_size(64 * 1024)
                    .spawn(move || {
                        gate.wait();
                        tx.send(i).unwrap();
                    })
                    .unwrap()
            })
            .collect();
        drop(tx);
        corio::yield_now();
        let before: Vec<TaskState> = corio::tasks().iter().map(|t| t.state()).collect();
        assert_eq!(before.len(), N + 1);
        assert!(
            before[1..]
                .iter()
                .all(|s| *s == TaskState::Waiting(WaitReason::Event))
        );
        // Wake them now, from another thread while we dump: the wakeups
        // queue up (the dump runs without letting anyone else run).
        let g = Arc::clone(&gate);
        let waker = std::thread::spawn(move || g.set());
        let traced = corio::inspect::tasks_with_backtraces();
        waker.join().unwrap();
        assert_eq!(traced.len(), N + 1);
        assert!(traced[1..].iter().all(|t| t.backtrace().is_some()));
        let after: Vec<TaskState> = traced.iter().map(|t| t.state()).collect();
        assert_eq!(before, after);
        let mut seen = vec![false; N];
        for i in rx.iter() {
            seen[i] = true;
        }
        assert!(seen.iter().all(|s| *s), "a wakeup was lost");
        for h in notified {
            h.join().unwrap();
        }
    });
}

#[test]
fn metrics_count_tasks_switches_timers_and_blocking_jobs() {
    let rt = corio::Runtime::new().unwrap();
    rt.block_on(|| {
        let ok = corio::spawn(corio::yield_now);
        let bad = corio::spawn(|| panic!("boom"));
        let slow = corio::spawn(|| corio::time::sleep(Duration::from_secs(60)));
        corio::time::sleep(Duration::from_millis(2));
        corio::unblock(|| ());
        ok.join().unwrap();
        assert!(bad.join().is_err());
        slow.cancel();
        assert!(slow.join().unwrap_err().is_cancelled());
        // The sleep above need not park the thread (its time may pass while
        // other tasks run); with nothing else to run, one of these does.
        for _ in 0..100 {
            if corio::runtime::metrics().parked > Duration::ZERO {
                break;
            }
            corio::time::sleep(Duration::from_millis(5));
        }
        let m = corio::runtime::metrics();
        assert_eq!(m.tasks_spawned, 4);
        assert_eq!(m.tasks_alive, 1);
        assert_eq!(m.workers.len(), 1);
        assert_eq!(m.workers[0].tasks_spawned, 4);
    });
    let m = rt.metrics();
    assert_eq!(m.tasks_spawned, 4);
    assert_eq!(m.tasks_alive, 0);
    assert_eq!(m.tasks_returned, 2);
    assert_eq!(m.tasks_panicked, 1);
    assert_eq!(m.tasks_cancelled, 1);
    assert!(m.switches >= 6, "{m:?}");
    assert!(m.timers_fired >= 1, "{m:?}");
    assert_eq!(m.blocking_jobs, 1);
    assert_eq!(m.tasks_stolen, 0);
    assert!(
        m.parked > Duration::ZERO && m.busy > Duration::ZERO,
        "{m:?}"
    );
}

#[test]
fn semaphore_waits_name_the_traced_holders() {
    corio::run(|| {
        let wait_of = |h: &corio::JoinHandle<()>| {
            let info = corio::tasks()
                .into_iter()
                .find(|t| t.id() == h.id())
                .unwrap();
            assert_eq!(info.state(), TaskState::Waiting(WaitReason::Semaphore));
            (info.wait().unwrap().to_string(), info.blocked_on())
        };
        let acquirer = |sem: &Arc<Semaphore>, name: &str| {
            let sem = Arc::clone(sem);
            corio::Builder::new()
                .name(name)
                .spawn(move || drop(sem.acquire()))
                .unwrap()
        };
        let main_id = corio::current().id();
        let sem = Arc::new(Semaphore::new(2));
        let mine = sem.acquire();
        let (go, wait_go) = corio::sync::mpsc::channel::<()>();
        let holder = corio::Builder::new()
            .name("holder")
            .spawn({
                let sem = Arc::clone(&sem);
                move || {
                    let _permit = sem.acquire();
                    wait_go.recv().unwrap();
                }
            })
            .unwrap();
        let waiter = acquirer(&sem, "waiter");
        corio::yield_now(); // the holder takes the last permit, the waiter waits
        let (wait, on) = wait_of(&waiter);
        assert!(wait.starts_with("acquire on Semaphore 0x"), "{wait}");
        let both = format!(
            "held by task {main_id} 'main', task {} 'holder'",
            holder.id()
        );
        assert!(wait.ends_with(&both), "{wait}");
        assert_eq!(on, Some(main_id));
        let dump = corio::inspect::dump();
        let edge = format!("task {} 'waiter' → task {main_id} 'main'", waiter.id());
        assert!(dump.contains(&edge), "{dump}");
        drop(mine); // to the waiter, which ends
        waiter.join().unwrap();

        // An owned permit names no holder: it may have moved.
        let owned = Arc::clone(&sem).acquire_owned().unwrap();
        let waiter = acquirer(&sem, "waiter 2");
        corio::yield_now();
        let (wait, on) = wait_of(&waiter);
        let one = format!("held by task {} 'holder'", holder.id());
        assert!(wait.ends_with(&one), "{wait}");
        assert_eq!(on, Some(holder.id()));
        go.send(()).unwrap(); // the holder's permit goes to the waiter
        holder.join().unwrap();
        waiter.join().unwrap();
        drop(owned);

        let empty = Arc::new(Semaphore::new(0));
        let waiter = acquirer(&empty, "waiter 3");
        corio::yield_now();
        let (wait, on) = wait_of(&waiter);
        assert!(wait.ends_with("(no traced holder)"), "{wait}");
        assert_eq!(on, None);
        empty.add_permits(1);
        waiter.join().unwrap();
    });
}

#[inline(never)]
fn yield_here(n: u32) -> u32 {
    let mut done = 0;
    for _ in 0..n {
        corio::yield_now();
        done += 1;
    }
    done
}

#[test]
fn a_task_ready_after_a_yield_is_traced_and_keeps_its_place() {
    corio::run(|| {
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let spawn = |name: &'static str| {
            let order = Arc::clone(&order);
            corio::Builder::new()
                .name(name)
                .spawn(move || {
                    let n = yield_here(3);
                    order.lock().unwrap().push(name);
                    n
                })
                .unwrap()
        };
        let (first, second) = (spawn("first"), spawn("second"));
        corio::yield_now(); // both run to their first yield: ready, in order
        for _ in 0..2 {
            let table = corio::inspect::tasks_with_backtraces();
            for h in [&first, &second] {
                let t = table.iter().find(|t| t.id() == h.id()).unwrap();
                assert_eq!(t.state(), TaskState::Ready);
                let bt = t.backtrace().expect("a yielded task's stack is traced");
                assert!(bt.contains("yield_here"), "{bt}");
            }
        }
        let dump = corio::inspect::dump();
        let head = format!("task {} 'first' (worker 0): ready", first.id());
        let part = &dump[dump.find(&head).expect(&dump)..];
        assert!(
            part.contains("backtrace:") && part.contains("yield_here"),
            "{dump}"
        );
        // Tracing changed nothing: each yields three times, in turn, and
        // neither runs twice per round (it is queued once).
        assert_eq!(first.join().unwrap(), 3);
        assert_eq!(second.join().unwrap(), 3);
        assert_eq!(*order.lock().unwrap(), ["first", "second"]);
    });
}

#[test]
fn a_task_woken_but_not_yet_run_is_traced_and_then_runs_on() {
    corio::run(|| {
        let (tx, rx) = corio::sync::mpsc::channel::<u32>();
        let woken = corio::spawn(move || park_on_channel_here(rx));
        let spinner = corio::Builder::new()
            .name("spinner")
            .spawn(|| {
                for _ in 0..3 {
                    corio::yield_now();
                }
            })
            .unwrap();
        corio::yield_now(); // both start: one parks, one yields
        tx.send(7).unwrap(); // ready, still inside its park
        let table = corio::inspect::tasks_with_backtraces();
        let w = table.iter().find(|t| t.id() == woken.id()).unwrap();
        assert_eq!(w.state(), TaskState::Ready);
        let bt = w.backtrace().expect("a woken task's stack is traced");
        assert!(bt.contains("park_on_channel_here"), "{bt}");
        let s = table.iter().find(|t| t.id() == spinner.id()).unwrap();
        assert_eq!(s.state(), TaskState::Ready);
        let bt = s.backtrace().expect("a yielded task's stack is traced");
        assert!(bt.contains("yield_now"), "{bt}");
        // Tracing changed nothing: the value arrives, the spinner ends.
        assert_eq!(woken.join().unwrap(), 7);
        spinner.join().unwrap();
    });
}
