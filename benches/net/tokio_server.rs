//! The tokio comparators: a TCP echo server and hyper's HTTP/1.1 hello
//! world, both on tokio's current-thread runtime (one thread, like a corio
//! runtime).

use std::cell::RefCell;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, DATE, HeaderValue, SERVER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::hello;

fn runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
}

/// Echoes every byte back, one task per connection.
pub fn echo(addr: SocketAddr) -> io::Result<()> {
    runtime()?.block_on(async move {
        let listener = TcpListener::bind(addr).await?;
        loop {
            let (mut stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            tokio::spawn(async move {
                let mut buf = vec![0u8; hello::ECHO_BUF];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    })
}

/// HTTP/1.1 keep-alive hello world with hyper, answering with the same
/// bytes as may_minihttp (see `hello`): title-case headers, reason "Ok",
/// `Server`, `Date` and `Content-Length` in that order.
pub fn http(addr: SocketAddr) -> io::Result<()> {
    runtime()?.block_on(async move {
        let listener = TcpListener::bind(addr).await?;
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .title_case_headers(true)
                    // We write `Date` ourselves so that it comes before
                    // `Content-Length`, as in the other servers.
                    .auto_date_header(false)
                    .serve_connection(TokioIo::new(stream), service_fn(respond))
                    .await;
            });
        }
    })
}

async fn respond(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut res = Response::new(Full::new(Bytes::from_static(hello::BODY.as_bytes())));
    res.extensions_mut()
        .insert(hyper::ext::ReasonPhrase::from_static(
            hello::REASON.as_bytes(),
        ));
    let headers = res.headers_mut();
    headers.insert(SERVER, HeaderValue::from_static(hello::SERVER));
    headers.insert(DATE, cached_date());
    headers.insert(CONTENT_LENGTH, HeaderValue::from(hello::BODY.len() as u64));
    Ok(res)
}

/// The `Date` value, formatted at most twice a second — what hyper's own
/// date cache and may_minihttp do, so no server pays for formatting per
/// request.
fn cached_date() -> HeaderValue {
    thread_local! {
        static CACHE: RefCell<Option<(Instant, HeaderValue)>> = const { RefCell::new(None) };
    }
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let now = Instant::now();
        match &*c {
            Some((at, v)) if now.duration_since(*at) < Duration::from_millis(500) => v.clone(),
            _ => {
                let s = httpdate::fmt_http_date(SystemTime::now());
                let v = HeaderValue::from_str(&s).expect("an HTTP date is a valid header value");
                *c = Some((now, v.clone()));
                v
            }
        }
    })
}
