//! A panic inside a task is reported with the task's id and name, not as
//! "thread 'main' panicked". Run in a child process (this same test binary)
//! so that the test can read what the panic hook printed.

use std::process::Command;

const ENV: &str = "CORIO_PANIC_MESSAGE_CHILD";

#[test]
fn child_panics_in_tasks() {
    let Ok(which) = std::env::var(ENV) else {
        return; // only runs as the child
    };
    corio::run(|| {
        match which.as_str() {
            "named" => {
                let h = corio::Builder::new()
                    .name("worker")
                    .spawn(|| panic!("disk on fire"))
                    .unwrap();
                assert!(h.join().unwrap_err().is_panic());
                let h = corio::spawn(|| -> () { panic!("{} unnamed", 42) });
                assert!(h.join().is_err());
            }
            _ => unreachable!(),
        }
        println!("runtime ran on");
    });
    // Outside any task: the previous (default) hook reports the thread.
    let _ = std::panic::catch_unwind(|| panic!("plain thread panic"));
}

#[test]
fn a_task_panic_names_the_task() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_panics_in_tasks",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV, "named")
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("runtime ran on"), "{stdout}");
    let named = stderr
        .lines()
        .position(|l| {
            l.starts_with("task ")
                && l.contains(" 'worker' panicked at tests/task_panic_message.rs:")
        })
        .unwrap_or_else(|| panic!("no named report in:\n{stderr}"));
    assert_eq!(stderr.lines().nth(named + 1), Some("disk on fire"));
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("task ") && !l.contains('\'') && l.contains("panicked at")),
        "an unnamed task is reported by id:\n{stderr}"
    );
    assert!(stderr.contains("42 unnamed"));
    assert!(
        stderr.contains("panicked at") && stderr.contains("plain thread panic"),
        "the default hook still reports panics outside tasks:\n{stderr}"
    );
    let thread_reports = stderr.lines().filter(|l| l.starts_with("thread ")).count();
    assert_eq!(
        thread_reports, 1,
        "only the plain-thread panic is a thread report:\n{stderr}"
    );
}
