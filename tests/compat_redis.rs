//! The redis crate over corio sockets (`corio::compat::redis`, feature
//! `redis`), against a real `redis-server` that the test starts on a free
//! port: 1,000 concurrent tasks INCR one key, a pipelined batch, a
//! transaction, the `redis_counter` example, and the proof that a command
//! in flight does not hold the thread.
//!
//! Skips, with a message, where `redis-server` is not installed (Debian:
//! `apt-get install redis-server`). Run with
//! `cargo test --features redis --test compat_redis`.
#![cfg(feature = "redis")]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use corio::compat::redis::Connection;
use redis::{Commands, ConnectionLike};

/// A `redis-server` on a free port, killed when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `redis-server` without persistence on a free port, or `None`
/// (with a message) where it is not installed.
fn redis_server() -> Option<Server> {
    if Command::new("redis-server")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!(
            "skipped: redis-server is not installed (apt-get install redis-server); \
             the test needs a real server"
        );
        return None;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("starting redis-server");
    let server = Server {
        child,
        url: format!("redis://127.0.0.1:{port}/"),
    };
    // Up when it answers PING.
    let started = Instant::now();
    loop {
        let ping = corio::run(|| -> redis::RedisResult<String> {
            redis::cmd("PING").query(&mut Connection::open(server.url.as_str())?)
        });
        match ping {
            Ok(pong) if pong == "PONG" => return Some(server),
            _ if started.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            other => panic!("redis-server did not come up: {other:?}"),
        }
    }
}

/// 1,000 connections at once, with this process's other fds: raise the
/// soft open-files limit where it is lower than that needs.
fn allow_fds(n: u64) {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `rl` is a valid out-pointer for getrlimit.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) }, 0);
    if rl.rlim_cur < n {
        rl.rlim_cur = n.min(rl.rlim_max);
        // SAFETY: `rl` is a valid rlimit, with the soft limit at most the hard one.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) }, 0);
    }
}

#[test]
fn a_thousand_tasks_incr_one_key() {
    let Some(server) = redis_server() else { return };
    allow_fds(4096);
    let url = server.url.clone();
    let (total, seen) = corio::run(move || {
        let tasks: Vec<_> = (0..1000)
            .map(|_| {
                let url = url.clone();
                corio::spawn(move || -> redis::RedisResult<(i64, i64)> {
                    let mut con = Connection::open(url.as_str())?;
                    let after: i64 = redis::cmd("INCR").arg("counter").query(&mut con)?;
                    let now: i64 = con.get("counter")?;
                    Ok((after, now))
                })
            })
            .collect();
        let mut seen: Vec<i64> = tasks
            .into_iter()
            .map(|t| {
                let (after, now) = t.join().unwrap().unwrap();
                assert!(now >= after, "GET {now} after INCR gave {after}");
                after
            })
            .collect();
        seen.sort_unstable();
        let mut con = Connection::open(url.as_str()).unwrap();
        let total: i64 = con.get("counter").unwrap();
        (total, seen)
    });
    assert_eq!(total, 1000);
    // Every INCR got its own value: the replies went to the right tasks.
    assert_eq!(seen, (1..=1000).collect::<Vec<_>>());
}

#[test]
fn a_pipelined_batch_of_a_hundred_sets_and_gets() {
    let Some(server) = redis_server() else { return };
    corio::run(|| {
        let mut con = Connection::open(server.url.as_str()).unwrap();
        let mut pipe = redis::pipe();
        for i in 0..100 {
            pipe.set(format!("key:{i}"), i * 7).ignore();
        }
        for i in 0..100 {
            pipe.get(format!("key:{i}"));
        }
        let values: Vec<i64> = pipe.query(&mut con).unwrap();
        assert_eq!(values, (0..100).map(|i| i * 7).collect::<Vec<_>>());

        // A transaction: replies before EXEC are skipped, EXEC's array is
        // the result.
        let (a, b): (i64, i64) = redis::pipe()
            .atomic()
            .incr("tx", 5)
            .incr("tx", 6)
            .query(&mut con)
            .unwrap();
        assert_eq!((a, b), (5, 11));

        // A server error is the command's error; the connection goes on.
        let err = redis::cmd("INCR")
            .arg("key:0")
            .arg("extra")
            .query::<i64>(&mut con);
        assert!(err.is_err());
        assert!(con.is_open());
        assert!(con.check_connection());
        assert_eq!(con.get_db(), 0);
    });
}

#[test]
fn the_url_selects_the_database() {
    let Some(server) = redis_server() else { return };
    corio::run(|| {
        let mut db3 = Connection::open(format!("{}3", server.url).as_str()).unwrap();
        assert_eq!(db3.get_db(), 3);
        let _: () = db3.set("where", "three").unwrap();
        let mut db0 = Connection::open(server.url.as_str()).unwrap();
        let found: Option<String> = db0.get("where").unwrap();
        assert_eq!(found, None);
        let found: String = db3.get("where").unwrap();
        assert_eq!(found, "three");
    });
}

/// BLPOP holds its connection until another task pushes: if the command
/// in flight held the thread, the pushing task could never run and the
/// BLPOP would time out (after 10 s, as nil).
#[test]
fn a_command_in_flight_leaves_the_thread_to_other_tasks() {
    let Some(server) = redis_server() else { return };
    let url = server.url.clone();
    let popped = corio::run(move || {
        let waiter = corio::spawn({
            let url = url.clone();
            move || -> redis::RedisResult<Option<(String, String)>> {
                let mut con = Connection::open(url.as_str())?;
                redis::cmd("BLPOP").arg("queue").arg(10).query(&mut con)
            }
        });
        let mut con = Connection::open(url.as_str()).unwrap();
        // Push only once the BLPOP waits in the server (or, were the
        // thread held, once it has given up).
        while !waiter.is_finished() {
            let clients: String = redis::cmd("CLIENT").arg("LIST").query(&mut con).unwrap();
            if clients.contains("cmd=blpop") {
                break;
            }
            corio::time::sleep(Duration::from_millis(2));
        }
        let _: i64 = con.rpush("queue", "job").unwrap();
        waiter.join().unwrap().unwrap()
    });
    assert_eq!(popped, Some(("queue".to_owned(), "job".to_owned())));
}

/// The `redis_counter` example, built with the feature it needs.
fn redis_counter() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        let mut cmd = Command::new(option_env!("CARGO").unwrap_or("cargo"));
        // The features this test was built with, so that the library is
        // not built a second time for a different set.
        let features = if cfg!(feature = "ureq") {
            "ureq,redis"
        } else {
            "redis"
        };
        cmd.args([
            "build",
            "--features",
            features,
            "--example",
            "redis_counter",
        ]);
        if profile_dir.ends_with("release") {
            cmd.arg("--release");
        }
        assert!(cmd.status().expect("running cargo build").success());
    });
    profile_dir.join("examples").join("redis_counter")
}

#[test]
fn the_redis_counter_example() {
    let Some(server) = redis_server() else { return };
    let out = Command::new(redis_counter())
        .args(["--addr", &server.url, "--tasks", "500", "--incrs", "3"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout, "corio:counter = 1500 (expected 1500)\n");
}
