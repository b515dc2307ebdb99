//! Processes pinned to a core, and the CPU time they (and everything else
//! on that core) used.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// The core the servers run on.
pub const SERVER_CORE: u32 = 0;
/// The core the load generators run on.
pub const LOAD_CORE: u32 = 1;

/// A free loopback port: bind port 0, read the port, let it go.
pub fn free_addr() -> io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// The niceness the measured processes run at (0: unchanged).
static NICE: AtomicI32 = AtomicI32::new(0);

/// Runs the measured processes at niceness `nice` from now on. This machine
/// is shared: at -20 a neighbour's compile gets about 1% of a core that a
/// server or generator needs, instead of half of it. Raising priority
/// needs root; returns whether it applies.
pub fn set_nice(nice: i32) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let ok = nice >= 0 || root;
    NICE.store(if ok { nice } else { 0 }, Ordering::Relaxed);
    ok
}

/// `cmd` prefixed with `nice -n N` (see [`set_nice`]) and `taskset -c
/// CORE`; both exec the next program, so the child's pid is the program's.
pub fn pinned(core: u32, cmd: &[OsString]) -> Command {
    let nice = NICE.load(Ordering::Relaxed);
    let mut c = if nice != 0 {
        let mut c = Command::new("nice");
        c.arg("-n").arg(nice.to_string()).arg("taskset");
        c
    } else {
        Command::new("taskset")
    };
    c.arg("-c").arg(core.to_string()).args(cmd);
    c
}

/// The prefix [`pinned`] uses, for the report.
pub fn prefix(core: u32) -> String {
    match NICE.load(Ordering::Relaxed) {
        0 => format!("taskset -c {core}"),
        n => format!("nice -n {n} taskset -c {core}"),
    }
}

/// A server process, killed when dropped.
pub struct Server {
    child: Child,
}

impl Server {
    /// Starts `cmd` on the server core and waits until `addr` accepts
    /// connections.
    pub fn start(cmd: &[OsString], addr: SocketAddr) -> io::Result<Server> {
        Server::start_within(cmd, addr, Duration::from_secs(10))
    }

    /// [`start`](Self::start), waiting up to `limit` for the port.
    pub fn start_within(cmd: &[OsString], addr: SocketAddr, limit: Duration) -> io::Result<Server> {
        let child = pinned(SERVER_CORE, cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        let mut server = Server { child };
        let start = Instant::now();
        loop {
            if TcpStream::connect(addr).is_ok() {
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait()? {
                return Err(io::Error::other(format!(
                    "{:?} exited before listening ({status})",
                    cmd.join(" ".as_ref())
                )));
            }
            if start.elapsed() > limit {
                return Err(io::Error::other(format!(
                    "{:?} did not listen on {addr} within {limit:?}",
                    cmd.join(" ".as_ref())
                )));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process id (taskset execs the server, so it keeps this pid).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// User and system CPU time of all the server's threads so far.
    pub fn cpu(&self) -> io::Result<Cpu> {
        process_cpu(self.pid())
    }

    /// Voluntary context switches of all the server's live threads so far:
    /// how often it went to sleep (in `epoll_wait`, a futex, …). On a VM
    /// every sleep and wakeup is expensive, so this explains much of the
    /// CPU time per request.
    pub fn sleeps(&self) -> io::Result<u64> {
        let mut total = 0;
        for task in fs::read_dir(format!("/proc/{}/task", self.pid()))? {
            let status = match fs::read_to_string(task?.path().join("status")) {
                Ok(s) => s,
                Err(_) => continue, // the thread exited meanwhile
            };
            total += status
                .lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0);
        }
        Ok(total)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

fn ticks(t: u64) -> Duration {
    Duration::from_nanos(t * 1_000_000_000 / clock_ticks_per_second())
}

/// CPU time of a process, split by mode.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cpu {
    pub user: Duration,
    pub system: Duration,
}

impl Cpu {
    pub fn total(&self) -> Duration {
        self.user + self.system
    }

    pub fn since(&self, earlier: &Cpu) -> Cpu {
        Cpu {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

/// utime and stime of process `pid` from `/proc/<pid>/stat` (all threads,
/// exited ones included).
pub fn process_cpu(pid: u32) -> io::Result<Cpu> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may contain spaces; the fields after its
    // closing parenthesis start at field 3 (state). utime and stime are
    // fields 14 and 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| io::Error::other("malformed /proc/<pid>/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> io::Result<u64> {
        fields
            .get(n - 3)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| io::Error::other(format!("no field {n} in /proc/{pid}/stat")))
    };
    Ok(Cpu {
        user: ticks(field(14)?),
        system: ticks(field(15)?),
    })
}

/// What a core did, from `/proc/stat`.
#[derive(Clone, Copy, Debug, Default)]
pub struct CoreTimes {
    /// Running processes (user, nice, system).
    pub busy: Duration,
    /// Serving interrupts and softirqs — on loopback, much of the TCP
    /// work. The kernel accounts it to no process.
    pub irq: Duration,
    /// Wanting to run while the hypervisor ran something else.
    pub steal: Duration,
}

impl CoreTimes {
    /// The times between `earlier` and `self`.
    pub fn since(&self, earlier: &CoreTimes) -> CoreTimes {
        CoreTimes {
            busy: self.busy.saturating_sub(earlier.busy),
            irq: self.irq.saturating_sub(earlier.irq),
            steal: self.steal.saturating_sub(earlier.steal),
        }
    }
}

/// Each core's times so far.
pub fn core_times() -> io::Result<Vec<CoreTimes>> {
    let stat = fs::read_to_string("/proc/stat")?;
    let mut cores = Vec::new();
    for line in stat.lines() {
        let mut it = line.split_whitespace();
        let Some(name) = it.next() else { continue };
        if !name.starts_with("cpu") || name == "cpu" {
            continue;
        }
        // user nice system idle iowait irq softirq steal ...
        let v: Vec<u64> = it.filter_map(|x| x.parse().ok()).collect();
        let f = |i: usize| v.get(i).copied().unwrap_or(0);
        cores.push(CoreTimes {
            busy: ticks(f(0) + f(1) + f(2)),
            irq: ticks(f(5) + f(6)),
            steal: ticks(f(7)),
        });
    }
    Ok(cores)
}

/// The times of core `core` between two [`core_times`] readings.
pub fn core_delta(before: &[CoreTimes], after: &[CoreTimes], core: u32) -> CoreTimes {
    let c = core as usize;
    match (before.get(c), after.get(c)) {
        (Some(a), Some(b)) => b.since(a),
        _ => CoreTimes::default(),
    }
}

/// CPU time of this process's waited-for children so far.
pub fn children_cpu() -> Duration {
    // SAFETY: an all-zero rusage is a valid value for getrusage to fill.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Runs `cmd` on the load core to completion; returns its output and the
/// CPU time it used.
pub fn run_load(cmd: &[OsString]) -> io::Result<(Output, Duration)> {
    let before = children_cpu();
    let out = pinned(LOAD_CORE, cmd).stdin(Stdio::null()).output()?;
    let cpu = children_cpu().saturating_sub(before);
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{:?} failed ({}): {}",
            cmd.join(" ".as_ref()),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok((out, cpu))
}

/// Whether `program` can be found on `PATH`.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// Sends `signal` to `pid`.
pub fn signal(pid: u32, signal: i32) {
    // SAFETY: kill has no memory-safety preconditions; `pid` is our child.
    unsafe { libc::kill(pid as libc::pid_t, signal) };
}

/// Waits, for at most `max`, until every core was less than 10% busy over
/// half a second — other processes on this shared machine would otherwise
/// take CPU from the server or the generator mid-run. Returns whether it
/// got quiet.
pub fn wait_for_quiet(max: Duration) -> io::Result<bool> {
    const WINDOW: Duration = Duration::from_millis(500);
    let start = Instant::now();
    let mut told = false;
    loop {
        let before = core_times()?;
        thread::sleep(WINDOW);
        let after = core_times()?;
        let shares: Vec<f64> = before
            .iter()
            .zip(&after)
            .map(|(a, b)| {
                let d = b.since(a);
                (d.busy + d.irq).as_secs_f64() / WINDOW.as_secs_f64()
            })
            .collect();
        if shares.iter().all(|&s| s < 0.10) {
            if told {
                eprintln!(" quiet after {:.0?}", start.elapsed());
            }
            return Ok(true);
        }
        if start.elapsed() >= max {
            if told {
                eprintln!(" still busy after {max:?}; measuring anyway");
            }
            return Ok(false);
        }
        if !told {
            let busy: Vec<String> = shares
                .iter()
                .map(|s| format!("{:.0}%", s * 100.0))
                .collect();
            eprint!(
                "other processes keep the cores busy ({}); waiting…",
                busy.join(" / ")
            );
            told = true;
        }
    }
}
