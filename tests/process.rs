//! `corio::process`: child processes whose waits and pipes suspend the task.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use corio::process::{Command, Stdio};
use corio::task::{TaskState, WaitReason};

fn sh(script: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(script);
    c
}

/// Whether a process with this pid still exists (zombies included).
fn exists(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks for the process.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

/// Waits until `pid` is gone (killed and reaped), for at most 10 s.
fn wait_gone(pid: u32) {
    for _ in 0..10_000 {
        if !exists(pid) {
            return;
        }
        corio::time::sleep(Duration::from_millis(1));
    }
    panic!("process {pid} still exists");
}

#[test]
fn output_captures_stdout_stderr_and_the_exit_code() {
    corio::run(|| {
        let out = sh("echo out; echo err >&2; exit 7").output().unwrap();
        assert_eq!(out.status.code(), Some(7));
        assert!(!out.status.success());
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");

        let out = Command::new("echo")
            .args(["a", "b"])
            .env("IGNORED", "1")
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, b"a b\n");

        let out = sh("echo $CORIO_TEST_VAR; pwd")
            .env("CORIO_TEST_VAR", "set")
            .current_dir("/")
            .output()
            .unwrap();
        assert_eq!(out.stdout, b"set\n/\n");

        // stdin is null for output(): cat ends at once.
        assert_eq!(Command::new("cat").output().unwrap().stdout, b"");
    });
}

#[test]
fn status_and_exit_codes() {
    corio::run(|| {
        assert!(Command::new("true").status().unwrap().success());
        assert_eq!(Command::new("false").status().unwrap().code(), Some(1));
        assert_eq!(sh("exit 42").status().unwrap().code(), Some(42));
        let err = Command::new("/nonexistent/corio-no-such-program")
            .status()
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    });
}

#[test]
fn large_output_on_both_pipes_does_not_deadlock() {
    corio::run(|| {
        // Far more than a pipe buffer (64 KiB) on each stream.
        let out = sh("head -c 1000000 /dev/zero; head -c 700000 /dev/zero >&2")
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout.len(), 1_000_000);
        assert_eq!(out.stderr.len(), 700_000);
    });
    // And on a plain thread.
    let out = sh("head -c 300000 /dev/zero >&2; head -c 200000 /dev/zero")
        .output()
        .unwrap();
    assert_eq!((out.stdout.len(), out.stderr.len()), (200_000, 300_000));
}

#[test]
fn piped_stdin_and_stdout_are_corio_streams() {
    corio::run(|| {
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        // A writer task and a reader task on the same child, with more data
        // than the pipes hold, so both have to suspend.
        let line = "x".repeat(99) + "\n";
        let writer = corio::spawn(move || {
            for _ in 0..5000 {
                stdin.write_all(line.as_bytes()).unwrap();
            }
            // Dropping stdin closes it: cat exits.
        });
        let reader = corio::spawn(move || {
            let mut lines = 0;
            for l in BufReader::new(stdout).lines() {
                assert_eq!(l.unwrap().len(), 99);
                lines += 1;
            }
            lines
        });
        writer.join().unwrap();
        assert_eq!(reader.join().unwrap(), 5000);
        assert!(child.wait().unwrap().success());
    });
}

#[test]
fn wait_suspends_the_task_not_the_thread() {
    corio::run(|| {
        let ticks = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (t2, s2) = (Arc::clone(&ticks), Arc::clone(&stop));
        let ticker = corio::spawn(move || {
            while !s2.load(Ordering::SeqCst) {
                t2.fetch_add(1, Ordering::SeqCst);
                corio::time::sleep(Duration::from_millis(1));
            }
        });
        let mut child = Command::new("sleep").arg("0.2").spawn().unwrap();
        let waiter = corio::spawn(move || child.wait().unwrap());
        corio::yield_now();
        let state = corio::tasks()
            .into_iter()
            .find(|t| t.id() == waiter.id())
            .unwrap()
            .state();
        assert_eq!(state, TaskState::Waiting(WaitReason::Process));
        assert!(waiter.join().unwrap().success());
        assert!(ticks.load(Ordering::SeqCst) > 0);
        stop.store(true, Ordering::SeqCst);
        ticker.join().unwrap();
    });
}

#[test]
fn kill_then_wait_reports_the_signal() {
    corio::run(|| {
        let mut child = Command::new("sleep").arg("60").spawn().unwrap();
        assert!(child.try_wait().unwrap().is_none());
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        assert_eq!(status.code(), None);
        // Killing a reaped child is fine, as in std.
        child.kill().unwrap();
        assert_eq!(child.try_wait().unwrap(), Some(status));
    });
}

#[test]
fn timeout_around_a_slow_child() {
    corio::run(|| {
        let mut child = Command::new("sleep").arg("60").spawn().unwrap();
        let r = corio::time::timeout(Duration::from_millis(50), || child.wait());
        assert!(r.is_err());
        // The child is still running; kill it and reap it.
        assert!(child.try_wait().unwrap().is_none());
        child.kill().unwrap();
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));

        // `output` under a timeout, with kill_on_drop: the child dies too.
        let r = corio::time::timeout(Duration::from_millis(50), || {
            sh("echo started; exec sleep 60")
                .kill_on_drop(true)
                .output()
        });
        assert!(r.is_err());
    });
}

#[test]
fn kill_on_drop_kills_and_reaps() {
    corio::run(|| {
        let child = Command::new("sleep")
            .arg("60")
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let pid = child.id();
        assert!(exists(pid));
        drop(child);
        wait_gone(pid);

        // Without it, the child runs on (as in std).
        let child = Command::new("sleep").arg("60").spawn().unwrap();
        let pid = child.id();
        drop(child);
        corio::time::sleep(Duration::from_millis(20));
        assert!(exists(pid));
        // SAFETY: killing our own child by pid, then reaping it.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGKILL);
            libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), 0);
        }
    });
}

#[test]
fn a_cancelled_task_drops_its_child_which_is_killed() {
    corio::run(|| {
        let (tx, rx) = mpsc::channel();
        let h = corio::spawn(move || {
            let mut child = Command::new("sleep")
                .arg("60")
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            tx.send(child.id()).unwrap();
            child.wait()
        });
        corio::yield_now();
        let pid = rx.try_recv().unwrap();
        h.cancel();
        assert!(h.join().unwrap_err().is_cancelled());
        wait_gone(pid);
    });
}

#[test]
fn a_pipeline_through_stdio_from_a_child_pipe() {
    corio::run(|| {
        let mut first = sh("echo hello pipeline")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let middle = Stdio::try_from(first.stdout.take().unwrap()).unwrap();
        let out = Command::new("tr")
            .args(["a-z", "A-Z"])
            .stdin(middle)
            .output()
            .unwrap();
        assert_eq!(out.stdout, b"HELLO PIPELINE\n");
        assert!(first.wait().unwrap().success());
    });
}

#[test]
fn outside_a_runtime_everything_blocks_the_thread() {
    let mut child = sh("read x; echo got $x; echo e >&2")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"42\n").unwrap();
    let mut s = String::new();
    child.stdout.take().unwrap().read_to_string(&mut s).unwrap();
    assert_eq!(s, "got 42\n");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(out.stderr, b"e\n");
}

#[test]
fn many_children_at_once() {
    corio::run(|| {
        let handles: Vec<_> = (0..20)
            .map(|i| corio::spawn(move || sh(&format!("sleep 0.05; exit {i}")).status().unwrap()))
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(h.join().unwrap().code(), Some(i as i32));
        }
    });
}
