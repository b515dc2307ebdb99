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

#[path = "../http_request_check.rs"]
mod check;

fuzz_target!(|data: &[u8]| check::check(data));
