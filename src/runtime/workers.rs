//! The threads of a runtime's workers other than the first (worker 0 is
//! the thread that calls `block_on`): each makes its own scheduler, reactor
//! and timers on its thread, runs while `block_on` runs, and waits between.
#![allow(unsafe_code)]

use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

use crate::error::Error;
use crate::task::context::{Config, Scheduler, Shared};
use crate::task::core::report_overflow;
use crate::task::worker::Group;

enum Command {
    Join(Arc<Group>),
    Run,
    Exit,
}

struct Worker {
    commands: Sender<Command>,
    done: Receiver<()>,
    thread: Option<JoinHandle<()>>,
}

/// Workers 1.. of a runtime.
pub(crate) struct Threads(Vec<Worker>);

impl Threads {
    /// Starts workers `1..n`; returns them and their shared states.
    pub(crate) fn spawn(
        n: usize,
        config: Config,
        pin: bool,
    ) -> Result<(Threads, Vec<Arc<Shared>>), Error> {
        let mut threads = Threads(Vec::new());
        let mut shared = Vec::new();
        for index in 1..n {
            let (commands, rx) = channel();
            let (done_tx, done) = channel();
            let (ready_tx, ready) = channel();
            let config = Config {
                worker: index,
                ..config
            };
            let thread = std::thread::Builder::new()
                .name(format!("corio-worker-{index}"))
                .spawn(move || {
                    if pin {
                        let _ = pin_to_core(index);
                    }
                    let s = match Scheduler::new(config) {
                        Ok(s) => s,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(s.shared.clone()));
                    crate::overflow::install(report_overflow);
                    worker_loop(&s, &rx, &done_tx);
                })
                .map_err(crate::error::from_io)?;
            threads.0.push(Worker {
                commands,
                done,
                thread: Some(thread),
            });
            match ready.recv() {
                Ok(Ok(s)) => shared.push(s),
                Ok(Err(e)) => return Err(crate::error::from_io(e)),
                Err(_) => {
                    return Err(crate::error::from_io(std::io::Error::other(
                        "a corio worker thread died while starting",
                    )));
                }
            }
        }
        Ok((threads, shared))
    }

    /// Makes every worker a member of `group`.
    pub(crate) fn join(&self, group: &Arc<Group>) {
        for w in &self.0 {
            let _ = w.commands.send(Command::Join(group.clone()));
        }
    }

    /// Lets every worker run until the group stops; the guard waits for
    /// all of them to have unwound their tasks.
    pub(crate) fn run<'a>(&'a self, group: &'a Group) -> Running<'a> {
        for w in &self.0 {
            let _ = w.commands.send(Command::Run);
        }
        Running(self, group)
    }
}

/// Workers running; dropped when `block_on` ends (see [`Threads::run`]).
pub(crate) struct Running<'a>(&'a Threads, &'a Group);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        // Normally stopped by worker 0's shutdown already; not if it
        // unwound before starting the main task.
        self.1.stop();
        for w in &self.0.0 {
            // An error: the thread is gone (a corio bug killed it).
            let _ = w.done.recv();
        }
        self.1
            .stopping
            .store(false, std::sync::atomic::Ordering::Release);
    }
}

impl Drop for Threads {
    fn drop(&mut self) {
        for w in &self.0 {
            let _ = w.commands.send(Command::Exit);
        }
        for w in &mut self.0 {
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
    }
}

fn worker_loop(s: &Scheduler, commands: &Receiver<Command>, done: &Sender<()>) {
    while let Ok(command) = commands.recv() {
        match command {
            Command::Join(group) => s.join_group(group),
            Command::Run => {
                {
                    let _enter = s.enter();
                    // Stall reports and signal dumps watch every worker.
                    let _registration = crate::inspect::stall::register(s);
                    s.shared.counters.enter();
                    s.run_worker();
                    s.shutdown();
                    s.shared.counters.leave();
                }
                let _ = done.send(());
            }
            Command::Exit => break,
        }
    }
}

/// Pins the calling thread to core `index` (modulo the cores it may use);
/// returns the mask it had, to restore with [`restore_affinity`].
pub(crate) fn pin_to_core(index: usize) -> Option<libc::cpu_set_t> {
    // SAFETY: `cpu_set_t` is plain data; all-zero is the empty set.
    let mut old: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: `old` is a valid `cpu_set_t` of `size` bytes; pid 0 is the
    // calling thread.
    if unsafe { libc::sched_getaffinity(0, size, &mut old) } != 0 {
        return None;
    }
    let allowed: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `i` is below `CPU_SETSIZE`, within the set.
        .filter(|&i| unsafe { libc::CPU_ISSET(i, &old) })
        .collect();
    let core = *allowed.get(index % allowed.len().max(1))?;
    // SAFETY: as above.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `core` is below `CPU_SETSIZE`.
    unsafe { libc::CPU_SET(core, &mut set) };
    // SAFETY: `set` is a valid `cpu_set_t` of `size` bytes.
    (unsafe { libc::sched_setaffinity(0, size, &set) } == 0).then_some(old)
}

/// Gives the calling thread back the mask [`pin_to_core`] returned.
pub(crate) fn restore_affinity(old: &libc::cpu_set_t) {
    // SAFETY: `old` is a valid `cpu_set_t` of its size.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), old) };
}
