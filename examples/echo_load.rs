//! A load generator for `echo_server`: C connections, each sending a
//! message and waiting for its echo, back to back, for N seconds; then it
//! prints requests per second and latency percentiles.
//!
//! Each connection is a task running a plain loop (`write_all`,
//! `read_exact`, note the time); the tasks of a thread share one corio
//! runtime. `--threads T` runs T runtimes on T threads, splitting the
//! connections between them, for when one core cannot saturate the server.
//!
//! By default each connection sends its next message as soon as the echo
//! of the last one is in (a closed loop: the load follows the server's
//! speed). `--rate R` paces the connections instead, R messages per second
//! in all, each connection on its own schedule; a late echo delays only
//! its own connection's next message. Two servers, or one server with 1
//! and with 2 workers, then carry the same load, so their CPU time per
//! request compares directly. Latency is counted from each message's
//! scheduled time, so a server that falls behind shows it.
//!
//! ```text
//! cargo run --release --example echo_load -- --addr 127.0.0.1:7000 --connections 50 --duration 5
//! ```
//!
//! The result is one line of `key=value` pairs, easy to parse:
//!
//! ```text
//! echo_load: addr=127.0.0.1:7000 connections=50 threads=1 size=64 duration_s=5.000 requests=1234567 rps=246913 p50_us=190 p99_us=410 max_us=2200 errors=0
//! ```
//!
//! Options: `--addr HOST:PORT` (default `127.0.0.1:7000`), `--connections C`
//! (50), `--duration SECS` (5), `--size BYTES` (64), `--threads T` (1),
//! `--rate R` (messages per second in all; unpaced by default).
//! The exit status is non-zero if any connection failed (each failure is
//! one line on stderr, naming the address) or an argument is bad.

use std::io::{self, Read, Write};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use corio::net::TcpStream;

struct Config {
    addr: String,
    connections: usize,
    duration: Duration,
    size: usize,
    threads: usize,
    /// Messages per second over all connections; `None`: a closed loop.
    rate: Option<f64>,
}

/// What one connection measured.
#[derive(Default)]
struct Tally {
    /// Round-trip times in nanoseconds (saturating at ~4 s).
    latencies: Vec<u32>,
    errors: usize,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo_load: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> io::Result<()> {
    let cfg = parse_args()?;
    let threads = cfg.threads.clamp(1, cfg.connections.max(1));
    let start = Instant::now() + Duration::from_millis(100);
    let deadline = start + cfg.duration;
    // Each connection sends every `interval` under `--rate`.
    let interval = cfg
        .rate
        .map(|r| Duration::from_nanos((1e9 * cfg.connections as f64 / r).round() as u64));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            // Spread the connections as evenly as possible.
            let n = cfg.connections / threads + usize::from(t < cfg.connections % threads);
            let conn = Conn {
                addr: cfg.addr.clone(),
                size: cfg.size,
                start,
                deadline,
                interval,
            };
            thread::spawn(move || corio::run(move || run_thread(conn, n)))
        })
        .collect();
    let mut all = Tally::default();
    for h in handles {
        let t = h.join().expect("load thread panicked");
        all.latencies.extend(t.latencies);
        all.errors += t.errors;
    }
    let elapsed = cfg.duration.as_secs_f64();
    let requests = all.latencies.len();
    let mut pct = |p: f64| percentile_us(&mut all.latencies, p);
    let (p50, p99, max) = (pct(0.50), pct(0.99), pct(1.0));
    let rate = cfg.rate.map_or("unpaced".to_owned(), |r| format!("{r:.0}"));
    println!(
        "echo_load: addr={} connections={} threads={} rate={} size={} duration_s={:.3} requests={} rps={:.0} p50_us={:.0} p99_us={:.0} max_us={:.0} errors={}",
        cfg.addr,
        cfg.connections,
        threads,
        rate,
        cfg.size,
        elapsed,
        requests,
        requests as f64 / elapsed,
        p50,
        p99,
        max,
        all.errors
    );
    if all.errors > 0 {
        std::process::exit(1);
    }
    Ok(())
}

/// What every connection of a thread does.
#[derive(Clone)]
struct Conn {
    addr: String,
    size: usize,
    start: Instant,
    deadline: Instant,
    interval: Option<Duration>,
}

/// One thread's share: `n` connection tasks on this thread's runtime.
fn run_thread(conn: Conn, n: usize) -> Tally {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let conn = conn.clone();
            // Paced connections start spread over one interval, so that
            // the messages do not all leave together.
            let offset = conn
                .interval
                .map_or(Duration::ZERO, |iv| iv * i as u32 / n as u32);
            corio::spawn(move || connection(&conn, offset))
        })
        .collect();
    let mut tally = Tally::default();
    for t in tasks {
        match t.join().expect("connection task panicked") {
            Ok(latencies) => tally.latencies.extend(latencies),
            Err(e) => {
                eprintln!("echo_load: connection failed: {e}");
                tally.errors += 1;
            }
        }
    }
    tally
}

fn connection(conn: &Conn, offset: Duration) -> io::Result<Vec<u32>> {
    let addr = &conn.addr;
    let mut stream = TcpStream::connect(addr)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot connect to {addr}: {e}")))?;
    stream.set_nodelay(true)?;
    let msg = vec![b'x'; conn.size];
    let mut echo = vec![0u8; conn.size];
    let mut latencies = Vec::with_capacity(1 << 16);
    let mut next = conn.start + offset;
    corio::time::sleep_until(next);
    loop {
        // Paced: the scheduled time, even if the last echo made us late.
        let sent = match conn.interval {
            Some(interval) => {
                corio::time::sleep_until(next);
                let scheduled = next;
                next += interval;
                scheduled
            }
            None => Instant::now(),
        };
        if sent >= conn.deadline {
            return Ok(latencies);
        }
        stream.write_all(&msg)?;
        stream.read_exact(&mut echo)?;
        let ns = sent.elapsed().as_nanos();
        latencies.push(u32::try_from(ns).unwrap_or(u32::MAX));
    }
}

/// The `p` quantile (0..=1) of `v`, in microseconds.
fn percentile_us(v: &mut [u32], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    let (_, x, _) = v.select_nth_unstable(i);
    f64::from(*x) / 1000.0
}

fn parse_args() -> io::Result<Config> {
    let mut cfg = Config {
        addr: "127.0.0.1:7000".into(),
        connections: 50,
        duration: Duration::from_secs(5),
        size: 64,
        threads: 1,
        rate: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or_else(|| bad(&arg))?;
        match arg.as_str() {
            "--addr" => cfg.addr = value,
            "--connections" => cfg.connections = value.parse().map_err(|_| bad(&value))?,
            "--size" => cfg.size = value.parse().map_err(|_| bad(&value))?,
            "--threads" => cfg.threads = value.parse().map_err(|_| bad(&value))?,
            "--rate" => {
                let rate = value.parse::<f64>().map_err(|_| bad(&value))?;
                if !(rate.is_finite() && rate > 0.0) {
                    return Err(bad(&value));
                }
                cfg.rate = Some(rate);
            }
            "--duration" => {
                cfg.duration = value
                    .parse::<f64>()
                    .ok()
                    .and_then(|s| Duration::try_from_secs_f64(s).ok())
                    .ok_or_else(|| bad(&value))?
            }
            _ => return Err(bad(&arg)),
        }
    }
    Ok(cfg)
}

fn bad(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "bad argument {what:?}; usage: echo_load [--addr HOST:PORT] [--connections C] \
             [--duration SECS] [--size BYTES] [--threads T] [--rate MESSAGES_PER_SEC]"
        ),
    )
}
