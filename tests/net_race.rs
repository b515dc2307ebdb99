//! Races between runtimes over one socket: two runtimes on two threads
//! that first use a shared stream at the same moment. Exactly one
//! registers it; the other gets `Error::WrongRuntime`, and no task is ever
//! resumed on another runtime's thread.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, mpsc};
use std::thread::{self, ThreadId};
use std::time::Duration;

use corio::net::TcpStream;
use corio::net::unix::UnixStream;

/// What one runtime's task saw: the result of its first read, and the
/// threads it ran on before and after it.
struct Report {
    result: Result<usize, Option<corio::Error>>,
    before: ThreadId,
    after: ThreadId,
}

/// One round: two runtimes race to first-read `reader`; the loser must get
/// the typed error, the winner the byte `writer` then sends.
fn race<S, W>(round: usize, reader: Arc<S>, mut writer: W)
where
    S: Send + Sync + 'static,
    for<'a> &'a S: Read,
    W: Write,
{
    let barrier = Arc::new(Barrier::new(2));
    let ready = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (reader, barrier, ready) = (
                Arc::clone(&reader),
                Arc::clone(&barrier),
                Arc::clone(&ready),
            );
            let tx = tx.clone();
            thread::spawn(move || {
                corio::run(move || {
                    barrier.wait();
                    // Spin until both are here, so that both threads are
                    // running when they read (a blocking barrier wakes
                    // one of them a scheduling delay after the other).
                    ready.fetch_add(1, Ordering::SeqCst);
                    while ready.load(Ordering::SeqCst) < 2 {
                        std::hint::spin_loop();
                    }
                    let before = thread::current().id();
                    let mut buf = [0; 1];
                    let result = (&*reader).read(&mut buf).map_err(|e| {
                        let typed = e
                            .into_inner()
                            .and_then(|e| e.downcast::<corio::Error>().ok());
                        typed.map(|e| *e)
                    });
                    let after = thread::current().id();
                    tx.send(Report {
                        result,
                        before,
                        after,
                    })
                    .unwrap();
                });
                thread::current().id()
            })
        })
        .collect();
    // The loser reports at once; the winner waits for data.
    let first = rx
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| {
            panic!("round {round}: neither runtime refused the other's registration")
        });
    writer.write_all(b"x").unwrap();
    let second = rx
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("round {round}: the registered runtime never got its byte"));
    let ids: Vec<ThreadId> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    for r in [&first, &second] {
        assert_eq!(
            r.before, r.after,
            "round {round}: a task was resumed on another thread"
        );
        assert!(
            ids.contains(&r.before),
            "round {round}: a task ran outside its runtime"
        );
    }
    assert!(
        matches!(first.result, Err(Some(corio::Error::WrongRuntime))),
        "round {round}: the loser got {:?}",
        first.result
    );
    assert!(
        matches!(second.result, Ok(1)),
        "round {round}: the winner got {:?}",
        second.result
    );
}

const ROUNDS: usize = 500;

#[test]
fn two_runtimes_first_using_one_tcp_stream_at_once() {
    for round in 0..ROUNDS {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        // A backstop: a lost wakeup ends in an error, not a hang.
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        race(round, Arc::new(c), s);
    }
}

#[test]
fn two_runtimes_first_using_one_unix_stream_at_once() {
    for round in 0..ROUNDS {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        race(round, Arc::new(a), b);
    }
}
