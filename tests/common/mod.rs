//! Helpers shared by the `net_*` tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

/// CPU time (user + system) used so far by the calling thread.
pub fn thread_cpu() -> Duration {
    rusage(libc::RUSAGE_THREAD)
}

/// CPU time (user + system) used so far by the whole process.
pub fn process_cpu() -> Duration {
    rusage(libc::RUSAGE_SELF)
}

fn rusage(who: libc::c_int) -> Duration {
    // SAFETY: an all-zero rusage is a valid value of the plain C struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid out-pointer for getrusage.
    let rc = unsafe { libc::getrusage(who, &mut ru) };
    assert_eq!(rc, 0, "getrusage failed");
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// The number of open file descriptors of this process.
pub fn open_fds() -> usize {
    // The directory handle itself is one of the entries.
    std::fs::read_dir("/proc/self/fd").unwrap().count() - 1
}

/// The open file descriptor numbers of this process.
pub fn fd_numbers() -> Vec<i32> {
    let listed: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .collect();
    // Drop the directory's own fd, closed by now.
    // SAFETY: F_GETFD only queries the descriptor table.
    listed
        .into_iter()
        .filter(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1)
        .collect()
}

/// The `RLIMIT_NOFILE` value that leaves exactly `n` descriptors free (the
/// kernel hands out the lowest free number, and fails with `EMFILE` once
/// that number reaches the limit).
pub fn limit_leaving(n: usize) -> u64 {
    let open = fd_numbers();
    let (mut free, mut limit) = (0, 0);
    while free < n {
        if !open.contains(&limit) {
            free += 1;
        }
        limit += 1;
    }
    limit as u64
}

/// A loopback address where a connect never completes: a listener whose
/// accept queue (backlog 0) is full, so the kernel drops further SYNs. The
/// returned values must be kept alive while the address is used.
pub fn black_hole() -> (socket2::Socket, Vec<std::net::TcpStream>, SocketAddr) {
    use socket2::{Domain, Socket, Type};
    let l = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    l.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    l.listen(0).unwrap();
    let addr = l.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    loop {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
            Ok(s) => fillers.push(s),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => break,
            Err(e) => panic!("filling the backlog: {e}"),
        }
        assert!(fillers.len() < 64, "the backlog never filled up");
    }
    (l, fillers, addr)
}

/// A port on 127.0.0.1 where nothing listens (it was just released).
pub fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// How a child run of an ignored test ended (`status` is `None` if it ran
/// past its limit and was killed), and what it printed.
pub struct ChildRun {
    pub status: Option<std::process::ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the ignored test `name` of the calling test binary in a child
/// process with the environment variables `envs`, killing it after
/// `limit`: crash and hang cases are judged by exit status and output
/// without taking the test runner down.
pub fn run_ignored_test(name: &str, limit: Duration, envs: &[(&str, &str)]) -> ChildRun {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--ignored",
        "--exact",
        name,
        "--nocapture",
        "--test-threads=1",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut proc = cmd.spawn().unwrap();
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(proc.stdout.take().unwrap()));
    let err = drain(Box::new(proc.stderr.take().unwrap()));
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(s) = proc.try_wait().unwrap() {
            break Some(s);
        }
        if start.elapsed() > limit {
            let _ = proc.kill();
            let _ = proc.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    ChildRun {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Sets this process's soft `RLIMIT_NOFILE`.
pub fn set_soft_fd_limit(limit: u64) {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `rl` is a valid out-pointer, then a valid in-pointer.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl), 0);
        rl.rlim_cur = limit;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &rl), 0);
    }
}

/// This process's soft `RLIMIT_NOFILE`.
pub fn soft_fd_limit() -> u64 {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `rl` is a valid out-pointer.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) }, 0);
    rl.rlim_cur
}

/// Puts the soft open-files limit back however a test ends.
pub struct RestoreFdLimit(pub u64);

impl Drop for RestoreFdLimit {
    fn drop(&mut self) {
        set_soft_fd_limit(self.0);
    }
}
