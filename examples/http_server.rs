//! An HTTP/1.1 "hello world" server: keep-alive, pipelining, request
//! timeouts, and clean rejection of bad requests — one task per connection,
//! written as a plain blocking loop.
//!
//! ```text
//! cargo run --release --example http_server -- --addr 127.0.0.1:8080
//! wrk -t1 -c50 -d5s http://127.0.0.1:8080/
//! ```
//!
//! Each connection's task reads into a buffer, answers every complete
//! request in it (so pipelined requests get their responses in one write),
//! and reads again. What it guards against:
//!
//! * a client that sends nothing, or half a request, is dropped when
//!   `--timeout-ms` (default 5000) has passed since the server started
//!   waiting for that request — a `corio::time::timeout_at` scope around the
//!   read, so dribbling bytes does not extend it (a half request gets a
//!   `408` first);
//! * a request head over 8 KiB, or with more than 32 headers, gets `431`;
//! * anything `httparse` rejects, or a bad `Content-Length`, gets `400`;
//!   chunked request bodies get `501`. All of these close the connection;
//!   none of them can crash the server.
//!
//! Request bodies with a `Content-Length` are read and skipped before the
//! response is sent, so pipelined POSTs work; a request with `Expect:
//! 100-continue` whose body has not arrived yet gets `HTTP/1.1 100
//! Continue` first (any other expectation gets `417`). HTTP/1.0 clients
//! that ask for `Connection: keep-alive` get `Connection: keep-alive` back
//! and keep their connection (`ab -k`); other HTTP/1.0 requests are
//! answered with `Connection: close`. The response is `HTTP/1.1 200 OK`, `Server`, `Date`,
//! `Content-Length` and `Hello, world!` — the same head as the servers it is
//! benchmarked against (`cargo bench --bench net`), so that they all send
//! the same bytes. It runs a worker on every core, each accepting on its
//! own `SO_REUSEPORT` socket with its own `Server` state; a connection's
//! task stays on the worker that accepted it. Options: `--workers N`
//! (default: one per core), `--addr HOST:PORT` (port 0 picks a free one; the
//! first line printed is `listening on ADDR`), `--timeout-ms MS`, `--server
//! NAME` (the `Server` header, default `corio`), `--duration SECS` (exit
//! after that long), `--grace SECS` (default 5, see below). A bad argument,
//! or an address it cannot listen on, is one line on stderr and exit
//! status 1.
//!
//! # Graceful shutdown
//!
//! On Ctrl-C (`SIGINT`) or `SIGTERM` the server stops accepting (the
//! listening socket is closed), closes the connections that are waiting
//! for a request of which nothing has arrived, lets the others finish the
//! requests they have begun — answered with `Connection: close` — for up
//! to the grace period, cancels what is still open after it, and exits
//! with status 0. It prints `shutting down: N open connection(s)`, then
//! `shutdown: F finished, C cancelled`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use corio::JoinHandle;
use corio::net::{TcpListener, TcpStream};
use corio::signal::{SIGINT, SIGTERM, Signals};
use corio::time::timeout_at;

#[path = "every_core/listen.rs"]
mod listen;

// The request parser, in a file of its own so that the fuzz target
// (`fuzz/fuzz_targets/http_request.rs`) runs the very same code.
#[path = "http_server/parse.rs"]
mod parse;
use parse::{MAX_HEAD, Parsed, parse};

const BODY: &[u8] = b"Hello, world!";

/// What every connection task of the server shares.
struct Server {
    /// The `Server` header.
    name: Rc<str>,
    date: HttpDate,
    request_timeout: Duration,
    /// Set when a shutdown begins: answer what has arrived, then close.
    stopping: Cell<bool>,
    /// The open connections, by task id; each task removes itself when it
    /// ends.
    connections: RefCell<HashMap<corio::TaskId, Conn>>,
}

/// An open connection, as the shutdown sees it.
struct Conn {
    handle: JoinHandle<()>,
    /// True while the task waits for a request of which nothing has
    /// arrived: cancelling it then loses nothing.
    idle: Rc<Cell<bool>>,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("http_server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> io::Result<()> {
    let mut addr = String::from("127.0.0.1:8080");
    let mut request_timeout = Duration::from_secs(5);
    let mut name: Rc<str> = Rc::from("corio");
    let mut duration = None;
    let mut grace = Duration::from_secs(5);
    let mut workers = listen::all_cores();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--help" || arg == "-h" {
            println!("{USAGE}");
            return Ok(());
        }
        let value = args.next().ok_or_else(|| usage(&arg))?;
        match arg.as_str() {
            "--addr" => addr = value,
            "--timeout-ms" => {
                request_timeout = Duration::from_millis(value.parse().map_err(|_| usage(&value))?)
            }
            "--server" => name = Rc::from(value),
            "--duration" => duration = Some(secs(&value)?),
            "--grace" => grace = secs(&value)?,
            "--workers" => workers = listen::parse_workers(&value).ok_or_else(|| usage(&value))?,
            _ => return Err(usage(&arg)),
        }
    }
    let rt = corio::runtime::Builder::new()
        .workers(workers)
        .build()
        .map_err(io::Error::other)?;
    let name: Arc<str> = Arc::from(&*name);
    rt.block_on(move || {
        // Listen for the shutdown signals before accepting anyone: from
        // here on Ctrl-C is ours to handle.
        let mut signals = Signals::new([SIGINT, SIGTERM])?;
        let listeners = listen::listeners(&addr, workers)?;
        println!("listening on {}", listeners[0].local_addr()?);
        // An acceptor on every worker, with that worker's `Server`; each
        // connection stays on the worker that accepted it.
        let acceptors: Vec<JoinHandle<()>> = listeners
            .into_iter()
            .enumerate()
            .map(|(w, listener)| {
                let name = Arc::clone(&name);
                corio::spawn_on(w, move || {
                    let server = Rc::new(Server {
                        name: Rc::from(&*name),
                        date: HttpDate::start(),
                        request_timeout,
                        stopping: Cell::new(false),
                        connections: RefCell::default(),
                    });
                    SERVER.with(|s| *s.borrow_mut() = Some(Rc::clone(&server)));
                    accept_loop(listener, &server)
                })
            })
            .collect();
        let signalled = match duration {
            Some(d) => corio::time::timeout(d, || signals.recv()).ok(),
            // Returning ends the runtime: every connection task is unwound.
            None => Some(signals.recv()),
        };
        match signalled {
            Some(signal) => {
                signal?;
                shutdown(acceptors, workers, grace);
                Ok(())
            }
            None => Ok(()),
        }
    })
}

fn accept_loop(listener: TcpListener, server: &Rc<Server>) {
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                let idle = Rc::new(Cell::new(false));
                let (shared, conn_idle) = (Rc::clone(server), Rc::clone(&idle));
                let handle = corio::spawn_local(move || {
                    if let Err(e) = serve(stream, &shared, &conn_idle) {
                        // Resets and cancellations are the client's and the
                        // shutdown's business.
                        if !matches!(
                            e.kind(),
                            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
                        ) && !corio::Error::is_cancellation(&e)
                        {
                            eprintln!("connection error: {e}");
                        }
                    }
                    shared
                        .connections
                        .borrow_mut()
                        .remove(&corio::current().id());
                });
                // The task starts only when this one suspends, so it is
                // registered before it can end.
                server
                    .connections
                    .borrow_mut()
                    .insert(handle.id(), Conn { handle, idle });
            }
            // Shutdown: stop accepting (dropping the listener closes it).
            Err(e) if corio::Error::is_cancellation(&e) => return,
            Err(e) => eprintln!("accept: {e}"),
        }
    }
}

thread_local! {
    /// This worker's `Server`. A thread-local is the worker's own: a task
    /// that has started never changes threads.
    static SERVER: RefCell<Option<Rc<Server>>> = const { RefCell::new(None) };
}

/// The graceful shutdown: stop accepting, close the idle connections, let
/// the busy ones answer what they have received for up to `grace`, then
/// cancel what is left.
fn shutdown(acceptors: Vec<JoinHandle<()>>, workers: usize, grace: Duration) {
    for acceptor in &acceptors {
        acceptor.cancel();
    }
    for acceptor in acceptors {
        let _ = acceptor.join();
    }
    // On each worker, with its `Server`: stop, cancel the idle
    // connections, hand the others' handles here.
    let per_worker: Vec<_> = (0..workers)
        .map(|w| {
            corio::spawn_on(w, || {
                let Some(server) = SERVER.with(|s| s.borrow().clone()) else {
                    return Vec::new();
                };
                server.stopping.set(true);
                let conns: Vec<Conn> = server
                    .connections
                    .borrow_mut()
                    .drain()
                    .map(|(_, c)| c)
                    .collect();
                conns
                    .into_iter()
                    .map(|conn| {
                        // Waiting for a request that has not begun: nothing
                        // to finish.
                        if conn.idle.get() {
                            conn.handle.cancel();
                        }
                        conn.handle
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut open: Vec<JoinHandle<()>> = per_worker
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    println!("shutting down: {} open connection(s)", open.len());
    let total = open.len();
    let _ = corio::time::timeout(grace, || {
        while let Some(conn) = open.last_mut() {
            // By `&mut`, so that the handle stays here if time runs out.
            let _ = corio::block_on(conn);
            open.pop();
        }
    });
    let cancelled = open.len();
    for conn in &open {
        conn.cancel();
    }
    for conn in open {
        let _ = conn.join();
    }
    println!(
        "shutdown: {} finished, {cancelled} cancelled",
        total - cancelled
    );
}

/// The response owed to a request whose body is still being read.
struct Owed {
    keep_alive: bool,
    head_only: bool,
    http10: bool,
}

/// Serves one connection until the client closes it, a request is
/// rejected, a request does not arrive in time, or the server shuts down.
fn serve(mut stream: TcpStream, server: &Server, idle: &Cell<bool>) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let name = &*server.name;
    let mut buf = vec![0u8; 2 * MAX_HEAD];
    let (mut start, mut end) = (0, 0);
    let mut out = Vec::with_capacity(4096);
    // Body bytes of the last request still to be skipped.
    let mut skip = 0usize;
    // Its response, sent once its body has been read: a client that sent
    // `Expect: 100-continue` must not get a final response it would take
    // for a refusal of the body.
    let mut owed: Option<Owed> = None;
    // When the server started waiting for the request being read.
    let mut deadline: Option<Instant> = None;
    loop {
        // Answer every complete request in the buffer (pipelining).
        loop {
            let dropped = skip.min(end - start);
            start += dropped;
            skip -= dropped;
            if skip > 0 {
                break;
            }
            if let Some(r) = owed.take() {
                let keep_alive = r.keep_alive && !server.stopping.get();
                let date = server.date.get();
                respond(
                    &mut out,
                    "200 OK",
                    name,
                    &date,
                    keep_alive,
                    r.http10,
                    !r.head_only,
                );
                if !keep_alive {
                    return stream.write_all(&out);
                }
            }
            if start == end {
                break;
            }
            match parse(&buf[start..end]) {
                Parsed::Request {
                    head_len,
                    body_len,
                    keep_alive,
                    head_only,
                    http10,
                    expect_continue,
                } => {
                    start += head_len;
                    skip = body_len;
                    deadline = None;
                    owed = Some(Owed {
                        keep_alive,
                        head_only,
                        http10,
                    });
                    if expect_continue && body_len > end - start {
                        // The client waits for this before it sends the
                        // body (RFC 9110 §10.1.1).
                        out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                    }
                }
                Parsed::Partial => break,
                Parsed::Reject(status) => {
                    respond(
                        &mut out,
                        status,
                        name,
                        &server.date.get(),
                        false,
                        false,
                        false,
                    );
                    return stream.write_all(&out);
                }
            }
        }
        if !out.is_empty() {
            stream.write_all(&out)?;
            out.clear();
        }
        // Keep the unparsed tail at the front of the buffer.
        if start == end {
            (start, end) = (0, 0);
        } else if start > 0 && end == buf.len() {
            buf.copy_within(start..end, 0);
            (start, end) = (0, end - start);
        }
        // Between requests: the shutdown may close the connection now.
        let between = start == end && skip == 0;
        if between && server.stopping.get() {
            return Ok(());
        }
        let at = *deadline.get_or_insert_with(|| Instant::now() + server.request_timeout);
        idle.set(between);
        let read = timeout_at(at, || stream.read(&mut buf[end..]));
        idle.set(false);
        match read {
            Ok(Ok(0)) => return Ok(()),
            Ok(Ok(n)) => end += n,
            Ok(Err(e)) if e.kind() != io::ErrorKind::TimedOut => return Err(e),
            // Out of time: drop the client, telling it why if it had started.
            Ok(Err(_)) | Err(_) => {
                if end > start || skip > 0 {
                    respond(
                        &mut out,
                        "408 Request Timeout",
                        name,
                        &server.date.get(),
                        false,
                        false,
                        false,
                    );
                    let _ = stream.write_all(&out);
                }
                return Ok(());
            }
        }
    }
}

fn respond(
    out: &mut Vec<u8>,
    status: &str,
    server: &str,
    date: &str,
    keep_alive: bool,
    http10: bool,
    body: bool,
) {
    let ok = status.starts_with("200");
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_bytes());
    out.extend_from_slice(b"\r\nServer: ");
    out.extend_from_slice(server.as_bytes());
    out.extend_from_slice(b"\r\nDate: ");
    out.extend_from_slice(date.as_bytes());
    // The only lengths ever sent: no formatting per response.
    out.extend_from_slice(if ok {
        b"\r\nContent-Length: 13"
    } else {
        b"\r\nContent-Length: 0"
    });
    if !keep_alive {
        out.extend_from_slice(b"\r\nConnection: close");
    } else if http10 {
        // HTTP/1.0 closes by default; a client that asked to keep the
        // connection waits for this, or for the close.
        out.extend_from_slice(b"\r\nConnection: keep-alive");
    }
    out.extend_from_slice(b"\r\n\r\n");
    if ok && body {
        out.extend_from_slice(BODY);
    }
}

const _: () = assert!(BODY.len() == 13, "Content-Length above");

/// The `Date` header value (RFC 9110 IMF-fixdate), shared by the
/// connections of the runtime thread and refreshed twice a second by a task
/// of its own, so that responses do not read the clock (may_minihttp, which
/// this server is benchmarked against, does the same).
#[derive(Clone)]
struct HttpDate(Rc<RefCell<String>>);

impl HttpDate {
    fn start() -> HttpDate {
        let date = HttpDate(Rc::new(RefCell::new(format_date(unix_secs()))));
        let refreshed = date.clone();
        // Detached: it ends, unwound, with the runtime.
        let _ticker = corio::spawn_local(move || {
            loop {
                corio::time::sleep(Duration::from_millis(500));
                *refreshed.0.borrow_mut() = format_date(unix_secs());
            }
        });
        date
    }

    fn get(&self) -> std::cell::Ref<'_, String> {
        self.0.borrow()
    }
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn format_date(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86_400;
    let (h, m, s) = (secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {day:02} {} {year} {h:02}:{m:02}:{s:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize]
    )
}

const USAGE: &str = "usage: http_server [--addr HOST:PORT] [--workers N] [--timeout-ms MS] \
                     [--server NAME] [--duration SECS] [--grace SECS]";

fn usage(arg: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("bad argument {arg:?}; {USAGE}"),
    )
}

fn secs(s: &str) -> io::Result<Duration> {
    s.parse::<f64>()
        .ok()
        .and_then(|v| Duration::try_from_secs_f64(v).ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("bad duration {s:?}")))
}
