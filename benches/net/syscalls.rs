//! Counting a server's system calls while it is under load: `strace -c -f`
//! (the project's measure, with a per-call breakdown, but it slows the server
//! down several times) and `perf stat -e raw_syscalls:sys_enter` (a kernel
//! tracepoint counter that barely slows it, so the batching of events is
//! the real one).

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::thread;
use std::time::Duration;

use crate::procs;

/// How the calls are counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    Strace,
    Perf,
}

impl Counter {
    pub fn program(self) -> &'static str {
        match self {
            Counter::Strace => "strace",
            Counter::Perf => "perf",
        }
    }

    /// The command line, for the report.
    pub fn describe(self) -> String {
        match self {
            Counter::Strace => format!(
                "{} strace -c -f -q -p <server pid> -o <file>",
                procs::prefix(procs::SERVER_CORE)
            ),
            Counter::Perf => format!(
                "{} perf stat -e raw_syscalls:sys_enter -x, -p <server pid> -o <file>",
                procs::prefix(procs::SERVER_CORE)
            ),
        }
    }
}

/// System calls counted over one run.
#[derive(Clone, Debug, Default)]
pub struct Counts {
    pub total: u64,
    /// The most frequent calls, most frequent first (strace only).
    pub top: Vec<(String, u64)>,
}

/// A counter attached to a running process; [`Attached::finish`] detaches
/// it and reads the counts.
pub struct Attached {
    counter: Counter,
    child: Child,
    out: PathBuf,
}

impl Attached {
    /// Attaches `counter` to every thread of process `pid`.
    pub fn start(counter: Counter, pid: u32, tag: &str) -> io::Result<Attached> {
        let out = std::env::temp_dir().join(format!(
            "corio-net-bench-{}-{tag}.{}",
            std::process::id(),
            counter.program()
        ));
        let pid = pid.to_string();
        let cmd: Vec<OsString> = match counter {
            Counter::Strace => vec![
                "strace".into(),
                "-c".into(),
                "-f".into(),
                "-q".into(),
                "-p".into(),
                pid.into(),
                "-o".into(),
                out.clone().into(),
            ],
            Counter::Perf => vec![
                "perf".into(),
                "stat".into(),
                "-e".into(),
                "raw_syscalls:sys_enter".into(),
                "-x,".into(),
                "-p".into(),
                pid.into(),
                "-o".into(),
                out.clone().into(),
            ],
        };
        let child = procs::pinned(procs::SERVER_CORE, &cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        // Both tools print nothing when attached; give them time to attach
        // to every thread before the load starts.
        thread::sleep(Duration::from_millis(500));
        Ok(Attached {
            counter,
            child,
            out,
        })
    }

    /// Detaches (SIGINT makes both tools write their summary) and reads the
    /// counts.
    pub fn finish(mut self) -> io::Result<Counts> {
        procs::signal(self.child.id(), libc::SIGINT);
        let status = self.child.wait()?;
        let text = fs::read_to_string(&self.out).map_err(|e| {
            io::Error::other(format!(
                "{} wrote no summary ({status}): {e}",
                self.counter.program()
            ))
        })?;
        let _ = fs::remove_file(&self.out);
        let counts = match self.counter {
            Counter::Strace => parse_strace(&text),
            Counter::Perf => parse_perf(&text),
        };
        counts.ok_or_else(|| {
            io::Error::other(format!(
                "cannot read the {} summary:\n{text}",
                self.counter.program()
            ))
        })
    }
}

/// Reads `strace -c`'s table:
///
/// ```text
/// % time     seconds  usecs/call     calls    errors syscall
/// ------ ----------- ----------- --------- --------- ----------------
///  45.00    0.123456           1    100000           write
///  30.00    0.083456           0     90000     90000 read
/// ------ ----------- ----------- --------- --------- ----------------
/// 100.00    0.274000           1    190000     90000 total
/// ```
fn parse_strace(text: &str) -> Option<Counts> {
    let mut counts = Counts::default();
    let mut total = None;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() < 5 || words[0].starts_with('%') || words[0].starts_with('-') {
            continue;
        }
        let (Some(name), Ok(calls)) = (words.last(), words[3].parse::<u64>()) else {
            continue;
        };
        if *name == "total" {
            total = Some(calls);
        } else {
            counts.top.push((name.to_string(), calls));
        }
    }
    counts.total = total?;
    counts.top.sort_by_key(|t| std::cmp::Reverse(t.1));
    counts.top.truncate(6);
    Some(counts)
}

/// Reads `perf stat -x,`'s CSV line: `12345,,raw_syscalls:sys_enter,...`.
fn parse_perf(text: &str) -> Option<Counts> {
    let line = text
        .lines()
        .find(|l| l.contains("raw_syscalls:sys_enter"))?;
    let total = line.split(',').next()?.trim().parse().ok()?;
    Some(Counts {
        total,
        top: Vec::new(),
    })
}
