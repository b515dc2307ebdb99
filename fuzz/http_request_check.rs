//! The checks the fuzz target `http_request` makes on each input: what the
//! read loop of `examples/http_server.rs` relies on. Shared by the fuzz
//! target and `tests/http_parse.rs` (which runs them on stable Rust over the
//! seeds and mutations of them); both include this file next to the
//! parser's, as `check` beside `parse`.

use super::parse::{MAX_HEAD, Parsed, parse};

/// Panics if the parser's verdict on `data` breaks an invariant.
pub fn check(data: &[u8]) {
    let parsed = parse(data);
    match &parsed {
        Parsed::Request { head_len, .. } => {
            // The server skips `head_len` bytes of its buffer.
            assert!(*head_len > 0 && *head_len <= data.len(), "{parsed:?}");
            assert!(*head_len <= MAX_HEAD, "{parsed:?}");
            // The body or the next pipelined request does not change it.
            assert_eq!(parse(&data[..*head_len]), parsed, "head alone");
        }
        // The server reads more only while its buffer (2 * MAX_HEAD) has
        // room: a head that cannot complete in time is rejected.
        Parsed::Partial => assert!(data.len() < MAX_HEAD, "partial at {}", data.len()),
        Parsed::Reject(status) => {
            let code = status.as_bytes();
            assert!(
                code.len() > 4 && code[..3].iter().all(u8::is_ascii_digit) && code[3] == b' ',
                "bad status line {status:?}"
            );
        }
    }
    // A request that arrives in pieces: each piece is either incomplete or
    // already what the whole says (a valid request is never rejected
    // because the client was slow).
    let end = match &parsed {
        Parsed::Request { head_len, .. } => *head_len,
        _ => data.len(),
    };
    let step = (end / 64).max(1);
    for cut in (0..end).step_by(step) {
        let part = parse(&data[..cut]);
        assert!(
            part == Parsed::Partial || part == parsed,
            "{cut} of {} bytes: {part:?}, whole: {parsed:?}",
            data.len()
        );
    }
}
