//! Runs each example binary against loopback servers and checks what it
//! does. `cargo test` builds the examples into `target/<profile>/examples/`
//! next to this test's `deps/` directory; a run of this test alone builds
//! them first.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

const EXAMPLES: &[&str] = &[
    "async_interop",
    "chat",
    "echo_load",
    "echo_server",
    "http_get",
    "http_server",
    "sim_kv",
    "stuck",
    "tls_echo",
    "tour",
    "websocket",
];

/// The path of the built example `name`.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        // Built when missing or older than their source. (Not always: the
        // environment of a test run differs from a shell's enough to make
        // cargo rebuild dependencies, twice per run.)
        let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let modified = |p: &std::path::Path| p.metadata().and_then(|m| m.modified()).ok();
        let fresh = EXAMPLES.iter().all(|e| {
            let built = modified(&profile_dir.join("examples").join(e));
            let source = modified(&manifest.join("examples").join(format!("{e}.rs")));
            built.is_some() && built >= source
        });
        if fresh {
            return;
        }
        let mut cmd = Command::new(option_env!("CARGO").unwrap_or("cargo"));
        cmd.args(["build", "--examples"]);
        if profile_dir.ends_with("release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("running cargo build --examples");
        assert!(status.success(), "building the examples failed");
    });
    let path = profile_dir.join("examples").join(name);
    assert!(
        EXAMPLES.contains(&name) && path.exists(),
        "no example {name}"
    );
    path
}

/// A running example, killed when dropped.
struct Running {
    child: Child,
    stdout: BufReader<ChildStdout>,
    stderr: ChildStderr,
}

impl Running {
    fn start(name: &str, args: &[&str]) -> Running {
        let mut child = Command::new(example(name))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting example {name}: {e}"));
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let stderr = child.stderr.take().unwrap();
        Running {
            child,
            stdout,
            stderr,
        }
    }

    /// Starts a server example on a free port and returns its address,
    /// read from its first line ("listening on ADDR").
    fn server(name: &str, args: &[&str]) -> (Running, SocketAddr) {
        let mut all = vec!["--addr", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let mut r = Running::start(name, &all);
        let line = r.line();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("{name} printed {line:?}"))
            .parse()
            .unwrap();
        (r, addr)
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line
    }

    /// Waits for the process to exit; returns the rest of its output.
    fn finish(self) -> String {
        let (status, rest, errors) = self.exit();
        assert!(status.success(), "exited with {status}: {rest}{errors}");
        rest
    }

    /// Waits for the process to exit; returns its status and the rest of
    /// its stdout and stderr.
    fn exit(mut self) -> (ExitStatus, String, String) {
        let mut rest = String::new();
        self.stdout.read_to_string(&mut rest).unwrap();
        let mut errors = Vec::new();
        self.stderr.read_to_end(&mut errors).unwrap();
        let errors = String::from_utf8(without_asan_notes(&errors)).unwrap();
        (self.child.wait().unwrap(), rest, errors)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Drops the notes AddressSanitizer prints when a program switches stacks
/// and then calls a `noreturn` function (the examples run under ASan in
/// CI): they are the sanitizer's, not the example's output.
fn without_asan_notes(stderr: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(stderr);
    let mut kept = String::new();
    for line in text.split_inclusive('\n') {
        let note = (line.starts_with("==") && line.contains("WARNING: ASan"))
            || line.starts_with("False positive error reports may follow")
            || line.starts_with("For details see https://github.com/google/sanitizers/");
        if !note {
            kept.push_str(line);
        }
    }
    kept.into_bytes()
}

fn run(name: &str, args: &[&str]) -> Output {
    let mut out = Command::new(example(name)).args(args).output().unwrap();
    out.stderr = without_asan_notes(&out.stderr);
    assert!(
        out.status.success(),
        "{name} {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn read_all(mut s: &TcpStream) -> String {
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Whether the program `name` is on the `PATH`; prints why a test is
/// skipped when it is not.
fn have(name: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()));
    if !found {
        eprintln!("skipping: `{name}` is not installed");
    }
    found
}

/// Runs an example, whatever its exit status.
fn output(name: &str, args: &[&str]) -> Output {
    let mut out = Command::new(example(name)).args(args).output().unwrap();
    out.stderr = without_asan_notes(&out.stderr);
    out
}

/// A server thread for one connection: it reads the request head, writes
/// `response` and closes (or, with `None`, never answers).
fn one_shot_server(response: Option<Vec<u8>>) -> (SocketAddr, std::thread::JoinHandle<()>) {
    // Any build first, so that it does not eat the wait below.
    example("http_get");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let server = std::thread::spawn(move || {
        // A client that never comes (an old binary that failed at once)
        // must not hang the test.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut s = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => panic!("no client came: {e}"),
            }
        };
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut head = Vec::new();
        let mut byte = [0];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        match response {
            Some(response) => s.write_all(&response).unwrap(),
            // Hold the connection until the client gives up.
            None => drop(s.read(&mut [0; 16])),
        }
    });
    (addr, server)
}

/// Asserts that a failed run said what went wrong in one readable line.
fn assert_readable_error(out: &Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "exit status 0: {stderr}");
    assert!(stderr.contains(what), "{what:?} not in {stderr:?}");
    for debug in ["Custom {", "Os {", "kind:", "Kind("] {
        assert!(!stderr.contains(debug), "a Debug struct: {stderr:?}");
    }
    stderr
}

#[test]
fn http_get_with_embedded_server() {
    let out = run("http_get", &[]);
    assert_eq!(String::from_utf8_lossy(&out.stderr), "status: 200 OK\n");
    let body = String::from_utf8(out.stdout).unwrap();
    assert!(body.contains("\"url\": \"/get\""), "{body}");
    assert!(
        body.contains("\"User-Agent\": \"corio-http_get\""),
        "{body}"
    );
}

#[test]
fn http_get_against_http_server() {
    let (_server, addr) = Running::server("http_server", &[]);
    let out = run("http_get", &[&format!("http://{addr}/get")]);
    assert_eq!(out.stdout, b"Hello, world!");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "status: 200 OK\n");
}

#[test]
fn http_get_decodes_chunked_bodies() {
    let (addr, server) = one_shot_server(Some(
        b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n\
          5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: yes\r\n\r\n"
            .to_vec(),
    ));
    let out = run("http_get", &[&format!("http://{addr}/chunked")]);
    server.join().unwrap();
    // Without --fail a 404 is a response like any other.
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "hello, world");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "status: 404 Not Found\n"
    );
}

/// 200,000 bytes that are not UTF-8.
fn binary_body() -> Vec<u8> {
    (0..200_000u32).map(|i| (i * 131 % 256) as u8).collect()
}

#[test]
fn http_get_writes_binary_bodies_unchanged() {
    let body = binary_body();
    let mut response = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(&body);
    let (addr, server) = one_shot_server(Some(response));
    let out = run("http_get", &[&format!("http://{addr}/bin")]);
    server.join().unwrap();
    assert_eq!(out.stdout.len(), body.len());
    assert!(out.stdout == body, "the body changed on the way");

    // Chunked, in chunks that cut through the middle of what would be
    // multi-byte characters.
    let mut response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for chunk in body.chunks(4097) {
        response.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        response.extend_from_slice(chunk);
        response.extend_from_slice(b"\r\n");
    }
    response.extend_from_slice(b"0\r\n\r\n");
    let (addr, server) = one_shot_server(Some(response));
    let out = run("http_get", &[&format!("http://{addr}/bin")]);
    server.join().unwrap();
    assert!(out.stdout == body, "the chunked body changed on the way");
}

#[test]
fn http_get_fail_on_http_errors() {
    let response = b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope".to_vec();
    let (addr, server) = one_shot_server(Some(response.clone()));
    let url = format!("http://{addr}/missing");
    let out = output("http_get", &["--fail", &url]);
    server.join().unwrap();
    let stderr = assert_readable_error(&out, &format!("{url}: server returned 404 Not Found"));
    assert_eq!(out.status.code(), Some(22), "{stderr}");
    assert!(out.stdout.is_empty(), "a body was written");

    // Without --fail: the body, and success.
    let (addr, server) = one_shot_server(Some(response));
    let out = run("http_get", &[&format!("http://{addr}/missing")]);
    server.join().unwrap();
    assert_eq!(out.stdout, b"nope");

    // --help documents it.
    let help = String::from_utf8(run("http_get", &["--help"]).stdout).unwrap();
    assert!(help.contains("--fail") && help.contains("22"), "{help}");
}

#[test]
fn http_get_reports_truncated_bodies() {
    let (addr, server) = one_shot_server(Some(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten..".to_vec(),
    ));
    let out = output("http_get", &[&format!("http://{addr}/")]);
    server.join().unwrap();
    let stderr = assert_readable_error(&out, "truncated: got 10 of 100 bytes");
    assert!(stderr.contains(&addr.to_string()), "{stderr}");

    let (addr, server) = one_shot_server(Some(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\na\r\nabc".to_vec(),
    ));
    let out = output("http_get", &[&format!("http://{addr}/")]);
    server.join().unwrap();
    assert_readable_error(&out, "chunked body truncated");
    // What did arrive was written.
    assert_eq!(out.stdout, b"helloabc");
}

#[test]
fn http_get_times_out_and_names_the_address() {
    let (addr, server) = one_shot_server(None);
    let t = Instant::now();
    let out = output(
        "http_get",
        &["--timeout", "0.3", &format!("http://{addr}/slow")],
    );
    let stderr = assert_readable_error(&out, "timed out");
    assert!(stderr.contains(&format!("reading from {addr}")), "{stderr}");
    assert!(t.elapsed() < Duration::from_secs(20));
    server.join().unwrap();

    // Connection refused: a port nobody listens on any more.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = output("http_get", &[&format!("http://127.0.0.1:{port}/")]);
    assert_readable_error(&out, &format!("cannot connect to 127.0.0.1:{port}"));
    let out = output("http_get", &["https://example.com/"]);
    assert_readable_error(&out, "only http:// URLs are supported");
}

/// The `trace_hash` a run of the simulation example `sim_kv` prints.
fn sim_kv_trace(args: &[&str]) -> String {
    let out = String::from_utf8(output("sim_kv", args).stdout).unwrap();
    let hash = out
        .split("trace_hash: ")
        .nth(1)
        .unwrap_or_else(|| panic!("{out}"));
    hash.split(';').next().unwrap().to_owned()
}

#[test]
fn sim_kv_same_seed_same_trace() {
    for args in [&["--seed", "7"][..], &["--seed", "1", "--bug"][..]] {
        let (a, b) = (sim_kv_trace(args), sim_kv_trace(args));
        assert_eq!(a, b, "sim_kv {args:?} ran differently twice");
    }
    assert_ne!(
        sim_kv_trace(&["--seed", "7"]),
        sim_kv_trace(&["--seed", "8"])
    );
}

#[test]
fn sim_kv_finds_the_bug_and_names_the_seed() {
    let out = output("sim_kv", &["--bug", "--seeds", "1000"]);
    assert!(!out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("read-your-writes violated"), "{stdout}");
    assert!(
        stdout.contains("replay: cargo run --example sim_kv -- --bug --seed "),
        "{stdout}"
    );
    run("sim_kv", &["--seeds", "200"]);
}

#[test]
fn tour_runs() {
    let out = run(
        "tour",
        &["--clients", "200", "--tasks", "1000", "--delay-ms", "1"],
    );
    let out = String::from_utf8(out.stdout).unwrap();
    assert!(out.contains("fibonacci: 0 1 1 2 3 5 8 13 21 34"), "{out}");
    assert!(out.contains("1,000 tasks each sleep 10 ms"), "{out}");
    assert!(out.contains("200 responses: 200 × 200 OK"), "{out}");
    // The task table shows clients waiting on their sockets.
    assert!(
        out.contains("client            waiting: io (read fd"),
        "{out}"
    );
    assert!(
        out.contains("concurrently:") && out.contains("one after another:"),
        "{out}"
    );
}

#[test]
fn stuck_deadlock_reports_the_cycle_and_panics() {
    let out = output("stuck", &["deadlock"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(101), "{err}");
    assert!(err.contains("corio: deadlock: all 3 tasks"), "{err}");
    assert!(
        err.contains("cycle: task 2 'a-to-b' → task 3 'b-to-a' → task 2 'a-to-b'"),
        "{err}"
    );
    assert!(err.contains("held by task 3 'b-to-a'"), "{err}");
    assert!(err.contains("stuck::transfer"), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("unreachable"));
}

#[test]
fn stuck_stall_reports_the_task_and_where_it_yielded() {
    let out = run("stuck", &["stall"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("corio: stall: task 3 'hog' (spawned at examples/stuck.rs:"),
        "{err}"
    );
    assert_eq!(err.matches("corio: stall: ").count(), 1, "{err}");
    assert!(
        err.contains("corio: stall ended: task 3 'hog' ran for about"),
        "{err}"
    );
    assert!(err.contains("stuck::stall"), "{err}");
}

#[test]
fn stuck_dump_shows_wait_objects_backtraces_and_the_graph() {
    let out = run("stuck", &["dump"]);
    let dump = String::from_utf8_lossy(&out.stdout);
    for want in [
        "waiting: lock on Mutex 0x",
        "held by task 1 'main'",
        "waiting: join task 3 'sleeper'",
        "waiting: timer, ",
        "s left",
        "waiting: read fd ",
        " ← 127.0.0.1:",
        "waiting: channel",
        "spawned at examples/stuck.rs:",
        "backtrace:",
        "stuck::dump",
        "wait graph:",
        "task 4 'joiner' → task 3 'sleeper'",
        "dump: done",
    ] {
        assert!(dump.contains(want), "{want:?} not in:\n{dump}");
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("corio: dump requested by a signal"), "{err}");
}

#[test]
fn stuck_rejects_bad_arguments() {
    for args in [&[][..], &["bogus"][..]] {
        let out = output("stuck", args);
        let err = assert_readable_error(&out, "usage: stuck deadlock|stall|dump");
        assert_eq!(out.status.code(), Some(2), "{err}");
    }
}

/// Runs `echo_load` against `addr` with `args`; its one line of results.
fn echo_load(addr: std::net::SocketAddr, args: &[&str]) -> String {
    let addr = addr.to_string();
    let mut all = vec!["--addr", &addr];
    all.extend_from_slice(args);
    String::from_utf8(run("echo_load", &all).stdout).unwrap()
}

/// The number after `key=` in an `echo_load` result line.
fn load_field(line: &str, key: &str) -> f64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in {line}"))
        .parse()
        .unwrap_or_else(|e| panic!("{key} in {line}: {e}"))
}

#[test]
fn echo_server_and_load() {
    let (server, addr) = Running::server("echo_server", &["--duration", "3"]);
    let line = echo_load(
        addr,
        &["--connections", "8", "--duration", "0.5", "--threads", "2"],
    );
    let field = |key: &str| load_field(&line, key);
    assert!(line.starts_with("echo_load: "), "{line}");
    assert_eq!(field("connections"), 8.0);
    assert_eq!(field("errors"), 0.0);
    let requests = field("requests");
    assert!(requests > 0.0, "{line}");
    assert!(field("rps") > 0.0 && field("p50_us") > 0.0);
    assert!(field("p99_us") >= field("p50_us"));
    // The server counted the same messages.
    let rest = server.finish();
    assert_eq!(rest.trim(), format!("echoed {requests} messages"));
}

#[test]
fn echo_load_paced_sends_exactly_its_schedule() {
    let (server, addr) = Running::server("echo_server", &["--duration", "3"]);
    // 4 connections at 2,000 messages/s in all: one every 2 ms each, their
    // first at 0, 0.5, 1 and 1.5 ms, for 0.5 s: 250 each, whatever the
    // server's speed (a late echo delays the next send, not the count).
    let line = echo_load(
        addr,
        &["--connections", "4", "--duration", "0.5", "--rate", "2000"],
    );
    assert_eq!(load_field(&line, "rate"), 2000.0);
    assert_eq!(load_field(&line, "requests"), 1000.0, "{line}");
    assert_eq!(load_field(&line, "errors"), 0.0);
    assert_eq!(server.finish().trim(), "echoed 1000 messages");
    let out = output("echo_load", &["--rate", "0"]);
    assert_readable_error(&out, "echo_load: bad argument \"0\"");
}

#[test]
fn echo_server_and_http_server_with_workers() {
    for workers in ["1", "2"] {
        let (server, addr) =
            Running::server("echo_server", &["--workers", workers, "--duration", "2"]);
        // Enough connections that both workers' listeners get some.
        let conns: Vec<_> = (0..16).map(|_| TcpStream::connect(addr).unwrap()).collect();
        for c in &conns {
            round_trip(c, b"ping");
            round_trip(c, b"pong");
        }
        drop(conns);
        assert_eq!(server.finish().trim(), "echoed 32 messages");

        let (_server, addr) = Running::server("http_server", &["--workers", workers]);
        for _ in 0..8 {
            let out = run("http_get", &[&format!("http://{addr}/get")]);
            assert_eq!(out.stdout, b"Hello, world!");
        }
    }
    for name in ["echo_server", "http_server"] {
        let out = output(name, &["--workers", "0"]);
        assert_readable_error(&out, &format!("{name}: "));
    }
}

/// Sends `sig` to a running example.
fn signal(r: &Running, sig: libc::c_int) {
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(r.child.id() as libc::pid_t, sig) }, 0);
}

/// Writes `msg` and reads the echo back.
fn round_trip(s: &TcpStream, msg: &[u8]) {
    let mut s = s;
    s.write_all(msg).unwrap();
    let mut back = vec![0; msg.len()];
    s.read_exact(&mut back).unwrap();
    assert_eq!(back, msg);
}

#[test]
fn echo_server_shuts_down_gracefully_on_sigint() {
    let (mut server, addr) = Running::server("echo_server", &[]);
    let open = connect(addr);
    round_trip(&open, b"before");
    signal(&server, libc::SIGINT);
    assert_eq!(server.line(), "shutting down: 1 open connection(s)\n");
    // No longer accepting: the listening socket is closed.
    let refused = TcpStream::connect(addr).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    // The open connection is still served until its client closes it.
    round_trip(&open, b"after");
    open.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_all(&open), "");
    // `finish` asserts exit status 0.
    let rest = server.finish();
    assert_eq!(
        rest,
        "shutdown: 1 finished, 0 cancelled; echoed 2 messages\n"
    );
}

#[test]
fn echo_server_cancels_connections_still_open_after_the_grace_period() {
    let (mut server, addr) = Running::server("echo_server", &["--grace", "0.2"]);
    let idle = connect(addr);
    round_trip(&idle, b"only message");
    signal(&server, libc::SIGTERM);
    assert_eq!(server.line(), "shutting down: 1 open connection(s)\n");
    let rest = server.finish();
    assert_eq!(
        rest,
        "shutdown: 0 finished, 1 cancelled; echoed 1 messages\n"
    );
    // The server closed the connection it cancelled.
    assert_eq!(read_all(&idle), "");
}

#[test]
fn echo_server_quits_at_once_on_a_second_signal() {
    let (mut server, addr) = Running::server("echo_server", &["--grace", "60"]);
    let open = connect(addr);
    round_trip(&open, b"hello");
    signal(&server, libc::SIGINT);
    assert_eq!(server.line(), "shutting down: 1 open connection(s)\n");
    signal(&server, libc::SIGINT);
    let t = Instant::now();
    let (status, rest, errors) = server.exit();
    assert!(t.elapsed() < Duration::from_secs(30), "it waited");
    assert_eq!(status.code(), Some(130), "{rest}{errors}");
    assert_eq!(rest, "");
    assert_eq!(
        errors,
        "echo_server: second signal, exiting without waiting for open connections\n"
    );
}

#[test]
fn echo_server_reports_bad_addresses() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = output("echo_server", &["--addr", &addr]);
    assert_readable_error(
        &out,
        &format!("echo_server: cannot listen on {addr}: Address already in use"),
    );
    let out = output("echo_server", &["--addr", "nonsense"]);
    assert_readable_error(&out, "echo_server: cannot listen on nonsense: ");
}

const GET: &str = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

#[test]
fn http_server_keep_alive_and_pipelining() {
    let (_server, addr) = Running::server("http_server", &[]);
    let mut s = connect(addr);
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let response = |reader: &mut BufReader<TcpStream>| {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        let mut body = [0; 13];
        reader.read_exact(&mut body).unwrap();
        assert_eq!(&body, b"Hello, world!");
        head
    };
    // Keep-alive: two requests one after the other on one connection.
    s.write_all(GET.as_bytes()).unwrap();
    let head = response(&mut reader);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Content-Length: 13\r\n"), "{head}");
    assert!(head.contains(" GMT\r\n"), "no Date header: {head}");
    s.write_all(GET.as_bytes()).unwrap();
    response(&mut reader);
    // Pipelining: three requests in one write (one with a body), split
    // across two writes mid-request.
    let batch = format!("{GET}POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello{GET}");
    let (a, b) = batch.split_at(batch.len() - 10);
    s.write_all(a.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    s.write_all(b.as_bytes()).unwrap();
    for _ in 0..3 {
        response(&mut reader);
    }
    // Connection: close ends the connection after the response.
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let rest = read_all(&s);
    assert!(rest.contains("Connection: close") && rest.ends_with("Hello, world!"));
}

#[test]
fn http_server_rejects_bad_requests() {
    let (_server, addr) = Running::server("http_server", &[]);
    let s = connect(addr);
    (&s).write_all(b"GARBAGE\x01 / HTTP/1.1\r\n\r\n").unwrap();
    assert!(read_all(&s).starts_with("HTTP/1.1 400 Bad Request\r\n"));

    let s = connect(addr);
    let big = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(10_000));
    (&s).write_all(big.as_bytes()).unwrap();
    let reply = read_all(&s);
    assert!(reply.starts_with("HTTP/1.1 431 "), "{reply}");

    let s = connect(addr);
    let many: String = (0..40).map(|i| format!("H{i}: v\r\n")).collect();
    (&s).write_all(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes())
        .unwrap();
    assert!(read_all(&s).starts_with("HTTP/1.1 431 "));

    let s = connect(addr);
    (&s).write_all(b"POST / HTTP/1.1\r\nContent-Length: nope\r\n\r\n")
        .unwrap();
    assert!(read_all(&s).starts_with("HTTP/1.1 400 "));

    // Still serving.
    let s = connect(addr);
    (&s).write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    assert!(read_all(&s).starts_with("HTTP/1.1 200 OK\r\n"));
}

#[test]
fn http_server_drops_slow_clients() {
    let (_server, addr) = Running::server("http_server", &["--timeout-ms", "300"]);
    // Sends nothing: closed without a response.
    let idle = connect(addr);
    // Sends half a request, then dribbles: 408, then closed.
    let half = connect(addr);
    (&half).write_all(b"GET / HTTP/1.1\r\nHost:").unwrap();
    let t = Instant::now();
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(100));
        let _ = (&half).write_all(b" x");
    }
    assert_eq!(read_all(&idle), "");
    let reply = read_all(&half);
    assert!(reply.starts_with("HTTP/1.1 408 "), "{reply:?}");
    let waited = t.elapsed();
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    // A client that keeps its requests coming is not dropped.
    let busy = connect(addr);
    for _ in 0..5 {
        (&busy).write_all(GET.as_bytes()).unwrap();
        let mut buf = [0; 512];
        assert!((&busy).read(&mut buf).unwrap() > 0);
        std::thread::sleep(Duration::from_millis(100));
    }
    busy.shutdown(Shutdown::Write).unwrap();
}

/// Reads one response (head and a `Content-Length` body) from `reader`.
fn read_response(reader: &mut BufReader<TcpStream>) -> (String, Vec<u8>) {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "closed: {head:?}");
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .map_or(0, |v| v.parse().unwrap());
    let mut body = vec![0; len];
    reader.read_exact(&mut body).unwrap();
    (head, body)
}

#[test]
fn http_server_keeps_http10_connections_alive_when_asked() {
    let (_server, addr) = Running::server("http_server", &[]);
    let s = connect(addr);
    let mut reader = BufReader::new(s.try_clone().unwrap());
    for _ in 0..5 {
        (&s).write_all(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            .unwrap();
        let (head, body) = read_response(&mut reader);
        assert!(head.contains("\r\nConnection: keep-alive\r\n"), "{head}");
        assert_eq!(body, b"Hello, world!");
    }
    // Without the header, HTTP/1.0 closes.
    (&s).write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let (head, _) = read_response(&mut reader);
    assert!(head.contains("\r\nConnection: close\r\n"), "{head}");
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
}

#[test]
fn http_server_answers_expect_100_continue() {
    let (_server, addr) = Running::server("http_server", &[]);
    let s = connect(addr);
    let mut reader = BufReader::new(s.try_clone().unwrap());
    (&s).write_all(
        b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    // The interim response comes before the body is sent...
    let mut interim = [0; 25];
    reader.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    (&s).write_all(b"hello world").unwrap();
    // ...then the final one, and the connection serves the next request.
    let (head, body) = read_response(&mut reader);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body, b"Hello, world!");
    (&s).write_all(GET.as_bytes()).unwrap();
    let (head, _) = read_response(&mut reader);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");

    // Another expectation is refused.
    let s = connect(addr);
    (&s).write_all(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nExpect: magic\r\n\r\n")
        .unwrap();
    assert!(read_all(&s).starts_with("HTTP/1.1 417 "));
}

#[test]
fn http_server_with_curl_upload_then_reuse() {
    if !have("curl") {
        return;
    }
    let (_server, addr) = Running::server("http_server", &[]);
    let upload = std::env::temp_dir().join(format!("corio-upload-{}", std::process::id()));
    std::fs::write(&upload, vec![b'x'; 100_000]).unwrap();
    let out = Command::new("curl")
        .args([
            "-sS",
            "--fail",
            "--max-time",
            "20",
            "-H",
            "Expect: 100-continue",
        ])
        .arg("--data-binary")
        .arg(format!("@{}", upload.display()))
        .arg(format!("http://{addr}/upload"))
        .arg(format!("http://{addr}/again"))
        .output()
        .unwrap();
    std::fs::remove_file(&upload).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"Hello, world!Hello, world!");
}

#[test]
fn http_server_with_ab_keep_alive() {
    if !have("ab") {
        return;
    }
    let (_server, addr) = Running::server("http_server", &[]);
    let out = Command::new("ab")
        .args(["-k", "-n", "1000", "-c", "10", "-s", "20", "-q"])
        .arg(format!("http://{addr}/"))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("Complete requests:      1000"), "{report}");
    assert!(report.contains("Failed requests:        0"), "{report}");
    assert!(report.contains("Keep-Alive requests:    1000"), "{report}");
}

#[test]
fn http_server_shuts_down_gracefully_on_sigterm() {
    let (mut server, addr) = Running::server("http_server", &[]);
    // One connection between requests, one in the middle of one.
    let idle = connect(addr);
    (&idle).write_all(GET.as_bytes()).unwrap();
    let mut idle_reader = BufReader::new(idle.try_clone().unwrap());
    read_response(&mut idle_reader);
    let busy = connect(addr);
    (&busy)
        .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    signal(&server, libc::SIGTERM);
    assert_eq!(server.line(), "shutting down: 2 open connection(s)\n");
    let refused = TcpStream::connect(addr).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    // The idle one is closed; the busy one gets its answer, and a close.
    let mut rest = Vec::new();
    idle_reader.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    (&busy).write_all(b"cd").unwrap();
    let reply = read_all(&busy);
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(reply.contains("\r\nConnection: close\r\n"), "{reply}");
    // `finish` asserts exit status 0.
    assert_eq!(server.finish(), "shutdown: 2 finished, 0 cancelled\n");
}

#[test]
fn http_server_cancels_what_outlives_the_grace_period() {
    let (mut server, addr) = Running::server("http_server", &["--grace", "0.2"]);
    let half = connect(addr);
    (&half).write_all(b"GET / HTTP/1.1\r\nHost:").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    signal(&server, libc::SIGINT);
    assert_eq!(server.line(), "shutting down: 1 open connection(s)\n");
    assert_eq!(server.finish(), "shutdown: 0 finished, 1 cancelled\n");
    assert_eq!(read_all(&half), "");
    // A port in use is one readable line and a failure.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let out = output(
        "http_server",
        &["--addr", &taken.local_addr().unwrap().to_string()],
    );
    assert_readable_error(&out, "cannot listen on 127.0.0.1:");
}

#[test]
fn chat_broadcasts_lines() {
    let (_server, addr) = Running::server("chat", &[]);
    let alice = connect(addr);
    let mut alice_in = BufReader::new(alice.try_clone().unwrap());
    let line = |r: &mut BufReader<TcpStream>| {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        l
    };
    assert!(line(&mut alice_in).starts_with("welcome to corio chat, you are guest1"));
    (&alice).write_all(b"/nick alice\n").unwrap();
    assert_eq!(line(&mut alice_in), "* guest1 is now alice\n");

    let bob = connect(addr);
    let mut bob_in = BufReader::new(bob.try_clone().unwrap());
    assert!(line(&mut bob_in).starts_with("welcome to corio chat, you are guest2"));
    assert_eq!(line(&mut alice_in), "* guest2 joined\n");

    (&alice).write_all(b"hello bob\n").unwrap();
    assert_eq!(line(&mut bob_in), "alice: hello bob\n");
    (&bob).write_all(b"/who\n").unwrap();
    assert_eq!(line(&mut bob_in), "* here: alice, guest2\n");
    (&bob).write_all(b"hi alice\n").unwrap();
    assert_eq!(line(&mut alice_in), "guest2: hi alice\n");

    (&alice).write_all(b"/quit\n").unwrap();
    assert_eq!(line(&mut bob_in), "* alice left\n");
    assert_eq!(line(&mut alice_in), "", "alice's connection is closed");
}

#[test]
fn chat_survives_invalid_utf8_and_caps_line_length() {
    let (_server, addr) = Running::server("chat", &[]);
    let line = |r: &mut BufReader<TcpStream>| {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        l
    };
    let alice = connect(addr);
    let mut alice_in = BufReader::new(alice.try_clone().unwrap());
    assert!(line(&mut alice_in).starts_with("welcome"));
    let bob = connect(addr);
    let mut bob_in = BufReader::new(bob.try_clone().unwrap());
    assert!(line(&mut bob_in).starts_with("welcome"));
    assert_eq!(line(&mut alice_in), "* guest2 joined\n");

    // Not UTF-8: passed on lossily, and bob stays connected.
    (&bob).write_all(b"caf\xe9 \xff\xfe ok\n").unwrap();
    assert_eq!(
        line(&mut alice_in),
        "guest2: caf\u{fffd} \u{fffd}\u{fffd} ok\n"
    );

    // Over 4 KiB: refused to its sender, never broadcast.
    let long = format!("{}\n", "a".repeat(10_000));
    (&bob).write_all(long.as_bytes()).unwrap();
    assert_eq!(
        line(&mut bob_in),
        "* line too long (over 4096 bytes), not sent\n"
    );
    // Exactly at the limit: sent.
    let max = format!("{}\n", "b".repeat(4095));
    (&bob).write_all(max.as_bytes()).unwrap();
    assert_eq!(line(&mut alice_in), format!("guest2: {max}"));
    (&bob).write_all(b"still here\n").unwrap();
    assert_eq!(line(&mut alice_in), "guest2: still here\n");
}

#[test]
fn examples_report_bad_addresses_in_one_line() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().to_string();
    for name in ["chat", "http_server", "websocket", "tour", "echo_server"] {
        let out = output(name, &["--addr", &busy]);
        assert_readable_error(
            &out,
            &format!("{name}: cannot listen on {busy}: Address already in use"),
        );
        let out = output(name, &["--addr", "no-such-host.invalid:1"]);
        assert_readable_error(
            &out,
            &format!("{name}: cannot listen on no-such-host.invalid:1: "),
        );
        let out = output(name, &["--bogus"]);
        assert_readable_error(&out, &format!("{name}: "));
    }
    // Refused: a port nobody listens on any more.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = output(
        "echo_load",
        &[
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--connections",
            "1",
            "--duration",
            "0.1",
        ],
    );
    assert_readable_error(
        &out,
        &format!(
            "echo_load: connection failed: cannot connect to 127.0.0.1:{port}: Connection refused"
        ),
    );
    let out = output("echo_load", &["--connections", "many"]);
    assert_readable_error(&out, "echo_load: bad argument \"many\"");
}

#[test]
fn async_interop_runs() {
    let out = String::from_utf8(run("async_interop", &[]).stdout).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert_eq!(
        lines[0],
        "async-channel: 1250 messages from 4 tasks and 1 thread, sum 4155625"
    );
    assert!(lines[1].starts_with("async-lock: 3 writers, 5 readers saw lengths ["));
    assert!(lines[1].ends_with("], final length 4"), "{out}");
    assert_eq!(
        lines[2],
        "futures: sum of the even squares of 1..=20, computed by 20 tasks: 1540"
    );
    assert_eq!(
        lines[3],
        "unblock: \"done on the pool\" and 42 from one join!"
    );
}

#[test]
fn tls_echo_runs() {
    let out = String::from_utf8(run("tls_echo", &["--clients", "3"]).stdout).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("TLS echo server on 127.0.0.1:"),
        "{out}"
    );
    assert_eq!(lines.len(), 4, "{out}");
    for (id, line) in lines[1..].iter().enumerate() {
        assert!(
            line.starts_with(&format!("client {id}: TLSv1_3 TLS13_")),
            "{line}"
        );
        assert!(
            line.ends_with(&format!(": echo: hello from client {id}")),
            "{line}"
        );
    }
}

/// Reads `r` line by line in a thread until a line equal to `want`
/// arrives (true) or it ends or 20 seconds pass (false).
fn wait_for_line(r: impl Read + Send + 'static, want: &str) -> bool {
    let (tx, rx) = std::sync::mpsc::channel();
    let want = want.to_owned();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            match line {
                Ok(line) if line.trim_end() == want => {
                    let _ = tx.send(());
                    return;
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(20)).is_ok()
}

#[test]
fn tls_echo_server_only_with_openssl_s_client() {
    if !have("openssl") {
        return;
    }
    let (mut server, addr) = Running::server("tls_echo", &["--server-only"]);
    let cert = server.line();
    let cert = PathBuf::from(cert.trim().strip_prefix("certificate: ").unwrap());
    assert!(
        std::fs::read_to_string(&cert)
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    let mut client = Command::new("openssl")
        .args(["s_client", "-quiet", "-verify_return_error", "-connect"])
        .arg(addr.to_string())
        .arg("-CAfile")
        .arg(&cert)
        .args(["-verify_hostname", "localhost"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    client
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"hello from openssl\n")
        .unwrap();
    let echoed = wait_for_line(client.stdout.take().unwrap(), "echo: hello from openssl");
    let _ = client.kill();
    let _ = client.wait();
    assert!(echoed, "no echo through openssl s_client");
    // SIGTERM: status 0, and the certificate file is gone.
    signal(&server, libc::SIGTERM);
    server.finish();
    assert!(!cert.exists());
}

#[test]
fn tls_echo_reports_bad_addresses() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = output("tls_echo", &["--server-only", "--addr", &addr]);
    assert_readable_error(&out, &format!("tls_echo: cannot listen on {addr}: "));
    let out = output("tls_echo", &["--clients", "many"]);
    assert_readable_error(&out, "tls_echo: bad --clients \"many\"");
}

#[test]
fn websocket_server_only_with_other_clients() {
    let (mut server, addr) = Running::server("websocket", &["--server-only"]);
    assert_eq!(server.line(), format!("WebSocket server on ws://{addr}/\n"));

    // tungstenite over a std socket: nothing of corio on this side.
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (mut ws, _) = tungstenite::client(format!("ws://{addr}/"), tcp).unwrap();
    ws.send(tungstenite::Message::text("hello from the test"))
        .unwrap();
    let reply = ws.read().unwrap().into_text().unwrap();
    assert!(reply.ends_with(" UTC] hello from the test"), "{reply}");
    ws.send(tungstenite::Message::binary(vec![0u8, 255, 1]))
        .unwrap();
    assert_eq!(&ws.read().unwrap().into_data()[..], &[0, 255, 1]);
    ws.close(None).unwrap();
    while ws.read().is_ok() {}

    // Python's `websockets`, when installed.
    let python = have("python3")
        && Command::new("python3")
            .args(["-c", "import websockets.sync.client"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if python {
        let script = "import sys\n\
            from websockets.sync.client import connect\n\
            with connect(sys.argv[1], open_timeout=10) as ws:\n\
            \x20   ws.send('hello from python')\n\
            \x20   print(ws.recv(timeout=10))\n";
        let out = Command::new("python3")
            .args(["-c", script, &format!("ws://{addr}/")])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.trim_end().ends_with(" UTC] hello from python"),
            "{stdout}"
        );
    } else {
        eprintln!("skipping the python client: no python3 `websockets` module");
    }
    // SIGTERM: status 0.
    signal(&server, libc::SIGTERM);
    server.finish();
}

#[test]
fn websocket_runs() {
    let out =
        String::from_utf8(run("websocket", &["--clients", "2", "--messages", "2"]).stdout).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("WebSocket server on ws://127.0.0.1:"),
        "{out}"
    );
    assert_eq!(lines.len(), 1 + 2 * 5, "{out}");
    for id in 0..2 {
        let client: Vec<&str> = lines
            .iter()
            .filter(|l| l.starts_with(&format!("client {id}: ")))
            .copied()
            .collect();
        assert_eq!(
            client[0],
            format!("client {id}: handshake 101 Switching Protocols")
        );
        for (i, line) in client[1..3].iter().enumerate() {
            assert!(
                line.ends_with(&format!("UTC] message {i} from client {id}")),
                "{line}"
            );
        }
        assert_eq!(client[3], format!("client {id}: pong \"are you there?\""));
        assert_eq!(client[4], format!("client {id}: closed"));
    }
}
