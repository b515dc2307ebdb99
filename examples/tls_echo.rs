//! A TLS echo server and its clients, in one runtime, with rustls used
//! exactly as in blocking code: `rustls::StreamOwned` over a corio
//! `TcpStream`.
//!
//! ```text
//! cargo run --example tls_echo -- --clients 4
//! cargo run --example tls_echo -- --server-only --addr 127.0.0.1:8443
//! openssl s_client -connect 127.0.0.1:8443 -CAfile /tmp/corio-tls_echo-8443.pem \
//!     -verify_return_error -verify_hostname localhost -quiet
//! ```
//!
//! The server's certificate is made at start-up with `rcgen` (self-signed,
//! for `localhost`, `127.0.0.1` and `::1`), and the clients trust exactly
//! that certificate. Each connection is a task; the handshake, reads and
//! writes suspend the task whenever the socket is not ready, so one thread
//! serves every connection and runs every client. Each client prints the
//! TLS version and cipher suite it negotiated and the line the server sent
//! back.
//!
//! With `--server-only` no clients are run: the server prints `listening
//! on ADDR`, then `certificate: PATH`, the PEM file of its certificate
//! (written there for other clients to verify the server with, as in the
//! `openssl s_client -CAfile` line above; by default
//! `$TMPDIR/corio-tls_echo-PORT.pem`, or `--cert PATH`), and serves until
//! Ctrl-C or `SIGTERM`, when it removes the file and exits with status 0.
//! Every line a client sends comes back as `echo: LINE`.
//!
//! Options: `--addr HOST:PORT` (default `127.0.0.1:0`, a free port),
//! `--clients N` (default 4), `--server-only`, `--cert PATH`. A bad
//! argument, an address it cannot listen on, or a client that fails is one
//! line on stderr and exit status 1.

use std::io::{self, BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use corio::net::{TcpListener, TcpStream};
use corio::signal::{SIGINT, SIGTERM, Signals};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

const USAGE: &str =
    "usage: tls_echo [--addr HOST:PORT] [--clients N] [--server-only] [--cert PATH]";

struct Options {
    addr: String,
    clients: usize,
    server_only: bool,
    cert: Option<PathBuf>,
}

fn main() -> ExitCode {
    match parse_args().and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tls_echo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args() -> io::Result<Options> {
    let mut opts = Options {
        addr: "127.0.0.1:0".to_owned(),
        clients: 4,
        server_only: false,
        cert: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| invalid(format!("{arg} needs a value; {USAGE}")))
        };
        match arg.as_str() {
            "--addr" => opts.addr = value()?,
            "--clients" => {
                let v = value()?;
                opts.clients = v
                    .parse()
                    .map_err(|_| invalid(format!("bad --clients {v:?}")))?;
            }
            "--cert" => opts.cert = Some(value()?.into()),
            "--server-only" => opts.server_only = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => return Err(invalid(format!("unexpected {arg:?}; {USAGE}"))),
        }
    }
    Ok(opts)
}

fn run(opts: Options) -> io::Result<()> {
    let (server_config, client_config, pem) = configs()?;
    corio::run(move || {
        // Before the listener: from here on Ctrl-C is ours to handle.
        let mut signals = if opts.server_only {
            Some(Signals::new([SIGINT, SIGTERM])?)
        } else {
            None
        };
        let listener = TcpListener::bind(opts.addr.as_str()).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot listen on {}: {e}", opts.addr))
        })?;
        let addr = listener.local_addr()?;
        let _server = corio::spawn(move || {
            for tcp in listener.incoming() {
                let config = Arc::clone(&server_config);
                let _conn = corio::spawn(move || {
                    match serve(config, tcp?) {
                        // A client gone without close_notify (as `openssl
                        // s_client` does) is its own business.
                        Err(e) if e.kind() != io::ErrorKind::UnexpectedEof => {
                            eprintln!("connection: {e}")
                        }
                        _ => {}
                    }
                    io::Result::Ok(())
                });
            }
        });
        if let Some(signals) = &mut signals {
            let path = opts.cert.unwrap_or_else(|| {
                std::env::temp_dir().join(format!("corio-tls_echo-{}.pem", addr.port()))
            });
            std::fs::write(&path, pem).map_err(|e| {
                io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display()))
            })?;
            println!("listening on {addr}");
            println!("certificate: {}", path.display());
            signals.recv()?;
            let _ = std::fs::remove_file(&path);
            return Ok(());
        }
        println!("TLS echo server on {addr}");
        let clients: Vec<_> = (0..opts.clients)
            .map(|id| {
                let config = Arc::clone(&client_config);
                corio::spawn(move || client(config, addr, id))
            })
            .collect();
        for c in clients {
            println!("{}", c.join().map_err(io::Error::from)??);
        }
        Ok(())
    })
}

/// A fresh self-signed certificate for `localhost` and the loopback
/// addresses; a client config that trusts only it; its PEM.
fn configs() -> io::Result<(Arc<ServerConfig>, Arc<ClientConfig>, String)> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let names = ["localhost", "127.0.0.1", "::1"].map(String::from);
    let ck = rcgen::generate_simple_self_signed(names).map_err(io::Error::other)?;
    let pem = ck.cert.pem();
    let cert: CertificateDer<'static> = ck.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let server = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .map_err(io::Error::other)?;
    let mut roots = RootCertStore::empty();
    roots.add(cert).map_err(io::Error::other)?;
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok((Arc::new(server), Arc::new(client), pem))
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// Echoes lines back until the client closes.
fn serve(config: Arc<ServerConfig>, tcp: TcpStream) -> io::Result<()> {
    let conn = ServerConnection::new(config).map_err(io::Error::other)?;
    let mut reader = BufReader::new(rustls::StreamOwned::new(conn, tcp));
    let mut line = String::new();
    while reader.read_line(&mut line)? > 0 {
        reader
            .get_mut()
            .write_all(format!("echo: {line}").as_bytes())?;
        line.clear();
    }
    let tls = reader.get_mut();
    tls.conn.send_close_notify();
    tls.flush()
}

/// Connects, sends one line, returns a report of what came back.
fn client(config: Arc<ClientConfig>, addr: SocketAddr, id: usize) -> io::Result<String> {
    let tcp = TcpStream::connect(addr).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("client {id}: cannot connect to {addr}: {e}"),
        )
    })?;
    let name = ServerName::try_from("localhost").map_err(io::Error::other)?;
    let conn = ClientConnection::new(config, name).map_err(io::Error::other)?;
    let mut reader = BufReader::new(rustls::StreamOwned::new(conn, tcp));
    reader
        .get_mut()
        .write_all(format!("hello from client {id}\n").as_bytes())?;
    let mut reply = String::new();
    reader.read_line(&mut reply)?;
    let tls = reader.get_mut();
    let report = format!(
        "client {id}: {:?} {:?}: {}",
        tls.conn
            .protocol_version()
            .ok_or_else(|| io::Error::other("no TLS version"))?,
        tls.conn
            .negotiated_cipher_suite()
            .ok_or_else(|| io::Error::other("no cipher suite"))?
            .suite(),
        reply.trim_end()
    );
    tls.conn.send_close_notify();
    tls.flush()?;
    Ok(report)
}
