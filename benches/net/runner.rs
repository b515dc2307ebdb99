//! Options, the servers under test, and the measuring loop.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use crate::load::Generator;
use crate::procs::{self, Server};
use crate::report::{self, Sample, SyscallRow};
use crate::syscalls::{Attached, Counter};
use crate::{callgrind, hello};

/// What to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    Echo,
    Http,
    Syscalls,
    Callgrind,
}

/// The servers compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Impl {
    Corio,
    Tokio,
    May,
}

impl Impl {
    pub const ALL: [Impl; 3] = [Impl::Corio, Impl::Tokio, Impl::May];

    /// The server's name in the tables.
    pub fn label(self, part: Part) -> &'static str {
        match (self, part) {
            (Impl::Corio, Part::Http) => "corio (http_server example)",
            (Impl::Corio, _) => "corio (echo_server example)",
            (Impl::Tokio, Part::Http) => "hyper 1.x, tokio current-thread",
            (Impl::Tokio, _) => "tokio current-thread",
            (Impl::May, Part::Http) => "may_minihttp, 1 worker",
            (Impl::May, _) => "may, 1 worker",
        }
    }

    pub fn short(self) -> &'static str {
        match self {
            Impl::Corio => "corio",
            Impl::Tokio => "tokio",
            Impl::May => "may",
        }
    }
}

/// Command-line options (after `cargo bench --bench net --`).
#[derive(Clone, Debug)]
pub struct Options {
    pub seconds: u64,
    pub warmup: u64,
    pub rounds: u32,
    pub connections: u32,
    pub size: u32,
    pub syscall_seconds: u64,
    pub quiet_wait: u64,
    pub nice: i32,
    pub parts: BTreeSet<Part>,
    pub impls: Vec<Impl>,
    pub build: bool,
}

impl Options {
    pub const USAGE: &'static str = "\
usage: cargo bench --bench net -- [options]

  --only PARTS        comma-separated: echo, http, syscalls, callgrind
                      (default: all)
  --servers LIST      comma-separated: corio, tokio, may (default: all)
  --seconds N         measured seconds per run (default 10)
  --warmup N          warm-up seconds before each run (default 2)
  --rounds N          runs per server, interleaved; medians reported (default 3)
  --connections N     concurrent connections (default 50)
  --size N            echo payload bytes (default 64)
  --syscall-seconds N seconds per syscall-counting and callgrind run
                      (default 5)
  --quiet-wait N      before each run, wait up to N s for both cores to be
                      under 10% busy (default 120; this machine is shared)
  --nice N            niceness of servers and generators (default -20, as
                      root; 0 leaves it alone)
  --no-build          do not build corio's examples first";

    /// `Ok(None)` for `--help`.
    pub fn parse(args: &[String]) -> Result<Option<Options>, String> {
        let mut o = Options {
            seconds: 10,
            warmup: 2,
            rounds: 3,
            connections: 50,
            size: 64,
            syscall_seconds: 5,
            quiet_wait: 120,
            nice: -20,
            parts: [Part::Echo, Part::Http, Part::Syscalls, Part::Callgrind].into(),
            impls: Impl::ALL.to_vec(),
            build: true,
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
            fn num<T: std::str::FromStr>(arg: &str, v: &str) -> Result<T, String> {
                v.parse().map_err(|_| format!("{arg}: not a number: {v:?}"))
            }
            match arg.as_str() {
                "-h" | "--help" => return Ok(None),
                "--seconds" => o.seconds = num(arg, value()?)?,
                "--warmup" => o.warmup = num(arg, value()?)?,
                "--rounds" => o.rounds = num(arg, value()?)?,
                "--connections" => o.connections = num(arg, value()?)?,
                "--size" => o.size = num(arg, value()?)?,
                "--syscall-seconds" => o.syscall_seconds = num(arg, value()?)?,
                "--quiet-wait" => o.quiet_wait = num(arg, value()?)?,
                "--nice" => o.nice = num(arg, value()?)?,
                "--no-build" => o.build = false,
                "--only" => {
                    o.parts = value()?
                        .split(',')
                        .map(|p| match p {
                            "echo" => Ok(Part::Echo),
                            "http" => Ok(Part::Http),
                            "syscalls" => Ok(Part::Syscalls),
                            "callgrind" => Ok(Part::Callgrind),
                            _ => Err(format!("--only: unknown part {p:?}")),
                        })
                        .collect::<Result<_, _>>()?;
                }
                "--servers" => {
                    let mut impls: Vec<Impl> = value()?
                        .split(',')
                        .map(|p| {
                            Impl::ALL
                                .into_iter()
                                .find(|i| i.short() == p)
                                .ok_or_else(|| format!("--servers: unknown server {p:?}"))
                        })
                        .collect::<Result<_, _>>()?;
                    impls.sort();
                    impls.dedup();
                    o.impls = impls;
                }
                other => return Err(format!("unknown option {other:?}")),
            }
        }
        if o.seconds == 0 || o.rounds == 0 || o.connections == 0 || o.syscall_seconds == 0 {
            return Err(
                "--seconds, --rounds, --connections and --syscall-seconds must be > 0".into(),
            );
        }
        Ok(Some(o))
    }
}

/// Where the binaries are.
struct Binaries {
    /// This harness (serves the tokio and may comparators).
    harness: PathBuf,
    /// corio's examples (`target/release/examples`).
    examples: PathBuf,
}

impl Binaries {
    fn find() -> io::Result<Binaries> {
        let harness = std::env::current_exe()?;
        // target/release/deps/net-HASH → target/release/examples
        let examples = harness
            .parent()
            .and_then(Path::parent)
            .map(|release| release.join("examples"))
            .ok_or_else(|| io::Error::other("cannot locate the target directory"))?;
        Ok(Binaries { harness, examples })
    }

    fn example(&self, name: &str) -> Option<PathBuf> {
        let p = self.examples.join(name);
        p.is_file().then_some(p)
    }

    fn server(&self, imp: Impl, part: Part, addr: SocketAddr) -> Option<Vec<OsString>> {
        let addr = addr.to_string();
        let serve = |kind: &str| {
            vec![
                self.harness.clone().into(),
                "serve".into(),
                kind.into(),
                addr.clone().into(),
            ]
        };
        Some(match (imp, part) {
            (Impl::Corio, Part::Http) => {
                vec![
                    self.example("http_server")?.into(),
                    "--addr".into(),
                    addr.into(),
                    "--server".into(),
                    hello::SERVER.into(),
                ]
            }
            (Impl::Corio, _) => {
                vec![
                    self.example("echo_server")?.into(),
                    "--addr".into(),
                    addr.into(),
                ]
            }
            (Impl::Tokio, Part::Http) => serve("tokio-http"),
            (Impl::Tokio, _) => serve("tokio-echo"),
            (Impl::May, Part::Http) => serve("may-http"),
            (Impl::May, _) => serve("may-echo"),
        })
    }

    fn describe_server(&self, imp: Impl, part: Part) -> String {
        let cmd = match (imp, part) {
            (Impl::Corio, Part::Http) => {
                format!(
                    "target/release/examples/http_server --addr ADDR --server {}",
                    hello::SERVER
                )
            }
            (Impl::Corio, _) => "target/release/examples/echo_server --addr ADDR".to_string(),
            (i, p) => format!(
                "target/release/deps/net-* serve {}-{} ADDR",
                i.short(),
                if p == Part::Http { "http" } else { "echo" }
            ),
        };
        format!("{} {cmd}", procs::prefix(procs::SERVER_CORE))
    }
}

/// Builds corio's example servers and load generator (release profile,
/// same target directory as this harness).
fn build_examples() -> io::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!(
        "building corio's examples: cargo build --release --example echo_server --example echo_load --example http_server"
    );
    let status = Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["build", "--release", "--example", "echo_server"])
        .args(["--example", "echo_load", "--example", "http_server"])
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!("cargo build failed ({status})")))
    }
}

pub fn run(o: &Options) -> ExitCode {
    let bins = match Binaries::find() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("net bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    if o.build
        && let Err(e) = build_examples()
    {
        eprintln!(
            "net bench: cannot build corio's examples ({e}); corio and the echo load are skipped where missing"
        );
    }
    let niced = procs::set_nice(o.nice);
    let mut out = report::Document::new(o);
    if !niced {
        out.note(&format!("not root: --nice {} ignored", o.nice));
    }
    let echo_load = bins.example("echo_load");
    // corio takes part where its example server is built.
    let impls_for = |out: &mut report::Document, part: Part| -> Vec<Impl> {
        let example = if part == Part::Http {
            "http_server"
        } else {
            "echo_server"
        };
        let mut impls = o.impls.clone();
        if impls.contains(&Impl::Corio) && bins.example(example).is_none() {
            out.note(&format!(
                "corio's {example} example is not built: corio is left out of {part:?}"
            ));
            impls.retain(|&i| i != Impl::Corio);
        }
        impls
    };
    let mut failed = false;

    if o.parts.contains(&Part::Echo) {
        match &echo_load {
            None => out.note(
                "echo skipped: corio's echo_load example (the echo load generator) is not built",
            ),
            Some(binary) => {
                let generator = Generator::Echo {
                    binary,
                    connections: o.connections,
                    size: o.size,
                };
                let impls = impls_for(&mut out, Part::Echo);
                match measure(o, &bins, &impls, Part::Echo, &generator) {
                    Ok(samples) => out.throughput(
                        Part::Echo,
                        &generator,
                        &samples,
                        &bins_describer(&bins, Part::Echo, &impls),
                    ),
                    Err(e) => {
                        failed = true;
                        out.note(&format!("echo failed: {e}"));
                    }
                }
            }
        }
    }

    if o.parts.contains(&Part::Http) {
        if !procs::on_path("wrk") {
            out.note("HTTP skipped: wrk is not installed (apt-get install -y wrk)");
        } else {
            let generator = Generator::Wrk {
                connections: o.connections,
            };
            let impls = impls_for(&mut out, Part::Http);
            match check_http_responses(&bins, &impls) {
                Ok(notes) => notes.iter().for_each(|n| out.note(n)),
                Err(e) => out.note(&format!("HTTP response check failed: {e}")),
            }
            match measure(o, &bins, &impls, Part::Http, &generator) {
                Ok(samples) => out.throughput(
                    Part::Http,
                    &generator,
                    &samples,
                    &bins_describer(&bins, Part::Http, &impls),
                ),
                Err(e) => {
                    failed = true;
                    out.note(&format!("HTTP failed: {e}"));
                }
            }
        }
    }

    if o.parts.contains(&Part::Syscalls) {
        match &echo_load {
            None => out.note("syscalls skipped: corio's echo_load example is not built"),
            Some(binary) => {
                let generator = Generator::Echo {
                    binary,
                    connections: o.connections,
                    size: o.size,
                };
                let impls = impls_for(&mut out, Part::Syscalls);
                match count_syscalls(o, &bins, &impls, &generator) {
                    Ok(rows) => out.syscalls(&generator, o.syscall_seconds, &rows),
                    Err(e) => {
                        failed = true;
                        out.note(&format!("syscall count failed: {e}"));
                    }
                }
            }
        }
    }

    if o.parts.contains(&Part::Callgrind) {
        if !procs::on_path("valgrind") || !procs::on_path("callgrind_control") {
            out.note("callgrind skipped: valgrind is not installed (apt-get install -y valgrind)");
        } else {
            let mut rows: Vec<(Impl, Option<f64>, Option<f64>)> = Vec::new();
            for part in [Part::Echo, Part::Http] {
                let generator = match part {
                    Part::Echo => match &echo_load {
                        Some(binary) => Generator::Echo {
                            binary,
                            connections: o.connections,
                            size: o.size,
                        },
                        None => continue,
                    },
                    _ if procs::on_path("wrk") => Generator::Wrk {
                        connections: o.connections,
                    },
                    _ => continue,
                };
                for imp in impls_for(&mut out, part) {
                    let addr = match procs::free_addr() {
                        Ok(a) => a,
                        Err(e) => {
                            out.note(&format!("callgrind: {e}"));
                            continue;
                        }
                    };
                    let Some(cmd) = bins.server(imp, part, addr) else {
                        continue;
                    };
                    eprint!("callgrind: {:<32} {:?} ", imp.label(part), part);
                    let tag = format!("{}-{part:?}", imp.short());
                    match callgrind::count(&cmd, addr, &generator, 1, o.syscall_seconds, &tag) {
                        Ok(c) => {
                            eprintln!(
                                "{} instructions / {} requests = {:.0} per request",
                                c.instructions,
                                c.load.requests,
                                c.per_request()
                            );
                            let row = match rows.iter_mut().find(|r| r.0 == imp) {
                                Some(r) => r,
                                None => {
                                    rows.push((imp, None, None));
                                    rows.last_mut().expect("just pushed")
                                }
                            };
                            if part == Part::Echo {
                                row.1 = Some(c.per_request());
                            } else {
                                row.2 = Some(c.per_request());
                            }
                        }
                        Err(e) => {
                            eprintln!("failed: {e}");
                            failed = true;
                            out.note(&format!("callgrind {} {part:?} failed: {e}", imp.short()));
                        }
                    }
                }
            }
            rows.sort_by_key(|r| r.0);
            out.instructions(&rows, o.syscall_seconds);
        }
    }

    println!("{}", out.finish());
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn bins_describer(bins: &Binaries, part: Part, impls: &[Impl]) -> Vec<(Impl, String)> {
    impls
        .iter()
        .map(|&i| (i, bins.describe_server(i, part)))
        .collect()
}

/// Runs every server `o.rounds` times, interleaved (corio, tokio, may,
/// corio, …) so that a slow minute on the shared machine hits all of them.
fn measure(
    o: &Options,
    bins: &Binaries,
    impls: &[Impl],
    part: Part,
    generator: &Generator<'_>,
) -> io::Result<Vec<(Impl, Vec<Sample>)>> {
    let mut results: Vec<(Impl, Vec<Sample>)> = impls.iter().map(|&i| (i, Vec::new())).collect();
    for round in 1..=o.rounds {
        for (imp, samples) in &mut results {
            procs::wait_for_quiet(Duration::from_secs(o.quiet_wait))?;
            eprint!(
                "{:?} round {round}/{}: {:<32} ",
                part,
                o.rounds,
                imp.label(part)
            );
            let s = measure_one(o, bins, *imp, part, generator)?;
            eprintln!(
                "{:>9.0} req/s  p50 {:>7.1?}  p99 {:>7.1?}  server {:.2} µs/req ({:.2} user), {:.3} sleeps/req ({:.0}% of core {}), load core {:.0}%",
                s.load.requests_per_sec,
                s.load.p50,
                s.load.p99,
                s.server_cpu_per_request_us(),
                s.server_user_per_request_us(),
                s.sleeps_per_request(),
                s.server_util() * 100.0,
                procs::SERVER_CORE,
                s.load_util() * 100.0
            );
            samples.push(s);
        }
    }
    Ok(results)
}

fn measure_one(
    o: &Options,
    bins: &Binaries,
    imp: Impl,
    part: Part,
    generator: &Generator<'_>,
) -> io::Result<Sample> {
    let addr = procs::free_addr()?;
    let cmd = bins
        .server(imp, part, addr)
        .ok_or_else(|| io::Error::other(format!("no server binary for {imp:?}")))?;
    let server = Server::start(&cmd, addr)?;
    if o.warmup > 0 {
        generator.run(addr, o.warmup)?;
    }
    let cpu0 = server.cpu()?;
    let sleeps0 = server.sleeps()?;
    let cores0 = procs::core_times()?;
    let t0 = Instant::now();
    let report = generator.run(addr, o.seconds)?;
    let wall = t0.elapsed();
    let cpu1 = server.cpu()?;
    let sleeps1 = server.sleeps()?;
    let cores1 = procs::core_times()?;
    drop(server);
    Ok(Sample {
        server_core: procs::core_delta(&cores0, &cores1, procs::SERVER_CORE),
        load_core: procs::core_delta(&cores0, &cores1, procs::LOAD_CORE),
        server_cpu: cpu1.since(&cpu0),
        server_sleeps: sleeps1.saturating_sub(sleeps0),
        wall,
        load: report,
    })
}

/// Every HTTP server must answer the same bytes (the `Date` value aside).
fn check_http_responses(bins: &Binaries, impls: &[Impl]) -> io::Result<Vec<String>> {
    let expected = hello::expected();
    let mut notes = Vec::new();
    for &imp in impls {
        let addr = procs::free_addr()?;
        let cmd = bins
            .server(imp, Part::Http, addr)
            .ok_or_else(|| io::Error::other(format!("no server binary for {imp:?}")))?;
        let _server = Server::start(&cmd, addr)?;
        let got = hello::fetch_normalised(addr)?;
        if got != expected {
            notes.push(format!(
                "{} answers different bytes than the others:\n\n```text\n{}\n```\n\ninstead of\n\n```text\n{}\n```",
                imp.label(Part::Http),
                got.escape_debug(),
                expected.escape_debug()
            ));
        }
    }
    if notes.is_empty() {
        notes.push(format!(
            "All HTTP servers answer the same {} bytes: `{}` (Date value aside; status line compared without case, shown in lower case).",
            expected.len(),
            expected.escape_debug()
        ));
    }
    Ok(notes)
}

fn count_syscalls(
    o: &Options,
    bins: &Binaries,
    impls: &[Impl],
    generator: &Generator<'_>,
) -> io::Result<Vec<SyscallRow>> {
    let counters: Vec<Counter> = [Counter::Strace, Counter::Perf]
        .into_iter()
        .filter(|c| procs::on_path(c.program()))
        .collect();
    if counters.is_empty() {
        return Err(io::Error::other("neither strace nor perf is installed"));
    }
    let mut rows = Vec::new();
    for &imp in impls {
        let addr = procs::free_addr()?;
        let cmd = bins
            .server(imp, Part::Echo, addr)
            .ok_or_else(|| io::Error::other(format!("no server binary for {imp:?}")))?;
        procs::wait_for_quiet(Duration::from_secs(o.quiet_wait))?;
        let server = Server::start(&cmd, addr)?;
        if o.warmup > 0 {
            generator.run(addr, o.warmup)?;
        }
        let mut row = SyscallRow {
            imp,
            strace: None,
            perf: None,
        };
        for &counter in &counters {
            eprint!(
                "syscalls: {:<32} {:<6} ",
                imp.label(Part::Echo),
                counter.program()
            );
            let attached = Attached::start(counter, server.pid(), imp.short())?;
            let run = generator.run(addr, o.syscall_seconds);
            let counts = attached.finish()?;
            let run = run?;
            eprintln!(
                "{} calls / {} requests = {:.2} per request",
                counts.total,
                run.requests,
                counts.total as f64 / run.requests.max(1) as f64
            );
            match counter {
                Counter::Strace => row.strace = Some((counts, run)),
                Counter::Perf => row.perf = Some((counts, run)),
            }
        }
        rows.push(row);
    }
    Ok(rows)
}
