//! What every server in the comparison answers, and the check that they
//! really answer the same bytes.
//!
//! may_minihttp hard-codes its status line and first headers, so its
//! response is the reference (the others are configured to match it; the
//! case of the reason phrase is not compared):
//!
//! ```text
//! HTTP/1.1 200 Ok\r\nServer: M\r\nDate: <IMF-fixdate>\r\nContent-Length: 13\r\n\r\nHello, world!
//! ```

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The response body.
pub const BODY: &str = "Hello, world!";
/// The reason phrase of the status line, as may_minihttp spells it.
pub const REASON: &str = "Ok";
/// The `Server` header value may_minihttp sends.
pub const SERVER: &str = "M";
/// Read buffer of the comparator echo servers.
pub const ECHO_BUF: usize = 4096;

/// The request the check sends (what wrk sends, give or take the host).
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

/// Fetches one response from the server at `addr` and returns it with the
/// `Date` value replaced by `<date>`, so responses from different servers
/// compare equal when only the clock differs.
pub fn fetch_normalised(addr: SocketAddr) -> io::Result<String> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(REQUEST)?;
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        if let Some(len) = complete_len(&got) {
            got.truncate(len);
            break;
        }
    }
    Ok(normalise(&String::from_utf8_lossy(&got)))
}

/// The length of the first complete response in `buf`, if there is one.
fn complete_len(buf: &[u8]) -> Option<usize> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..head_end]);
    let body_len = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())
                .flatten()
        })
        .unwrap_or(0);
    (buf.len() >= head_end + body_len).then_some(head_end + body_len)
}

/// Replaces the `Date` value by `<date>` and writes the status line in
/// lower case (`200 OK` and may_minihttp's `200 Ok` are the same bytes but
/// for case).
fn normalise(response: &str) -> String {
    response
        .split("\r\n")
        .map(|line| match line.split_once(':') {
            Some((name, _)) if name.eq_ignore_ascii_case("date") => format!("{name}: <date>"),
            _ if line.starts_with("HTTP/") => line.to_ascii_lowercase(),
            _ => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// The normalised reference response.
pub fn expected() -> String {
    normalise(&format!(
        "HTTP/1.1 200 {REASON}\r\nServer: {SERVER}\r\nDate: <date>\r\nContent-Length: {}\r\n\r\n{BODY}",
        BODY.len()
    ))
}
