//! `fs::File::into_std` at the open-files limit: with an abandoned operation
//! still holding the file on the pool and no descriptor to duplicate it
//! into, it waits for the operation instead of panicking.
//!
//! The test lowers this process's `RLIMIT_NOFILE`, so it is the only test
//! in its binary.

mod common;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::thread;
use std::time::Duration;

use corio::fs::File;
use corio::time::timeout;

#[test]
fn into_std_at_the_fd_limit_waits_for_the_abandoned_operation() {
    let dir = std::env::temp_dir().join(format!("corio-fs-emfile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    let fifo: PathBuf = dir.join("fifo");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    let f2 = fifo.clone();
    // Opens the write end (which waits for the reader), then writes only
    // once the task has hit the limit and called `into_std`.
    let writer = thread::spawn(move || {
        let mut w = std::fs::OpenOptions::new().write(true).open(f2).unwrap();
        thread::sleep(Duration::from_millis(300));
        w.write_all(b"late").unwrap();
    });
    let (file, read) = corio::run(move || {
        let mut f = File::open(&fifo).unwrap();
        let mut buf = [0u8; 16];
        // No data yet: the read blocks on the pool and the timeout abandons it.
        let r = timeout(Duration::from_millis(20), || f.read(&mut buf));
        assert!(r.is_err(), "{r:?}");
        let _restore = common::RestoreFdLimit(common::soft_fd_limit());
        // No descriptor left to duplicate the file into.
        common::set_soft_fd_limit(common::limit_leaving(1));
        let filler = std::fs::File::open("/dev/null").unwrap();
        assert!(std::fs::File::open("/dev/null").is_err());
        // An expired timeout interrupts the wait for the abandoned read
        // (so `timeout` reports `Elapsed`), and there is no descriptor to
        // duplicate the file into: `into_std` must wait, not panic.
        let mut out = None;
        let _ = timeout(Duration::ZERO, || out = Some(f.into_std()));
        drop(filler);
        let mut file = out.expect("into_std returned");
        let mut rest = Vec::new();
        file.read_to_end(&mut rest).unwrap();
        (file, rest)
    });
    writer.join().unwrap();
    // The abandoned read took the data; the file is the same open file.
    assert!(read.is_empty(), "{read:?}");
    drop(file);
    let _ = std::fs::remove_dir_all(&dir);
}
