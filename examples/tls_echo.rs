//! A TLS echo server and its clients, in one runtime, with rustls used
//! exactly as in blocking code: `rustls::StreamOwned` over a corio
//! `TcpStream`.
//!
//! ```text
//! cargo run --example tls_echo -- --clients 4
//! ```
//!
//! The server's certificate is made at start-up with `rcgen` (self-signed,
//! for `localhost`), and the clients trust exactly that certificate. Each
//! connection is a task; the handshake, reads and writes suspend the task
//! whenever the socket is not ready, so one thread serves every connection
//! and runs every client. Each client prints the TLS version and cipher
//! suite it negotiated and the line the server sent back.

use std::io::{self, BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::sync::Arc;

use corio::net::{TcpListener, TcpStream};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

fn main() -> io::Result<()> {
    let mut clients = 4usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--clients", Some(n)) => clients = n.parse().map_err(io::Error::other)?,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "usage: tls_echo [--clients N]",
                ));
            }
        }
    }
    let (server_config, client_config) = configs()?;
    corio::run(move || {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        println!("TLS echo server on {addr}");
        let _server = corio::spawn(move || {
            for tcp in listener.incoming() {
                let config = Arc::clone(&server_config);
                let _conn = corio::spawn(move || {
                    if let Err(e) = serve(config, tcp?) {
                        eprintln!("connection: {e}");
                    }
                    io::Result::Ok(())
                });
            }
        });
        let clients: Vec<_> = (0..clients)
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

/// A fresh self-signed certificate for `localhost`; a client config that
/// trusts only it.
fn configs() -> io::Result<(Arc<ServerConfig>, Arc<ClientConfig>)> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
        .map_err(io::Error::other)?;
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
    Ok((Arc::new(server), Arc::new(client)))
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
    let tcp = TcpStream::connect(addr)?;
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
        tls.conn.protocol_version().unwrap(),
        tls.conn.negotiated_cipher_suite().unwrap().suite(),
        reply.trim_end()
    );
    tls.conn.send_close_notify();
    tls.flush()?;
    Ok(report)
}
