//! The [redis](https://docs.rs/redis) crate's synchronous API over a corio
//! socket: commands and pipelines inside a task suspend the task, not the
//! thread.
//!
//! `redis::Connection` opens its own `std::net::TcpStream`, so a command
//! sent through it blocks every task of the runtime until the reply comes.
//! Everything that sends commands in the redis crate — [`redis::Cmd`],
//! [`redis::Pipeline`], the [`redis::Commands`] methods — talks to a
//! [`redis::ConnectionLike`], though, and [`Connection`] is one over a
//! [`corio::net::TcpStream`](crate::net::TcpStream) (or a corio Unix
//! socket), using redis' own encoder and reply parser.
//!
//! Supported: `redis://` and `redis+unix://` addresses (or a
//! [`redis::ConnectionInfo`]), AUTH with user name and password, database
//! selection, RESP2 and RESP3 (push messages are skipped, as in
//! `redis::Connection` without a push sender). Not supported: TLS
//! (`rediss://`), pub/sub through `as_pubsub`, the cluster and async
//! clients.
//!
//! A connection serves one task at a time (`query` takes `&mut`); give each
//! task its own connection, or share one behind a
//! [`corio::sync::Mutex`](crate::sync::Mutex).
//!
//! # Errors
//!
//! An IO or parse error leaves the connection's replies out of step with
//! its commands (a timed-out reply may still arrive), so after one the
//! connection refuses further commands ([`is_open`](redis::ConnectionLike::is_open)
//! turns false): open a new one.
//!
//! # Examples
//!
//! ```no_run
//! use redis::Commands;
//!
//! corio::run(|| -> redis::RedisResult<()> {
//!     let workers: Vec<_> = (0..100)
//!         .map(|_| {
//!             corio::spawn(|| -> redis::RedisResult<i64> {
//!                 let mut con = corio::compat::redis::Connection::open("redis://127.0.0.1/")?;
//!                 con.incr("hits", 1)
//!             })
//!         })
//!         .collect();
//!     for w in workers {
//!         w.join().unwrap()?;
//!     }
//!     let mut con = corio::compat::redis::Connection::open("redis://127.0.0.1/")?;
//!     let hits: i64 = redis::cmd("GET").arg("hits").query(&mut con)?;
//!     println!("{hits}");
//!     Ok(())
//! })
//! .unwrap();
//! ```

use std::fmt;
use std::io::{self, Read, Write};

use ::redis::{
    ConnectionAddr, ConnectionInfo, ConnectionLike, ErrorKind, IntoConnectionInfo, Parser,
    RedisError, RedisResult, Value, cmd,
};

use crate::net::TcpStream;
use crate::net::unix::UnixStream;

/// A connection to a redis server over a corio socket, usable wherever the
/// redis crate takes a [`ConnectionLike`]: `cmd(..).query(&mut con)`,
/// `pipe()...query(&mut con)`, [`redis::Commands`] methods.
pub struct Connection {
    stream: Stream,
    /// Kept across replies: it buffers what it read past the last one (the
    /// next replies of a pipeline).
    parser: Parser,
    db: i64,
    open: bool,
}

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Connection");
        match &self.stream {
            Stream::Tcp(s) => d.field("peer", &s.peer_addr().ok()),
            Stream::Unix(s) => d.field("peer", &s.peer_addr().ok()),
        };
        d.field("db", &self.db)
            .field("open", &self.open)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects to the server at `info` (`"redis://host:port/db"`,
    /// `"redis+unix:///path"`, a `(host, port)` pair or a
    /// [`ConnectionInfo`]), then authenticates, switches to RESP3 and
    /// selects the database as `info` asks. Host names are resolved off
    /// the thread.
    ///
    /// # Errors
    ///
    /// An invalid address, a TLS address (`rediss://`: not supported), the
    /// connect's IO error, or the server's answer to AUTH, HELLO or
    /// SELECT.
    pub fn open<T: IntoConnectionInfo>(info: T) -> RedisResult<Connection> {
        let info: ConnectionInfo = info.into_connection_info()?;
        let stream = match info.addr() {
            ConnectionAddr::Tcp(host, port) => {
                let s = TcpStream::connect((host.as_str(), *port))?;
                // Small commands answered one by one: do not let Nagle hold
                // them back.
                s.set_nodelay(true)?;
                Stream::Tcp(s)
            }
            ConnectionAddr::Unix(path) => Stream::Unix(UnixStream::connect(path)?),
            _ => {
                return Err(RedisError::from((
                    ErrorKind::InvalidClientConfig,
                    "corio::compat::redis connects over TCP and Unix sockets only (no TLS)",
                )));
            }
        };
        let mut con = Connection {
            stream,
            parser: Parser::new(),
            db: 0,
            open: true,
        };
        let settings = info.redis_settings();
        if settings.protocol().supports_resp3() {
            let mut hello = cmd("HELLO");
            hello.arg(3);
            if let Some(password) = settings.password() {
                hello
                    .arg("AUTH")
                    .arg(settings.username().unwrap_or("default"))
                    .arg(password);
            }
            hello.exec(&mut con)?;
        } else if let Some(password) = settings.password() {
            let mut auth = cmd("AUTH");
            if let Some(user) = settings.username() {
                auth.arg(user);
            }
            auth.arg(password).exec(&mut con)?;
        }
        if settings.db() != 0 {
            cmd("SELECT").arg(settings.db()).exec(&mut con)?;
            con.db = settings.db();
        }
        Ok(con)
    }

    /// A connection over a connected `stream`, as it is: no AUTH, database
    /// 0, RESP2 unless the caller sends HELLO.
    pub fn from_stream(stream: TcpStream) -> Connection {
        Connection {
            stream: Stream::Tcp(stream),
            parser: Parser::new(),
            db: 0,
            open: true,
        }
    }

    /// Sends an encoded command without reading a reply (for MONITOR and
    /// the like; read with [`recv_response`](Self::recv_response)).
    ///
    /// # Errors
    ///
    /// The write's IO error, or a closed connection.
    pub fn send_packed_command(&mut self, cmd: &[u8]) -> RedisResult<()> {
        self.check_open()?;
        if let Err(e) = self.stream.write_all(cmd) {
            self.open = false;
            return Err(e.into());
        }
        Ok(())
    }

    /// Reads one value from the server (a push message included).
    ///
    /// # Errors
    ///
    /// The read's IO error, a parse error, or a closed connection.
    pub fn recv_response(&mut self) -> RedisResult<Value> {
        self.check_open()?;
        self.parser.parse_value(&mut self.stream).inspect_err(|_| {
            self.open = false;
        })
    }

    /// The next reply, skipping RESP3 push messages.
    fn recv_reply(&mut self) -> RedisResult<Value> {
        loop {
            match self.recv_response()? {
                Value::Push { .. } => continue,
                reply => return Ok(reply),
            }
        }
    }

    fn check_open(&self) -> RedisResult<()> {
        if self.open {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "an earlier error left this redis connection out of step with its replies; \
                 open a new one",
            )
            .into())
        }
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<Value> {
        self.send_packed_command(cmd)?;
        self.recv_reply()
    }

    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        self.send_packed_command(cmd)?;
        let mut replies = Vec::with_capacity(count);
        // Replies before `offset` (MULTI's and the QUEUED ones of a
        // transaction) are read and dropped, but an error among them is
        // why the transaction failed: report the first.
        let mut skipped_error = None;
        for i in 0..offset + count {
            let reply = self.recv_reply()?;
            if i >= offset {
                replies.push(reply);
            } else if let Value::ServerError(e) = reply {
                skipped_error.get_or_insert(e);
            }
        }
        match skipped_error {
            Some(e) => Err(e.into()),
            None => Ok(replies),
        }
    }

    fn get_db(&self) -> i64 {
        self.db
    }

    fn check_connection(&mut self) -> bool {
        cmd("PING").query::<String>(self).is_ok()
    }

    fn is_open(&self) -> bool {
        self.open
    }
}
