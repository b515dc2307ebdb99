//! A replicated key-value store under deterministic simulation.
//!
//! A primary and a backup keep a map; clients write through the primary
//! and read from the backup. The primary replicates every write to the
//! backup and acknowledges it only once the backup has applied it, so a
//! client that reads its own acknowledged write from the backup always
//! sees it — the invariant the clients check. With `--bug` the primary
//! acknowledges first and replicates in the background, and some orders of
//! packet arrival break the invariant.
//!
//! The servers and clients are plain corio code (`TcpListener`,
//! `TcpStream`, `spawn`, `sync::Mutex`): `corio::sim` runs them on a
//! simulated network with seeded latency and scheduling.
//!
//! ```sh
//! cargo run --release --example sim_kv                    # 1,000 seeds pass
//! cargo run --release --example sim_kv -- --bug           # finds the bug, prints the seed
//! cargo run --release --example sim_kv -- --bug --seed 7  # replays one seed
//! cargo run --release --example sim_kv -- --real          # the same code on the real runtime
//! ```
//!
//! One run prints its `trace_hash`: the same seed prints the same hash.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use corio::net::{TcpListener, TcpStream};
use corio::sim::{Builder, Sim};
use corio::sync::Mutex;

/// Writes each client makes.
const WRITES: u32 = 5;
/// Clients writing at once, each its own key.
const CLIENTS: u32 = 2;
/// A client's pause before each write.
const THINK: Duration = Duration::from_millis(10);

type Store = Arc<Mutex<BTreeMap<String, String>>>;

/// One request/response connection with line framing.
struct Conn {
    reader: BufReader<ArcStream>,
    writer: ArcStream,
}

impl Conn {
    fn new(stream: TcpStream) -> io::Result<Conn> {
        // Two handles would take `try_clone`, which a simulation does not
        // model; `&TcpStream` reads and writes, so share one through `Arc`.
        let stream = Arc::new(stream);
        Ok(Conn {
            reader: BufReader::new(ArcStream(Arc::clone(&stream))),
            writer: ArcStream(stream),
        })
    }

    /// Connects, retrying while the server is not listening yet.
    fn connect_retry(addr: &str) -> io::Result<Conn> {
        loop {
            match TcpStream::connect(addr) {
                Ok(s) => return Conn::new(s),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    corio::time::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn send(&mut self, line: &str) -> io::Result<()> {
        self.writer.write_all(format!("{line}\n").as_bytes())
    }

    /// The next line, without its newline; `None` at end of stream.
    fn recv(&mut self) -> io::Result<Option<String>> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        Ok(Some(line.trim_end().to_owned()))
    }

    fn call(&mut self, line: &str) -> io::Result<String> {
        self.send(line)?;
        self.recv()?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "server closed"))
    }
}

/// A stream shared by a connection's reader and writer.
struct ArcStream(Arc<TcpStream>);

impl io::Read for ArcStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.0).read(buf)
    }
}

impl io::Write for ArcStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self.0).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Serves `conn` against `store`: `GET k`, and `REP k v` (from the primary).
fn backup_conn(mut conn: Conn, store: Store) -> io::Result<()> {
    while let Some(line) = conn.recv()? {
        let words: Vec<&str> = line.split(' ').collect();
        match words[..] {
            ["REP", k, v] => {
                store.lock().insert(k.to_owned(), v.to_owned());
                conn.send("ACK")?;
            }
            ["GET", k] => match store.lock().get(k) {
                Some(v) => conn.send(&format!("VAL {v}"))?,
                None => conn.send("NONE")?,
            },
            _ => conn.send("ERR")?,
        }
    }
    Ok(())
}

/// The backup: applies replicated writes, serves reads.
pub fn backup(listener: TcpListener) -> io::Result<()> {
    let store = Store::default();
    loop {
        let (stream, _) = listener.accept()?;
        let store = Arc::clone(&store);
        let _conn = corio::spawn(move || backup_conn(Conn::new(stream)?, store));
    }
}

/// Sends one write to the backup and waits for its acknowledgement.
fn replicate(to_backup: &Mutex<Conn>, k: &str, v: &str) -> io::Result<()> {
    let reply = to_backup.lock().call(&format!("REP {k} {v}"))?;
    if reply == "ACK" {
        Ok(())
    } else {
        Err(io::Error::other(format!("backup replied {reply:?}")))
    }
}

fn primary_conn(
    mut conn: Conn,
    store: Store,
    to_backup: Arc<Mutex<Conn>>,
    bug: bool,
) -> io::Result<()> {
    while let Some(line) = conn.recv()? {
        let words: Vec<&str> = line.split(' ').collect();
        match words[..] {
            ["PUT", k, v] => {
                if bug {
                    // The injected bug: acknowledge first, replicate later.
                    let (k2, v2, b) = (k.to_owned(), v.to_owned(), Arc::clone(&to_backup));
                    let _replication = corio::spawn(move || replicate(&b, &k2, &v2));
                } else {
                    replicate(&to_backup, k, v)?;
                }
                store.lock().insert(k.to_owned(), v.to_owned());
                conn.send("OK")?;
            }
            ["GET", k] => match store.lock().get(k) {
                Some(v) => conn.send(&format!("VAL {v}"))?,
                None => conn.send("NONE")?,
            },
            _ => conn.send("ERR")?,
        }
    }
    Ok(())
}

/// The primary: takes writes, replicates them to the backup at
/// `backup_addr` (after acknowledging them, with `bug`).
pub fn primary(listener: TcpListener, backup_addr: &str, bug: bool) -> io::Result<()> {
    let store = Store::default();
    let to_backup = Arc::new(Mutex::new(Conn::connect_retry(backup_addr)?));
    loop {
        let (stream, _) = listener.accept()?;
        let (store, to_backup) = (Arc::clone(&store), Arc::clone(&to_backup));
        let _conn = corio::spawn(move || primary_conn(Conn::new(stream)?, store, to_backup, bug));
    }
}

/// A client: writes `key` = 1..=WRITES through the primary and, after each
/// acknowledgement, reads it back from the backup. Fails if the backup
/// returns anything else (read-your-writes through the replica).
pub fn client(id: u32, primary_addr: &str, backup_addr: &str) -> Result<(), String> {
    let err = |e: io::Error| e.to_string();
    let mut p = Conn::connect_retry(primary_addr).map_err(err)?;
    let mut b = Conn::connect_retry(backup_addr).map_err(err)?;
    let key = format!("k{id}");
    // Clients arrive at different times and pause between writes.
    corio::time::sleep(Duration::from_millis(5 * u64::from(id)));
    for i in 1..=WRITES {
        corio::time::sleep(THINK);
        let ack = p.call(&format!("PUT {key} {i}")).map_err(err)?;
        if ack != "OK" {
            return Err(format!("PUT {key} {i}: primary replied {ack:?}"));
        }
        let got = b.call(&format!("GET {key}")).map_err(err)?;
        if got != format!("VAL {i}") {
            return Err(format!(
                "read-your-writes violated: the primary acknowledged PUT {key} {i}, \
                 then the backup answered {got:?}"
            ));
        }
    }
    Ok(())
}

/// The scenario: a primary, a backup and `CLIENTS` clients on a simulated
/// network.
pub fn scenario(sim: &mut Sim, bug: bool) {
    sim.host("backup", || Ok(backup(TcpListener::bind("0.0.0.0:7001")?)?));
    sim.host("primary", move || {
        let listener = TcpListener::bind("0.0.0.0:7000")?;
        Ok(primary(listener, "backup:7001", bug)?)
    });
    for id in 0..CLIENTS {
        sim.client(format!("client{id}"), move || {
            Ok(client(id, "primary:7000", "backup:7001")?)
        });
    }
}

/// The simulation settings of the scenario.
pub fn builder() -> Builder {
    Builder::new().latency(Duration::from_micros(1250)..=Duration::from_millis(3))
}

/// The same servers and clients on the real runtime, over loopback.
fn run_real(bug: bool) -> Result<(), String> {
    corio::run(move || {
        let err = |e: io::Error| e.to_string();
        let bl = TcpListener::bind("127.0.0.1:0").map_err(err)?;
        let pl = TcpListener::bind("127.0.0.1:0").map_err(err)?;
        let b_addr = bl.local_addr().map_err(err)?.to_string();
        let p_addr = pl.local_addr().map_err(err)?.to_string();
        let _backup = corio::spawn(move || backup(bl));
        let b = b_addr.clone();
        let _primary = corio::spawn(move || primary(pl, &b, bug));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|id| {
                let (p, b) = (p_addr.clone(), b_addr.clone());
                corio::spawn(move || client(id, &p, &b))
            })
            .collect();
        for c in clients {
            c.join().map_err(|e| e.to_string())??;
        }
        Ok(())
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bug = args.iter().any(|a| a == "--bug");
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .map(|v| v.parse::<u64>().expect("a number"))
    };
    let bug_flag = if bug { " --bug" } else { "" };
    if args.iter().any(|a| a == "--real") {
        let rounds = value("--rounds").unwrap_or(1000);
        let start = Instant::now();
        for _ in 0..rounds {
            if let Err(e) = run_real(bug) {
                println!("real run failed: {e}");
                std::process::exit(1);
            }
        }
        let wall = start.elapsed();
        println!(
            "real runtime: {rounds} runs in {wall:.2?} ({:.1?} per run)",
            wall / rounds as u32
        );
        return;
    }
    if let Some(seed) = value("--seed") {
        let mut sim = builder().seed(seed).build();
        scenario(&mut sim, bug);
        let start = Instant::now();
        let result = sim.run();
        let wall = start.elapsed();
        println!(
            "seed {seed}: {}; trace_hash: {:016x}; virtual {:?}; {} events in {wall:.2?} ({:.0} events/s)",
            if result.is_ok() { "ok" } else { "FAILED" },
            sim.trace_hash(),
            sim.elapsed(),
            sim.events(),
            sim.events() as f64 / wall.as_secs_f64(),
        );
        if result.is_err() {
            std::process::exit(1);
        }
        return;
    }
    let seeds = value("--seeds").unwrap_or(1000);
    let start = Instant::now();
    match builder().check(0..seeds, |sim| scenario(sim, bug)) {
        Ok(()) => println!(
            "{seeds} seeds passed in {:.2?}{}",
            start.elapsed(),
            if bug { " (the bug was not found)" } else { "" }
        ),
        Err(failure) => {
            println!(
                "seed {} fails (found in {:.2?}): {}\nreplay: cargo run --example sim_kv --{bug_flag} --seed {}",
                failure.seed,
                start.elapsed(),
                failure.message,
                failure.seed
            );
            std::process::exit(1);
        }
    }
}
