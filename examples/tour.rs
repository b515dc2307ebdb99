//! A tour of corio in one run — the README's first command:
//!
//! ```text
//! cargo run --release --example tour
//! ```
//!
//! 1. **A generator**: a coroutine that yields values to whoever resumes
//!    it, with no runtime at all.
//! 2. **Many tasks**: 10,000 tasks that each sleep 10 ms finish together,
//!    on one thread — each one suspends in `sleep`, not the thread.
//! 3. **The cooperative model**: an HTTP server task and 1,000 client tasks
//!    on the same thread. Each request costs the server 2 ms of (simulated)
//!    waiting, as if it asked a database. While the requests are in flight the tour prints the task
//!    table — which task waits on which socket, which sleeps on a timer —
//!    then the statuses, and the time of the 1,000 fetches made
//!    concurrently against the same fetches made one after another.
//!
//! Every line of it is ordinary blocking-style code: `read`, `write_all`,
//! `sleep`, `join`. Options: `--clients N` (default 1000), `--delay-ms D`
//! (the server's per-request wait, default 2), `--tasks N` (default 10000),
//! `--addr HOST:PORT` (where the HTTP server of part 3 listens; default
//! `127.0.0.1:0`, a free port). A bad argument or an address it cannot
//! listen on is one line on stderr and exit status 1.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use corio::generator::Generator;
use corio::net::{TcpListener, TcpStream};
use corio::task::{Direction, TaskState, WaitReason};
use corio::time::sleep;

struct Options {
    addr: String,
    clients: usize,
    delay: Duration,
    tasks: usize,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tour: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> io::Result<()> {
    let opts = parse_args()?;
    println!("corio tour\n==========\n");
    generator();
    corio::run(move || {
        many_tasks(opts.tasks);
        http(&opts.addr, opts.clients, opts.delay)
    })
}

/// 1. A generator: no runtime, just a coroutine yielding to its caller.
fn generator() {
    println!("1. A generator: a coroutine that yields values to its caller (no runtime)");
    let fibonacci = Generator::new(|y| {
        let (mut a, mut b) = (0u64, 1u64);
        loop {
            y.yield_(a);
            (a, b) = (b, a + b);
        }
    });
    let first: Vec<String> = fibonacci.take(12).map(|n| n.to_string()).collect();
    println!("   fibonacci: {} ...\n", first.join(" "));
}

/// 2. Many tasks sleeping at once.
fn many_tasks(n: usize) {
    println!(
        "2. Many tasks: {} tasks each sleep 10 ms, all at once",
        group(n)
    );
    let t = Instant::now();
    let handles: Vec<_> = (0..n)
        .map(|i| {
            corio::Builder::new()
                .stack_size(16 * 1024)
                .spawn(move || {
                    sleep(Duration::from_millis(10));
                    i
                })
                .expect("spawn")
        })
        .collect();
    let spawned = t.elapsed();
    let sum: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(sum, n * n.saturating_sub(1) / 2);
    println!(
        "   spawned in {:.1} ms; all done {:.1} ms after the start, on one thread:\n   \
         each task suspended in sleep(), the thread never did\n",
        ms(spawned),
        ms(t.elapsed())
    );
}

/// 3. An HTTP server and many clients on one thread.
fn http(addr: &str, clients: usize, delay: Duration) -> io::Result<()> {
    println!(
        "3. An HTTP server task and {} client tasks on one thread",
        group(clients)
    );
    let listener = TcpListener::bind(addr)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    let addr = listener.local_addr()?;
    let _server = corio::Builder::new()
        .name("http-server")
        .spawn(move || server(listener, delay))?;
    println!(
        "   server on {addr}; each request waits {} ms in the server (simulated work)\n",
        delay.as_millis()
    );

    // All clients at once.
    let t = Instant::now();
    let fetches: Vec<_> = (0..clients)
        .map(|i| {
            corio::Builder::new()
                .name("client")
                .stack_size(64 * 1024)
                .spawn(move || fetch(addr, i))
                .expect("spawn")
        })
        .collect();
    // Let the requests get going, then look at what every task is doing.
    while !corio::tasks()
        .iter()
        .any(|t| is_io(t.state(), Direction::Read))
    {
        corio::yield_now();
    }
    sleep(delay / 2);
    print_task_table();
    let mut statuses = BTreeMap::new();
    for f in fetches {
        let status = f.join().unwrap()?;
        *statuses.entry(status).or_insert(0) += 1;
    }
    let concurrent = t.elapsed();
    let brief: Vec<String> = statuses
        .iter()
        .map(|(s, n)| format!("{} × {s}", group(*n)))
        .collect();
    println!("   {} responses: {}", group(clients), brief.join(", "));

    // The same fetches, one after another.
    let t = Instant::now();
    for i in 0..clients {
        fetch(addr, i)?;
    }
    let sequential = t.elapsed();
    println!("   concurrently:       {:>9.1} ms", ms(concurrent));
    println!(
        "   one after another:  {:>9.1} ms   ({:.0}× longer)",
        ms(sequential),
        sequential.as_secs_f64() / concurrent.as_secs_f64()
    );
    println!(
        "\n   While one task waits for its socket, the thread runs the others: the cooperative model."
    );
    Ok(())
}

/// Accepts connections; each one gets a task that reads the request,
/// "works" for `delay`, and answers.
fn server(listener: TcpListener, delay: Duration) -> io::Result<()> {
    loop {
        let (stream, _) = listener.accept()?;
        let _conn = corio::Builder::new()
            .name("conn")
            .stack_size(64 * 1024)
            .spawn(move || -> io::Result<()> {
                let mut reader = BufReader::new(&stream);
                let mut request_line = String::new();
                reader.read_line(&mut request_line)?;
                let mut line = String::new();
                while reader.read_line(&mut line)? > 2 {
                    line.clear();
                }
                sleep(delay);
                let path = request_line.split_whitespace().nth(1).unwrap_or("/");
                let body = format!("hello, {path}\n");
                // One write: small writes in a row would meet Nagle's algorithm.
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                (&stream).write_all(response.as_bytes())
            })?;
    }
}

/// One GET; returns "200 OK" style status text.
fn fetch(addr: SocketAddr, i: usize) -> io::Result<String> {
    let mut stream = TcpStream::connect(addr)?;
    let request = format!("GET /page/{i} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut parsed = httparse::Response::new(&mut headers);
    parsed
        .parse(&response)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok(format!(
        "{} {}",
        parsed.code.unwrap_or(0),
        parsed.reason.unwrap_or("")
    ))
}

fn is_io(state: TaskState, dir: Direction) -> bool {
    matches!(state, TaskState::Waiting(WaitReason::Io { direction, .. }) if direction == dir)
}

/// The first rows of the task table (`corio::tasks()`, one `TaskInfo` per
/// row; `corio::inspect::dump()` adds backtraces and the wait graph), and a
/// count of all tasks by what they are doing.
fn print_task_table() {
    println!(
        "   The task table while the requests are in flight (corio::tasks(), a few rows of each kind):\n"
    );
    let rows: Vec<String> = corio::tasks().iter().map(|t| t.to_string()).collect();
    let mut lines: Vec<&str> = vec![
        "    id  name              state                                for  worker  spawned at",
    ];
    lines.extend(rows.iter().map(String::as_str));
    println!("   {}", lines[0]);
    let mut shown: BTreeMap<&str, usize> = BTreeMap::new();
    for line in &lines[1..] {
        let name = line.split_whitespace().nth(1).unwrap_or("-");
        let n = shown.entry(name).or_insert(0);
        if *n < 2 {
            *n += 1;
            println!("   {line}");
        }
    }
    let mut by_state: BTreeMap<String, usize> = BTreeMap::new();
    for t in corio::tasks() {
        let what = match t.state() {
            TaskState::Waiting(WaitReason::Io { direction, .. }) => {
                format!("waiting on a socket ({direction:?})").to_lowercase()
            }
            other => other.to_string(),
        };
        *by_state
            .entry(format!("{} {what}", t.name().unwrap_or("-")))
            .or_insert(0) += 1;
    }
    println!(
        "   ... {} rows in all. Tasks by name and state:",
        lines.len() - 1
    );
    for (what, n) in by_state {
        println!("   {:>7}  {what}", group(n));
    }
    println!();
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// 10000 → "10,000".
fn group(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn parse_args() -> io::Result<Options> {
    let mut opts = Options {
        addr: "127.0.0.1:0".to_owned(),
        clients: 1000,
        delay: Duration::from_millis(2),
        tasks: 10_000,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--addr" {
            opts.addr = args
                .next()
                .ok_or_else(|| io::Error::other("--addr needs HOST:PORT"))?;
            continue;
        }
        let value: u64 = args
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| io::Error::other(format!("{arg} needs a number")))?;
        match arg.as_str() {
            "--clients" => opts.clients = value as usize,
            "--delay-ms" => opts.delay = Duration::from_millis(value),
            "--tasks" => opts.tasks = value as usize,
            _ => {
                return Err(io::Error::other(format!(
                    "unknown option {arg}; usage: tour [--clients N] [--delay-ms D] [--tasks N] \
                     [--addr HOST:PORT]"
                )));
            }
        }
    }
    Ok(opts)
}
