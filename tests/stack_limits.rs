//! Stack memory: reuse, more suspended tasks than vm.max_map_count, memory
//! given back after a burst, the clear error of the mprotect fallback, and
//! stack-overflow reports.
//!
//! Tests that must run alone (they count mappings, memory, or exhaust them)
//! re-run this test binary as a child process with `--ignored --exact NAME`.
//! The children that hold tens of thousands of tasks run one at a time
//! ([`heavy_child`]), so this binary's peak memory is the biggest of them
//! (about 0.9 GB), not their sum: `cargo test` fits a 2 GB machine.

use std::process::Command;
use std::sync::{Arc, Mutex};
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

/// Runs `child(name, envs)`, one such child at a time: tests of one binary
/// run in parallel threads, and two children holding 100,000 tasks each
/// would need twice the memory.
fn heavy_child(name: &str, envs: &[(&str, &str)]) -> std::process::Output {
    static HEAVY: Mutex<()> = Mutex::new(());
    let _one_at_a_time = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    child(name, envs)
}

/// A field of `/proc/self/status` in KiB (`VmRSS`, `VmPTE`).
fn status_kib(field: &str) -> usize {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}

fn wave(n: usize) {
    let hs: Vec<_> = (0..n)
        .map(|_| corio::spawn(|| corio::time::sleep(Duration::from_millis(20))))
        .collect();
    for h in hs {
        h.join().unwrap();
    }
}

/// Waves of tasks that all wait at once, as big as the pool keeps idle
/// stacks resident: each wave after the first runs on the stacks of the
/// first (bigger bursts give the excess back, see
/// `stack_memory_comes_back_after_a_burst`).
const WAVE: usize = 1024;

#[test]
#[ignore = "run in a child process by stack_reuse_maps_no_new_memory"]
fn child_stack_reuse() {
    corio::run(|| {
        wave(WAVE);
        let after_first = mapping_count();
        wave(WAVE);
        wave(WAVE);
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
        "a second and third wave of {WAVE} tasks mapped new memory"
    );
}

/// Suspended tasks for the mapping-count check: more than the default
/// `vm.max_map_count` (65,530), and three times what one mapping per guard
/// page would allow. A suspended task touches one page of stack in a
/// release build and two in a debug build: either way about 0.9 GB.
const SUSPENDED: usize = if cfg!(debug_assertions) {
    100_000
} else {
    200_000
};

#[test]
#[ignore = "run in a child process by suspended_tasks_beyond_max_map_count"]
fn child_many_suspended() {
    let n = corio::run(|| {
        let hs: Vec<_> = (0..SUSPENDED)
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
        // Returning cancels and unwinds them all.
        drop(hs);
        waiting
    });
    assert_eq!(n, SUSPENDED);
}

#[test]
fn suspended_tasks_beyond_max_map_count() {
    if !corio::stack::uses_guard_install() {
        eprintln!(
            "kernel lacks MADV_GUARD_INSTALL: covered by mprotect_fallback_reports_map_limit"
        );
        return;
    }
    let out = heavy_child("child_many_suspended", &[]);
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
    assert_eq!(parts[1], SUSPENDED.to_string());
    let maps: usize = parts[3].parse().unwrap();
    // Not one mapping per stack, nor per chunk of stacks: a few dozen.
    assert!(
        maps < SUSPENDED / 100 && maps < max_map_count() / 10,
        "{maps} mappings for {SUSPENDED} stacks"
    );
}

/// Tasks in the burst of `stack_memory_comes_back_after_a_burst`: far more
/// than the pool keeps resident (1,024 stacks).
const BURST: usize = 20_000;

/// Resident KiB of this process, once the allocator has returned the
/// free memory it keeps: what remains is what is in use, or what corio
/// keeps.
fn resident_kib() -> usize {
    #[cfg(target_env = "gnu")]
    {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> i32;
        }
        // SAFETY: glibc's malloc_trim takes any pad and only returns free
        // heap pages to the system.
        unsafe { malloc_trim(0) };
    }
    status_kib("VmRSS")
}

/// Runs `BURST` tasks that all wait at once, each on its own stack, then
/// lets them finish; returns `resident_kib` while they all waited.
fn burst() -> usize {
    let go = Arc::new(corio::sync::Event::new());
    let hs: Vec<_> = (0..BURST)
        .map(|_| {
            let go = Arc::clone(&go);
            corio::spawn(move || go.wait())
        })
        .collect();
    corio::yield_now();
    let peak = resident_kib();
    go.set();
    for h in hs {
        h.join().unwrap();
    }
    peak
}

#[test]
#[ignore = "run in a child process by stack_memory_comes_back_after_a_burst"]
fn child_burst_memory() {
    // Start-up costs (the first runtime, lazy statics) are not the burst's.
    corio::run(|| corio::spawn(|| ()).join().unwrap());
    let (before, pte_before) = (resident_kib(), status_kib("VmPTE"));
    let (peak, idle) = corio::run(|| {
        let peak = burst();
        // A second burst reuses what the first left.
        burst();
        (peak, resident_kib())
    });
    let (after, pte_after) = (resident_kib(), status_kib("VmPTE"));
    println!(
        "\nKIB before {before} peak {peak} idle {idle} after {after} pte {pte_before} {pte_after}"
    );
}

/// After a burst of 20,000 tasks the pool keeps a bounded number of idle
/// stacks resident while the runtime lives, and gives back the rest —
/// pages, and with the mappings their page tables — when it is dropped.
#[test]
fn stack_memory_comes_back_after_a_burst() {
    let out = heavy_child("child_burst_memory", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("KIB "))
        .expect("KIB line");
    let v: Vec<usize> = line.split(' ').filter_map(|w| w.parse().ok()).collect();
    let [before, peak, idle, after, pte_before, pte_after] = v[..] else {
        panic!("{line}")
    };
    let grew = |from: usize, to: usize| to.saturating_sub(from);
    // The burst did make every task touch its own stack (a page at least).
    assert!(grew(before, peak) > BURST * 4 * 9 / 10, "{line}");
    // While the runtime lives: at most 1,024 idle stacks stay resident (two
    // pages each in a debug build) and the free task blocks (1 MiB), where
    // the burst left 20,000 stacks (170 MB).
    assert!(grew(before, idle) < 16 * 1024, "{line}");
    // Once the runtime is dropped, every idle stack is given back, and with
    // their mappings the page tables (10 MB for 20,000 stacks).
    assert!(grew(before, after) < 4 * 1024, "{line}");
    assert!(grew(pte_before, pte_after) < 1024, "{line}");
}

#[test]
#[ignore = "run in a child process by mprotect_fallback_reports_map_limit"]
fn child_until_map_limit() {
    corio::run(|| {
        // Reserved up front: once the limit is hit, growing it could not map.
        let mut handles = Vec::with_capacity(101_000);
        // A task takes its stack when it first runs: spawn a batch, let it
        // run, and look for the first task that could not start.
        let err = 'spawning: loop {
            let from = handles.len();
            for _ in 0..1000 {
                let h = corio::Builder::new()
                    .stack_size(16 * 1024)
                    .spawn(|| corio::time::sleep(Duration::from_secs(3600)))
                    .expect("spawning maps nothing");
                handles.push(h);
            }
            corio::yield_now();
            if let Some(i) = (from..handles.len()).find(|&i| handles[i].is_finished()) {
                let failed = handles.swap_remove(i);
                let err = failed.join().expect_err("a task that could not start");
                handles.truncate(i);
                break 'spawning err;
            }
            if handles.len() > 100_000 {
                panic!("no limit hit");
            }
        };
        assert!(err.is_cancelled(), "{err:?}");
        let msg = err.to_string();
        let limit = err.start_error().expect("the limit that stopped the task");
        let is_map_limit = matches!(limit, corio::Error::MapLimit { .. });
        // A scope's child that cannot start is the scope's failure.
        let scoped = std::panic::catch_unwind(|| {
            corio::scope(|s| {
                s.spawn(|| ());
            })
        });
        let scope_failed = scoped
            .err()
            .and_then(|p| p.downcast::<String>().ok())
            .is_some_and(|m| m.contains("could not start"));
        println!(
            "\nSPAWNED {} MAPLIMIT {is_map_limit} SCOPE {scope_failed} ERROR {msg}",
            handles.len()
        );
    });
}

#[test]
fn mprotect_fallback_reports_map_limit() {
    let out = heavy_child(
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
    assert!(line.contains("could not start"), "{line}");
    assert!(line.contains("SCOPE true"), "{line}");
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
#[ignore = "run in a child process by overflow_on_either_worker_during_a_burst_is_reported"]
fn child_overflow_in_a_burst_on_two_workers() {
    let rt = corio::runtime::Builder::new().workers(2).build().unwrap();
    rt.block_on(|| {
        // A burst: each worker maps full-size chunks, and idle workers
        // take tasks that never ran; their stacks are guarded all the same.
        let go = Arc::new(corio::sync::Event::new());
        let parked: Vec<_> = (0..2000)
            .map(|_| {
                let go = go.clone();
                corio::spawn(move || go.wait())
            })
            .collect();
        let deep: Vec<_> = (0..2)
            .map(|i| {
                corio::Builder::new()
                    .name(format!("deep-in-burst-{i}"))
                    .spawn(|| recurse(0))
                    .unwrap()
            })
            .collect();
        for h in deep {
            let _ = h.join();
        }
        go.set();
        drop(parked);
    });
}

#[test]
fn overflow_on_either_worker_during_a_burst_is_reported() {
    let out = heavy_child("child_overflow_in_a_burst_on_two_workers", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("'deep-in-burst-")
            && stderr.contains("overflowed its stack of 262144 bytes"),
        "{stderr}"
    );
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(libc_sigabrt()));
}

#[test]
#[ignore = "run in a child process by overflow_on_a_released_stack_is_reported"]
fn child_overflow_on_released_stack() {
    corio::run(|| {
        let small = || corio::Builder::new().stack_size(64 * 1024);
        // 1,124 stacks touched at once, then idle: the pool keeps the 1,024
        // freed last resident and releases the 100 coldest (MADV_DONTNEED).
        let go = Arc::new(corio::sync::Event::new());
        let wait = |go: &Arc<corio::sync::Event>| {
            let go = Arc::clone(go);
            move || go.wait()
        };
        let hs: Vec<_> = (0..1124)
            .map(|_| small().spawn(wait(&go)).unwrap())
            .collect();
        corio::yield_now();
        go.set();
        hs.into_iter().for_each(|h| h.join().unwrap());
        // These take the 1,024 resident ones...
        let go = Arc::new(corio::sync::Event::new());
        let hs: Vec<_> = (0..1024)
            .map(|_| small().spawn(wait(&go)).unwrap())
            .collect();
        corio::yield_now();
        // ...so this one runs on a released stack: its guard page must
        // still stop it.
        let h = small().name("on-released").spawn(|| recurse(0)).unwrap();
        let _ = h.join();
        go.set();
        drop(hs);
    });
}

/// Released stacks keep their guard pages, with `MADV_GUARD_INSTALL` guards
/// and with the `mprotect` fallback.
#[test]
fn overflow_on_a_released_stack_is_reported() {
    for envs in [&[][..], &[("CORIO_STACK_GUARD", "mprotect")][..]] {
        let out = child("child_overflow_on_released_stack", envs);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("'on-released' overflowed its stack of 65536 bytes"),
            "{envs:?}: {stderr}"
        );
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(out.status.signal(), Some(libc_sigabrt()), "{envs:?}");
    }
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
