//! Accepting at the open-files limit: the error names the limit, a server
//! loop that keeps calling `accept` does not spin the CPU, and accepting
//! resumes once descriptors are freed.
//!
//! The test lowers this process's `RLIMIT_NOFILE`, so it is the only test
//! in its binary.

mod common;

use std::time::{Duration, Instant};

use corio::net::TcpListener;
use corio::time::timeout;

#[test]
fn accept_at_the_fd_limit_backs_off() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Clients wait in the listen backlog; the connects complete without an
    // accept.
    let clients: Vec<_> = (0..20)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    corio::run(move || {
        let _restore = common::RestoreFdLimit(common::soft_fd_limit());
        // Room for exactly two more descriptors.
        let limit = common::limit_leaving(2);
        common::set_soft_fd_limit(limit);

        let mut accepted = Vec::new();
        let mut errors = Vec::new();
        let cpu_before = common::thread_cpu();
        let window = Instant::now();
        // A naive server loop: on error, just try again (until the
        // `timeout` makes every call fail with TimedOut).
        let r = timeout(Duration::from_millis(400), || {
            loop {
                match listener.accept() {
                    Ok((s, _)) => accepted.push(s),
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => break,
                    Err(e) => errors.push(e),
                }
            }
        });
        assert!(r.is_err());
        let elapsed = window.elapsed();
        let cpu = common::thread_cpu() - cpu_before;

        assert_eq!(accepted.len(), 2, "errors: {errors:?}");
        let emfile = &errors;
        assert!(!emfile.is_empty());
        for e in emfile {
            let msg = e.to_string();
            assert!(msg.contains("too many open files"), "{msg}");
            assert!(msg.contains(&format!("limit of {limit}")), "{msg}");
            assert!(matches!(
                e.get_ref().and_then(|i| i.downcast_ref::<corio::Error>()),
                Some(corio::Error::FdLimit { .. })
            ));
        }
        // Backing off 5, 10, 20, ... ms: a handful of failures, not a spin.
        assert!(
            emfile.len() <= 10,
            "{} failed accepts in {elapsed:?}",
            emfile.len()
        );
        assert!(
            cpu < elapsed / 4,
            "accept loop used {cpu:?} of CPU in {elapsed:?}"
        );

        // Free descriptors and raise the limit again: accepting resumes.
        drop(accepted);
        drop(_restore);
        let resumed = timeout(Duration::from_secs(5), || listener.accept());
        assert!(matches!(resumed, Ok(Ok(_))), "{resumed:?}");
    });
    drop(clients);
}
