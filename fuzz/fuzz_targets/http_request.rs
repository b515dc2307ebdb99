//! Feeds arbitrary bytes to the request parser of `examples/http_server.rs`
//! (the same file, included) and checks what the server's read loop relies
//! on: it never panics, a parsed head lies within the bytes given, the
//! verdict on a complete head does not depend on what follows it, and bytes
//! arriving in pieces never get a verdict the whole request would not.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../examples/http_server/parse.rs"]
#[allow(dead_code)]
mod parse;

use parse::{MAX_HEAD, Parsed, parse};

fuzz_target!(|data: &[u8]| check(data));

fn check(data: &[u8]) {
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
