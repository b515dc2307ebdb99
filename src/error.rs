//! The error types of corio, kept together.
//!
//! [`Error`] is the one enum that corio's own operations return; [`JoinError`]
//! is what [`JoinHandle::join`](crate::JoinHandle::join) returns when a task did
//! not finish with a value.

use std::any::Any;
use std::fmt;
use std::io;

/// Everything that can go wrong inside corio itself.
///
/// Every variant that comes from a resource limit names the limit and says
/// how to raise it. `Error` converts into [`std::io::Error`], so corio calls
/// can be used with `?` in functions that return `io::Result`.
///
/// # Examples
///
/// ```
/// let err = corio::Builder::new().stack_size(1).spawn(|| ()).unwrap_err();
/// assert!(matches!(err, corio::Error::NoRuntime | corio::Error::InvalidStackSize { .. }));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Mapping a coroutine stack failed because the process has as many memory
    /// mappings as `vm.max_map_count` allows.
    #[error(
        "cannot map a {stack_size}-byte coroutine stack: the process has reached vm.max_map_count \
         ({limit} memory mappings, {mappings} in use); raise it with \
         `sysctl -w vm.max_map_count={suggested}` or use smaller/fewer stacks"
    )]
    MapLimit {
        /// The current value of `vm.max_map_count`.
        limit: u64,
        /// Mappings the process had when the allocation failed.
        mappings: u64,
        /// The stack size that was requested, in bytes.
        stack_size: usize,
        /// A value worth setting `vm.max_map_count` to.
        suggested: u64,
    },
    /// The kernel refused memory for a coroutine stack.
    #[error(
        "out of memory mapping a {stack_size}-byte coroutine stack ({os_error}); \
         lower the stack size (corio::Builder::stack_size) or raise the memory limit \
         (ulimit -v, vm.overcommit_memory)"
    )]
    OutOfMemory {
        /// The stack size that was requested, in bytes.
        stack_size: usize,
        /// The error the kernel returned.
        os_error: io::Error,
    },
    /// A stack size outside the range corio accepts.
    #[error("invalid stack size {requested} bytes: it must be between {min} and {max} bytes")]
    InvalidStackSize {
        /// The size that was asked for.
        requested: usize,
        /// The smallest accepted size.
        min: usize,
        /// The largest accepted size.
        max: usize,
    },
    /// The process hit its limit of open file descriptors.
    #[error(
        "too many open files: the process reached its limit of {limit} file descriptors \
         (RLIMIT_NOFILE); raise it with `ulimit -n <more>` or setrlimit"
    )]
    FdLimit {
        /// The soft `RLIMIT_NOFILE` limit.
        limit: u64,
    },
    /// The current task was cancelled with
    /// [`JoinHandle::cancel`](crate::JoinHandle::cancel) or by the end of its
    /// runtime or scope.
    #[error("the task was cancelled")]
    Cancelled,
    /// An operation that needs a running corio runtime was called outside one.
    #[error("no corio runtime is running on this thread")]
    NoRuntime,
    /// A runtime was started on a thread that is already running one.
    #[error(
        "a corio runtime is already running on this thread; spawn a task instead of nesting runtimes"
    )]
    NestedRuntime,
    /// A task used an IO object (a socket, a pipe) that is registered with
    /// another runtime: the one where a task first waited on it, which alone
    /// delivers its events.
    #[error(
        "this fd is registered with another runtime (the one where a task first waited on it); \
         move sockets between runtimes before they are used, or through into_std/from_std"
    )]
    WrongRuntime,
    /// An operation a [`sim`](crate::sim) simulation cannot model (files,
    /// processes, signals, Unix sockets) was called inside one: it would
    /// make the run depend on the real machine.
    #[error(
        "{operation} is not simulated: inside a corio::sim simulation only the clock, \
         tasks, sync and TCP/UDP networking are (see docs/simulation.md)"
    )]
    NotSimulated {
        /// What was called.
        operation: &'static str,
    },
    /// A task used an IO object (a socket, a pipe) that a task on another
    /// worker of the same runtime is using: only the worker where a task
    /// first waited on it delivers its events while it is shared. An object
    /// moved by value re-registers with the worker of the task that next
    /// reads or writes it through `&mut` (its owned `Read`/`Write`), since
    /// then nobody else can be waiting on it.
    #[error(
        "this fd is registered with worker {registered}'s reactor (where a task first waited on \
         it) and this task runs on worker {current}: a shared IO object is used from one worker; \
         move it by value (an owned stream re-registers at its next read or write) or spawn_on \
         worker {registered}"
    )]
    WrongWorker {
        /// The worker whose reactor the fd is registered with.
        registered: usize,
        /// The worker of the task that used it.
        current: usize,
    },
    /// An operating-system error.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl Error {
    /// Returns `true` if `err` is a corio cancellation carried in an
    /// [`io::Error`].
    ///
    /// ```
    /// let err: std::io::Error = corio::Error::Cancelled.into();
    /// assert!(corio::Error::is_cancellation(&err));
    /// ```
    pub fn is_cancellation(err: &io::Error) -> bool {
        matches!(
            err.get_ref().and_then(|e| e.downcast_ref::<Error>()),
            Some(Error::Cancelled)
        )
    }
}

impl From<Error> for io::Error {
    /// `Error::Io` unwraps to the inner error. A cancellation becomes
    /// [`io::ErrorKind::Other`] — deliberately not `Interrupted`, which std's
    /// `read_exact`, `write_all` and `io::copy` retry forever.
    fn from(err: Error) -> io::Error {
        match err {
            Error::Io(e) => e,
            Error::OutOfMemory { .. } => io::Error::new(io::ErrorKind::OutOfMemory, err),
            Error::MapLimit { .. } => io::Error::new(io::ErrorKind::OutOfMemory, err),
            Error::InvalidStackSize { .. } => io::Error::new(io::ErrorKind::InvalidInput, err),
            Error::NotSimulated { .. } => io::Error::new(io::ErrorKind::Unsupported, err),
            other => io::Error::other(other),
        }
    }
}

/// Why a task did not return a value: it panicked or was cancelled (or,
/// a kind of cancellation, could not start: see
/// [`start_error`](Self::start_error)).
///
/// Returned by [`JoinHandle::join`](crate::JoinHandle::join). A panic keeps its
/// payload, so it can be re-raised with [`std::panic::resume_unwind`].
///
/// # Examples
///
/// ```
/// corio::run(|| {
///     let err = corio::spawn(|| panic!("boom")).join().unwrap_err();
///     assert!(err.is_panic());
///     assert_eq!(err.panic_message(), Some("boom"));
/// });
/// ```
pub struct JoinError {
    repr: JoinErrorRepr,
    /// The task, as `Header::describe` names it (boxed: two words, not three).
    task: Box<str>,
}

enum JoinErrorRepr {
    Panicked(Box<dyn Any + Send + 'static>),
    /// Cancelled; with the error that kept it from starting (no stack for
    /// its first run), if that is why. One boxed word, so that the variant
    /// fits beside `Panicked`'s pointer: every task's block has room for a
    /// `JoinError`.
    Cancelled(Option<Box<Error>>),
}

impl JoinError {
    pub(crate) fn panicked(task: String, payload: Box<dyn Any + Send + 'static>) -> Self {
        JoinError {
            repr: JoinErrorRepr::Panicked(payload),
            task: task.into_boxed_str(),
        }
    }

    pub(crate) fn cancelled(task: String) -> Self {
        JoinError {
            repr: JoinErrorRepr::Cancelled(None),
            task: task.into_boxed_str(),
        }
    }

    pub(crate) fn not_started(task: String, error: Error) -> Self {
        JoinError {
            repr: JoinErrorRepr::Cancelled(Some(Box::new(error))),
            task: task.into_boxed_str(),
        }
    }

    /// Returns `true` if the task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.repr, JoinErrorRepr::Panicked(_))
    }

    /// Returns `true` if the task was cancelled, including by its runtime
    /// because it could not start ([`start_error`](Self::start_error)).
    pub fn is_cancelled(&self) -> bool {
        matches!(self.repr, JoinErrorRepr::Cancelled(_))
    }

    /// Why the task never ran, when its runtime could not give it a stack.
    ///
    /// A task takes its stack when it first runs, on the worker that runs
    /// it, so a stack that cannot be mapped is the task's error, not its
    /// spawner's: the task finishes cancelled without running, and this is
    /// [`Error::MapLimit`] or [`Error::OutOfMemory`], which name the limit
    /// that was hit and how to raise it.
    ///
    /// ```
    /// corio::run(|| {
    ///     if let Err(e) = corio::spawn(|| ()).join()
    ///         && let Some(why) = e.start_error()
    ///     {
    ///         // "cannot map a 262144-byte coroutine stack: ... raise it with ..."
    ///         eprintln!("the task did not start: {why}");
    ///     }
    /// });
    /// ```
    pub fn start_error(&self) -> Option<&Error> {
        match &self.repr {
            JoinErrorRepr::Cancelled(e) => e.as_deref(),
            JoinErrorRepr::Panicked(_) => None,
        }
    }

    /// The panic message, when the task panicked with a `&str` or `String`
    /// (as `panic!` does).
    pub fn panic_message(&self) -> Option<&str> {
        match &self.repr {
            JoinErrorRepr::Panicked(p) => payload_str(p.as_ref()),
            JoinErrorRepr::Cancelled(_) => None,
        }
    }

    /// Consumes the error and returns the panic payload.
    ///
    /// # Panics
    ///
    /// Panics if the task was cancelled rather than panicking; check with
    /// [`is_panic`](Self::is_panic) or use [`try_into_panic`](Self::try_into_panic).
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        self.try_into_panic()
            .unwrap_or_else(|_| panic!("JoinError::into_panic called on a cancelled task"))
    }

    /// Consumes the error and returns the panic payload, or gives the error
    /// back if the task was cancelled.
    pub fn try_into_panic(self) -> Result<Box<dyn Any + Send + 'static>, JoinError> {
        match self.repr {
            JoinErrorRepr::Panicked(p) => Ok(p),
            JoinErrorRepr::Cancelled(_) => Err(self),
        }
    }
}

pub(crate) fn payload_str(payload: &(dyn Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<&'static str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            JoinErrorRepr::Panicked(_) => f
                .debug_struct("JoinError::Panicked")
                .field("task", &self.task)
                .field("message", &self.panic_message())
                .finish(),
            JoinErrorRepr::Cancelled(None) => f
                .debug_struct("JoinError::Cancelled")
                .field("task", &self.task)
                .finish(),
            JoinErrorRepr::Cancelled(Some(e)) => f
                .debug_struct("JoinError::Cancelled")
                .field("task", &self.task)
                .field("start_error", e)
                .finish(),
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            JoinErrorRepr::Panicked(_) => match self.panic_message() {
                Some(msg) => write!(f, "{} panicked: {msg}", self.task),
                None => write!(f, "{} panicked", self.task),
            },
            JoinErrorRepr::Cancelled(None) => write!(f, "{} was cancelled", self.task),
            JoinErrorRepr::Cancelled(Some(e)) => write!(f, "{} could not start: {e}", self.task),
        }
    }
}

impl std::error::Error for JoinError {}

impl From<JoinError> for io::Error {
    fn from(err: JoinError) -> io::Error {
        io::Error::other(err.to_string())
    }
}

/// The soft open-files limit (`RLIMIT_NOFILE`), if it can be read.
pub(crate) fn fd_limit() -> Option<u64> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `rl` is a valid out-pointer for getrlimit.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) };
    #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 everywhere
    let limit = rl.rlim_cur as u64;
    (rc == 0).then_some(limit)
}

/// Wraps an OS error, naming the open-files limit when that is what was hit.
pub(crate) fn from_io(err: io::Error) -> Error {
    match err.raw_os_error() {
        Some(libc::EMFILE) | Some(libc::ENFILE) => Error::FdLimit {
            limit: fd_limit().unwrap_or(0),
        },
        _ => Error::Io(err),
    }
}

/// Like [`from_io`], kept as an `io::Error` (for APIs that return
/// `io::Result`): an EMFILE keeps its kind and gains the limit in its message.
pub(crate) fn io_with_limit(err: io::Error) -> io::Error {
    match err.raw_os_error() {
        Some(libc::EMFILE) | Some(libc::ENFILE) => io::Error::new(
            err.kind(),
            Error::FdLimit {
                limit: fd_limit().unwrap_or(0),
            },
        ),
        _ => err,
    }
}
