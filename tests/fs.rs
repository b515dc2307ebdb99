//! `corio::fs`: file system operations on the blocking pool.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use corio::fs::{self, File, OpenOptions};
use corio::task::{TaskState, WaitReason};

/// A fresh directory under the temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "corio-test-fs-{}-{name}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn whole_file_round_trips() {
    let dir = TempDir::new("whole");
    corio::run(|| {
        let p = dir.join("a.txt");
        fs::write(&p, "hello, corio").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "hello, corio");
        assert_eq!(fs::read(&p).unwrap(), b"hello, corio");
        let meta = fs::metadata(&p).unwrap();
        assert!(meta.is_file());
        assert_eq!(meta.len(), 12);
        assert!(fs::exists(&p).unwrap());

        let q = dir.join("b.txt");
        fs::rename(&p, &q).unwrap();
        assert!(!fs::exists(&p).unwrap());
        assert_eq!(fs::copy(&q, &p).unwrap(), 12);
        fs::remove_file(&q).unwrap();
        let err = fs::remove_file(&q).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let err = fs::read(dir.join("missing")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);

        fs::write(&q, [0xff, 0xfe]).unwrap();
        let err = fs::read_to_string(&q).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    });
}

#[test]
fn directories() {
    let dir = TempDir::new("dirs");
    corio::run(|| {
        let deep = dir.join("x/y/z");
        fs::create_dir_all(&deep).unwrap();
        assert!(fs::metadata(&deep).unwrap().is_dir());
        let err = fs::create_dir(&deep).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);

        // More entries than one batch of the iterator.
        for i in 0..150 {
            fs::write(deep.join(format!("f{i:03}")), i.to_string()).unwrap();
        }
        fs::create_dir(deep.join("sub")).unwrap();
        let mut names = Vec::new();
        for entry in fs::read_dir(&deep).unwrap() {
            let entry = entry.unwrap();
            assert_eq!(entry.path(), deep.join(entry.file_name()));
            let is_dir = entry.file_type().unwrap().is_dir();
            assert_eq!(is_dir, entry.file_name() == "sub");
            assert_eq!(entry.metadata().unwrap().is_dir(), is_dir);
            names.push(entry.file_name().into_string().unwrap());
        }
        names.sort();
        assert_eq!(names.len(), 151);
        assert_eq!(names[0], "f000");
        assert_eq!(names[150], "sub");

        let err = fs::read_dir(dir.join("nope")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        fs::remove_dir_all(dir.join("x")).unwrap();
        assert!(!fs::exists(dir.join("x")).unwrap());
    });
}

#[test]
fn file_read_write_seek_set_len_sync() {
    let dir = TempDir::new("file");
    corio::run(|| {
        let p = dir.join("f.bin");
        let mut f = File::create(&p).unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        f.write_all(&data).unwrap();
        f.sync_all().unwrap();
        assert_eq!(f.metadata().unwrap().len(), data.len() as u64);
        // Opened write-only: reading fails like std.
        let mut buf = [0u8; 4];
        assert!(f.read(&mut buf).is_err());

        let mut f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
        assert_eq!(f.seek(SeekFrom::Start(1000)).unwrap(), 1000);
        let mut buf = [0u8; 10];
        f.read_exact(&mut buf).unwrap();
        assert_eq!(&buf[..], &data[1000..1010]);
        assert_eq!(f.stream_position().unwrap(), 1010);
        f.set_len(5000).unwrap();
        f.sync_data().unwrap();
        assert_eq!(f.seek(SeekFrom::End(0)).unwrap(), 5000);
        f.seek(SeekFrom::Start(0)).unwrap();
        let mut all = Vec::new();
        assert_eq!(f.read_to_end(&mut all).unwrap(), 5000);
        assert_eq!(all, &data[..5000]);
        // Small reads through a BufReader.
        f.rewind().unwrap();
        let mut reader = io::BufReader::with_capacity(64, f);
        let mut s = Vec::new();
        reader.by_ref().take(200).read_to_end(&mut s).unwrap();
        assert_eq!(s, &data[..200]);

        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("log"))
            .unwrap();
        log.write_all(b"one\n").unwrap();
        let mut log = OpenOptions::new()
            .append(true)
            .open(dir.join("log"))
            .unwrap();
        log.write_all(b"two\n").unwrap();
        let mut text = String::new();
        File::open(dir.join("log"))
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "one\ntwo\n");

        let err = File::create_new(dir.join("log")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        let err = File::open(dir.join("missing")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    });
}

#[test]
fn many_tasks_do_file_io_at_once() {
    let dir = TempDir::new("many");
    corio::run(|| {
        let handles: Vec<_> = (0..32)
            .map(|i| {
                let p = dir.join(format!("t{i}"));
                corio::spawn(move || {
                    let body = format!("task {i}\n").repeat(100);
                    let mut f = File::create(&p).unwrap();
                    f.write_all(body.as_bytes()).unwrap();
                    drop(f);
                    fs::read_to_string(&p).unwrap() == body
                })
            })
            .collect();
        for h in handles {
            assert!(h.join().unwrap());
        }
    });
}

#[test]
fn outside_a_runtime_fs_runs_on_the_calling_thread() {
    let dir = TempDir::new("thread");
    let p = dir.join("x");
    fs::write(&p, b"plain thread").unwrap();
    let mut f = File::open(&p).unwrap();
    let mut s = String::new();
    f.read_to_string(&mut s).unwrap();
    assert_eq!(s, "plain thread");
    assert_eq!(fs::read_dir(&dir.0).unwrap().count(), 1);
}

#[test]
fn a_cancelled_task_stops_waiting_for_a_blocked_open() {
    let dir = TempDir::new("fifo-cancel");
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    corio::run(|| {
        // Opening a FIFO for reading blocks until a writer opens it.
        let f2 = fifo.clone();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
        let seen2 = std::sync::Arc::clone(&seen);
        let h = corio::spawn(move || {
            let err = File::open(&f2).unwrap_err();
            *seen2.lock().unwrap() = Some(corio::Error::is_cancellation(&err));
        });
        corio::yield_now();
        let state = corio::tasks()
            .into_iter()
            .find(|t| t.id() == h.id())
            .unwrap()
            .state();
        assert_eq!(state, TaskState::Waiting(WaitReason::Blocking));
        h.cancel();
        // The open returned the cancellation error at once (the task then
        // finishes as cancelled).
        assert!(h.join().unwrap_err().is_cancelled());
        assert_eq!(*seen.lock().unwrap(), Some(true));
    });
    // Release the pool thread blocked in open(2), if the pool had started
    // the open (if not, it never runs, and there is no reader: ENXIO).
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo);
}

#[test]
fn an_abandoned_operation_finishes_before_the_next_one_starts() {
    let dir = TempDir::new("fifo-order");
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    let f2 = fifo.clone();
    let writer = thread::spawn(move || std::fs::OpenOptions::new().write(true).open(f2).unwrap());
    corio::run(move || {
        let mut f = File::open(&fifo).unwrap();
        let mut w = corio::unblock(move || writer.join().unwrap());
        let mut buf = [0u8; 16];
        // No data yet: the read blocks on the pool and the timeout abandons it.
        let r = corio::time::timeout(Duration::from_millis(20), || f.read(&mut buf));
        assert!(r.is_err(), "{r:?}");
        // The abandoned read is still waiting in read(2); it takes this.
        w.write_all(b"first").unwrap();
        drop(w);
        // The next read waits for the abandoned one, so it sees end-of-file
        // rather than racing it for "first".
        let mut rest = Vec::new();
        f.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"");
    });
}
