//! Networking benchmarks: corio against tokio's current-thread runtime and
//! may with one worker, on TCP echo and HTTP/1.1 keep-alive hello world.
//!
//! ```text
//! cargo bench --bench net                        # everything, 3 rounds of 10 s
//! cargo bench --bench net -- --only echo --rounds 1 --seconds 5
//! cargo bench --bench net -- --only syscalls,callgrind
//! cargo bench --bench net -- --help
//! ```
//!
//! Each server runs as its own process pinned to core 0 (`taskset -c 0`);
//! the load generator runs pinned to core 1. corio's servers are the
//! `echo_server` and `http_server` examples (built by this harness with
//! `cargo build --release --example ...`); the tokio and may servers are
//! in this binary (`net serve tokio-echo ADDR`, ...). The echo load for all
//! three is corio's `echo_load` example; the HTTP load is `wrk -t1 -c50`.
//!
//! Per run it reports requests/s and p50/p99 latency (from the generator),
//! server CPU time per request (utime + stime from `/proc/<pid>/stat`
//! around the measured window), how busy each core was, and how much of
//! that was other processes — this machine is shared, so a busy neighbour
//! shows up in the table instead of silently skewing it.
//!
//! On two cores the generator can saturate its core before the server
//! does. Then requests/s measures the generator, and server CPU time per
//! request is the figure that compares the servers; the report says which
//! case each run was.

// The modules live in benches/net/ (a crate root's modules would otherwise
// be looked up beside it, among the other benches).

#[path = "net/callgrind.rs"]
mod callgrind;
#[path = "net/hello.rs"]
mod hello;
#[path = "net/load.rs"]
mod load;
#[path = "net/may_server.rs"]
mod may_server;
#[path = "net/procs.rs"]
mod procs;
#[path = "net/report.rs"]
mod report;
#[path = "net/runner.rs"]
mod runner;
#[path = "net/syscalls.rs"]
mod syscalls;
#[path = "net/tokio_server.rs"]
mod tokio_server;

use std::net::SocketAddr;
use std::process::ExitCode;

use runner::Options;

fn main() -> ExitCode {
    // cargo passes `--bench` to harness = false benches.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) == Some("serve") {
        return serve(&args[1..]);
    }
    match Options::parse(&args) {
        Ok(Some(options)) => runner::run(&options),
        Ok(None) => {
            println!("{}", Options::USAGE);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("net bench: {e}\n\n{}", Options::USAGE);
            ExitCode::FAILURE
        }
    }
}

/// `net serve KIND ADDR`: runs one comparator server until killed.
fn serve(args: &[String]) -> ExitCode {
    let (Some(kind), Some(addr)) = (args.first(), args.get(1)) else {
        eprintln!("usage: net serve tokio-echo|tokio-http|may-echo|may-http ADDR");
        return ExitCode::FAILURE;
    };
    let addr: SocketAddr = match addr.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("net serve: bad address {addr:?}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match kind.as_str() {
        "tokio-echo" => tokio_server::echo(addr),
        "tokio-http" => tokio_server::http(addr),
        "may-echo" => may_server::echo(addr),
        "may-http" => may_server::http(addr),
        other => {
            eprintln!("net serve: unknown server {other:?}");
            return ExitCode::FAILURE;
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("net serve {kind}: {e}");
            ExitCode::FAILURE
        }
    }
}
