//! rustls over corio `TcpStream`, unchanged: `rustls::StreamOwned` only needs
//! `Read + Write`, and corio's sockets are exactly that. A TLS server and its
//! clients run as concurrent tasks in one runtime, with a certificate made
//! at test time by `rcgen`.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::sync::Arc;

use corio::net::{TcpListener, TcpStream};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server config with a fresh self-signed certificate for `localhost`,
/// and a client config that trusts exactly that certificate.
fn configs() -> (Arc<ServerConfig>, Arc<ClientConfig>) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert: CertificateDer<'static> = ck.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let server = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(cert).unwrap();
    let client = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

/// Serves one TLS connection: echoes each line back, upper-cased, until the
/// client closes.
fn serve(config: Arc<ServerConfig>, tcp: TcpStream) -> io::Result<usize> {
    let conn = ServerConnection::new(config).map_err(io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut lines = 0;
    let mut reader = BufReader::new(&mut tls);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        let reply = line.to_uppercase();
        reader.get_mut().write_all(reply.as_bytes())?;
        lines += 1;
    }
    tls.conn.send_close_notify();
    tls.flush()?;
    Ok(lines)
}

/// A client: handshake, three request lines, three replies, close.
fn client(config: Arc<ClientConfig>, addr: std::net::SocketAddr, id: usize) -> io::Result<()> {
    let tcp = TcpStream::connect(addr)?;
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(config, name).map_err(io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut reader = BufReader::new(&mut tls);
    for i in 0..3 {
        let msg = format!("hello {id} #{i}\n");
        reader.get_mut().write_all(msg.as_bytes())?;
        let mut reply = String::new();
        reader.read_line(&mut reply)?;
        assert_eq!(reply, msg.to_uppercase());
    }
    assert_eq!(
        tls.conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    assert!(tls.conn.negotiated_cipher_suite().is_some());
    tls.conn.send_close_notify();
    tls.flush()?;
    // The server closes too: a clean end of stream.
    let mut rest = Vec::new();
    tls.read_to_end(&mut rest)?;
    assert!(rest.is_empty());
    Ok(())
}

#[test]
fn tls_server_and_clients_as_tasks_in_one_runtime() {
    let (server_cfg, client_cfg) = configs();
    corio::run(move || {
        const CLIENTS: usize = 8;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = corio::spawn(move || {
            let handlers: Vec<_> = (0..CLIENTS)
                .map(|_| {
                    let (tcp, _) = listener.accept().unwrap();
                    let cfg = Arc::clone(&server_cfg);
                    corio::spawn(move || serve(cfg, tcp))
                })
                .collect();
            handlers
                .into_iter()
                .map(|h| h.join().unwrap().unwrap())
                .sum::<usize>()
        });
        let clients: Vec<_> = (0..CLIENTS)
            .map(|id| {
                let cfg = Arc::clone(&client_cfg);
                corio::spawn(move || client(cfg, addr, id))
            })
            .collect();
        for c in clients {
            c.join().unwrap().unwrap();
        }
        assert_eq!(server.join().unwrap(), 3 * CLIENTS);
    });
}

#[test]
fn a_certificate_for_another_name_fails_the_handshake() {
    let (server_cfg, client_cfg) = configs();
    corio::run(move || {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = corio::spawn(move || {
            let (tcp, _) = listener.accept().unwrap();
            serve(server_cfg, tcp)
        });
        let tcp = TcpStream::connect(addr).unwrap();
        let name = ServerName::try_from("not-localhost.example").unwrap();
        let conn = ClientConnection::new(client_cfg, name).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let err = tls.write_all(b"hello\n").and_then(|()| tls.flush());
        let err = err
            .and_then(|()| tls.read(&mut [0; 16]).map(drop))
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        assert!(err.to_string().contains("certificate"), "{err}");
        drop(tls);
        // The server sees the client's alert as an error, not a hang.
        assert!(server.join().unwrap().is_err());
    });
}

/// Bytes of the calling task's stack that have been touched, measured as
/// the lowest resident page below `top` (the stack grows down; every frame
/// deeper than a page is probed page by page, so touched pages are
/// contiguous). Only meaningful on a stack no task used before.
fn stack_touched(top: usize, stack_size: usize) -> usize {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    let top = top.next_multiple_of(page);
    // Half the stack: stays inside this task's mapping, whatever the slot
    // layout around it.
    let len = stack_size / 2;
    let start = top - len;
    let mut vec = vec![0u8; len / page];
    // SAFETY: [start, start + len) lies in this task's stack mapping, and
    // `vec` has one byte per page of it.
    let rc = unsafe { libc::mincore(start as *mut libc::c_void, len, vec.as_mut_ptr()) };
    assert_eq!(rc, 0, "mincore: {}", io::Error::last_os_error());
    let lowest = vec.iter().position(|v| v & 1 != 0).unwrap();
    top - (start + lowest * page)
}

/// Writes a 100 KiB frame below the caller's.
#[inline(never)]
fn touch_100k() {
    let mut big = [0u8; 100 * 1024];
    std::hint::black_box(&mut big);
}

/// Measures the stack a rustls handshake (plus one request and reply) needs
/// inside a task, on each side, and checks it fits the default stack with
/// room to spare. The figures are printed (`--nocapture`).
#[test]
fn tls_handshake_stack_use() {
    let (server_cfg, client_cfg) = configs();
    // Sizes no other task in this test uses: each task gets a fresh stack.
    const SERVER_STACK: usize = 2 * 1024 * 1024 + 8 * 4096;
    const CLIENT_STACK: usize = 2 * 1024 * 1024 + 12 * 4096;
    const PROBE_STACK: usize = 2 * 1024 * 1024 + 4 * 4096;
    let (probe_use, server_use, client_use) = corio::run(move || {
        // Calibration: a task that touches 100 KiB of stack reads as that.
        let probe = corio::Builder::new()
            .stack_size(PROBE_STACK)
            .spawn(|| {
                let marker = 0u8;
                let top = std::hint::black_box(&marker) as *const u8 as usize;
                touch_100k();
                stack_touched(top, PROBE_STACK)
            })
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = corio::Builder::new()
            .stack_size(SERVER_STACK)
            .spawn(move || {
                let marker = 0u8;
                let top = std::hint::black_box(&marker) as *const u8 as usize;
                let (tcp, _) = listener.accept().unwrap();
                serve(server_cfg, tcp).unwrap();
                stack_touched(top, SERVER_STACK)
            })
            .unwrap();
        let client = corio::Builder::new()
            .stack_size(CLIENT_STACK)
            .spawn(move || {
                let marker = 0u8;
                let top = std::hint::black_box(&marker) as *const u8 as usize;
                client(client_cfg, addr, 0).unwrap();
                stack_touched(top, CLIENT_STACK)
            })
            .unwrap();
        (
            probe.join().unwrap(),
            server.join().unwrap(),
            client.join().unwrap(),
        )
    });
    assert!(
        (100 * 1024..120 * 1024).contains(&probe_use),
        "the measurement is off: a 100 KiB frame read as {probe_use} bytes"
    );
    println!(
        "rustls handshake + one exchange, stack touched: server {} KiB, client {} KiB \
         ({} build; default stack {} KiB)",
        server_use / 1024,
        client_use / 1024,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        corio::stack::DEFAULT_STACK_SIZE / 1024
    );
    for used in [server_use, client_use] {
        assert!(
            used < corio::stack::DEFAULT_STACK_SIZE / 2,
            "{used} bytes of stack"
        );
    }
}
