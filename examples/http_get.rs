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
//! cargo run --example http_get          # fetches from an embedded local server
//! ```
//!
//! It prints `status: CODE REASON`, a blank line, and the body. Only plain
//! `http://` URLs are supported; bodies may be sized by `Content-Length`,
//! chunked, or run to the end of the connection.

use std::io::{self, BufRead, BufReader, Read, Write};

use corio::net::{TcpListener, TcpStream};

struct Response {
    status: u16,
    reason: String,
    body: Vec<u8>,
}

fn main() -> io::Result<()> {
    let url = std::env::args().nth(1);
    corio::run(move || {
        let url = match url {
            Some(url) => url,
            None => {
                // No URL: serve one ourselves, from a task on this thread.
                let listener = TcpListener::bind("127.0.0.1:0")?;
                let addr = listener.local_addr()?;
                let _server = corio::spawn(move || embedded_server(listener));
                format!("http://{addr}/get")
            }
        };
        let response = get(&url)?;
        println!("status: {} {}", response.status, response.reason);
        println!();
        println!("{}", String::from_utf8_lossy(&response.body));
        Ok(())
    })
}

/// Fetches `url` with one HTTP/1.1 GET.
fn get(url: &str) -> io::Result<Response> {
    let (host, port, path) = split_url(url)?;
    let mut stream = TcpStream::connect((host, port))?;
    // Formatted first and sent with one write (several small writes in a
    // row would run into Nagle's algorithm).
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: corio-http_get\r\n\
         Accept: */*\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes())?;

    // Read until the head is complete, then parse it.
    let mut reader = BufReader::new(stream);
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if reader.read_until(b'\n', &mut head)? == 0 {
            return Err(bad("connection closed before the response head ended"));
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut headers);
    parsed.parse(&head).map_err(|e| bad(&e.to_string()))?;
    let status = parsed.code.ok_or_else(|| bad("no status"))?;
    let reason = parsed.reason.unwrap_or("").to_owned();
    let header = |name: &str| {
        parsed
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
    };

    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        read_chunked(&mut reader, &mut body)?;
    } else if let Some(len) = header("content-length") {
        let len: u64 = len.parse().map_err(|_| bad("bad Content-Length"))?;
        reader.take(len).read_to_end(&mut body)?;
    } else {
        reader.read_to_end(&mut body)?;
    }
    Ok(Response {
        status,
        reason,
        body,
    })
}

/// Decodes a chunked body (RFC 9112 §7.1), ignoring extensions and trailers.
fn read_chunked(reader: &mut impl BufRead, body: &mut Vec<u8>) -> io::Result<()> {
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let size = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| bad("bad chunk size"))?;
        if size == 0 {
            // Trailers end with an empty line.
            loop {
                line.clear();
                if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                    return Ok(());
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        reader.read_line(&mut line)?; // the CRLF after the chunk
    }
}

/// `http://host[:port][/path]` → (host, port, path).
fn split_url(url: &str) -> io::Result<(&str, u16, &str)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| bad("only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    // "[::1]:8080" for IPv6 literals, "host:8080" otherwise.
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, rest) = v6.split_once(']').ok_or_else(|| bad("bad IPv6 host"))?;
            (host, rest.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let port = match port {
        Some(p) => p.parse().map_err(|_| bad("bad port"))?,
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
                "{{\n  \"url\": \"{path}\",\n  \"origin\": \"{}\",\n  \"headers\": {{\n{}\n  }}\n}}",
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
