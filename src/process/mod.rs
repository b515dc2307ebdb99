//! Child processes, mirroring [`std::process`]: [`Command`] builds and
//! spawns them; waiting for one, and reading or writing its piped standard
//! streams, suspends the task instead of the thread.
//!
//! * Piped stdin/stdout/stderr are non-blocking pipes in the reactor:
//!   [`ChildStdout`] and [`ChildStderr`] implement [`Read`](std::io::Read),
//!   [`ChildStdin`] implements [`Write`](std::io::Write), and they work with
//!   everything built on those traits (`BufReader::lines`, `io::copy`, …).
//! * [`Child::wait`] learns of the exit from a pidfd registered with the
//!   reactor (Linux ≥ 5.3) — no polling loop, no SIGCHLD handler. Where
//!   pidfds are unavailable, a blocking-pool thread waits instead.
//! * [`Command::kill_on_drop`] kills (and reaps) the child when its
//!   [`Child`] handle is dropped — for example when the task owning it is
//!   cancelled.
//!
//! Outside a task everything blocks the calling thread, like `std`.
//!
//! # Examples
//!
//! ```
//! use corio::process::Command;
//!
//! corio::run(|| {
//!     let out = Command::new("echo").arg("hello").output().unwrap();
//!     assert!(out.status.success());
//!     assert_eq!(out.stdout, b"hello\n");
//! });
//! ```
//!
//! Talking to a child through pipes:
//!
//! ```
//! use std::io::{BufRead, BufReader, Write};
//! use corio::process::{Command, Stdio};
//!
//! corio::run(|| -> std::io::Result<()> {
//!     let mut child = Command::new("cat").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
//!     let mut stdin = child.stdin.take().unwrap();
//!     let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
//!     stdin.write_all(b"ping\n")?;
//!     assert_eq!(lines.next().unwrap()?, "ping");
//!     drop(stdin); // cat sees end-of-file and exits
//!     assert!(child.wait()?.success());
//!     Ok(())
//! })
//! .unwrap();
//! ```

mod child;
mod pipe;
mod sys;

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::path::Path;

pub use child::Child;
pub use pipe::{ChildStderr, ChildStdin, ChildStdout};
pub use std::process::{ExitStatus, Output, Stdio};

/// A process builder, like [`std::process::Command`]: the same builder
/// methods, with [`spawn`](Command::spawn), [`output`](Command::output) and
/// [`status`](Command::status) that suspend the task instead of the thread.
///
/// # Differences from std
///
/// * [`kill_on_drop`](Command::kill_on_drop) (not in std).
/// * Set stdin/stdout/stderr through this type's methods rather than through
///   [`as_std_mut`](Command::as_std_mut): [`output`](Command::output) needs
///   to know which ones were set to apply its defaults (stdout and stderr
///   captured, stdin null).
/// * Starting the process (fork/exec) happens on the calling thread, as in
///   std: a few hundred microseconds (about 0.23 ms on average for `true`
///   on a 2-core VM), during which the runtime's other tasks wait.
///
/// # Examples
///
/// ```
/// use corio::process::Command;
///
/// corio::run(|| {
///     let status = Command::new("sh").args(["-c", "exit 3"]).status().unwrap();
///     assert_eq!(status.code(), Some(3));
/// });
/// ```
pub struct Command {
    std: std::process::Command,
    stdin_set: bool,
    stdout_set: bool,
    stderr_set: bool,
    kill_on_drop: bool,
}

impl Command {
    /// A command running `program`, with no arguments, the parent's
    /// environment and working directory, and inherited stdio (for
    /// [`spawn`](Self::spawn) and [`status`](Self::status)). Like
    /// [`std::process::Command::new`].
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command {
            std: std::process::Command::new(program),
            stdin_set: false,
            stdout_set: false,
            stderr_set: false,
            kill_on_drop: false,
        }
    }

    /// Adds an argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.std.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.std.args(args);
        self
    }

    /// Sets an environment variable for the child.
    pub fn env(&mut self, key: impl AsRef<OsStr>, val: impl AsRef<OsStr>) -> &mut Command {
        self.std.env(key, val);
        self
    }

    /// Sets environment variables for the child.
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.std.envs(vars);
        self
    }

    /// Removes an environment variable from the child's environment.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Command {
        self.std.env_remove(key);
        self
    }

    /// Clears the child's environment (nothing is inherited).
    pub fn env_clear(&mut self) -> &mut Command {
        self.std.env_clear();
        self
    }

    /// Sets the child's working directory.
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.std.current_dir(dir);
        self
    }

    /// Configures the child's standard input: [`Stdio::piped`] makes
    /// [`Child::stdin`] a corio stream.
    pub fn stdin(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.std.stdin(cfg);
        self.stdin_set = true;
        self
    }

    /// Configures the child's standard output: [`Stdio::piped`] makes
    /// [`Child::stdout`] a corio stream.
    pub fn stdout(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.std.stdout(cfg);
        self.stdout_set = true;
        self
    }

    /// Configures the child's standard error: [`Stdio::piped`] makes
    /// [`Child::stderr`] a corio stream.
    pub fn stderr(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.std.stderr(cfg);
        self.stderr_set = true;
        self
    }

    /// Whether dropping the [`Child`] kills the process (`SIGKILL`) and reaps
    /// it on the blocking pool. Off by default, as in std, where a dropped
    /// child runs on.
    ///
    /// This ties a child's life to the task that owns its handle: a task that
    /// is cancelled or panics drops its `Child`, and the child dies with it.
    ///
    /// ```
    /// use corio::process::Command;
    ///
    /// corio::run(|| {
    ///     let child = Command::new("sleep").arg("60").kill_on_drop(true).spawn().unwrap();
    ///     drop(child); // the sleep is killed here
    /// });
    /// ```
    pub fn kill_on_drop(&mut self, kill: bool) -> &mut Command {
        self.kill_on_drop = kill;
        self
    }

    /// The program to run.
    pub fn get_program(&self) -> &OsStr {
        self.std.get_program()
    }

    /// The arguments, without the program.
    pub fn get_args(&self) -> std::process::CommandArgs<'_> {
        self.std.get_args()
    }

    /// The working directory set with [`current_dir`](Self::current_dir).
    pub fn get_current_dir(&self) -> Option<&Path> {
        self.std.get_current_dir()
    }

    /// The wrapped `std` command.
    pub fn as_std(&self) -> &std::process::Command {
        &self.std
    }

    /// The wrapped `std` command, for platform extensions such as
    /// `std::os::unix::process::CommandExt` (`uid`, `process_group`, …).
    /// Set stdio through corio's methods, not here (see the type docs).
    pub fn as_std_mut(&mut self) -> &mut std::process::Command {
        &mut self.std
    }

    /// Starts the process and returns its handle, like
    /// [`std::process::Command::spawn`]. Unset stdio is inherited.
    ///
    /// # Errors
    ///
    /// As [`std::process::Command::spawn`]: the program was not found
    /// (`NotFound`), is not executable, or the process or open-files limit
    /// was hit (the error then names the limit).
    pub fn spawn(&mut self) -> io::Result<Child> {
        if crate::task::driver::simulated() {
            return Err(crate::Error::NotSimulated {
                operation: "spawning a process",
            }
            .into());
        }
        let child = self.std.spawn().map_err(crate::error::io_with_limit)?;
        Child::from_std(child, self.kill_on_drop)
    }

    /// Runs the process to completion and collects its output, like
    /// [`std::process::Command::output`]: stdout and stderr are captured
    /// and stdin is null unless set. Both streams are read at the same
    /// time, so a child that writes a lot to both does not deadlock.
    ///
    /// # Errors
    ///
    /// As [`spawn`](Self::spawn); reading the pipes or waiting failed; a
    /// cancellation or timeout of the calling task (the child is then
    /// dropped — and killed if [`kill_on_drop`](Self::kill_on_drop) is set).
    pub fn output(&mut self) -> io::Result<Output> {
        // std's defaults for `output`, applied for this spawn only: put back
        // "inherit", the default of `spawn` and `status`, afterwards.
        if !self.stdin_set {
            self.std.stdin(Stdio::null());
        }
        if !self.stdout_set {
            self.std.stdout(Stdio::piped());
        }
        if !self.stderr_set {
            self.std.stderr(Stdio::piped());
        }
        let child = self.spawn();
        if !self.stdin_set {
            self.std.stdin(Stdio::inherit());
        }
        if !self.stdout_set {
            self.std.stdout(Stdio::inherit());
        }
        if !self.stderr_set {
            self.std.stderr(Stdio::inherit());
        }
        child?.wait_with_output()
    }

    /// Runs the process to completion and returns its exit status, like
    /// [`std::process::Command::status`]. Unset stdio is inherited.
    ///
    /// # Errors
    ///
    /// As [`spawn`](Self::spawn) and [`Child::wait`].
    pub fn status(&mut self) -> io::Result<ExitStatus> {
        self.spawn()?.wait()
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.std, f)
    }
}
