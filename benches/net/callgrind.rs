//! User-space instructions per request, counted by callgrind. Time on this
//! shared VM moves from run to run; instruction counts do not, so they are
//! the stable measure of what each runtime itself adds per request (the
//! kernel's share, which callgrind cannot see, is in the CPU-time tables).

use std::ffi::OsString;
use std::fs;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::load::{Generator, Report};
use crate::procs::Server;

/// The counts of one server under load.
pub struct Count {
    /// Instructions executed in user space (all threads) during the load.
    pub instructions: u64,
    pub load: Report,
}

impl Count {
    pub fn per_request(&self) -> f64 {
        self.instructions as f64 / self.load.requests.max(1) as f64
    }
}

/// The command line, for the report.
pub fn describe() -> &'static str {
    "valgrind -q --tool=callgrind --dump-instr=no --callgrind-out-file=FILE <server> ...; \
     callgrind_control -z PID; <load>; callgrind_control -d PID"
}

/// Runs `server` under callgrind, applies `warmup` seconds of load, then
/// counts the instructions of `secs` seconds of load.
pub fn count(
    server: &[OsString],
    addr: SocketAddr,
    generator: &Generator<'_>,
    warmup: u64,
    secs: u64,
    tag: &str,
) -> io::Result<Count> {
    let out = std::env::temp_dir().join(format!(
        "corio-net-bench-{}-{tag}.callgrind",
        std::process::id()
    ));
    let mut cmd: Vec<OsString> = vec![
        "valgrind".into(),
        "-q".into(),
        "--tool=callgrind".into(),
        "--dump-instr=no".into(),
        format!("--callgrind-out-file={}", out.display()).into(),
    ];
    cmd.extend(server.iter().cloned());
    // Start-up under valgrind is slow.
    let srv = Server::start_within(&cmd, addr, Duration::from_secs(60))?;
    if warmup > 0 {
        generator.run(addr, warmup)?;
    }
    control(srv.pid(), "-z")?;
    let load = generator.run(addr, secs)?;
    control(srv.pid(), "-d")?;
    let instructions = read_dump(&out)?;
    drop(srv);
    cleanup(&out);
    Ok(Count { instructions, load })
}

fn control(pid: u32, what: &str) -> io::Result<()> {
    let status = Command::new("callgrind_control")
        .arg(what)
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "callgrind_control {what} {pid} failed ({status})"
        )))
    }
}

/// The dump files callgrind wrote for `out` (`out.1`, `out.2`, … for
/// dumps on request, `out` at exit).
fn dumps(out: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (out.parent(), out.file_name()) else {
        return Vec::new();
    };
    let name = name.to_string_lossy().into_owned();
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|f| f.to_string_lossy().starts_with(&name))
        })
        .collect()
}

/// The instruction total of the dump made by `callgrind_control -d`.
fn read_dump(out: &Path) -> io::Result<u64> {
    let dump = dumps(out)
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e != "callgrind"))
        .ok_or_else(|| io::Error::other(format!("no callgrind dump beside {}", out.display())))?;
    let text = fs::read_to_string(&dump)?;
    text.lines()
        .find_map(|l| {
            l.strip_prefix("totals:")
                .or_else(|| l.strip_prefix("summary:"))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| io::Error::other(format!("no totals in {}", dump.display())))
}

fn cleanup(out: &Path) {
    for p in dumps(out) {
        let _ = fs::remove_file(p);
    }
}
