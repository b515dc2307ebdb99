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
//! Request bodies with a `Content-Length` are skipped, so pipelined POSTs
//! work. The response is `HTTP/1.1 200 OK`, `Server`, `Date`,
//! `Content-Length` and `Hello, world!` — the same head as the servers it is
//! benchmarked against (`cargo bench --bench net`), so that they all send
//! the same bytes. Options: `--addr HOST:PORT` (port 0 picks a free one; the
//! first line printed is `listening on ADDR`), `--timeout-ms MS`, `--server
//! NAME` (the `Server` header, default `corio`), `--duration SECS` (exit
//! after that long).

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use corio::net::{TcpListener, TcpStream};
use corio::time::timeout_at;

// The request parser, in a file of its own so that the fuzz target
// (`fuzz/fuzz_targets/http_request.rs`) runs the very same code.
#[path = "http_server/parse.rs"]
mod parse;
use parse::{MAX_HEAD, Parsed, parse};

const BODY: &[u8] = b"Hello, world!";

fn main() -> io::Result<()> {
    let mut addr = String::from("127.0.0.1:8080");
    let mut request_timeout = Duration::from_secs(5);
    let mut server: Rc<str> = Rc::from("corio");
    let mut duration = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or_else(|| usage(&arg))?;
        match arg.as_str() {
            "--addr" => addr = value,
            "--timeout-ms" => {
                request_timeout = Duration::from_millis(value.parse().map_err(|_| usage(&value))?)
            }
            "--server" => server = Rc::from(value),
            "--duration" => {
                duration = Some(Duration::from_secs_f64(
                    value.parse().map_err(|_| usage(&value))?,
                ))
            }
            _ => return Err(usage(&arg)),
        }
    }
    corio::run(move || {
        let listener = TcpListener::bind(addr.as_str())?;
        println!("listening on {}", listener.local_addr()?);
        let date = HttpDate::start();
        let acceptor = corio::spawn_local(move || {
            for stream in listener.incoming() {
                match stream {
                    Ok(stream) => {
                        let (server, date) = (Rc::clone(&server), date.clone());
                        let _conn = corio::spawn_local(move || {
                            if let Err(e) = serve(stream, request_timeout, &server, &date) {
                                // Resets and timeouts are the client's business.
                                if !matches!(
                                    e.kind(),
                                    io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
                                ) {
                                    eprintln!("connection error: {e}");
                                }
                            }
                        });
                    }
                    Err(e) => eprintln!("accept: {e}"),
                }
            }
        });
        match duration {
            Some(d) => corio::time::sleep(d),
            None => drop(acceptor.join()),
        }
        Ok(())
    })
}

/// Serves one connection until the client closes it, a request is
/// rejected, or a request does not arrive in time.
fn serve(
    mut stream: TcpStream,
    request_timeout: Duration,
    server: &str,
    date: &HttpDate,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = vec![0u8; 2 * MAX_HEAD];
    let (mut start, mut end) = (0, 0);
    let mut out = Vec::with_capacity(4096);
    // Body bytes of the last request still to be skipped.
    let mut skip = 0usize;
    // When the server started waiting for the request being read.
    let mut deadline: Option<Instant> = None;
    loop {
        // Answer every complete request in the buffer (pipelining).
        loop {
            let dropped = skip.min(end - start);
            start += dropped;
            skip -= dropped;
            if skip > 0 || start == end {
                break;
            }
            match parse(&buf[start..end]) {
                Parsed::Request {
                    head_len,
                    body_len,
                    keep_alive,
                    head_only,
                } => {
                    respond(
                        &mut out,
                        "200 OK",
                        server,
                        &date.get(),
                        keep_alive,
                        !head_only,
                    );
                    start += head_len;
                    skip = body_len;
                    deadline = None;
                    if !keep_alive {
                        stream.write_all(&out)?;
                        return Ok(());
                    }
                }
                Parsed::Partial => break,
                Parsed::Reject(status) => {
                    respond(&mut out, status, server, &date.get(), false, false);
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
        let at = *deadline.get_or_insert_with(|| Instant::now() + request_timeout);
        let read = timeout_at(at, || stream.read(&mut buf[end..]));
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
                        server,
                        &date.get(),
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

fn usage(arg: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "bad argument {arg:?}; usage: http_server [--addr HOST:PORT] [--timeout-ms MS] [--server NAME] \
             [--duration SECS]"
        ),
    )
}
