//! Memory per idle task: N tasks that have started and are all blocked on
//! one semaphore, corio beside tokio's current-thread runtime and may with
//! one worker, each in a fresh process of this binary (so one runtime's
//! freed memory cannot hide another's), in the same run.
//!
//! ```text
//! cargo bench --bench memory                    # 10,000 and 100,000 tasks
//! cargo bench --bench memory -- 10000 1000000   # other counts
//! ```
//!
//! Each child reads its resident set (`VmRSS` in `/proc/self/status`) with
//! the runtime started and the N join handles' vector allocated, spawns the
//! N tasks, waits until every one has run up to its wait, and reads it
//! again; the difference divided by N is the memory one idle task costs:
//! for corio its task block and the pages of its stack it touched, for tokio
//! its task allocation (future and header), for may its coroutine and
//! stack pages. Then it releases the tasks and joins them all. Not a
//! timing: the figures are stable from run to run. Results go in
//! docs/performance.md.
//!
//! ```text
//! cargo bench --bench memory -- burst 200000 1000000
//! ```
//!
//! measures what a burst leaves behind, corio only: the resident set and page
//! tables (`VmPTE`) before a runtime starts, with N tasks blocked, once they
//! have all finished (the runtime still alive), and after the runtime is
//! dropped.

use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The resident set of this process, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kib * 1024
}

/// (resident bytes before spawning, after every task blocked).
type Measure = (u64, u64);

fn corio_idle(n: usize) -> Measure {
    corio::run(move || {
        let gate = Arc::new(corio::sync::Semaphore::new(0));
        let started = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::with_capacity(n);
        let before = rss();
        for _ in 0..n {
            let (gate, started) = (Arc::clone(&gate), Arc::clone(&started));
            handles.push(corio::spawn(move || {
                started.fetch_add(1, Ordering::Relaxed);
                gate.acquire().forget();
            }));
        }
        while started.load(Ordering::Relaxed) < n {
            corio::yield_now();
        }
        let after = rss();
        gate.add_permits(n);
        handles.into_iter().for_each(|h| h.join().unwrap());
        (before, after)
    })
}

fn tokio_idle(n: usize) -> Measure {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async move {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let started = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::with_capacity(n);
        let before = rss();
        for _ in 0..n {
            let (gate, started) = (Arc::clone(&gate), Arc::clone(&started));
            handles.push(tokio::spawn(async move {
                started.fetch_add(1, Ordering::Relaxed);
                gate.acquire().await.unwrap().forget();
            }));
        }
        while started.load(Ordering::Relaxed) < n {
            tokio::task::yield_now().await;
        }
        let after = rss();
        gate.add_permits(n);
        for h in handles {
            h.await.unwrap();
        }
        (before, after)
    })
}

fn may_idle(n: usize) -> Measure {
    may::config().set_workers(1);
    let gate = Arc::new(may::sync::Semphore::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::with_capacity(n);
    let before = rss();
    for _ in 0..n {
        let (gate, started) = (Arc::clone(&gate), Arc::clone(&started));
        // SAFETY: the closure touches no thread-locals (may's spawn is unsafe
        // because its coroutines may move between worker threads).
        handles.push(unsafe {
            may::coroutine::spawn(move || {
                started.fetch_add(1, Ordering::Relaxed);
                gate.wait();
            })
        });
    }
    while started.load(Ordering::Relaxed) < n {
        std::thread::yield_now();
    }
    let after = rss();
    for _ in 0..n {
        gate.post();
    }
    handles.into_iter().for_each(|h| h.join().unwrap());
    (before, after)
}

/// A field of `/proc/self/status`, in bytes.
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"));
    kib * 1024
}

/// `memory burst-child N`: (resident, page tables) before, with N corio
/// tasks blocked, after they finished, after the runtime was dropped.
fn corio_burst(n: usize) -> [(u64, u64); 4] {
    let now = || (rss(), status_bytes("VmPTE"));
    let before = now();
    let (blocked, finished) = corio::run(move || {
        let gate = Arc::new(corio::sync::Event::new());
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let gate = Arc::clone(&gate);
                corio::spawn(move || gate.wait())
            })
            .collect();
        corio::yield_now();
        let blocked = now();
        gate.set();
        handles.into_iter().for_each(|h| h.join().unwrap());
        (blocked, now())
    });
    [before, blocked, finished, now()]
}

/// `memory burst N ...`: one fresh process per N, a table row each.
fn burst(counts: &[usize]) -> ExitCode {
    let exe = std::env::current_exe().expect("current_exe");
    let mib = |b: u64| format!("{:.1}", b as f64 / (1 << 20) as f64);
    println!("| tasks | before | blocked | finished, runtime alive | runtime dropped |");
    println!("|---:|---:|---:|---:|---:|");
    for &n in counts {
        let out = Command::new(&exe)
            .args(["burst-child", &n.to_string()])
            .output()
            .expect("run child");
        let nums: Vec<u64> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        if !out.status.success() || nums.len() != 8 {
            eprintln!("burst of {n}: {}", String::from_utf8_lossy(&out.stderr));
            return ExitCode::FAILURE;
        }
        let cell = |i: usize| format!("{} + {}", mib(nums[2 * i]), mib(nums[2 * i + 1]));
        println!(
            "| {n} | {} | {} | {} | {} |",
            cell(0),
            cell(1),
            cell(2),
            cell(3)
        );
    }
    println!("\nMiB resident (VmRSS) + MiB of page tables (VmPTE).");
    ExitCode::SUCCESS
}

const RUNTIMES: [&str; 3] = ["corio", "tokio", "may"];

/// `memory child RUNTIME N`: one measurement, printed as `BEFORE AFTER`.
fn child(runtime: &str, n: usize) -> ExitCode {
    let (before, after) = match runtime {
        "corio" => corio_idle(n),
        "tokio" => tokio_idle(n),
        "may" => may_idle(n),
        _ => {
            eprintln!("memory: unknown runtime {runtime:?}");
            return ExitCode::FAILURE;
        }
    };
    println!("{before} {after}");
    ExitCode::SUCCESS
}

/// Runs one measurement in a fresh process; bytes per idle task.
fn measure(runtime: &str, n: usize) -> Result<f64, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new(exe)
        .args(["child", runtime, &n.to_string()])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "{runtime} with {n} tasks failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let nums: Vec<u64> = text
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    match nums[..] {
        [before, after] => Ok(after.saturating_sub(before) as f64 / n as f64),
        _ => Err(format!("{runtime}: unexpected output {text:?}")),
    }
}

fn main() -> ExitCode {
    // cargo passes `--bench` to harness = false benches.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) == Some("child") {
        let n = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(10_000);
        return child(args.get(1).map_or("", String::as_str), n);
    }
    if args.first().map(String::as_str) == Some("burst-child") {
        let n = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(200_000);
        let m = corio_burst(n);
        println!("{}", m.map(|(r, p)| format!("{r} {p}")).join(" "));
        return ExitCode::SUCCESS;
    }
    if args.first().map(String::as_str) == Some("burst") {
        let counts: Result<Vec<usize>, _> = args[1..].iter().map(|a| a.parse()).collect();
        return match counts {
            Ok(c) if !c.is_empty() => burst(&c),
            Ok(_) => burst(&[200_000]),
            Err(_) => {
                eprintln!("usage: cargo bench --bench memory -- burst [N ...]");
                ExitCode::FAILURE
            }
        };
    }
    let counts: Vec<usize> = if args.is_empty() {
        vec![10_000, 100_000]
    } else {
        match args.iter().map(|a| a.parse()).collect() {
            Ok(c) => c,
            Err(_) => {
                eprintln!("usage: cargo bench --bench memory [-- N ...]");
                return ExitCode::FAILURE;
            }
        }
    };
    println!(
        "| idle tasks | corio | tokio current-thread | may, 1 worker | corio ÷ tokio | corio ÷ may |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    let mut failures = Vec::new();
    for n in counts {
        // A runtime that cannot hold N tasks (may maps each stack with its
        // own guard page and runs out of mappings) is reported, not fatal.
        let per_task: Vec<Option<f64>> = RUNTIMES
            .iter()
            .map(|rt| {
                measure(rt, n)
                    .map_err(|e| failures.push(e.lines().take(3).collect::<Vec<_>>().join(" ")))
                    .ok()
            })
            .collect();
        let cell = |b: Option<f64>| b.map_or("failed".to_string(), |b| format!("{b:.0} B"));
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => format!("{:.2}×", a / b),
            _ => "—".to_string(),
        };
        let (c, t, m) = (per_task[0], per_task[1], per_task[2]);
        println!(
            "| {n} | {} | {} | {} | {} | {} |",
            cell(c),
            cell(t),
            cell(m),
            ratio(c, t),
            ratio(c, m)
        );
    }
    println!("\nBytes of resident memory per started, blocked task (VmRSS difference / N).");
    for f in &failures {
        println!("\n- failed: {f}");
    }
    if failures.iter().any(|f| f.starts_with("corio")) {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
