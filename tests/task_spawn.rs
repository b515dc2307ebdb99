//! Spawning, joining, yielding, panics and names.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use corio::task::{Outcome, TaskState, WaitReason};

#[test]
fn spawn_and_join_100k_tasks_on_one_thread() {
    let sum = corio::run(|| {
        let handles: Vec<_> = (0..100_000u64).map(|i| corio::spawn(move || i)).collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
    });
    assert_eq!(sum, (0..100_000u64).sum());
}

#[test]
fn tasks_interleave_at_yield_points() {
    let log = corio::run(|| {
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let hs: Vec<_> = (0..3)
            .map(|id| {
                let log = Arc::clone(&log);
                corio::spawn(move || {
                    for step in 0..3 {
                        log.lock().unwrap().push((id, step));
                        corio::yield_now();
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        Arc::try_unwrap(log).unwrap().into_inner().unwrap()
    });
    // Round-robin: every task takes step 0 before any takes step 1.
    let steps: Vec<_> = log.iter().map(|&(_, s)| s).collect();
    assert_eq!(steps, [0, 0, 0, 1, 1, 1, 2, 2, 2]);
}

#[test]
fn panic_is_isolated_and_reported_with_its_message() {
    corio::run(|| {
        let bystander = corio::spawn(|| {
            corio::yield_now();
            "still fine"
        });
        let err = corio::Builder::new()
            .name("doomed")
            .spawn(|| -> u32 { panic!("boom {}", std::hint::black_box(42)) })
            .unwrap()
            .join()
            .unwrap_err();
        assert!(err.is_panic());
        assert!(!err.is_cancelled());
        assert_eq!(err.panic_message(), Some("boom 42"));
        assert!(err.to_string().contains("doomed"), "{err}");
        let payload = err.into_panic();
        assert_eq!(payload.downcast_ref::<String>().unwrap(), "boom 42");
        assert_eq!(bystander.join().unwrap(), "still fine");
        // The runtime runs on after the panic.
        assert_eq!(corio::spawn(|| 1).join().unwrap(), 1);
    });
}

#[test]
fn panic_in_main_task_resumes_in_caller() {
    let r = std::panic::catch_unwind(|| corio::run(|| panic!("main failed")));
    let payload = r.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"main failed"));
}

#[test]
fn current_gives_id_and_name() {
    corio::run(|| {
        let main = corio::current();
        assert_eq!(main.name(), Some("main"));
        let h = corio::Builder::new()
            .name("child")
            .spawn(|| {
                let me = corio::current();
                (me.id(), me.name().map(String::from))
            })
            .unwrap();
        let id = h.id();
        assert_eq!(h.name(), Some("child"));
        let (got_id, got_name) = h.join().unwrap();
        assert_eq!(got_id, id);
        assert_ne!(got_id, main.id());
        assert_eq!(got_name.as_deref(), Some("child"));
    });
    assert!(corio::try_current().is_none());
}

#[test]
#[should_panic(expected = "corio::spawn called outside of a corio runtime")]
fn spawn_outside_runtime_panics_clearly() {
    drop(corio::spawn(|| ()));
}

#[test]
fn builder_spawn_outside_runtime_is_an_error() {
    assert!(matches!(
        corio::Builder::new().spawn(|| ()),
        Err(corio::Error::NoRuntime)
    ));
}

#[test]
fn invalid_stack_size_is_a_typed_error() {
    corio::run(|| {
        let err = corio::Builder::new()
            .stack_size(100)
            .spawn(|| ())
            .unwrap_err();
        assert!(matches!(
            err,
            corio::Error::InvalidStackSize { requested: 100, .. }
        ));
        let io: std::io::Error = err.into();
        assert_eq!(io.kind(), std::io::ErrorKind::InvalidInput);
    });
}

#[test]
fn nested_run_panics_with_a_clear_message_instead_of_hanging() {
    corio::run(|| {
        let err = corio::spawn(|| corio::run(|| 1)).join().unwrap_err();
        let msg = err.panic_message().unwrap();
        assert!(msg.contains("already running"), "{msg}");
    });
}

#[test]
fn dropped_handle_detaches_and_task_keeps_running() {
    let ran = Arc::new(AtomicUsize::new(0));
    let r = Arc::clone(&ran);
    corio::run(move || {
        let r2 = Arc::clone(&r);
        drop(corio::spawn(move || {
            corio::time::sleep(Duration::from_millis(5));
            r2.fetch_add(1, Ordering::SeqCst);
        }));
        corio::time::sleep(Duration::from_millis(50));
    });
    assert_eq!(ran.load(Ordering::SeqCst), 1);
}

#[test]
fn join_from_a_plain_thread_blocks_until_done() {
    let (tx, rx) = std::sync::mpsc::channel();
    let joiner = std::thread::spawn(move || {
        let h: corio::JoinHandle<u32> = rx.recv().unwrap();
        h.join().unwrap()
    });
    corio::run(move || {
        let h = corio::spawn(|| {
            corio::time::sleep(Duration::from_millis(30));
            9
        });
        tx.send(h).unwrap();
        corio::time::sleep(Duration::from_millis(100));
    });
    assert_eq!(joiner.join().unwrap(), 9);
}

#[test]
fn is_finished_and_task_table() {
    corio::run(|| {
        let sleeper = corio::Builder::new()
            .name("sleeper")
            .spawn(|| corio::time::sleep(Duration::from_millis(30)))
            .unwrap();
        let quick = corio::spawn(|| ());
        assert!(!sleeper.is_finished());
        let table = corio::tasks();
        assert_eq!(table.len(), 3);
        let me = table.iter().find(|t| t.name() == Some("main")).unwrap();
        assert_eq!(me.state(), TaskState::Running);
        let s = table.iter().find(|t| t.id() == sleeper.id()).unwrap();
        assert_eq!(s.state(), TaskState::Ready);
        corio::yield_now();
        let table = corio::tasks();
        let s = table.iter().find(|t| t.id() == sleeper.id()).unwrap();
        assert_eq!(s.state(), TaskState::Waiting(WaitReason::Timer));
        assert!(
            !table.iter().any(|t| t.id() == quick.id()),
            "finished tasks leave the table"
        );
        assert!(quick.is_finished());
        let dump = corio::inspect::dump();
        assert!(
            dump.contains("sleeper") && dump.contains("waiting: timer"),
            "{dump}"
        );
        // A task waiting on a join says which task.
        let id = sleeper.id();
        let joiner = corio::spawn(move || sleeper.join().unwrap());
        corio::yield_now();
        let j = corio::tasks()
            .into_iter()
            .find(|t| t.id() == joiner.id())
            .unwrap();
        assert_eq!(j.state(), TaskState::Waiting(WaitReason::Join(id)));
        joiner.join().unwrap();
    });
    let _ = Outcome::Returned;
}
