//! A WebSocket server and its clients in one runtime, with tungstenite used
//! exactly as in blocking code, over corio `TcpStream`s.
//!
//! ```text
//! cargo run --example websocket -- --clients 3 --messages 2
//! cargo run --example websocket -- --server-only --addr 127.0.0.1:9001
//! python3 -m websockets ws://127.0.0.1:9001/     # or a browser's `new WebSocket(..)`
//! ```
//!
//! The server task accepts connections and runs one task per client, each
//! a plain `read`/`send` loop that echoes messages back with the time of
//! day in front. Each client task does the opening handshake, sends
//! `--messages` text messages and a ping, prints what comes back, and does
//! the closing handshake. Everything runs on one thread; every socket
//! operation inside tungstenite suspends only its own task.
//!
//! With `--server-only` no clients are run: the server prints `listening
//! on ADDR` and `WebSocket server on ws://ADDR/`, serves any WebSocket
//! client (text messages come back as `[HH:MM:SS UTC] TEXT`, binary ones
//! unchanged) until Ctrl-C or `SIGTERM`, and exits with status 0.
//!
//! Options: `--addr HOST:PORT` (default `127.0.0.1:0`, a free port),
//! `--clients N` (default 3), `--messages N` (default 2), `--server-only`.
//! A bad argument, an address it cannot listen on, or a client that fails
//! is one line on stderr and exit status 1.

use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use corio::net::{TcpListener, TcpStream};
use corio::signal::{SIGINT, SIGTERM, Signals};
use tungstenite::{Error, Message};

const USAGE: &str =
    "usage: websocket [--addr HOST:PORT] [--clients N] [--messages N] [--server-only]";

struct Options {
    addr: String,
    clients: usize,
    messages: usize,
    server_only: bool,
}

fn main() -> ExitCode {
    match parse_args().and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("websocket: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args() -> io::Result<Options> {
    let mut opts = Options {
        addr: "127.0.0.1:0".to_owned(),
        clients: 3,
        messages: 2,
        server_only: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| invalid(format!("{arg} needs a value; {USAGE}")))
        };
        let count = |v: String| {
            v.parse()
                .map_err(|_| invalid(format!("bad {arg} {v:?}; {USAGE}")))
        };
        match arg.as_str() {
            "--addr" => opts.addr = value()?,
            "--clients" => opts.clients = count(value()?)?,
            "--messages" => opts.messages = count(value()?)?,
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
            for tcp in listener.incoming().flatten() {
                let _conn = corio::spawn(move || {
                    if let Err(e) = serve(tcp) {
                        eprintln!("connection: {e}");
                    }
                });
            }
        });
        if let Some(signals) = &mut signals {
            println!("listening on {addr}");
            println!("WebSocket server on ws://{addr}/");
            signals.recv()?;
            return Ok(());
        }
        println!("WebSocket server on ws://{addr}/");
        let clients: Vec<_> = (0..opts.clients)
            .map(|id| corio::spawn(move || client(addr, id, opts.messages)))
            .collect();
        for (id, c) in clients.into_iter().enumerate() {
            let lines = c
                .join()
                .map_err(io::Error::from)?
                .map_err(|e| io::Error::other(format!("client {id} ({addr}): {e}")))?;
            for line in lines {
                println!("{line}");
            }
        }
        Ok(())
    })
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
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
