//! Stack memory: reuse, 200,000 suspended tasks within vm.max_map_count, the
//! clear error of the mprotect fallback, and stack-overflow reports.
//!
//! Tests that must run alone (they count mappings or exhaust them) re-run
//! this test binary as a child process with `--ignored --exact NAME`.

use std::process::Command;
use std::time::Duration;

fn mapping_count() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .count()
}

fn max_map_count() -> usize {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Runs the ignored test `name` of this binary in a child process.
fn child(name: &str, envs: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--ignored",
        "--exact",
        name,
        "--nocapture",
        "--test-threads=1",
    ]);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn wave(n: usize) {
    let hs: Vec<_> = (0..n)
        .map(|_| corio::spawn(|| corio::time::sleep(Duration::from_millis(20))))
        .collect();
    for h in hs {
        h.join().unwrap();
    }
}

#[test]
#[ignore = "run in a child process by stack_reuse_maps_no_new_memory"]
fn child_stack_reuse() {
    corio::run(|| {
        wave(5000);
        let after_first = mapping_count();
        wave(5000);
        wave(5000);
        let after_more = mapping_count();
        println!("\nMAPS {after_first} {after_more}");
    });
}

#[test]
fn stack_reuse_maps_no_new_memory() {
    let out = child("child_stack_reuse", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("MAPS "))
        .expect("MAPS line");
    let n: Vec<usize> = line[5..].split(' ').map(|x| x.parse().unwrap()).collect();
    assert_eq!(
        n[0], n[1],
        "a second and third wave of 5000 tasks mapped new memory"
    );
}

#[test]
#[ignore = "run in a child process by suspended_tasks_200k_within_max_map_count"]
fn child_200k_suspended() {
    let n = corio::run(|| {
        let hs: Vec<_> = (0..200_000)
            .map(|_| {
                corio::Builder::new()
                    .spawn(|| corio::time::sleep(Duration::from_secs(3600)))
                    .unwrap()
            })
            .collect();
        // Let every task start and suspend on its timer.
        corio::yield_now();
        let waiting = corio::tasks()
            .iter()
            .filter(|t| matches!(t.state(), corio::task::TaskState::Waiting(_)))
            .count();
        println!("\nWAITING {waiting} MAPS {}", mapping_count());
        // Returning cancels and unwinds all 200,000.
        drop(hs);
        waiting
    });
    assert_eq!(n, 200_000);
}

#[test]
fn suspended_tasks_200k_within_max_map_count() {
    if !corio::stack::uses_guard_install() {
        eprintln!(
            "kernel lacks MADV_GUARD_INSTALL: covered by mprotect_fallback_reports_map_limit"
        );
        return;
    }
    let out = child("child_200k_suspended", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("WAITING "))
        .expect("WAITING line");
    let parts: Vec<&str> = line.split(' ').collect();
    assert_eq!(parts[1], "200000");
    let maps: usize = parts[3].parse().unwrap();
    assert!(
        maps < max_map_count() / 10,
        "{maps} mappings for 200k stacks"
    );
}

#[test]
#[ignore = "run in a child process by mprotect_fallback_reports_map_limit"]
fn child_until_map_limit() {
    corio::run(|| {
        let mut handles = Vec::new();
        let err = loop {
            match corio::Builder::new()
                .stack_size(16 * 1024)
                .spawn(|| corio::time::sleep(Duration::from_secs(3600)))
            {
                Ok(h) => handles.push(h),
                Err(e) => break e,
            }
            if handles.len() > 100_000 {
                panic!("no limit hit");
            }
        };
        let msg = err.to_string();
        let is_map_limit = matches!(err, corio::Error::MapLimit { .. });
        // Drop the tasks (and so their mappings stay pooled, but nothing new is
        // needed to print).
        println!(
            "\nSPAWNED {} MAPLIMIT {is_map_limit} ERROR {msg}",
            handles.len()
        );
    });
}

#[test]
fn mprotect_fallback_reports_map_limit() {
    let out = child(
        "child_until_map_limit",
        &[("CORIO_STACK_GUARD", "mprotect")],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("SPAWNED "))
        .unwrap_or_else(|| panic!("no report\n{stdout}\n{stderr}"));
    assert!(line.contains("MAPLIMIT true"), "{line}");
    assert!(line.contains("vm.max_map_count"), "{line}");
    assert!(line.contains("sysctl -w vm.max_map_count="), "{line}");
    let spawned: usize = line.split(' ').nth(1).unwrap().parse().unwrap();
    // Two mappings per stack: about half of vm.max_map_count.
    let limit = max_map_count();
    assert!(
        spawned > limit / 3 && spawned < limit / 2 + 100,
        "{spawned}"
    );
}

#[inline(never)]
/// Tasks take their stack when they first run, not when spawned: a batch
/// of short tasks spawned before any runs reuses the same warm stack or
/// two, instead of holding 1,000 stacks at once.
#[test]
fn a_batch_of_short_tasks_runs_on_few_stacks() {
    let stacks = corio::run(|| {
        let handles: Vec<_> = (0..1000)
            .map(|_| {
                corio::spawn(|| {
                    let local = 0u8;
                    // Identifies the stack: the default stack size is far
                    // bigger than how deep this frame sits.
                    std::ptr::addr_of!(local) as usize / corio::stack::DEFAULT_STACK_SIZE
                })
            })
            .collect();
        let mut stacks: Vec<usize> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        stacks.sort_unstable();
        stacks.dedup();
        stacks.len()
    });
    assert!(
        stacks <= 2,
        "1,000 short tasks ran on {stacks} different stacks"
    );
}

/// A task that never runs (the runtime ends first) has its closure dropped,
/// with its destructors, when the runtime ends — not later, when the last
/// handle to it goes (the closure may borrow what `block_on`'s caller is
/// about to free).
#[test]
fn a_task_that_never_ran_drops_its_closure_when_the_runtime_ends() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let drops = Arc::new(AtomicUsize::new(0));
    let d = Arc::clone(&drops);
    let handles = corio::run(move || {
        (0..10)
            .map(|_| {
                let c = Counted(Arc::clone(&d));
                // Never runs: main returns before yielding.
                corio::spawn(move || drop(c))
            })
            .collect::<Vec<_>>()
    });
    // The handles still hold the task blocks.
    assert_eq!(drops.load(Ordering::SeqCst), 10);
    for h in handles {
        assert!(h.join().unwrap_err().is_cancelled());
    }
}

fn recurse(depth: u64) -> u64 {
    let buf = std::hint::black_box([depth as u8; 512]);
    if depth == u64::MAX {
        return 0;
    }
    recurse(depth + 1) + buf[7] as u64
}

#[test]
#[ignore = "run in a child process by stack_overflow_is_reported_with_the_task_name"]
fn child_overflow_in_task() {
    corio::run(|| {
        let h = corio::Builder::new()
            .name("deep-recursion")
            .stack_size(64 * 1024)
            .spawn(|| recurse(0))
            .unwrap();
        let _ = h.join();
    });
}

#[test]
fn stack_overflow_is_reported_with_the_task_name() {
    let out = child("child_overflow_in_task", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("'deep-recursion' overflowed its stack of 65536 bytes"),
        "{stderr}"
    );
    assert!(stderr.contains("corio::Builder::stack_size"), "{stderr}");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(libc_sigabrt()));
}

fn libc_sigabrt() -> i32 {
    6
}

#[test]
#[ignore = "run in a child process by thread_overflow_still_reaches_std_handler"]
fn child_overflow_in_thread() {
    // A runtime on this thread installs corio's handler first.
    corio::run(|| ());
    std::thread::Builder::new()
        .name("plain-thread".into())
        .stack_size(256 * 1024)
        .spawn(|| recurse(0))
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn thread_overflow_still_reaches_std_handler() {
    let out = child("child_overflow_in_thread", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("thread 'plain-thread'") && stderr.contains("overflowed its stack"),
        "{stderr}"
    );
    assert!(!stderr.contains("corio:"), "{stderr}");
}

#[test]
#[ignore = "run in a child process by a_panic_printing_a_backtrace_fits_a_64k_stack"]
fn child_backtrace_in_small_task() {
    corio::run(|| {
        let err = corio::Builder::new()
            .stack_size(64 * 1024)
            .spawn(|| panic!("printing a full backtrace"))
            .unwrap()
            .join()
            .unwrap_err();
        println!("\nJOINED {}", err.panic_message().unwrap());
    });
}

/// The default stack (256 KiB) must hold a panic that prints a backtrace
/// (measured: 20–24 KiB); a quarter of it must already be enough.
#[test]
fn a_panic_printing_a_backtrace_fits_a_64k_stack() {
    let out = child(
        "child_backtrace_in_small_task",
        &[("RUST_BACKTRACE", "full")],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("JOINED printing a full backtrace"),
        "{stdout}"
    );
    assert!(stderr.contains("stack backtrace:"), "{stderr}");
    const { assert!(corio::stack::DEFAULT_STACK_SIZE >= 4 * 64 * 1024) };
}
