//! The child's standard streams as corio streams: non-blocking pipes whose
//! reads and writes suspend the task (via the reactor) instead of the thread.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::process::Stdio;

use super::sys;
use crate::io_op::{Registered, io_op};
use crate::task::Direction;

/// One end of a pipe, non-blocking, registered with the reactor on first
/// wait.
struct Pipe(Registered<File>);

impl Pipe {
    fn new(fd: OwnedFd) -> io::Result<Pipe> {
        sys::set_nonblocking(fd.as_fd(), true)?;
        Ok(Pipe(Registered::new(File::from(fd))))
    }

    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let file = self.0.get();
        io_op(file.as_fd(), self.0.reg(), Direction::Read, None, || {
            (&*file).read(buf)
        })
    }

    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        let file = self.0.get();
        io_op(file.as_fd(), self.0.reg(), Direction::Write, None, || {
            (&*file).write(buf)
        })
    }

    /// Back to a blocking descriptor, for handing it to another process.
    fn into_blocking_fd(self) -> io::Result<OwnedFd> {
        let file = self.0.into_inner();
        sys::set_nonblocking(file.as_fd(), false)?;
        Ok(OwnedFd::from(file))
    }
}

macro_rules! pipe_type {
    ($(#[$doc:meta])* $name:ident, $std:ty) => {
        $(#[$doc])*
        pub struct $name(Pipe);

        impl $name {
            pub(super) fn from_std(std: $std) -> io::Result<$name> {
                Pipe::new(OwnedFd::from(std)).map($name)
            }
        }

        impl AsFd for $name {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.0.0.get().as_fd()
            }
        }

        impl AsRawFd for $name {
            fn as_raw_fd(&self) -> RawFd {
                self.0.0.get().as_raw_fd()
            }
        }

        impl TryFrom<$name> for OwnedFd {
            type Error = io::Error;

            /// The descriptor, switched back to blocking mode.
            fn try_from(pipe: $name) -> io::Result<OwnedFd> {
                pipe.0.into_blocking_fd()
            }
        }

        impl TryFrom<$name> for Stdio {
            type Error = io::Error;

            /// Hands the pipe to another child process (for a pipeline such
            /// as `a | b`), switched back to blocking mode as programs
            /// expect.
            fn try_from(pipe: $name) -> io::Result<Stdio> {
                pipe.0.into_blocking_fd().map(Stdio::from)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($name)).field(&self.as_raw_fd()).finish()
            }
        }
    };
}

pipe_type!(
    /// The child's standard input, a corio stream: `write` suspends the task
    /// while the pipe is full. Dropping it closes the pipe, so the child
    /// reads end-of-file.
    ///
    /// Like [`std::process::ChildStdin`].
    ChildStdin,
    std::process::ChildStdin
);

pipe_type!(
    /// The child's standard output, a corio stream: `read` suspends the task
    /// until the child writes (or exits: then it returns 0).
    ///
    /// Like [`std::process::ChildStdout`].
    ChildStdout,
    std::process::ChildStdout
);

pipe_type!(
    /// The child's standard error, a corio stream, like [`ChildStdout`].
    ///
    /// Like [`std::process::ChildStderr`].
    ChildStderr,
    std::process::ChildStderr
);

impl Write for ChildStdin {
    /// Writes what fits in the pipe, suspending the task while it is full.
    ///
    /// # Errors
    ///
    /// `BrokenPipe` once the child has closed its end (exited); a
    /// cancellation or timeout of the calling task.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for ChildStdout {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Read for ChildStderr {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}
