//! A line-based chat server: every line a client sends is broadcast to all
//! the other connected clients.
//!
//! ```text
//! cargo run --example chat -- --addr 127.0.0.1:7007
//! nc 127.0.0.1 7007        # in two or more other terminals
//! ```
//!
//! Commands: `/nick NAME` renames you, `/who` lists who is here, `/quit`
//! leaves. Each client is a task that reads lines with a `BufReader` over
//! its `&TcpStream` and suspends until the next line arrives; the room is
//! plain single-threaded state (`Rc<RefCell<..>>`) shared by the tasks of
//! the one runtime thread (`spawn_local`), since tasks never leave their
//! thread.
//!
//! One rule matters with shared `RefCell` state: never hold a borrow across
//! a call that may suspend (a socket write can wait for the peer), or
//! another task will find the cell borrowed. `broadcast` therefore copies
//! the list of recipients out before writing. A client that stops reading
//! is dropped after a 2-second write timeout instead of stalling everyone.
//!
//! Input is bytes, not necessarily UTF-8: what is not valid UTF-8 is passed
//! on as U+FFFD (`�`) rather than ending the session. A line is at most
//! 4 KiB (4096 bytes, newline included); a longer one is not broadcast —
//! it is skipped up to its newline and its sender gets `* line too long
//! (over 4096 bytes), not sent`, with the connection kept open. So one
//! client can neither make the server buffer without limit nor flood the
//! room with one huge line.
//!
//! Options: `--addr HOST:PORT` (default `127.0.0.1:7007`; the first line
//! printed is `listening on ADDR`). A bad argument, or an address it cannot
//! listen on, is one line on stderr and exit status 1.

use std::cell::RefCell;
use std::io::{self, BufRead, BufReader, Write};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use corio::net::{TcpListener, TcpStream};

struct Client {
    id: u64,
    name: String,
    stream: Rc<TcpStream>,
}

#[derive(Default)]
struct Room {
    clients: Vec<Client>,
    next_id: u64,
}

type SharedRoom = Rc<RefCell<Room>>;

/// The longest line a client may send, newline included.
const MAX_LINE: usize = 4096;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = match args.next().as_deref() {
        Some("--addr") => args.next().ok_or_else(|| {
            io::Error::other("--addr needs a value; usage: chat [--addr HOST:PORT]")
        })?,
        Some(other) => {
            return Err(io::Error::other(format!(
                "unexpected argument {other:?}; usage: chat [--addr HOST:PORT]"
            )));
        }
        None => "127.0.0.1:7007".to_owned(),
    };
    corio::run(move || {
        let listener = TcpListener::bind(addr.as_str())
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
        println!("listening on {}", listener.local_addr()?);
        let room = SharedRoom::default();
        for stream in listener.incoming() {
            match stream {
                Ok(stream) => {
                    let room = Rc::clone(&room);
                    let _session = corio::spawn_local(move || session(stream, &room));
                }
                Err(e) => eprintln!("accept: {e}"),
            }
        }
        Ok(())
    })
}

fn session(stream: TcpStream, room: &SharedRoom) -> io::Result<()> {
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let stream = Rc::new(stream);
    let (id, name) = {
        let mut r = room.borrow_mut();
        r.next_id += 1;
        let (id, name) = (r.next_id, format!("guest{}", r.next_id));
        r.clients.push(Client {
            id,
            name: name.clone(),
            stream: Rc::clone(&stream),
        });
        (id, name)
    };
    (&*stream).write_all(
        format!("welcome to corio chat, you are {name}; commands: /nick NAME, /who, /quit\n")
            .as_bytes(),
    )?;
    broadcast(room, id, &format!("* {name} joined\n"));

    let result = read_lines(&stream, room, id);

    let name = name_of(room, id);
    room.borrow_mut().clients.retain(|c| c.id != id);
    broadcast(room, id, &format!("* {name} left\n"));
    result
}

/// One line read by [`read_line`].
enum Line {
    /// The client closed its side.
    End,
    /// A line, without its newline, decoded lossily.
    Text(String),
    /// A line over [`MAX_LINE`], skipped.
    TooLong,
}

/// Reads a line of at most [`MAX_LINE`] bytes, buffering no more than that
/// whatever the client sends.
fn read_line(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<Line> {
    buf.clear();
    let mut too_long = false;
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() && buf.is_empty() && !too_long {
            return Ok(Line::End);
        }
        let newline = available.iter().position(|&b| b == b'\n');
        let n = newline.map_or(available.len(), |i| i + 1);
        if buf.len() + n > MAX_LINE {
            too_long = true;
            buf.clear();
        } else if !too_long {
            buf.extend_from_slice(&available[..n]);
        }
        reader.consume(n);
        // A line ends at its newline, or at the end of the stream.
        if newline.is_some() || n == 0 {
            return Ok(if too_long {
                Line::TooLong
            } else {
                Line::Text(String::from_utf8_lossy(buf).into_owned())
            });
        }
    }
}

fn read_lines(stream: &TcpStream, room: &SharedRoom, id: u64) -> io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        let line = match read_line(&mut reader, &mut buf)? {
            Line::End => return Ok(()),
            Line::Text(line) => line,
            Line::TooLong => {
                let mut out = stream;
                out.write_all(
                    format!("* line too long (over {MAX_LINE} bytes), not sent\n").as_bytes(),
                )?;
                continue;
            }
        };
        let line = line.trim_end();
        if let Some(new) = line.strip_prefix("/nick ") {
            let new = new.trim().to_owned();
            let old = room
                .borrow_mut()
                .clients
                .iter_mut()
                .find(|c| c.id == id)
                .map(|c| std::mem::replace(&mut c.name, new.clone()));
            match old {
                Some(old) => broadcast(room, 0, &format!("* {old} is now {new}\n")),
                // Dropped from the room by a failed broadcast.
                None => return Ok(()),
            }
        } else if line == "/who" {
            let names: Vec<String> = room
                .borrow()
                .clients
                .iter()
                .map(|c| c.name.clone())
                .collect();
            let mut out = stream;
            out.write_all(format!("* here: {}\n", names.join(", ")).as_bytes())?;
        } else if line == "/quit" {
            return Ok(());
        } else if !line.is_empty() {
            broadcast(room, id, &format!("{}: {line}\n", name_of(room, id)));
        }
    }
}

/// Sends `msg` to everyone but the client `from` (0: to everyone).
fn broadcast(room: &SharedRoom, from: u64, msg: &str) {
    // Copy the recipients out: writes may suspend, and other tasks need the
    // room meanwhile.
    let recipients: Vec<(u64, Rc<TcpStream>)> = room
        .borrow()
        .clients
        .iter()
        .filter(|c| c.id != from)
        .map(|c| (c.id, Rc::clone(&c.stream)))
        .collect();
    for (id, stream) in recipients {
        if (&*stream).write_all(msg.as_bytes()).is_err() {
            // Gone or stuck: drop it; its own task sees the shutdown and leaves.
            let _ = stream.shutdown(std::net::Shutdown::Both);
            room.borrow_mut().clients.retain(|c| c.id != id);
        }
    }
}

fn name_of(room: &SharedRoom, id: u64) -> String {
    room.borrow()
        .clients
        .iter()
        .find(|c| c.id == id)
        .map_or_else(|| format!("guest{id}"), |c| c.name.clone())
}
