//! A WebSocket server and its clients in one runtime, with tungstenite used
//! exactly as in blocking code, over corio `TcpStream`s.
//!
//! ```text
//! cargo run --example websocket -- --clients 3 --messages 2
//! ```
//!
//! The server task accepts connections and runs one task per client, each
//! a plain `read`/`send` loop that echoes messages back with the time of
//! day in front. Each client task does the opening handshake, sends
//! `--messages` text messages and a ping, prints what comes back, and does
//! the closing handshake. Everything runs on one thread; every socket
//! operation inside tungstenite suspends only its own task.

use std::io;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use corio::net::{TcpListener, TcpStream};
use tungstenite::{Error, Message};

fn main() -> io::Result<()> {
    let (mut clients, mut messages) = (3usize, 2usize);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().and_then(|v| v.parse().ok());
        match (arg.as_str(), value) {
            ("--clients", Some(n)) => clients = n,
            ("--messages", Some(n)) => messages = n,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "usage: websocket [--clients N] [--messages N]",
                ));
            }
        }
    }
    corio::run(move || {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        println!("WebSocket server on ws://{addr}/");
        let _server = corio::spawn(move || {
            for tcp in listener.incoming().flatten() {
                let _conn = corio::spawn(move || {
                    if let Err(e) = serve(tcp) {
                        eprintln!("connection: {e}");
                    }
                });
            }
        });
        let clients: Vec<_> = (0..clients)
            .map(|id| corio::spawn(move || client(addr, id, messages)))
            .collect();
        for c in clients {
            for line in c
                .join()
                .map_err(io::Error::from)?
                .map_err(io::Error::other)?
            {
                println!("{line}");
            }
        }
        Ok(())
    })
}

/// A handshake over a blocking stream either succeeds or fails: only a
/// non-blocking one is ever "interrupted", and corio streams block.
fn handshake_error<R>(e: tungstenite::HandshakeError<R>) -> Error
where
    R: tungstenite::handshake::HandshakeRole,
{
    match e {
        tungstenite::HandshakeError::Failure(e) => e,
        tungstenite::HandshakeError::Interrupted(_) => unreachable!("corio streams block"),
    }
}

/// Echoes text and binary messages until the client closes.
fn serve(tcp: TcpStream) -> tungstenite::Result<()> {
    let mut ws = tungstenite::accept(tcp).map_err(handshake_error)?;
    loop {
        match ws.read() {
            Ok(Message::Text(text)) => {
                let secs = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs()
                    % 86_400;
                let stamp = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
                ws.send(Message::text(format!("[{stamp} UTC] {text}")))?;
            }
            Ok(msg @ Message::Binary(_)) => ws.send(msg)?,
            // tungstenite answers pings and the close handshake itself.
            Ok(_) => {}
            Err(Error::ConnectionClosed) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// One client session; returns the lines to print.
fn client(addr: SocketAddr, id: usize, messages: usize) -> tungstenite::Result<Vec<String>> {
    let tcp = TcpStream::connect(addr)?;
    let (mut ws, response) =
        tungstenite::client(format!("ws://{addr}/client/{id}"), tcp).map_err(handshake_error)?;
    let mut lines = vec![format!(
        "client {id}: handshake {} {}",
        response.status().as_u16(),
        response.status().canonical_reason().unwrap_or("")
    )];
    for i in 0..messages {
        ws.send(Message::text(format!("message {i} from client {id}")))?;
        match ws.read()? {
            Message::Text(reply) => lines.push(format!("client {id}: got {reply}")),
            other => lines.push(format!("client {id}: unexpected {other:?}")),
        }
    }
    ws.send(Message::Ping(b"are you there?".to_vec().into()))?;
    match ws.read()? {
        Message::Pong(p) => lines.push(format!(
            "client {id}: pong {:?}",
            String::from_utf8_lossy(&p)
        )),
        other => lines.push(format!("client {id}: unexpected {other:?}")),
    }
    ws.close(None)?;
    // Read until the server's close frame completes the closing handshake.
    loop {
        match ws.read() {
            Ok(_) => {}
            Err(Error::ConnectionClosed) => break,
            Err(e) => return Err(e),
        }
    }
    lines.push(format!("client {id}: closed"));
    Ok(lines)
}
