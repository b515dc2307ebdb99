//! tungstenite over corio `TcpStream`, unchanged: a WebSocket server and its
//! clients as concurrent tasks in one runtime. tungstenite sees an ordinary
//! blocking `Read + Write` stream; corio suspends the task underneath.

use std::io;
use std::net::SocketAddr;

use corio::net::{TcpListener, TcpStream};
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Error, Message, WebSocket};

/// Echoes every data message until the client closes; returns how many.
fn serve(tcp: TcpStream) -> tungstenite::Result<usize> {
    let mut ws = tungstenite::accept(tcp).map_err(|e| match e {
        tungstenite::HandshakeError::Failure(e) => e,
        tungstenite::HandshakeError::Interrupted(_) => unreachable!("corio streams block"),
    })?;
    let mut echoed = 0;
    loop {
        match ws.read() {
            Ok(msg @ (Message::Text(_) | Message::Binary(_))) => {
                ws.send(msg)?;
                echoed += 1;
            }
            // Pings are answered by tungstenite itself; the close handshake
            // too (it replies, then reports ConnectionClosed).
            Ok(_) => {}
            Err(Error::ConnectionClosed) => return Ok(echoed),
            Err(e) => return Err(e),
        }
    }
}

fn connect(addr: SocketAddr, path: &str) -> WebSocket<TcpStream> {
    let tcp = TcpStream::connect(addr).unwrap();
    let (ws, response) = tungstenite::client(format!("ws://{addr}{path}"), tcp).unwrap();
    assert_eq!(response.status(), 101);
    ws
}

/// Reads the next data message (skipping pongs).
fn next_data(ws: &mut WebSocket<TcpStream>) -> Message {
    loop {
        match ws.read().unwrap() {
            Message::Pong(_) => continue,
            m => return m,
        }
    }
}

fn close(mut ws: WebSocket<TcpStream>) {
    ws.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    }))
    .unwrap();
    loop {
        match ws.read() {
            Ok(_) => {}
            Err(Error::ConnectionClosed) => break,
            Err(e) => panic!("closing: {e}"),
        }
    }
}

#[test]
fn websocket_server_and_clients_as_tasks_in_one_runtime() {
    corio::run(|| {
        const CLIENTS: usize = 10;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = corio::spawn(move || {
            let handlers: Vec<_> = (0..CLIENTS)
                .map(|_| {
                    let (tcp, _) = listener.accept().unwrap();
                    corio::spawn(move || serve(tcp))
                })
                .collect();
            handlers
                .into_iter()
                .map(|h| h.join().unwrap().unwrap())
                .sum::<usize>()
        });
        let clients: Vec<_> = (0..CLIENTS)
            .map(|id| {
                corio::spawn(move || {
                    let mut ws = connect(addr, &format!("/client/{id}"));
                    ws.send(Message::Ping(vec![id as u8].into())).unwrap();
                    for i in 0..5 {
                        let text = format!("client {id} message {i}");
                        ws.send(Message::text(text.clone())).unwrap();
                        assert_eq!(next_data(&mut ws), Message::text(text));
                    }
                    ws.send(Message::binary(vec![id as u8; 3])).unwrap();
                    assert_eq!(next_data(&mut ws), Message::binary(vec![id as u8; 3]));
                    close(ws);
                })
            })
            .collect();
        for c in clients {
            c.join().unwrap();
        }
        assert_eq!(server.join().unwrap(), CLIENTS * 6);
    });
}

#[test]
fn a_large_message_crosses_many_reads_and_writes() {
    corio::run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = corio::spawn(move || serve(listener.accept().unwrap().0));
        let mut ws = connect(addr, "/big");
        // Several MiB: far more than the socket buffers, so both tasks
        // suspend mid-frame many times.
        let big: Vec<u8> = (0..4 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
        ws.send(Message::binary(big.clone())).unwrap();
        match next_data(&mut ws) {
            Message::Binary(b) => assert!(b[..] == big[..], "payload differs"),
            m => panic!("unexpected {m:?}"),
        }
        close(ws);
        assert_eq!(server.join().unwrap().unwrap(), 1);
    });
}

#[test]
fn a_dropped_client_is_an_error_on_the_server_not_a_hang() {
    corio::run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = corio::spawn(move || serve(listener.accept().unwrap().0));
        let mut ws = connect(addr, "/drop");
        ws.send(Message::text("one")).unwrap();
        assert_eq!(next_data(&mut ws), Message::text("one"));
        // Gone without a close frame.
        drop(ws);
        match server.join().unwrap() {
            Err(Error::Protocol(_)) | Err(Error::Io(_)) => {}
            other => panic!("expected a protocol or IO error, got {other:?}"),
        }
    });
}

#[test]
fn a_non_websocket_request_is_refused() {
    corio::run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = corio::spawn(move || serve(listener.accept().unwrap().0));
        let mut tcp = TcpStream::connect(addr).unwrap();
        io::Write::write_all(&mut tcp, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        // tungstenite rejects the handshake and the handler drops the socket.
        match server.join().unwrap() {
            Err(Error::Protocol(e)) => assert!(e.to_string().contains("upgrade"), "{e}"),
            other => panic!("expected a handshake error, got {other:?}"),
        }
        let mut reply = String::new();
        io::Read::read_to_string(&mut tcp, &mut reply).unwrap();
        assert_eq!(reply, "");
    });
}
