//! ureq 3 over corio sockets (`corio::compat::ureq`, feature `ureq`):
//! concurrent GETs from tasks of one runtime against the `http_server`
//! example, a Python `http.server`, and a small server in this file
//! (redirects, chunked bodies, TLS through ureq's rustls); the
//! `ureq_fetch` example against each; and the proof that a request in
//! flight does not hold the thread.
//!
//! Run with `cargo test --features ureq --test compat_ureq`.
#![cfg(feature = "ureq")]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use corio::net::TcpListener;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection};
use ureq::ResponseExt;
use ureq::tls::{Certificate, RootCerts, TlsConfig};

/// The examples these tests run, built with the feature they need (a
/// plain `cargo test` does not build `required-features` examples).
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        let mut cmd = Command::new(option_env!("CARGO").unwrap_or("cargo"));
        // The features this test was built with, so that the library is
        // not built a second time for a different set.
        let features = if cfg!(feature = "redis") {
            "ureq,redis"
        } else {
            "ureq"
        };
        cmd.args(["build", "--features", features]);
        cmd.args(["--example", "ureq_fetch", "--example", "http_server"]);
        if profile_dir.ends_with("release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("running cargo build");
        assert!(status.success(), "building the examples failed");
    });
    profile_dir.join("examples").join(name)
}

/// A child process, killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the `http_server` example on a free port.
fn http_server_example() -> (Killed, SocketAddr) {
    let mut child = Command::new(example("http_server"))
        .args(["--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the http_server example");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("http_server printed {line:?}"))
        .parse()
        .unwrap();
    (Killed(child), addr)
}

/// Runs the `ureq_fetch` example; its output, which must end in success.
fn ureq_fetch(args: &[&str]) -> String {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(example("ureq_fetch"))
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8(stdout).unwrap();
    assert!(
        status.success(),
        "ureq_fetch {args:?}: {status}\n{stdout}\n{}",
        String::from_utf8_lossy(&stderr)
    );
    stdout
}

fn agent() -> ureq::Agent {
    // A timeout turns a request that cannot finish into a failed assertion
    // instead of a hung test.
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(20)))
        .build();
    corio::compat::ureq::agent_with(config)
}

/// `n` concurrent GETs of `url` from tasks of one runtime; their bodies.
fn concurrent_gets(agent: &ureq::Agent, url: &str, n: usize) -> Vec<String> {
    corio::run(|| {
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let (agent, url) = (agent.clone(), url.to_owned());
                corio::spawn(move || -> Result<String, ureq::Error> {
                    let mut response = agent.get(&url).call()?;
                    assert_eq!(response.status(), 200);
                    response.body_mut().read_to_string()
                })
            })
            .collect();
        tasks
            .into_iter()
            .map(|t| t.join().unwrap().unwrap())
            .collect()
    })
}

#[test]
fn a_hundred_concurrent_gets_of_the_http_server_example() {
    let (_server, addr) = http_server_example();
    let bodies = concurrent_gets(&agent(), &format!("http://localhost:{}/", addr.port()), 100);
    assert_eq!(bodies.len(), 100);
    assert!(bodies.iter().all(|b| b == "Hello, world!"), "{bodies:?}");

    let out = ureq_fetch(&["--repeat", "100", &format!("http://{addr}/")]);
    assert!(
        out.ends_with("100 requests, 0 failed, 1300 bytes\n"),
        "{out}"
    );
    assert_eq!(out.matches(" 200 13\n").count(), 100, "{out}");
}

#[test]
fn a_hundred_concurrent_gets_of_a_python_http_server() {
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!(
            "skipped: python3 is not installed (the test serves files with python3 -m http.server)"
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!("corio-compat-ureq-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let content: String = (0..5000).map(|i| format!("line {i}\n")).collect();
    std::fs::write(dir.join("file.txt"), &content).unwrap();
    let (_python, port) = python_http_server(&dir);

    let url = format!("http://127.0.0.1:{port}/file.txt");
    let bodies = concurrent_gets(&agent(), &url, 100);
    assert!(bodies.iter().all(|b| *b == content));

    let out = ureq_fetch(&["--repeat", "20", &url]);
    let summary = format!("20 requests, 0 failed, {} bytes\n", 20 * content.len());
    assert!(out.ends_with(&summary), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `python3 -m http.server` on a free port, serving `dir`.
fn python_http_server(dir: &Path) -> (Killed, u16) {
    let mut child = Command::new("python3")
        .args([
            "-u",
            "-m",
            "http.server",
            "0",
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    // "Serving HTTP on 127.0.0.1 port 40123 (http://127.0.0.1:40123/) ..."
    let port = line
        .split_whitespace()
        .skip_while(|w| *w != "port")
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("python3 -m http.server printed {line:?}"));
    (Killed(child), port)
}

/// What the test server shares with the test.
#[derive(Default)]
struct Held {
    /// Requests for `/held` that have arrived and wait.
    arrived: AtomicUsize,
    /// Set by the test: answer them.
    release: AtomicBool,
}

/// A small HTTP/1.1 server on its own thread and runtime (plain, or TLS
/// with `tls`). Routes: `/hello`; `/redirect` (302 to `/chunked`);
/// `/chunked` (ten chunks, written a few milliseconds apart); `/held`
/// (answered once the test sets `release`).
fn test_server(tls: Option<Arc<ServerConfig>>, held: Arc<Held>) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        corio::run(move || {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            loop {
                let (tcp, _) = listener.accept().unwrap();
                let (tls, held) = (tls.clone(), held.clone());
                drop(corio::spawn(move || {
                    let _ = match tls {
                        None => serve(tcp, &held),
                        Some(config) => {
                            let conn = ServerConnection::new(config).unwrap();
                            serve(rustls::StreamOwned::new(conn, tcp), &held)
                        }
                    };
                }));
            }
        })
    });
    rx.recv().unwrap()
}

/// Answers the requests of one connection until the client closes it.
fn serve(mut stream: impl Read + Write, held: &Held) -> io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0; 4096];
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        req.parse(&buf[..head_end]).map_err(io::Error::other)?;
        let path = req.path.unwrap_or("/").to_owned();
        buf.drain(..head_end);
        match path.as_str() {
            "/redirect" => stream.write_all(
                b"HTTP/1.1 302 Found\r\nLocation: /chunked\r\nContent-Length: 0\r\n\r\n",
            )?,
            "/chunked" => {
                stream.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")?;
                stream.flush()?;
                for i in 0..10 {
                    let data = format!("chunk {i}\n");
                    write!(stream, "{:x}\r\n{data}\r\n", data.len())?;
                    stream.flush()?;
                    corio::time::sleep(Duration::from_millis(2));
                }
                stream.write_all(b"0\r\n\r\n")?;
            }
            "/held" => {
                held.arrived.fetch_add(1, Ordering::SeqCst);
                while !held.release.load(Ordering::SeqCst) {
                    corio::time::sleep(Duration::from_millis(2));
                }
                stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nreleased")?;
            }
            _ => stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")?,
        }
        stream.flush()?;
    }
}

const CHUNKED_BODY: &str = "chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n\
                            chunk 5\nchunk 6\nchunk 7\nchunk 8\nchunk 9\n";

#[test]
fn redirects_are_followed_and_chunked_bodies_read() {
    let addr = test_server(None, Arc::default());
    let agent = agent();
    corio::run(|| {
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let agent = agent.clone();
                corio::spawn(move || {
                    let mut response = agent
                        .get(format!("http://localhost:{}/redirect", addr.port()))
                        .call()
                        .unwrap();
                    assert_eq!(response.status(), 200);
                    assert_eq!(response.get_uri().path(), "/chunked");
                    response.body_mut().read_to_string().unwrap()
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.join().unwrap(), CHUNKED_BODY);
        }
    });
    let out = ureq_fetch(&[&format!("http://{addr}/redirect")]);
    assert_eq!(
        out,
        format!(
            "http://{addr}/redirect 200 {len}\n1 requests, 0 failed, {len} bytes\n",
            len = CHUNKED_BODY.len()
        )
    );
}

/// A server config with a fresh self-signed certificate for `localhost`,
/// and that certificate.
fn tls_config() -> (Arc<ServerConfig>, CertificateDer<'static>, String) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert: CertificateDer<'static> = ck.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    (Arc::new(server), cert, ck.cert.pem())
}

#[test]
fn tls_through_ureqs_rustls_against_a_local_server() {
    let (server, cert, pem) = tls_config();
    let addr = test_server(Some(server), Arc::default());
    let roots = RootCerts::Specific(Arc::new(vec![Certificate::from_der(&cert).to_owned()]));
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(20)))
        .tls_config(TlsConfig::builder().root_certs(roots).build())
        .build();
    let agent = corio::compat::ureq::agent_with(config);
    let port = addr.port();
    let bodies = concurrent_gets(&agent, &format!("https://localhost:{port}/hello"), 50);
    assert!(bodies.iter().all(|b| b == "hello"), "{bodies:?}");
    let bodies = concurrent_gets(&agent, &format!("https://localhost:{port}/redirect"), 10);
    assert!(bodies.iter().all(|b| b == CHUNKED_BODY), "{bodies:?}");

    // The certificate is checked: an agent that does not trust it fails.
    let err = corio::run(|| {
        corio::compat::ureq::agent()
            .get(format!("https://localhost:{port}/hello"))
            .call()
            .unwrap_err()
    });
    assert!(err.to_string().contains("certificate"), "{err}");

    let ca = std::env::temp_dir().join(format!("corio-compat-ureq-{}.pem", std::process::id()));
    std::fs::write(&ca, pem).unwrap();
    let url = format!("https://localhost:{port}/hello");
    let out = ureq_fetch(&["--ca", ca.to_str().unwrap(), "--repeat", "10", &url]);
    assert!(out.ends_with("10 requests, 0 failed, 50 bytes\n"), "{out}");
    let _ = std::fs::remove_file(&ca);
}

/// The server holds every `/held` request until all of them have arrived
/// and then until a ticker task of the client's runtime has ticked while
/// they wait. If a request held the thread, the ticker could not tick and
/// the other requests could not be sent: the requests would time out.
#[test]
fn requests_in_flight_leave_the_thread_to_other_tasks() {
    const REQUESTS: usize = 20;
    const TICKS: usize = 5;
    let held = Arc::new(Held::default());
    let addr = test_server(None, held.clone());
    let agent = agent();
    let ticks_while_held = corio::run(|| {
        let requests: Vec<_> = (0..REQUESTS)
            .map(|_| {
                let agent = agent.clone();
                corio::spawn(move || {
                    // A host name: the lookup must not block the thread either.
                    let url = format!("http://localhost:{}/held", addr.port());
                    agent.get(url).call()?.body_mut().read_to_string()
                })
            })
            .collect();
        let ticker = corio::spawn(move || {
            while held.arrived.load(Ordering::SeqCst) < REQUESTS {
                corio::time::sleep(Duration::from_millis(1));
            }
            // Every request waits in the server now; the thread is ours.
            for _ in 0..TICKS {
                corio::time::sleep(Duration::from_millis(5));
            }
            held.release.store(true, Ordering::SeqCst);
            TICKS
        });
        for r in requests {
            assert_eq!(r.join().unwrap().unwrap(), "released");
        }
        ticker.join().unwrap()
    });
    assert_eq!(ticks_while_held, TICKS);
}
