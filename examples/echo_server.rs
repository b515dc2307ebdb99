//! A TCP echo server: one task per connection, each a plain blocking-style
//! loop of `read` and `write_all`.
//!
//! Every connection's task suspends in `read` until the client sends
//! something, so one thread serves thousands of connections; the server
//! runs a worker on every core (`--workers N` to choose), each accepting on
//! its own `SO_REUSEPORT` socket, and a connection's task stays on the
//! worker that accepted it. This is the server side of the echo benchmark
//! (pair it with `echo_load`):
//!
//! ```text
//! cargo run --release --example echo_server -- --addr 127.0.0.1:7000
//! cargo run --release --example echo_load -- --addr 127.0.0.1:7000 --connections 50 --duration 5
//! ```
//!
//! Options: `--addr HOST:PORT` (default `127.0.0.1:7000`; port 0 picks a
//! free one), `--workers N` (default: one per core), `--duration SECS` (exit after that long, printing how many
//! messages were echoed; default: run until stopped), `--grace SECS` (see
//! below; default 10). The first line printed is `listening on ADDR`, for
//! scripts that start it on port 0.
//!
//! # Graceful shutdown
//!
//! On Ctrl-C (`SIGINT`) or `SIGTERM` the server stops accepting (the
//! listening socket is closed, so new clients are refused), lets the open
//! connections finish — each ends when its client closes — for up to the
//! grace period, cancels the ones still open after it, and exits with
//! status 0. It prints `shutting down: N open connection(s)` when it stops
//! accepting and `shutdown: F finished, C cancelled; echoed M messages` at
//! the end. The signal listener is a task waiting in
//! [`corio::signal::Signals::recv`], like any other blocking call.
//!
//! A second Ctrl-C (or `SIGTERM`) during the grace period does not wait:
//! the server prints `echo_server: second signal, exiting without waiting
//! for open connections` on stderr and exits at once with status 130.
//!
//! A bad argument, or an address it cannot listen on, is one line on stderr
//! and exit status 1.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use corio::JoinHandle;
use corio::net::{TcpListener, TcpStream};
use corio::signal::{SIGINT, SIGTERM, Signals};

#[path = "every_core/listen.rs"]
mod listen;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo_server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> io::Result<()> {
    let mut addr = String::from("127.0.0.1:7000");
    let mut duration = None;
    let mut grace = Duration::from_secs(10);
    let mut workers = listen::all_cores();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| usage(&arg));
        match arg.as_str() {
            "--addr" => addr = value()?,
            "--duration" => duration = Some(secs(&value()?)?),
            "--grace" => grace = secs(&value()?)?,
            "--workers" => workers = listen::parse_workers(&value()?).ok_or_else(|| usage(&arg))?,
            _ => return Err(usage(&arg)),
        }
    }
    let rt = corio::runtime::Builder::new()
        .workers(workers)
        .build()
        .map_err(io::Error::other)?;
    rt.block_on(move || serve(&addr, duration, grace, workers))
}

/// The open connections, by task id; each task removes itself when it ends.
type Connections = Rc<RefCell<HashMap<corio::TaskId, JoinHandle<()>>>>;

thread_local! {
    /// This worker's echo count and open connections. A thread-local is
    /// the worker's own: a task that has started never changes threads.
    static WORKER: (Rc<Cell<u64>>, Connections) = Default::default();
}

/// Runs `f` on every worker and collects what it returns.
fn on_every_worker<T: Send + 'static>(workers: usize, f: fn() -> T) -> Vec<T> {
    let handles: Vec<_> = (0..workers).map(|w| corio::spawn_on(w, f)).collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

fn echoed(workers: usize) -> u64 {
    on_every_worker(workers, || WORKER.with(|(e, _)| e.get()))
        .iter()
        .sum()
}

fn serve(
    addr: &str,
    duration: Option<Duration>,
    grace: Duration,
    workers: usize,
) -> io::Result<()> {
    // Listen for the shutdown signals before accepting anyone: from here on
    // Ctrl-C is ours to handle.
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    let listeners = listen::listeners(addr, workers)?;
    println!("listening on {}", listeners[0].local_addr()?);
    // An acceptor on every worker; each connection stays on its worker.
    let acceptors: Vec<JoinHandle<()>> = listeners
        .into_iter()
        .enumerate()
        .map(|(w, listener)| {
            corio::spawn_on(w, move || {
                let (echoed, connections) = WORKER.with(|(e, c)| (Rc::clone(e), Rc::clone(c)));
                accept_loop(listener, &echoed, &connections)
            })
        })
        .collect();
    // Wait for a signal — or, with --duration, at most that long.
    let signalled = match duration {
        Some(d) => corio::time::timeout(d, || signals.recv()).ok(),
        None => Some(signals.recv()),
    };
    if signalled.is_none() {
        println!("echoed {} messages", echoed(workers));
        // Returning ends the runtime: every connection task is unwound.
        return Ok(());
    }
    signalled.transpose()?;
    // A second signal: whoever sent it does not want to wait.
    let _force = corio::spawn_local(move || {
        if signals.recv().is_ok() {
            eprintln!("echo_server: second signal, exiting without waiting for open connections");
            std::process::exit(130);
        }
    });

    // 1. Stop accepting: the acceptors end and close their listeners.
    for acceptor in &acceptors {
        acceptor.cancel();
    }
    for acceptor in acceptors {
        let _ = acceptor.join();
    }
    let mut open: Vec<JoinHandle<()>> = on_every_worker(workers, || {
        WORKER.with(|(_, c)| c.borrow_mut().drain().map(|(_, h)| h).collect::<Vec<_>>())
    })
    .into_iter()
    .flatten()
    .collect();
    println!("shutting down: {} open connection(s)", open.len());

    // 2. Let the open connections finish, for up to the grace period.
    let total = open.len();
    let _ = corio::time::timeout_at(Instant::now() + grace, || {
        while let Some(conn) = open.last_mut() {
            // A `JoinHandle` is a `Future`: awaiting it by `&mut` keeps the
            // handle here if the grace period ends first.
            let _ = corio::block_on(conn);
            open.pop();
        }
    });

    // 3. Cancel the rest; each unwinds, closing its socket.
    let cancelled = open.len();
    for conn in &open {
        conn.cancel();
    }
    for conn in open {
        let _ = conn.join();
    }
    println!(
        "shutdown: {} finished, {cancelled} cancelled; echoed {} messages",
        total - cancelled,
        echoed(workers)
    );
    Ok(())
}

fn accept_loop(listener: TcpListener, echoed: &Rc<Cell<u64>>, connections: &Connections) {
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                let (echoed, registry) = (Rc::clone(echoed), Rc::clone(connections));
                let conn = corio::spawn_local(move || {
                    let _ = echo(stream, &echoed);
                    // Done: forget our own handle (this detaches it).
                    registry.borrow_mut().remove(&corio::current().id());
                });
                // The task starts only when this one suspends, so it is
                // registered before it can end.
                connections.borrow_mut().insert(conn.id(), conn);
            }
            // Shutdown: stop accepting (dropping the listener closes it).
            Err(e) if corio::Error::is_cancellation(&e) => return,
            // At the open-files limit the listener backs off by itself;
            // report and go on.
            Err(e) => eprintln!("accept: {e}"),
        }
    }
}

fn echo(mut stream: TcpStream, echoed: &Cell<u64>) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n])?;
        echoed.set(echoed.get() + 1);
    }
}

fn secs(s: &str) -> io::Result<Duration> {
    s.parse::<f64>()
        .ok()
        .and_then(|v| Duration::try_from_secs_f64(v).ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("bad duration {s:?}")))
}

fn usage(arg: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "unexpected {arg:?}; usage: echo_server [--addr HOST:PORT] [--workers N] \
             [--duration SECS] [--grace SECS]"
        ),
    )
}
