//! The example corio starts from: "a coroutine sends an HTTP GET, prints
//! the status and the body" — asyncio's
//!
//! ```python
//! async def main():
//!     reader, writer = await asyncio.open_connection(host, port)
//!     writer.write(b"GET /get HTTP/1.1\r\nHost: ...\r\n\r\n")
//!     ...
//! asyncio.run(main())
//! ```
//!
//! as a corio program, without `async` or `await`: `corio::run` starts the
//! main task, `TcpStream::connect` resolves the host on a thread pool and
//! connects without blocking the thread, and every `write`/`read` below
//! suspends the task (not the thread) while the network is busy. The
//! response is parsed with `httparse`.
//!
//! ```text
//! cargo run --example http_get -- http://127.0.0.1:8080/get
//! cargo run --example http_get -- --fail --timeout 5 http://127.0.0.1:8080/ > body.bin
//! cargo run --example http_get          # fetches from an embedded local server
//! ```
//!
//! It prints `status: CODE REASON` on stderr and writes the body to stdout
//! byte for byte, as received (binary bodies included; nothing is decoded
//! or added). Only plain `http://` URLs are supported; bodies may be sized
//! by `Content-Length`, chunked, or run to the end of the connection.
//!
//! Options:
//!
//! * `--fail` (or `-f`), like `curl --fail`: a status of 400 or more is an
//!   error — the body is not written, `http_get: URL: server returned CODE
//!   REASON` goes to stderr and the exit status is 22 (curl's). Without it
//!   any status is a success and its body is written.
//! * `--timeout SECS` (default 30): the limit for resolving and connecting,
//!   and for each read and write after that (an idle limit, so a long
//!   download that keeps moving is not cut off).
//!
//! Every failure — a bad URL, a refused connection, a timeout, a response
//! that is not HTTP, a body cut short (fewer bytes than `Content-Length`,
//! or a chunked body that ends before its last chunk) — is one line on
//! stderr naming the address, and exit status 1.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use corio::net::{TcpListener, TcpStream};

const USAGE: &str = "usage: http_get [--fail|-f] [--timeout SECS] [http://HOST[:PORT][/PATH]]";
/// The head of a response may be this long at most.
const MAX_HEAD: usize = 64 * 1024;

struct Options {
    url: Option<String>,
    fail: bool,
    timeout: Duration,
}

/// Why `http_get` failed: an IO error, or (with `--fail`) an HTTP status.
enum Failure {
    Io(io::Error),
    /// The message for stderr.
    Status(String),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        Failure::Io(e)
    }
}

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(Some(opts)) => opts,
        Ok(None) => {
            println!("{USAGE}\n\n{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("http_get: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = corio::run(move || {
        let url = match opts.url {
            Some(url) => url,
            None => {
                // No URL: serve one ourselves, from a task on this thread.
                let listener = TcpListener::bind("127.0.0.1:0")?;
                let addr = listener.local_addr()?;
                let _server = corio::spawn(move || embedded_server(listener));
                format!("http://{addr}/get")
            }
        };
        get(&url, opts.fail, opts.timeout)
            .map_err(|e| match e {
                Failure::Io(e) => Failure::Io(io::Error::new(e.kind(), format!("{url}: {e}"))),
                status => status,
            })
            .map(drop)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Io(e)) => {
            eprintln!("http_get: {e}");
            ExitCode::FAILURE
        }
        Err(Failure::Status(msg)) => {
            eprintln!("http_get: {msg}");
            ExitCode::from(22)
        }
    }
}

const HELP: &str = "Fetches URL with one HTTP/1.1 GET: the status line goes to stderr, the body\n\
to stdout unchanged. Without a URL it fetches from a server of its own.\n\n\
  -f, --fail        a status >= 400 is an error: no body, a message on stderr,\n\
                    exit status 22 (as curl --fail)\n  \
  --timeout SECS    limit for connecting and for each read/write (default 30)\n\n\
Exit status: 0 on success, 1 on an error (connection, timeout, bad or\n\
truncated response), 2 on bad arguments, 22 with --fail on an HTTP error.";

fn parse_args() -> io::Result<Option<Options>> {
    let mut opts = Options {
        url: None,
        fail: false,
        timeout: Duration::from_secs(30),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "-f" | "--fail" => opts.fail = true,
            "--timeout" => {
                let v = args
                    .next()
                    .ok_or_else(|| invalid("--timeout needs a value"))?;
                opts.timeout = v
                    .parse::<f64>()
                    .ok()
                    .and_then(|s| Duration::try_from_secs_f64(s).ok())
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| invalid(&format!("bad --timeout {v:?}")))?;
            }
            _ if arg.starts_with('-') => return Err(invalid(&format!("unknown option {arg:?}"))),
            _ if opts.url.is_none() => opts.url = Some(arg),
            _ => return Err(invalid(&format!("unexpected argument {arg:?}"))),
        }
    }
    Ok(Some(opts))
}

/// Fetches `url` with one HTTP/1.1 GET, streaming the body to stdout.
fn get(url: &str, fail: bool, timeout: Duration) -> Result<(), Failure> {
    let (host, port, path) = split_url(url)?;
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    // Resolution and connect together, under one limit.
    let stream = corio::time::timeout(timeout, || TcpStream::connect((host, port)))
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connection timed out"))
        .and_then(|r| r)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot connect to {addr}: {e}")))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let on_io = |what: &str, e: io::Error| {
        let e = match e.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => io::Error::new(
                io::ErrorKind::TimedOut,
                format!("timed out after {timeout:?}"),
            ),
            _ => e,
        };
        io::Error::new(e.kind(), format!("{what} {addr}: {e}"))
    };

    // Formatted first and sent with one write (several small writes in a
    // row would run into Nagle's algorithm).
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: corio-http_get\r\n\
         Accept: */*\r\nConnection: close\r\n\r\n"
    );
    (&stream)
        .write_all(request.as_bytes())
        .map_err(|e| on_io("sending to", e))?;

    let mut reader = BufReader::new(&stream);
    // Interim responses (1xx) come before the final one: skip them.
    let (status, reason, length) = loop {
        let head = read_head(&mut reader).map_err(|e| on_io("reading from", e))?;
        let response = parse_head(&head).map_err(|e| on_io("bad response from", e))?;
        if !(100..200).contains(&response.0) || response.0 == 101 {
            break response;
        }
    };
    eprintln!("status: {status} {reason}");
    if fail && status >= 400 {
        return Err(Failure::Status(format!(
            "{url}: server returned {status} {reason}"
        )));
    }

    let mut out = io::stdout().lock();
    let result = match length {
        BodyLength::Empty => Ok(()),
        BodyLength::Chunked => copy_chunked(&mut reader, &mut out),
        BodyLength::Exactly(len) => copy_exactly(&mut reader, &mut out, len),
        BodyLength::UntilClose => copy_all(&mut reader, &mut out).map(drop),
    };
    result.map_err(|e| on_io("reading the body from", e))?;
    out.flush()?;
    Ok(())
}

/// How the body of a response is delimited (RFC 9112 §6.3).
enum BodyLength {
    Empty,
    Chunked,
    Exactly(u64),
    UntilClose,
}

/// Reads up to and including the empty line that ends a response head.
fn read_head(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") && !head.ends_with(b"\n\n") {
        if head.len() > MAX_HEAD {
            return Err(bad("the response head is over 64 KiB"));
        }
        if reader.read_until(b'\n', &mut head)? == 0 {
            return Err(bad("connection closed before the response head ended"));
        }
    }
    Ok(head)
}

fn parse_head(head: &[u8]) -> io::Result<(u16, String, BodyLength)> {
    let mut headers = [httparse::EMPTY_HEADER; 100];
    let mut parsed = httparse::Response::new(&mut headers);
    parsed
        .parse(head)
        .map_err(|e| bad(&format!("not an HTTP response: {e}")))?;
    let status = parsed.code.ok_or_else(|| bad("no status"))?;
    let reason = parsed.reason.unwrap_or("").to_owned();
    let header = |name: &str| {
        parsed
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
    };
    let length = if (100..200).contains(&status) || status == 204 || status == 304 {
        BodyLength::Empty
    } else if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        BodyLength::Chunked
    } else if let Some(len) = header("content-length") {
        let len = len
            .parse()
            .map_err(|_| bad(&format!("bad Content-Length {len:?}")))?;
        BodyLength::Exactly(len)
    } else {
        BodyLength::UntilClose
    };
    Ok((status, reason, length))
}

/// Copies `len` bytes; fewer (the connection closed early) is an error.
fn copy_exactly(reader: &mut impl BufRead, out: &mut impl Write, len: u64) -> io::Result<()> {
    let got = copy_all(&mut reader.take(len), out)?;
    if got < len {
        return Err(truncated(&format!(
            "body truncated: got {got} of {len} bytes (Content-Length)"
        )));
    }
    Ok(())
}

/// Copies to the end of `reader`; returns the number of bytes copied.
fn copy_all(reader: &mut impl BufRead, out: &mut impl Write) -> io::Result<u64> {
    let mut copied = 0;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(copied);
        }
        let n = buf.len();
        out.write_all(buf)?;
        reader.consume(n);
        copied += n as u64;
    }
}

/// Decodes a chunked body (RFC 9112 §7.1), ignoring extensions and
/// trailers. A stream that ends before the last (empty) chunk is an error.
fn copy_chunked(reader: &mut impl BufRead, out: &mut impl Write) -> io::Result<()> {
    let cut = || truncated("chunked body truncated: the connection closed before the last chunk");
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.take(1024).read_until(b'\n', &mut line)? == 0 {
            return Err(cut());
        }
        if !line.ends_with(b"\n") {
            return Err(bad("bad chunk size line"));
        }
        let size = String::from_utf8_lossy(&line);
        let size = size.split(';').next().unwrap_or("").trim();
        let size =
            u64::from_str_radix(size, 16).map_err(|_| bad(&format!("bad chunk size {size:?}")))?;
        if size == 0 {
            // Trailers end with an empty line; a close before it is the
            // end of the body all the same.
            loop {
                line.clear();
                let n = reader.take(MAX_HEAD as u64).read_until(b'\n', &mut line)?;
                if n == 0 || line.trim_ascii().is_empty() {
                    return Ok(());
                }
            }
        }
        if copy_all(&mut reader.take(size), out)? < size {
            return Err(cut());
        }
        // The CRLF after the chunk's data.
        line.clear();
        if reader.take(2).read_until(b'\n', &mut line)? == 0 {
            return Err(cut());
        }
        if line.trim_ascii() != b"" {
            return Err(bad("no CRLF after a chunk"));
        }
    }
}

/// `http://host[:port][/path]` → (host, port, path).
fn split_url(url: &str) -> io::Result<(&str, u16, &str)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| invalid("only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    // "[::1]:8080" for IPv6 literals, "host:8080" otherwise.
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, rest) = v6.split_once(']').ok_or_else(|| invalid("bad IPv6 host"))?;
            (host, rest.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        return Err(invalid("no host in the URL"));
    }
    let port = match port {
        Some(p) => p.parse().map_err(|_| invalid(&format!("bad port {p:?}")))?,
        None => 80,
    };
    Ok((host, port, path))
}

/// A tiny server for the no-argument case: answers every request with a
/// JSON description of it, like httpbin's `/get`.
fn embedded_server(listener: TcpListener) -> io::Result<()> {
    loop {
        let (stream, peer) = listener.accept()?;
        let _conn = corio::spawn(move || -> io::Result<()> {
            let mut reader = BufReader::new(&stream);
            let mut request_line = String::new();
            reader.read_line(&mut request_line)?;
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = line.trim_end().split_once(':') {
                    headers.push(format!("    \"{}\": \"{}\"", k.trim(), v.trim()));
                }
            }
            let path = request_line.split_whitespace().nth(1).unwrap_or("/");
            let body = format!(
                "{{\n  \"url\": \"{path}\",\n  \"origin\": \"{}\",\n  \"headers\": {{\n{}\n  }}\n}}\n",
                peer.ip(),
                headers.join(",\n")
            );
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            (&stream).write_all(response.as_bytes())
        });
    }
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.to_owned())
}

fn truncated(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, msg.to_owned())
}
