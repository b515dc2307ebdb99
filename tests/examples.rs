//! Runs each example binary against loopback servers and checks what it
//! does. `cargo test` builds the examples into `target/<profile>/examples/`
//! next to this test's `deps/` directory; a run of this test alone builds
//! them first.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

const EXAMPLES: &[&str] = &[
    "async_interop",
    "chat",
    "echo_load",
    "echo_server",
    "http_get",
    "http_server",
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
        if EXAMPLES
            .iter()
            .all(|e| profile_dir.join("examples").join(e).exists())
        {
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
    profile_dir.join("examples").join(name)
}

/// A running example, killed when dropped.
struct Running {
    child: Child,
    stdout: BufReader<ChildStdout>,
}

impl Running {
    fn start(name: &str, args: &[&str]) -> Running {
        let mut child = Command::new(example(name))
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting example {name}: {e}"));
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Running { child, stdout }
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
    fn finish(mut self) -> String {
        let mut rest = String::new();
        self.stdout.read_to_string(&mut rest).unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "exited with {status}: {rest}");
        rest
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(name: &str, args: &[&str]) -> Output {
    let out = Command::new(example(name)).args(args).output().unwrap();
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

#[test]
fn http_get_with_embedded_server() {
    let out = String::from_utf8(run("http_get", &[]).stdout).unwrap();
    assert!(out.starts_with("status: 200 OK\n"), "{out}");
    assert!(out.contains("\"url\": \"/get\""), "{out}");
    assert!(out.contains("\"User-Agent\": \"corio-http_get\""), "{out}");
}

#[test]
fn http_get_against_http_server() {
    let (_server, addr) = Running::server("http_server", &[]);
    let out = run("http_get", &[&format!("http://{addr}/get")]);
    let out = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out, "status: 200 OK\n\nHello, world!\n");
}

#[test]
fn http_get_decodes_chunked_bodies() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut head = Vec::new();
        let mut byte = [0];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("GET /chunked HTTP/1.1\r\n"), "{head}");
        s.write_all(
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n\
              5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: yes\r\n\r\n",
        )
        .unwrap();
    });
    let out = run("http_get", &[&format!("http://{addr}/chunked")]);
    server.join().unwrap();
    let out = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out, "status: 404 Not Found\n\nhello, world\n");
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
fn echo_server_and_load() {
    let (server, addr) = Running::server("echo_server", &["--duration", "3"]);
    let out = run(
        "echo_load",
        &[
            "--addr",
            &addr.to_string(),
            "--connections",
            "8",
            "--duration",
            "0.5",
            "--threads",
            "2",
        ],
    );
    let line = String::from_utf8(out.stdout).unwrap();
    let field = |key: &str| -> f64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key} in {line}"))
            .parse()
            .unwrap()
    };
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
