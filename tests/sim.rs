//! The deterministic simulation (`corio::sim`): virtual time, the seeded
//! scheduler, the simulated network, crashes and partitions, `check`.

use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use corio::net::{TcpListener, TcpStream, UdpSocket};
use corio::sim::{Builder, Sim, SimError};

#[test]
fn virtual_time_jumps() {
    let mut sim = Builder::new().seed(1).build();
    sim.client("c", || {
        let start = corio::time::now();
        corio::time::sleep(Duration::from_secs(3600));
        assert_eq!(corio::time::now() - start, Duration::from_secs(3600));
        Ok(())
    });
    let wall = std::time::Instant::now();
    sim.run().unwrap();
    assert_eq!(sim.elapsed(), Duration::from_secs(3600));
    assert!(wall.elapsed() < Duration::from_secs(30));
}

fn echo_scenario(sim: &mut Sim) {
    sim.host("server", || -> corio::sim::Result {
        let listener = TcpListener::bind("0.0.0.0:7000")?;
        loop {
            let (mut s, _) = listener.accept()?;
            let _echo = corio::spawn(move || {
                let mut buf = [0; 64];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    for c in 0..3 {
        sim.client(format!("client{c}"), move || -> corio::sim::Result {
            let mut s = TcpStream::connect("server:7000")?;
            for i in 0..5u8 {
                s.write_all(&[c, i, 1, 2])?;
                let mut buf = [0; 4];
                s.read_exact(&mut buf)?;
                assert_eq!(buf, [c, i, 1, 2]);
            }
            Ok(())
        });
    }
}

#[test]
fn tcp_echo_and_same_seed_same_trace() {
    let hash = |seed| {
        let mut sim = Builder::new().seed(seed).build();
        echo_scenario(&mut sim);
        sim.run().unwrap();
        (sim.trace_hash(), sim.elapsed())
    };
    assert_eq!(hash(5), hash(5));
    assert_ne!(hash(5), hash(6));
}

#[test]
fn udp_loss_and_timeouts() {
    let mut sim = Builder::new().seed(9).loss(0.5).build();
    sim.host("echo", || -> corio::sim::Result {
        let sock = UdpSocket::bind("0.0.0.0:9000")?;
        let mut buf = [0; 16];
        loop {
            let (n, from) = sock.recv_from(&mut buf)?;
            sock.send_to(&buf[..n], from)?;
        }
    });
    sim.client("c", || -> corio::sim::Result {
        let sock = UdpSocket::bind("0.0.0.0:0")?;
        sock.set_read_timeout(Some(Duration::from_millis(50)))?;
        let mut timeouts = 0;
        let mut buf = [0; 16];
        for i in 0..20u8 {
            loop {
                sock.send_to(&[i], "echo:9000")?;
                match sock.recv_from(&mut buf) {
                    Ok((1, _)) if buf[0] == i => break,
                    Ok(_) => continue, // a late echo of an earlier try
                    Err(e) if e.kind() == ErrorKind::TimedOut => timeouts += 1,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        assert!(timeouts > 0);
        Ok(())
    });
    sim.run().unwrap();
}

#[test]
fn client_failure_names_the_seed() {
    let mut sim = Builder::new().seed(77).build();
    sim.client("c", || Err("boom".into()));
    let err = sim.run().unwrap_err();
    assert!(matches!(err, SimError::Failed { seed: 77, .. }));
    let msg = err.to_string();
    assert!(msg.contains("boom") && msg.contains("seed(77)"), "{msg}");
}

#[test]
fn deadlock_is_reported() {
    let mut sim = Builder::new().seed(1).build();
    sim.client("c", || {
        let (_tx, rx) = corio::sync::mpsc::channel::<u8>();
        let _ = rx.recv();
        Ok(())
    });
    assert!(matches!(sim.run(), Err(SimError::Deadlock { .. })));
}

#[test]
fn connection_refused_and_unknown_host() {
    let mut sim = Builder::new().build();
    sim.host("h", || Ok(()));
    sim.client("c", || {
        assert_eq!(
            TcpStream::connect("h:1").unwrap_err().kind(),
            ErrorKind::ConnectionRefused
        );
        assert_eq!(
            TcpStream::connect("nobody:1").unwrap_err().kind(),
            ErrorKind::NotFound
        );
        Ok(())
    });
    sim.run().unwrap();
}

#[test]
fn crash_resets_peers_and_restart_runs_the_host_again() {
    let mut sim = Builder::new().seed(4).build();
    sim.host("server", || -> corio::sim::Result {
        let listener = TcpListener::bind("0.0.0.0:80")?;
        loop {
            let (mut s, _) = listener.accept()?;
            let _echo = corio::spawn(move || {
                let mut b = [0; 1];
                while s.read(&mut b).unwrap_or(0) == 1 {
                    let _ = s.write_all(&b);
                }
            });
        }
    });
    sim.client("c", || -> corio::sim::Result {
        let mut s = TcpStream::connect("server:80")?;
        s.write_all(b"x")?;
        let mut b = [0; 1];
        s.read_exact(&mut b)?;
        corio::sim::crash("server");
        let err = s.read(&mut b).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionReset);
        assert_eq!(
            TcpStream::connect("server:80").unwrap_err().kind(),
            ErrorKind::ConnectionRefused
        );
        corio::sim::restart("server");
        corio::time::sleep(Duration::from_millis(1));
        let mut s = TcpStream::connect("server:80")?;
        s.write_all(b"y")?;
        s.read_exact(&mut b)?;
        assert_eq!(&b, b"y");
        Ok(())
    });
    sim.run().unwrap();
}

#[test]
fn partition_holds_tcp_until_repair() {
    let mut sim = Builder::new().seed(2).build();
    sim.host("a", || -> corio::sim::Result {
        let l = TcpListener::bind("0.0.0.0:1")?;
        let (mut s, _) = l.accept()?;
        let mut b = [0; 1];
        s.read_exact(&mut b)?;
        s.write_all(&b)?;
        corio::time::sleep(Duration::from_secs(1000));
        Ok(())
    });
    sim.client("b", || -> corio::sim::Result {
        let mut s = TcpStream::connect("a:1")?;
        corio::sim::partition("a", "b");
        s.write_all(b"z")?;
        let mut b = [0; 1];
        let r = corio::time::timeout(Duration::from_secs(5), || s.read_exact(&mut b));
        assert!(r.is_err(), "no reply across the partition");
        corio::sim::repair("a", "b");
        s.read_exact(&mut b)?;
        assert_eq!(&b, b"z");
        Ok(())
    });
    sim.run().unwrap();
}

#[test]
fn files_are_not_simulated() {
    let mut sim = Builder::new().build();
    sim.client("c", || {
        let not_simulated = |err: std::io::Error| {
            assert_eq!(err.kind(), ErrorKind::Unsupported);
            assert!(err.to_string().contains("not simulated"), "{err}");
            assert!(matches!(
                err.get_ref().and_then(|e| e.downcast_ref::<corio::Error>()),
                Some(corio::Error::NotSimulated { .. })
            ));
        };
        not_simulated(corio::fs::read("/etc/hostname").unwrap_err());
        not_simulated(corio::process::Command::new("true").status().unwrap_err());
        not_simulated(corio::signal::Signals::new([10]) /* SIGUSR1 on Linux; refused before it is looked at */.unwrap_err());
        not_simulated(
            corio::net::unix::UnixStream::pair()
                .and_then(|(a, _)| {
                    use std::io::Read;
                    (&a).read(&mut [0; 1])
                })
                .unwrap_err(),
        );
        Ok(())
    });
    sim.run().unwrap();
}

#[test]
fn check_finds_an_ordering_bug_and_replays_it() {
    let scenario = |sim: &mut Sim| {
        sim.client("c", || {
            let n = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(1));
            let (a, b) = (n.clone(), n.clone());
            let h1 = corio::spawn(move || a.fetch_add(1, SeqCst));
            let h2 = corio::spawn(move || b.store(b.load(SeqCst) * 10, SeqCst));
            h1.join().unwrap();
            h2.join().unwrap();
            match n.load(SeqCst) {
                20 => Ok(()),
                other => Err(format!("got {other}").into()),
            }
        });
    };
    let failure = corio::sim::check(0..200, scenario).unwrap_err();
    assert!(failure.message.contains("got 11"), "{failure}");
    // Replaying the seed fails the same way.
    let mut sim = Builder::new().seed(failure.seed).build();
    scenario(&mut sim);
    assert!(sim.run().is_err());
}

#[test]
fn pct_schedule_runs() {
    Builder::new()
        .pct(3, 100)
        .check(0..50, |sim| {
            echo_scenario(sim);
        })
        .unwrap();
}

#[test]
fn step_crash_between_steps_and_run_again() {
    let mut sim = Builder::new().seed(1).build();
    sim.host("h", || {
        corio::time::sleep(Duration::from_secs(1000));
        Ok(())
    });
    sim.client("c", || {
        corio::time::sleep(Duration::from_secs(10));
        Ok(())
    });
    assert!(!sim.step().unwrap());
    sim.crash("h");
    sim.run().unwrap();
    assert_eq!(sim.elapsed(), Duration::from_secs(10));
    // Every client has finished: a second run returns at once.
    sim.run().unwrap();
}

#[test]
fn dropping_a_sim_that_never_ran_unwinds_its_tasks() {
    struct Flag(std::sync::Arc<std::sync::atomic::AtomicBool>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, SeqCst);
        }
    }
    let dropped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut sim = Builder::new().build();
    let d = dropped.clone();
    sim.host("h", move || {
        let _flag = Flag(d.clone());
        let _l = TcpListener::bind("0.0.0.0:1").unwrap();
        corio::time::sleep(Duration::from_secs(100));
        Ok(())
    });
    sim.client("c", || {
        corio::time::sleep(Duration::from_secs(10));
        Ok(())
    });
    assert!(!sim.step().unwrap());
    assert!(!dropped.load(SeqCst));
    drop(sim);
    assert!(dropped.load(SeqCst));
}

#[test]
fn datagrams_are_reordered_by_their_latencies() {
    let mut sim = Builder::new()
        .seed(11)
        .latency(Duration::from_millis(1)..Duration::from_millis(50))
        .build();
    sim.host("rx", || {
        let sock = UdpSocket::bind("0.0.0.0:5000")?;
        let (_, tx) = sock.recv_from(&mut [0; 1])?; // the client's hello
        let mut got = Vec::new();
        let mut buf = [0; 1];
        for _ in 0..50 {
            sock.recv_from(&mut buf)?;
            got.push(buf[0]);
        }
        let sorted = got.windows(2).all(|w| w[0] < w[1]);
        sock.send_to(&[u8::from(sorted)], tx)?;
        Ok(())
    });
    sim.client("tx", || {
        let sock = UdpSocket::bind("0.0.0.0:0")?;
        sock.send_to(&[0], "rx:5000")?;
        corio::time::sleep(Duration::from_millis(100));
        for i in 0..50u8 {
            sock.send_to(&[i], "rx:5000")?;
        }
        let mut sorted = [9];
        sock.recv_from(&mut sorted)?;
        assert_eq!(sorted, [0], "50 datagrams arrived in the order sent");
        Ok(())
    });
    sim.run().unwrap();
}

#[test]
fn reset_knob_resets_connections() {
    let mut sim = Builder::new().reset(1.0).build();
    sim.host("s", || {
        let l = TcpListener::bind("0.0.0.0:1")?;
        let (mut s, _) = l.accept()?;
        let err = s.read(&mut [0; 1]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionReset);
        Ok(())
    });
    sim.client("c", || {
        let mut s = TcpStream::connect("s:1")?;
        s.write_all(b"x")?;
        let err = s.read(&mut [0; 1]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionReset);
        Ok(())
    });
    sim.run().unwrap();
}

#[test]
fn time_limit_stops_a_run_that_never_ends() {
    let mut sim = Builder::new()
        .seed(5)
        .time_limit(Duration::from_secs(60))
        .build();
    sim.client("c", || {
        loop {
            corio::time::sleep(Duration::from_secs(1));
        }
    });
    let err = sim.run().unwrap_err();
    assert!(matches!(err, SimError::TimeLimit { seed: 5, .. }), "{err}");
    assert!(err.to_string().contains("seed(5)"));
}

#[test]
fn pct_finds_the_ordering_bug() {
    let failure = Builder::new()
        .pct(2, 10)
        .check(0..200, |sim| {
            sim.client("c", || {
                let n = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(1));
                let (a, b) = (n.clone(), n.clone());
                let h1 = corio::spawn(move || a.fetch_add(1, SeqCst));
                let h2 = corio::spawn(move || b.store(b.load(SeqCst) * 10, SeqCst));
                h1.join().unwrap();
                h2.join().unwrap();
                assert_eq!(n.load(SeqCst), 20);
                Ok(())
            });
        })
        .unwrap_err();
    assert!(failure.message.contains("panicked"), "{failure}");
}
