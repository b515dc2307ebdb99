//! Blocking libraries that open their own sockets, made to use corio's.
//!
//! A library that takes a `Read + Write` you hand it (rustls'
//! `StreamOwned`, tungstenite, native-tls, openssl's `SslStream`, serde
//! readers) runs over a [`corio::net::TcpStream`](crate::net::TcpStream)
//! unchanged. A library that opens its own `std::net::TcpStream` blocks the
//! whole thread in every read, and with it every task of the runtime —
//! unless it lets you give it the socket. The modules here do that for two
//! such libraries, through their public extension points:
//!
//! | module | feature | library | extension point |
//! | --- | --- | --- | --- |
//! | [`ureq`](self::ureq) | `ureq` | ureq 3 (HTTP client, TLS through its rustls) | `Connector`, `Transport`, `Resolver` |
//! | [`redis`](self::redis) | `redis` | redis (sync API: commands, pipelines) | `ConnectionLike` |
//!
//! Libraries with no such point (their own sockets or their own runtime:
//! reqwest's blocking client, postgres' sync client) cannot be made to
//! suspend the task; call them through [`corio::unblock`](crate::unblock),
//! which runs them on a thread pool while the task waits.

#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "ureq")]
pub mod ureq;
