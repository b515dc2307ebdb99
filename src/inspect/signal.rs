//! `dump_on_signal`: the signal handler only writes a byte to a socket
//! (signal-hook's self-pipe); a thread of corio's reads it and asks every
//! running runtime to print its dump, which each does on its own thread at
//! its next task switch or poll.

use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use crate::task::context::Scheduler;
use crate::task::diag::write_stderr;

/// The write end the handlers write to, once the reading thread runs.
static WRITER: Mutex<Option<UnixStream>> = Mutex::new(None);

/// Makes signal `signo` print the dump of every running corio runtime
/// (tasks, what they wait on, their backtraces, the wait graph) to stderr;
/// the program runs on. Like Python's `faulthandler.register`.
///
/// The signal handler only writes a byte to a socket; a thread of corio's
/// passes the request on, and each runtime prints its dump from its own
/// thread at its next task switch or poll (a task that never yields
/// delays it: see the stall monitor,
/// [`Builder::stall_threshold`](crate::runtime::Builder::stall_threshold)).
///
/// `SIGQUIT` (Ctrl-\\ in a terminal) is the usual choice, as in Go and the
/// JVM: it replaces the default action (quit with a core dump).
///
/// # Errors
///
/// If `signo` cannot be handled (`SIGKILL`, `SIGSTOP`, and the signals
/// signal-hook forbids: `SIGSEGV`, `SIGBUS`, `SIGILL`, `SIGFPE`), or the
/// socket or thread cannot be created.
///
/// # Examples
///
/// ```
/// corio::inspect::dump_on_signal(libc::SIGQUIT).unwrap();
/// // From now on, `kill -QUIT <pid>` prints every task of every runtime.
/// ```
pub fn dump_on_signal(signo: i32) -> io::Result<()> {
    let mut writer = WRITER.lock().unwrap_or_else(|e| e.into_inner());
    if writer.is_none() {
        let (rx, tx) = UnixStream::pair()?;
        super::deadlock::HELPER_THREADS.fetch_add(1, Ordering::AcqRel);
        let spawned = std::thread::Builder::new()
            .name("corio-dump-signal".into())
            .spawn(move || serve(rx));
        if let Err(e) = spawned {
            super::deadlock::HELPER_THREADS.fetch_sub(1, Ordering::AcqRel);
            return Err(e);
        }
        *writer = Some(tx);
    }
    let tx = writer.as_ref().expect("set above").try_clone()?;
    signal_hook::low_level::pipe::register(signo, tx)?;
    Ok(())
}

fn serve(mut rx: UnixStream) {
    let mut buf = [0u8; 64];
    loop {
        match rx.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {
                if super::stall::request_dumps() == 0 {
                    write_stderr("corio: dump requested by a signal: no runtime is running\n");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// A dump a signal asked for, from the loop.
#[cold]
pub(crate) fn serve_dump_request(s: &Scheduler) {
    if s.diag.dump_request.swap(false, Ordering::AcqRel) {
        let _reporting = s.diag.reporting();
        let text = super::dump_of(s);
        write_stderr(&format!("corio: dump requested by a signal\n{text}"));
    }
}
