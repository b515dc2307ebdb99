//! The request parser of the `http_server` example: what the head of a
//! connection's buffered bytes is. Included by the example and by the fuzz
//! target `http_request` (`fuzz/`), which feeds it arbitrary bytes.

/// The longest request head accepted.
pub const MAX_HEAD: usize = 8 * 1024;
/// The most headers a request may have.
pub const MAX_HEADERS: usize = 32;

/// What the head of the buffered bytes is.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A complete request head of this many bytes, then a body to skip.
    Request {
        head_len: usize,
        body_len: usize,
        keep_alive: bool,
        head_only: bool,
        /// An HTTP/1.0 request: keep-alive must be said in the response.
        http10: bool,
        /// `Expect: 100-continue`: the client waits for `100 Continue`
        /// before it sends the body.
        expect_continue: bool,
    },
    /// Not all of it has arrived.
    Partial,
    /// Answer with this status line and close.
    Reject(&'static str),
}

/// Parses the request head at the start of `buf` (the bytes buffered and
/// not yet answered).
pub fn parse(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            return Parsed::Reject("431 Request Header Fields Too Large");
        }
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => {
            return Parsed::Reject("431 Request Header Fields Too Large");
        }
        Err(_) => return Parsed::Reject("400 Bad Request"),
    };
    if head_len > MAX_HEAD {
        return Parsed::Reject("431 Request Header Fields Too Large");
    }
    let mut keep_alive = req.version == Some(1);
    let mut body_len = 0;
    let mut expect_continue = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") {
            if h.value.eq_ignore_ascii_case(b"close") {
                keep_alive = false;
            } else if h.value.eq_ignore_ascii_case(b"keep-alive") {
                keep_alive = true;
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            match std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
            {
                Some(n) => body_len = n,
                None => return Parsed::Reject("400 Bad Request"),
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Parsed::Reject("501 Not Implemented");
        } else if h.name.eq_ignore_ascii_case("expect") {
            // HTTP/1.0 clients do not know it (RFC 9110 §10.1.1).
            if !h.value.eq_ignore_ascii_case(b"100-continue") {
                return Parsed::Reject("417 Expectation Failed");
            }
            expect_continue = req.version == Some(1);
        }
    }
    Parsed::Request {
        head_len,
        body_len,
        keep_alive,
        head_only: req.method == Some("HEAD"),
        http10: req.version == Some(0),
        expect_continue,
    }
}
