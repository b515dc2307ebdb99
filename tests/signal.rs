//! `corio::signal`: waiting for signals suspends the task.
//!
//! The test harness does not use SIGUSR1/SIGUSR2, so they are raised in this
//! process (each test its own signal: every listener sees every signal).
//! `ctrl_c` is tested in a child process, so a SIGINT never reaches the
//! harness.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use corio::process::{Command, Stdio};
use corio::signal::{SIGINT, SIGUSR1, SIGUSR2, Signals};
use corio::task::{TaskState, WaitReason};

fn wait_for_state(id: corio::TaskId, state: TaskState) {
    for _ in 0..10_000 {
        if corio::tasks()
            .iter()
            .any(|t| t.id() == id && t.state() == state)
        {
            return;
        }
        corio::time::sleep(Duration::from_millis(1));
    }
    panic!("task {id} never reached {state}");
}

#[test]
fn a_signal_wakes_the_waiting_task() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    corio::run(|| {
        let mut signals = Signals::new([SIGUSR1]).unwrap();
        let received = Arc::new(AtomicUsize::new(0));
        let received2 = Arc::clone(&received);
        let waiter = corio::spawn(move || {
            for _ in 0..2 {
                assert_eq!(signals.recv().unwrap(), SIGUSR1);
                received2.fetch_add(1, Ordering::SeqCst);
            }
        });
        for n in 0..2 {
            // Raise only once the waiter is back to waiting (two signals
            // raised close together may be delivered as one).
            while received.load(Ordering::SeqCst) < n {
                corio::time::sleep(Duration::from_millis(1));
            }
            wait_for_state(waiter.id(), TaskState::Waiting(WaitReason::Signal));
            // From another thread, as a signal from outside would arrive.
            std::thread::spawn(|| signal_hook::low_level::raise(SIGUSR1).unwrap())
                .join()
                .unwrap();
        }
        waiter.join().unwrap();
        assert_eq!(received.load(Ordering::SeqCst), 2);
    });
}

#[test]
fn several_listeners_try_recv_add_signal_and_timeouts() {
    corio::run(|| {
        let mut a = Signals::new([]).unwrap();
        a.add_signal(SIGUSR2).unwrap();
        let mut b = Signals::new([SIGUSR2]).unwrap();
        assert_eq!(a.try_recv(), None);
        // Nothing arrives: a timeout ends the wait.
        let r = corio::time::timeout(Duration::from_millis(10), || a.recv());
        assert!(r.is_err());

        signal_hook::low_level::raise(SIGUSR2).unwrap();
        // Both listeners get it; `b` through its iterator.
        assert_eq!(a.recv().unwrap(), SIGUSR2);
        assert_eq!(b.next(), Some(SIGUSR2));
        assert_eq!(a.try_recv(), None);
    });
}

#[test]
fn signals_that_cannot_be_handled_are_refused() {
    for sig in [libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV, 0, -1, 200] {
        let err = Signals::new([sig]).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{sig}");
    }
    let s = Signals::new([]).unwrap();
    assert!(s.add_signal(libc::SIGKILL).is_err());
}

#[test]
fn a_cancelled_listener_returns_the_cancellation() {
    corio::run(|| {
        let h = corio::spawn(|| {
            let mut s = Signals::new([libc::SIGWINCH]).unwrap();
            let err = s.recv().unwrap_err();
            assert!(corio::Error::is_cancellation(&err));
        });
        wait_for_state(h.id(), TaskState::Waiting(WaitReason::Signal));
        h.cancel();
        assert!(h.join().unwrap_err().is_cancelled());
    });
}

/// Run by `ctrl_c_wakes_the_task_in_a_child_process` in a child process.
#[test]
#[ignore = "helper: runs in a child process"]
fn ctrl_c_child() {
    corio::run(|| {
        let waiter = corio::spawn(|| corio::signal::ctrl_c().unwrap());
        wait_for_state(waiter.id(), TaskState::Waiting(WaitReason::Signal));
        println!("ready");
        waiter.join().unwrap();
        println!("got ctrl-c");
    });
}

#[test]
fn ctrl_c_wakes_the_task_in_a_child_process() {
    corio::run(|| {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "ctrl_c_child", "--ignored", "--nocapture"])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while line.trim() != "ready" {
            line.clear();
            assert_ne!(out.read_line(&mut line).unwrap(), 0, "child ended early");
        }
        // SAFETY: signalling our own child.
        assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, SIGINT) }, 0);
        let mut rest = String::new();
        out.read_to_string(&mut rest).unwrap();
        let status = child.wait().unwrap();
        assert!(
            status.success(),
            "{status:?} (signal {:?})",
            status.signal()
        );
        assert!(rest.contains("got ctrl-c"), "{rest}");
    });
}
