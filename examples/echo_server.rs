//! A TCP echo server: one task per connection, each a plain blocking-style
//! loop of `read` and `write_all`.
//!
//! Every connection's task suspends in `read` until the client sends
//! something, so one thread serves thousands of connections. This is the
//! server side of the echo benchmark (pair it with `echo_load`):
//!
//! ```text
//! cargo run --release --example echo_server -- --addr 127.0.0.1:7000
//! cargo run --release --example echo_load -- --addr 127.0.0.1:7000 --connections 50 --duration 5
//! ```
//!
//! Options: `--addr HOST:PORT` (default `127.0.0.1:7000`; port 0 picks a
//! free one), `--duration SECS` (exit after that long, printing how many
//! messages were echoed; default: run until killed). The first line printed
//! is `listening on ADDR`, for scripts that start it on port 0.

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::rc::Rc;
use std::time::Duration;

use corio::net::{TcpListener, TcpStream};

fn main() -> io::Result<()> {
    let mut addr = String::from("127.0.0.1:7000");
    let mut duration = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| usage(&arg));
        match arg.as_str() {
            "--addr" => addr = value()?,
            "--duration" => duration = Some(secs(&value()?)?),
            _ => return Err(usage(&arg)),
        }
    }
    corio::run(move || serve(&addr, duration))
}

fn serve(addr: &str, duration: Option<Duration>) -> io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    println!("listening on {}", listener.local_addr()?);
    let echoed = Rc::new(Cell::new(0u64));
    let counter = Rc::clone(&echoed);
    let acceptor = corio::spawn_local(move || {
        for stream in listener.incoming() {
            match stream {
                Ok(stream) => {
                    let counter = Rc::clone(&counter);
                    let _conn = corio::spawn_local(move || echo(stream, &counter));
                }
                // At the open-files limit the listener backs off by itself;
                // report and go on.
                Err(e) => eprintln!("accept: {e}"),
            }
        }
    });
    match duration {
        Some(d) => {
            corio::time::sleep(d);
            println!("echoed {} messages", echoed.get());
            // Returning ends the runtime: every connection task is unwound.
            Ok(())
        }
        None => {
            let _ = acceptor.join();
            Ok(())
        }
    }
}

fn echo(mut stream: TcpStream, echoed: &Cell<u64>) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n])?;
        echoed.set(echoed.get() + 1);
    }
}

fn secs(s: &str) -> io::Result<Duration> {
    s.parse::<f64>()
        .ok()
        .and_then(|v| Duration::try_from_secs_f64(v).ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("bad duration {s:?}")))
}

fn usage(arg: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("unexpected {arg:?}; usage: echo_server [--addr HOST:PORT] [--duration SECS]"),
    )
}
