//! [`Child`]: a running child process, waited for without blocking the
//! runtime.

use std::fmt;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::process::{ExitStatus, Output};

use super::pipe::{ChildStderr, ChildStdin, ChildStdout};
use super::sys;
use crate::future;
use crate::io_op::{Registered, io_op_as};
use crate::pool::{in_task, unblock_io_as};
use crate::task::{Builder, Direction, WaitReason};

/// How `wait` learns that the child exited.
enum Exit {
    /// A pidfd, readable once the child has exited, in the reactor.
    Pidfd(Registered<OwnedFd>),
    /// No pidfds (old kernel, seccomp, not Linux): a pool thread waits.
    Pool,
}

/// A running (or exited) child process, returned by
/// [`Command::spawn`](super::Command::spawn); like [`std::process::Child`].
///
/// # Differences from std
///
/// * [`wait`](Child::wait) suspends the task, not the thread.
/// * With [`Command::kill_on_drop`](super::Command::kill_on_drop), dropping
///   the handle kills the child and reaps it on the blocking pool. Otherwise,
///   as in std, dropping it lets the child run on, and nobody reaps it.
pub struct Child {
    /// The child's stdin, if it was set to [`Stdio::piped`](super::Stdio::piped).
    pub stdin: Option<ChildStdin>,
    /// The child's stdout, if it was set to [`Stdio::piped`](super::Stdio::piped).
    pub stdout: Option<ChildStdout>,
    /// The child's stderr, if it was set to [`Stdio::piped`](super::Stdio::piped).
    pub stderr: Option<ChildStderr>,
    exit: Exit,
    std: std::process::Child,
    kill_on_drop: bool,
}

impl Child {
    pub(super) fn from_std(mut std: std::process::Child, kill_on_drop: bool) -> io::Result<Child> {
        let (stdin, stdout, stderr) = (std.stdin.take(), std.stdout.take(), std.stderr.take());
        // Built before anything can fail, so that an error below drops a
        // `Child`, which honours kill_on_drop.
        let mut child = Child {
            stdin: None,
            stdout: None,
            stderr: None,
            exit: Exit::Pool,
            std,
            kill_on_drop,
        };
        child.stdin = stdin.map(ChildStdin::from_std).transpose()?;
        child.stdout = stdout.map(ChildStdout::from_std).transpose()?;
        child.stderr = stderr.map(ChildStderr::from_std).transpose()?;
        if let Some(fd) = sys::pidfd_open(child.id())? {
            child.exit = Exit::Pidfd(Registered::new(fd));
        }
        Ok(child)
    }

    /// The OS process id of the child.
    pub fn id(&self) -> u32 {
        self.std.id()
    }

    /// Sends `SIGKILL` to the child, like [`std::process::Child::kill`]; it
    /// does not wait (call [`wait`](Self::wait) to reap it).
    ///
    /// # Errors
    ///
    /// As [`std::process::Child::kill`]. Killing a child that has already
    /// exited and been waited for is `Ok`.
    pub fn kill(&mut self) -> io::Result<()> {
        self.std.kill()
    }

    /// Waits for the child to exit and returns its status, like
    /// [`std::process::Child::wait`]; stdin is closed first, so a child
    /// reading it sees end-of-file.
    ///
    /// Inside a task, the task suspends (`Waiting(Process)`) until the
    /// kernel reports the exit — through a pidfd in the reactor on Linux,
    /// without polling; where pidfds are missing a blocking-pool thread waits
    /// instead. Outside a task the thread blocks.
    ///
    /// # Errors
    ///
    /// As [`std::process::Child::wait`]. A cancellation or a timeout (an
    /// enclosing [`time::timeout`](crate::time::timeout)) returns an error
    /// and leaves the child running: [`kill`](Self::kill) it, or wait again.
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        drop(self.stdin.take());
        if let Some(status) = self.std.try_wait()? {
            return Ok(status);
        }
        match &self.exit {
            Exit::Pidfd(pidfd) => {
                let std = &mut self.std;
                io_op_as(
                    pidfd.get().as_fd(),
                    pidfd.reg(),
                    Direction::Read,
                    None,
                    WaitReason::Process,
                    || match std.try_wait()? {
                        Some(status) => Ok(status),
                        None => Err(io::ErrorKind::WouldBlock.into()),
                    },
                )
            }
            Exit::Pool => {
                let pid = self.id();
                unblock_io_as(move || sys::wait_exited_no_reap(pid), WaitReason::Process)?;
                self.std.wait()
            }
        }
    }

    /// Returns the exit status if the child has exited, without waiting,
    /// like [`std::process::Child::try_wait`].
    ///
    /// # Errors
    ///
    /// As [`std::process::Child::try_wait`].
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.std.try_wait()
    }

    /// Closes stdin, reads all of stdout and stderr (whichever are piped)
    /// while the child runs, then waits for it, like
    /// [`std::process::Child::wait_with_output`].
    ///
    /// Both pipes are drained at the same time (in a helper task, or a helper
    /// thread outside a runtime), so a child that fills one while the other
    /// is being read does not deadlock.
    ///
    /// # Errors
    ///
    /// Reading or waiting failed, or the task was cancelled or timed out
    /// (the child is then dropped, and killed if `kill_on_drop` was set).
    pub fn wait_with_output(mut self) -> io::Result<Output> {
        drop(self.stdin.take());
        let (stdout, stderr) = read_both(self.stdout.take(), self.stderr.take())?;
        let status = self.wait()?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.kill_on_drop || !matches!(self.std.try_wait(), Ok(None)) {
            return;
        }
        if self.std.kill().is_ok() {
            // SIGKILL is not instant: reap the child on a pool thread rather
            // than block the runtime here, and rather than leave a zombie.
            let pid = self.id();
            ::blocking::unblock(move || sys::reap(pid)).detach();
        }
    }
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child")
            .field("pid", &self.id())
            .field("stdin", &self.stdin)
            .field("stdout", &self.stdout)
            .field("stderr", &self.stderr)
            .field("kill_on_drop", &self.kill_on_drop)
            .finish()
    }
}

/// Reads `out` and `err` to the end at the same time.
fn read_both(out: Option<ChildStdout>, err: Option<ChildStderr>) -> io::Result<(Vec<u8>, Vec<u8>)> {
    fn drain(mut r: impl Read) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        r.read_to_end(&mut v).map(|_| v)
    }
    match (out, err) {
        (None, None) => Ok((Vec::new(), Vec::new())),
        (Some(out), None) => Ok((drain(out)?, Vec::new())),
        (None, Some(err)) => Ok((Vec::new(), drain(err)?)),
        (Some(out), Some(err)) if in_task() => {
            let mut helper = Builder::new()
                .name("corio::process stderr")
                .spawn(move || drain(err))
                .map_err(io::Error::from)?;
            let out = drain(out).inspect_err(|_| helper.cancel())?;
            // A cancellable wait for the helper (`join` would shield), so a
            // cancelled caller does not hang on a child that keeps running.
            let reason = WaitReason::Join(helper.id());
            let err = match future::drive(Pin::new(&mut helper), reason) {
                Ok(joined) => joined.map_err(io::Error::from)??,
                Err(interrupt) => {
                    helper.cancel();
                    return Err(interrupt.into());
                }
            };
            Ok((out, err))
        }
        (Some(out), Some(err)) => std::thread::scope(|s| {
            let helper = s.spawn(move || drain(err));
            let out = drain(out);
            let err = helper
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            Ok((out?, err?))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::TaskState;

    /// A child that waits through the blocking pool, as where pidfds are
    /// missing.
    fn pool_child(script: &str) -> Child {
        let std = std::process::Command::new("sh")
            .args(["-c", script])
            .spawn()
            .unwrap();
        let mut child = Child::from_std(std, false).unwrap();
        child.exit = Exit::Pool;
        child
    }

    #[test]
    fn the_pool_fallback_waits_without_blocking_the_runtime() {
        crate::run(|| {
            let mut child = pool_child("sleep 0.05; exit 5");
            let waiter = crate::spawn(move || child.wait().unwrap());
            crate::yield_now();
            let state = crate::tasks()
                .into_iter()
                .find(|t| t.id() == waiter.id())
                .unwrap()
                .state();
            assert_eq!(state, TaskState::Waiting(WaitReason::Process));
            assert_eq!(waiter.join().unwrap().code(), Some(5));
        });
        assert_eq!(pool_child("exit 3").wait().unwrap().code(), Some(3));
    }
}
