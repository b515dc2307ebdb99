//! N tasks increment one redis counter at once, each over its own
//! connection, all on one thread: the redis crate's blocking API over corio
//! sockets.
//!
//! ```text
//! redis-server --port 6379 --save '' --appendonly no &
//! cargo run --release --features redis --example redis_counter -- \
//!     --addr redis://127.0.0.1:6379/ --tasks 1000
//! ```
//!
//! `corio::compat::redis::Connection` is a `redis::ConnectionLike`, so
//! `redis::cmd(...).query(&mut con)` and the `redis::Commands` methods work
//! on it; each task suspends while its command is on the wire. The example
//! deletes `--key` (default `corio:counter`), runs `--tasks` tasks (default
//! 1000) that each connect and INCR it `--incrs` times (default 1), then
//! reads it back and prints `KEY = VALUE (expected E)`; the exit status is
//! non-zero on a mismatch or an error. Each task holds one connection (one
//! file descriptor) while it runs.

use redis::Commands;

fn main() {
    let mut addr = String::from("redis://127.0.0.1:6379/");
    let mut key = String::from("corio:counter");
    let mut tasks: u64 = 1000;
    let mut incrs: u64 = 1;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().unwrap_or_else(|| usage(&arg));
        match arg.as_str() {
            "--addr" => addr = value,
            "--key" => key = value,
            "--tasks" => tasks = value.parse().unwrap_or_else(|_| usage(&arg)),
            "--incrs" => incrs = value.parse().unwrap_or_else(|_| usage(&arg)),
            _ => usage(&arg),
        }
    }

    let result = corio::run(move || -> redis::RedisResult<(i64, u64)> {
        let mut con = corio::compat::redis::Connection::open(addr.as_str())?;
        let _: () = con.del(&key)?;
        let workers: Vec<_> = (0..tasks)
            .map(|_| {
                let (addr, key) = (addr.clone(), key.clone());
                corio::spawn(move || -> redis::RedisResult<()> {
                    let mut con = corio::compat::redis::Connection::open(addr.as_str())?;
                    for _ in 0..incrs {
                        let _: i64 = redis::cmd("INCR").arg(&key).query(&mut con)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for w in workers {
            w.join().expect("a worker panicked")?;
        }
        let total: i64 = con.get(&key)?;
        println!("{key} = {total} (expected {})", tasks * incrs);
        Ok((total, tasks * incrs))
    });
    match result {
        Ok((total, expected)) if total >= 0 && total as u64 == expected => {}
        Ok(_) => std::process::exit(1),
        Err(e) => {
            eprintln!("redis: {e}");
            std::process::exit(1);
        }
    }
}

fn usage(what: &str) -> ! {
    eprintln!(
        "bad argument {what}\nusage: redis_counter [--addr URL] [--key KEY] [--tasks N] [--incrs N]"
    );
    std::process::exit(2)
}
