//! The may comparators: a TCP echo server and may_minihttp's hello world,
//! with one may worker thread (`may::config().set_workers(1)`).

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use may::coroutine;
use may::net::TcpListener;
use may_minihttp::{HttpServer, HttpService, Request, Response};

use crate::hello;

fn one_worker() {
    may::config().set_workers(1);
}

/// Spawns a may coroutine.
fn go(f: impl FnOnce() + Send + 'static) -> io::Result<coroutine::JoinHandle<()>> {
    // SAFETY: `may::coroutine::spawn` is unsafe because a coroutine may be
    // resumed on another worker thread, which is unsound if it caches a
    // thread-local across a switch. With a single worker there is no other
    // thread to move to, and these closures touch no thread-locals
    // themselves (may's own are written for migration).
    unsafe { coroutine::Builder::new().spawn(f) }
}

/// Echoes every byte back, one coroutine per connection.
pub fn echo(addr: SocketAddr) -> io::Result<()> {
    one_worker();
    let listener = TcpListener::bind(addr)?;
    let acceptor = go(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            if stream.set_nodelay(true).is_err() {
                continue;
            }
            let spawned = go(move || {
                let mut buf = vec![0u8; hello::ECHO_BUF];
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
            if let Err(e) = spawned {
                eprintln!("may echo: cannot spawn a coroutine: {e}");
            }
        }
    })?;
    acceptor
        .join()
        .map_err(|_| io::Error::other("may accept loop panicked"))
}

#[derive(Clone)]
struct Hello;

impl HttpService for Hello {
    fn call(&mut self, _req: Request, rsp: &mut Response) -> io::Result<()> {
        // may_minihttp writes "HTTP/1.1 200 Ok", `Server: M`, `Date` and
        // `Content-Length` itself; `hello` spells the same bytes out for the
        // other servers.
        rsp.body(hello::BODY);
        Ok(())
    }
}

/// HTTP/1.1 keep-alive hello world with may_minihttp.
pub fn http(addr: SocketAddr) -> io::Result<()> {
    one_worker();
    HttpServer(Hello)
        .start(addr)?
        .join()
        .map_err(|_| io::Error::other("may_minihttp server panicked"))
}
