//! The Markdown report: tables, ratios, the networking targets, and the
//! exact commands.

use std::fmt::Write;
use std::time::Duration;

use crate::callgrind;
use crate::load::{Generator, Report};
use crate::procs::{self, CoreTimes, Cpu};
use crate::runner::{Impl, Options, Part};
use crate::syscalls::{Counter, Counts};

/// A core counts as saturated from this share of busy time on.
const SATURATED: f64 = 0.95;
/// Other processes taking this share of a core make a run suspect.
const NEIGHBOURS: f64 = 0.10;

/// One measured run.
#[derive(Clone, Debug)]
pub struct Sample {
    pub load: Report,
    pub wall: Duration,
    pub server_cpu: Cpu,
    /// Voluntary context switches of the server.
    pub server_sleeps: u64,
    pub server_core: CoreTimes,
    pub load_core: CoreTimes,
}

impl Sample {
    pub fn server_cpu_per_request_us(&self) -> f64 {
        self.server_cpu.total().as_secs_f64() * 1e6 / self.load.requests.max(1) as f64
    }

    /// The user-mode part of [`server_cpu_per_request_us`](Self::server_cpu_per_request_us).
    pub fn server_user_per_request_us(&self) -> f64 {
        self.server_cpu.user.as_secs_f64() * 1e6 / self.load.requests.max(1) as f64
    }

    pub fn sleeps_per_request(&self) -> f64 {
        self.server_sleeps as f64 / self.load.requests.max(1) as f64
    }

    pub fn server_util(&self) -> f64 {
        self.server_cpu.total().as_secs_f64() / self.wall.as_secs_f64()
    }

    pub fn load_util(&self) -> f64 {
        self.load.cpu.as_secs_f64() / self.wall.as_secs_f64()
    }

    /// Share of the server core used by other processes.
    fn others_server_core(&self) -> f64 {
        self.server_core
            .busy
            .saturating_sub(self.server_cpu.total())
            .as_secs_f64()
            / self.wall.as_secs_f64()
    }

    /// Share of each core's time spent in interrupts and softirqs.
    fn irq(&self) -> (f64, f64) {
        let w = self.wall.as_secs_f64();
        (
            self.server_core.irq.as_secs_f64() / w,
            self.load_core.irq.as_secs_f64() / w,
        )
    }

    /// Share of each core's time the hypervisor took.
    fn steal(&self) -> (f64, f64) {
        let w = self.wall.as_secs_f64();
        (
            self.server_core.steal.as_secs_f64() / w,
            self.load_core.steal.as_secs_f64() / w,
        )
    }

    /// Share of the load core used by other processes.
    fn others_load_core(&self) -> f64 {
        self.load_core
            .busy
            .saturating_sub(self.load.cpu)
            .as_secs_f64()
            / self.wall.as_secs_f64()
    }
}

/// The syscall counts of one server.
pub struct SyscallRow {
    pub imp: Impl,
    pub strace: Option<(Counts, Report)>,
    pub perf: Option<(Counts, Report)>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// A ratio between two servers over the rounds: median and range.
struct Ratio {
    median: f64,
    min: f64,
    max: f64,
}

impl Ratio {
    /// `f(a) / f(b)` for each round that both servers completed.
    fn paired(a: &[Sample], b: &[Sample], f: impl Fn(&Sample) -> f64) -> Ratio {
        let v: Vec<f64> = a.iter().zip(b).map(|(x, y)| f(x) / f(y)).collect();
        Ratio {
            median: median(v.clone()),
            min: v.iter().copied().fold(f64::INFINITY, f64::min),
            max: v.iter().copied().fold(0.0, f64::max),
        }
    }
}

impl std::fmt::Display for Ratio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.2}× ({:.2}–{:.2})", self.median, self.min, self.max)
    }
}

/// Medians over a server's rounds.
struct Summary {
    rps: f64,
    rps_min: f64,
    rps_max: f64,
    p50_us: f64,
    p99_us: f64,
    cpu_us: f64,
    user_us: f64,
    sleeps: f64,
    server_util: f64,
    load_util: f64,
    others: (f64, f64),
    steal: (f64, f64),
    irq: (f64, f64),
    errors: u64,
}

impl Summary {
    fn of(samples: &[Sample]) -> Summary {
        let m = |f: &dyn Fn(&Sample) -> f64| median(samples.iter().map(f).collect());
        let rps: Vec<f64> = samples.iter().map(|s| s.load.requests_per_sec).collect();
        Summary {
            rps: median(rps.clone()),
            rps_min: rps.iter().copied().fold(f64::INFINITY, f64::min),
            rps_max: rps.iter().copied().fold(0.0, f64::max),
            p50_us: m(&|s| s.load.p50.as_secs_f64() * 1e6),
            p99_us: m(&|s| s.load.p99.as_secs_f64() * 1e6),
            cpu_us: m(&|s| s.server_cpu_per_request_us()),
            user_us: m(&|s| s.server_user_per_request_us()),
            sleeps: m(&|s| s.sleeps_per_request()),
            server_util: m(&|s| s.server_util()),
            load_util: m(&|s| s.load_util()),
            others: (m(&|s| s.others_server_core()), m(&|s| s.others_load_core())),
            steal: (m(&|s| s.steal().0), m(&|s| s.steal().1)),
            irq: (m(&|s| s.irq().0), m(&|s| s.irq().1)),
            errors: samples.iter().map(|s| s.load.errors).sum(),
        }
    }

    /// What limited the run: a core counts as full when its process and
    /// its interrupts took (nearly) all of it; when neighbours took a
    /// noticeable share, they are named first, since then neither server
    /// nor generator had its core to itself.
    /// Whether the load generator's core was full (its process plus its
    /// interrupts), whatever the server's was.
    fn generator_full(&self) -> bool {
        matches!(self.bound(), "load generator core" | "both cores")
    }

    fn bound(&self) -> &'static str {
        if self.others.0 >= NEIGHBOURS || self.others.1 >= NEIGHBOURS {
            return "other processes";
        }
        let server = self.server_util + self.irq.0;
        let load = self.load_util + self.irq.1;
        match (server >= SATURATED, load >= SATURATED) {
            (true, true) => "both cores",
            (true, false) => "server core",
            (false, true) => "load generator core",
            (false, false) => "neither core full",
        }
    }
}

fn thousands(v: f64) -> String {
    let s = format!("{:.0}", v);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn pct(v: f64) -> String {
    format!("{:.0}%", v * 100.0)
}

fn verdict(ok: bool) -> &'static str {
    if ok { "**met**" } else { "**missed**" }
}

/// The report being built.
pub struct Document {
    header: String,
    sections: Vec<String>,
    notes: Vec<String>,
}

impl Document {
    pub fn new(o: &Options) -> Document {
        let mut header = String::new();
        let _ = writeln!(
            header,
            "Server pinned to core {} and load generator to core {} (`{}`); {} connections; \
             median of {} interleaved round(s) of {} s, each after {} s of warm-up load; \
             a fresh server process per run.",
            procs::SERVER_CORE,
            procs::LOAD_CORE,
            procs::prefix(procs::LOAD_CORE),
            o.connections,
            o.rounds,
            o.seconds,
            o.warmup
        );
        Document {
            header,
            sections: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub fn note(&mut self, text: &str) {
        eprintln!("note: {text}");
        self.notes.push(text.to_string());
    }

    pub fn throughput(
        &mut self,
        part: Part,
        generator: &Generator<'_>,
        results: &[(Impl, Vec<Sample>)],
        servers: &[(Impl, String)],
    ) {
        let o_seconds = results
            .first()
            .and_then(|(_, s)| s.first())
            .map_or(0, |s| s.wall.as_secs());
        let mut s = String::new();
        let title = match (part, generator) {
            (Part::Echo, Generator::Echo { size, .. }) => {
                format!("### Echo: {size}-byte round trips")
            }
            _ => "### HTTP/1.1 keep-alive hello world (`wrk -t1`)".to_string(),
        };
        let _ = writeln!(s, "{title}\n");
        let _ = writeln!(
            s,
            "| server | req/s (min–max) | p50 | p99 | server CPU per request (user + kernel) | \
             1-core capacity (1 / CPU per request) | server sleeps per request | core {}: server + irq | core {}: generator + irq | \
             others on core {} / {} | steal | bound by |",
            procs::SERVER_CORE,
            procs::LOAD_CORE,
            procs::SERVER_CORE,
            procs::LOAD_CORE
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|");
        let summaries: Vec<(Impl, Summary)> = results
            .iter()
            .map(|(i, samples)| (*i, Summary::of(samples)))
            .collect();
        for (imp, m) in &summaries {
            let _ = writeln!(
                s,
                "| {} | {} ({}–{}) | {:.0} µs | {:.0} µs | {:.2} µs ({:.2} + {:.2}) | {} req/s | {:.3} | {} | {} | {} / {} | {} / {} | {} |",
                imp.label(part),
                thousands(m.rps),
                thousands(m.rps_min),
                thousands(m.rps_max),
                m.p50_us,
                m.p99_us,
                m.cpu_us,
                m.user_us,
                m.cpu_us - m.user_us,
                thousands(1e6 / m.cpu_us),
                m.sleeps,
                format_args!("{} + {}", pct(m.server_util), pct(m.irq.0)),
                format_args!("{} + {}", pct(m.load_util), pct(m.irq.1)),
                pct(m.others.0),
                pct(m.others.1),
                pct(m.steal.0),
                pct(m.steal.1),
                m.bound(),
            );
        }
        let errors: u64 = summaries.iter().map(|(_, m)| m.errors).sum();
        if errors > 0 {
            for (imp, m) in &summaries {
                if m.errors > 0 {
                    let _ = writeln!(
                        s,
                        "\n{}: the load generator counted {} errors.",
                        imp.label(part),
                        m.errors
                    );
                }
            }
        }

        if let Some((_, corio)) = results.iter().find(|(i, _)| *i == Impl::Corio) {
            let _ = writeln!(
                s,
                "\nRatios corio ÷ other, per round (the servers of a round ran back to back, so \
                 they saw the same machine), median and range:\n\n\
                 | corio ÷ | req/s | server CPU per request |\n|---|---|---|"
            );
            let ratios: Vec<(Impl, Ratio, Ratio)> = results
                .iter()
                .filter(|(i, _)| *i != Impl::Corio)
                .map(|(i, other)| {
                    (
                        *i,
                        Ratio::paired(corio, other, |s| s.load.requests_per_sec),
                        Ratio::paired(corio, other, Sample::server_cpu_per_request_us),
                    )
                })
                .collect();
            for (imp, rps, cpu) in &ratios {
                let _ = writeln!(s, "| {} | {rps} | {cpu} |", imp.label(part));
            }
            let _ = writeln!(s);
            let against: Vec<Impl> = match part {
                Part::Echo => vec![Impl::Tokio],
                _ => vec![Impl::Tokio, Impl::May],
            };
            let generator_full: Vec<Impl> = summaries
                .iter()
                .filter(|(_, m)| m.generator_full())
                .map(|(i, _)| *i)
                .collect();
            for (imp, rps, cpu) in ratios.iter().filter(|(i, ..)| against.contains(i)) {
                let _ = writeln!(
                    s,
                    "- Target req/s ≥ 1.1× {}: {} ({:.2}×).",
                    imp.label(part),
                    verdict(rps.median >= 1.1),
                    rps.median
                );
                if part == Part::Echo {
                    let _ = writeln!(
                        s,
                        "- Target server CPU per request below {}: {} ({:.2}×).",
                        imp.label(part),
                        verdict(cpu.median < 1.0),
                        cpu.median
                    );
                }
                // When the load generator saturates first,
                // server CPU time per request decides.
                if generator_full.contains(&Impl::Corio) && generator_full.contains(imp) {
                    let _ = writeln!(
                        s,
                        "- The same target by server CPU per request, which decides while the \
                         generator's core is full (≥ 1.1× the requests per CPU-second, i.e. ≤ \
                         0.91× the CPU per request) against {}: {} ({:.2}×, {:.2}× the requests per \
                         CPU-second).",
                        imp.label(part),
                        verdict(cpu.median <= 1.0 / 1.1),
                        cpu.median,
                        1.0 / cpu.median
                    );
                }
            }
            let with_bound = |wanted: &[&str]| -> Vec<&str> {
                summaries
                    .iter()
                    .filter(|(_, m)| wanted.contains(&m.bound()))
                    .map(|(i, _)| i.label(part))
                    .collect()
            };
            if !generator_full.is_empty() {
                let _ = writeln!(
                    s,
                    "- The load generator's core was full (≥ {} busy) against: {}. There req/s is \
                     capped by the generator, not by the server; server CPU time per request (and \
                     the 1-core capacity derived from it) is the figure that compares the servers.",
                    pct(SATURATED),
                    generator_full
                        .iter()
                        .map(|i| i.label(part))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            let crowded = with_bound(&["other processes"]);
            if !crowded.is_empty() {
                let _ = writeln!(
                    s,
                    "- Other processes took ≥ {} of a core (median) in the runs of: {}. Those \
                     figures are from a crowded machine: compare them only with the ratios of the \
                     same rounds.",
                    pct(NEIGHBOURS),
                    crowded.join(", ")
                );
            }
            let neither = with_bound(&["neither core full"]);
            if !neither.is_empty() {
                let _ = writeln!(
                    s,
                    "- Neither core was full against: {}. req/s was limited by the time the two \
                     sides waited for each other (wakeups across cores are slow on this VM), so it \
                     varies from run to run; server CPU time per request still compares the servers.",
                    neither.join(", ")
                );
            }
        }

        let _ = writeln!(
            s,
            "\nCommands (ADDR is a free loopback port chosen per run):\n\n```sh"
        );
        for (_, cmd) in servers {
            let _ = writeln!(s, "{cmd}");
        }
        let _ = writeln!(s, "{}", generator.describe(o_seconds.max(1)));
        let _ = writeln!(s, "```");
        self.sections.push(s);
    }

    pub fn syscalls(&mut self, generator: &Generator<'_>, secs: u64, rows: &[SyscallRow]) {
        let mut s = String::new();
        let _ = writeln!(s, "### System calls per echoed request\n");
        let _ = writeln!(
            s,
            "| server | `strace -c -f`: calls per request | most frequent (per request) | \
             req/s under strace | `perf stat` raw_syscalls: calls per request | req/s under perf |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|");
        let per = |c: &Counts, r: &Report| c.total as f64 / r.requests.max(1) as f64;
        for row in rows {
            let (st, top, st_rps) = match &row.strace {
                Some((c, r)) => (
                    format!("{:.2}", per(c, r)),
                    c.top
                        .iter()
                        .map(|(n, k)| format!("{n} {:.2}", *k as f64 / r.requests.max(1) as f64))
                        .collect::<Vec<_>>()
                        .join(", "),
                    thousands(r.requests_per_sec),
                ),
                None => ("—".into(), "—".into(), "—".into()),
            };
            let (pf, pf_rps) = match &row.perf {
                Some((c, r)) => (format!("{:.2}", per(c, r)), thousands(r.requests_per_sec)),
                None => ("—".into(), "—".into()),
            };
            let _ = writeln!(
                s,
                "| {} | {st} | {top} | {st_rps} | {pf} | {pf_rps} |",
                row.imp.label(Part::Echo)
            );
        }
        if let Some((c, r)) = rows
            .iter()
            .find(|r| r.imp == Impl::Corio)
            .and_then(|row| row.strace.as_ref())
        {
            let v = per(c, r);
            let _ = writeln!(
                s,
                "\n- Target ≤ 2.2 system calls per echoed request (strace): {} ({v:.2}).",
                verdict(v <= 2.2)
            );
        }
        let _ = writeln!(
            s,
            "\nEach counter is attached to the running server (all threads) after the warm-up, for one \
             {secs} s load run; strace slows the server several times over, so its batching differs \
             from the unslowed run that perf counts.\n\n```sh"
        );
        for c in [Counter::Strace, Counter::Perf] {
            let _ = writeln!(s, "{}", c.describe());
        }
        let _ = writeln!(s, "{}\n```", generator.describe(secs));
        self.sections.push(s);
    }

    /// User-space instructions per request (callgrind).
    pub fn instructions(&mut self, rows: &[(Impl, Option<f64>, Option<f64>)], secs: u64) {
        let mut s = String::new();
        let _ = writeln!(s, "### User-space instructions per request (callgrind)\n");
        let _ = writeln!(s, "| server (echo / HTTP) | echo | HTTP |\n|---|---:|---:|");
        let cell = |v: Option<f64>| v.map_or("—".to_string(), thousands);
        for (imp, echo, http) in rows {
            let _ = writeln!(
                s,
                "| {} / {} | {} | {} |",
                imp.label(Part::Echo),
                imp.label(Part::Http),
                cell(*echo),
                cell(*http)
            );
        }
        if let Some((_, ce, ch)) = rows.iter().find(|r| r.0 == Impl::Corio) {
            for (imp, e, h) in rows.iter().filter(|r| r.0 != Impl::Corio) {
                let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
                    (Some(a), Some(b)) => format!("{:.2}×", a / b),
                    _ => "—".into(),
                };
                let _ = writeln!(
                    s,
                    "\ncorio ÷ {}: echo {}, HTTP {}.",
                    imp.short(),
                    ratio(*ce, *e),
                    ratio(*ch, *h)
                );
            }
        }
        let _ = writeln!(
            s,
            "\nThe server runs under callgrind (all threads, user space only: the kernel's TCP \
             work is not in these counts); its counters are zeroed after 1 s of warm-up load and \
             dumped after {secs} s more, and the total is divided by the requests the generator \
             completed meanwhile. The same load generators as above, 50 connections.\n\n```sh\n{}\n```",
            callgrind::describe()
        );
        self.sections.push(s);
    }

    pub fn finish(self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{}", self.header);
        for section in &self.sections {
            let _ = writeln!(s, "{section}");
        }
        if !self.notes.is_empty() {
            let _ = writeln!(s, "Notes:\n");
            for n in &self.notes {
                let _ = writeln!(s, "- {n}");
            }
        }
        s
    }
}
