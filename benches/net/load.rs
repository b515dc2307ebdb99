//! The load generators — corio's `echo_load` example for echo, `wrk` for
//! HTTP — and what we read from their reports.

use std::ffi::OsString;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::procs;

/// One load run as the generator reported it.
#[derive(Clone, Debug)]
pub struct Report {
    pub requests: u64,
    pub requests_per_sec: f64,
    pub p50: Duration,
    pub p99: Duration,
    /// CPU time the generator itself used.
    pub cpu: Duration,
    /// Failed requests or socket errors the generator counted.
    pub errors: u64,
}

/// A load generator command for one server address.
pub enum Generator<'a> {
    /// corio's `echo_load` example: `connections` connections doing
    /// back-to-back `size`-byte round trips.
    Echo {
        binary: &'a Path,
        connections: u32,
        size: u32,
    },
    /// `wrk -t1 -cC --latency`.
    Wrk { connections: u32 },
}

impl Generator<'_> {
    fn command(&self, addr: SocketAddr, secs: u64) -> Vec<OsString> {
        match *self {
            Generator::Echo {
                binary,
                connections,
                size,
            } => vec![
                binary.into(),
                "--addr".into(),
                addr.to_string().into(),
                "--connections".into(),
                connections.to_string().into(),
                "--duration".into(),
                secs.to_string().into(),
                "--size".into(),
                size.to_string().into(),
            ],
            Generator::Wrk { connections } => vec![
                "wrk".into(),
                "-t1".into(),
                format!("-c{connections}").into(),
                format!("-d{secs}s").into(),
                "--latency".into(),
                format!("http://{addr}/").into(),
            ],
        }
    }

    /// The command line, for the report.
    pub fn describe(&self, secs: u64) -> String {
        let placeholder: SocketAddr = ([127, 0, 0, 1], 8080).into();
        let cmd = self.command(placeholder, secs);
        let mut words: Vec<String> = cmd
            .iter()
            .map(|w| w.to_string_lossy().into_owned())
            .collect();
        if let Generator::Echo { .. } = self {
            words[0] = "target/release/examples/echo_load".into();
        }
        let cmd = words.join(" ").replace(&placeholder.to_string(), "ADDR");
        format!("{} {cmd}", procs::prefix(procs::LOAD_CORE))
    }

    /// Runs the generator against `addr` for `secs` seconds, pinned to the
    /// load core.
    pub fn run(&self, addr: SocketAddr, secs: u64) -> io::Result<Report> {
        let cmd = self.command(addr, secs);
        let (out, cpu) = procs::run_load(&cmd)?;
        let text = String::from_utf8_lossy(&out.stdout);
        let parsed = match self {
            Generator::Echo { .. } => parse_echo_load(&text),
            Generator::Wrk { .. } => parse_wrk(&text),
        };
        let mut report = parsed.ok_or_else(|| {
            io::Error::other(format!(
                "cannot read the load generator's report:\n{text}{}",
                String::from_utf8_lossy(&out.stderr)
            ))
        })?;
        report.cpu = cpu;
        Ok(report)
    }
}

/// Parses `12.3us`, `1.20ms`, `2s` (wrk's and echo_load's latency units).
fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = s.strip_suffix("µs") {
        (n, 1e-6)
    } else if let Some(n) = s.strip_suffix("ns") {
        (n, 1e-9)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else {
        return None;
    };
    let v: f64 = num.trim().parse().ok()?;
    Some(Duration::from_secs_f64(v * scale))
}

/// Reads wrk's report:
///
/// ```text
///   Latency Distribution
///      50%  190.00us
///      99%  400.00us
///   2345678 requests in 10.00s, 300.00MB read
///   Socket errors: connect 0, read 0, write 0, timeout 0
///   Non-2xx or 3xx responses: 12
/// Requests/sec: 234567.89
/// ```
pub fn parse_wrk(text: &str) -> Option<Report> {
    let mut requests = None;
    let mut rps = None;
    let mut p50 = None;
    let mut p99 = None;
    let mut errors = 0;
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            rps = v.trim().parse().ok();
        } else if let Some(v) = line.strip_prefix("50%") {
            p50 = parse_duration(v);
        } else if let Some(v) = line.strip_prefix("99%") {
            p99 = parse_duration(v);
        } else if let Some((n, _)) = line.split_once(" requests in ") {
            requests = n.trim().parse().ok();
        } else if let Some(v) = line.strip_prefix("Socket errors:") {
            errors += v
                .split(',')
                .filter_map(|kv| kv.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>();
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            errors += v.trim().parse::<u64>().unwrap_or(0);
        }
    }
    Some(Report {
        requests: requests?,
        requests_per_sec: rps?,
        p50: p50?,
        p99: p99?,
        cpu: Duration::ZERO,
        errors,
    })
}

/// Reads `echo_load`'s report, one line of `key=value` pairs:
///
/// ```text
/// echo_load: addr=127.0.0.1:7000 connections=50 threads=1 size=64 duration_s=5.000 requests=1234567 rps=246913 p50_us=190 p99_us=410 max_us=2200 errors=0
/// ```
pub fn parse_echo_load(text: &str) -> Option<Report> {
    let line = text.lines().find(|l| l.starts_with("echo_load:"))?;
    let value = |key: &str| -> Option<f64> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))?
            .parse()
            .ok()
    };
    let us = |key: &str| value(key).map(|v| Duration::from_secs_f64(v * 1e-6));
    Some(Report {
        requests: value("requests")? as u64,
        requests_per_sec: value("rps")?,
        p50: us("p50_us")?,
        p99: us("p99_us")?,
        cpu: Duration::ZERO,
        errors: value("errors").unwrap_or(0.0) as u64,
    })
}
