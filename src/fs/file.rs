//! [`File`] and [`OpenOptions`].

use std::any::Any;
use std::fmt;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use super::{Metadata, Permissions, owned};
use crate::future;
use crate::pool::{in_task, unblock_io};
use crate::task::WaitReason;

/// The most bytes one `read` or `write` moves to or from the pool: a bigger
/// buffer gets a short read or write, as the `Read`/`Write` contracts allow.
const MAX_CHUNK: usize = 2 * 1024 * 1024;

/// The result of one file operation, type-erased so that one slot can hold
/// whichever operation was abandoned.
type Job = ::blocking::Task<std::thread::Result<Box<dyn Any + Send>>>;

/// An open file whose operations run on the blocking pool, like
/// [`std::fs::File`].
///
/// Each `read`, `write`, `seek`, … suspends the calling task until the pool
/// has done it; outside a task it runs on the calling thread. Data is copied
/// between the caller's buffer and a buffer the file keeps for the pool (at
/// most 2 MiB per call). Wrap it in a [`std::io::BufReader`] /
/// [`BufWriter`](std::io::BufWriter) for many small reads or writes: every
/// call is one round trip to the pool (tens of microseconds: a thread
/// wakeup each way).
///
/// # Cancellation and timeouts
///
/// See the [module docs](super): a cancelled or timed-out call returns the
/// error at once, while the operation may still complete on the pool. The
/// file remembers such an abandoned operation and waits for it before the
/// next one, so operations on one `File` never overlap or reorder — but the
/// file position, and for a write the contents, may reflect the abandoned
/// operation.
///
/// # Examples
///
/// ```
/// use std::io::{Read, Seek, SeekFrom, Write};
/// use corio::fs::File;
///
/// corio::run(|| -> std::io::Result<()> {
///     let path = std::env::temp_dir().join(format!("corio-file-doc-{}", std::process::id()));
///     let mut f = File::create(&path)?;
///     f.write_all(b"hello world")?;
///     f.sync_all()?;
///     let mut f = File::open(&path)?;
///     f.seek(SeekFrom::Start(6))?;
///     let mut s = String::new();
///     f.read_to_string(&mut s)?;
///     assert_eq!(s, "world");
///     corio::fs::remove_file(&path)
/// })
/// .unwrap();
/// ```
pub struct File {
    std: Arc<std::fs::File>,
    /// An operation whose caller stopped waiting (cancelled, timed out); the
    /// next operation waits for it first.
    abandoned: Option<Job>,
    /// Reused for the data moved to and from the pool.
    buf: Vec<u8>,
}

impl File {
    /// Opens a file read-only, like [`std::fs::File::open`].
    ///
    /// # Errors
    ///
    /// As [`std::fs::File::open`]; also a cancellation or timeout.
    pub fn open(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new().read(true).open(path)
    }

    /// Opens a file write-only, creating or truncating it, like
    /// [`std::fs::File::create`].
    ///
    /// # Errors
    ///
    /// As [`std::fs::File::create`]; also a cancellation or timeout.
    pub fn create(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
    }

    /// Creates a new file read-write, failing if it exists, like
    /// [`std::fs::File::create_new`].
    ///
    /// # Errors
    ///
    /// `AlreadyExists` if the file exists, otherwise as
    /// [`std::fs::File::create_new`]; also a cancellation or timeout.
    pub fn create_new(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
    }

    /// A blank [`OpenOptions`], like [`std::fs::File::options`].
    pub fn options() -> OpenOptions {
        OpenOptions::new()
    }

    /// Flushes data and metadata to the disk, like
    /// [`std::fs::File::sync_all`].
    ///
    /// # Errors
    ///
    /// As [`std::fs::File::sync_all`]; also a cancellation or timeout.
    pub fn sync_all(&mut self) -> io::Result<()> {
        self.run(|f| f.sync_all())
    }

    /// Flushes data (not necessarily metadata) to the disk, like
    /// [`std::fs::File::sync_data`].
    ///
    /// # Errors
    ///
    /// As [`std::fs::File::sync_data`]; also a cancellation or timeout.
    pub fn sync_data(&mut self) -> io::Result<()> {
        self.run(|f| f.sync_data())
    }

    /// Truncates or extends the file to `size` bytes, like
    /// [`std::fs::File::set_len`]. The file position does not change.
    ///
    /// # Errors
    ///
    /// As [`std::fs::File::set_len`] (the file must be open for writing);
    /// also a cancellation or timeout.
    pub fn set_len(&mut self, size: u64) -> io::Result<()> {
        self.run(move |f| f.set_len(size))
    }

    /// Queries the file's metadata, like [`std::fs::File::metadata`].
    ///
    /// # Errors
    ///
    /// As [`std::fs::File::metadata`]; also a cancellation or timeout.
    pub fn metadata(&mut self) -> io::Result<Metadata> {
        self.run(|f| f.metadata())
    }

    /// Changes the file's permissions, like
    /// [`std::fs::File::set_permissions`].
    ///
    /// # Errors
    ///
    /// As [`std::fs::File::set_permissions`]; also a cancellation or timeout.
    pub fn set_permissions(&mut self, perm: Permissions) -> io::Result<()> {
        self.run(move |f| f.set_permissions(perm))
    }

    /// A new `File` sharing the same open file (and so the same position),
    /// like [`std::fs::File::try_clone`].
    ///
    /// # Errors
    ///
    /// As [`std::fs::File::try_clone`] (the open-files limit, for one).
    pub fn try_clone(&self) -> io::Result<File> {
        self.std.try_clone().map(File::from)
    }

    /// Waits for an abandoned operation, then returns the `std` file.
    ///
    /// If that wait is interrupted (the task is cancelled, or a `timeout`
    /// around it expires), the operation may still hold the file on the
    /// pool: the descriptor is duplicated instead. At the open-files limit,
    /// where it cannot be, the call waits for the operation after all,
    /// shielded from the interruption, rather than fail.
    pub fn into_std(mut self) -> std::fs::File {
        // Errors here are the abandoned operation's; its caller was told.
        if self.settle().is_err() {
            if let Ok(dup) = self.std.try_clone() {
                return dup;
            }
            // No descriptor to spare (`EMFILE`): the original it is.
            let _ = crate::task::park::shielded(|| {
                crate::task::park::without_deadline(|| self.settle())
            });
        }
        let mut std = Arc::clone(&self.std);
        drop(self);
        // After `settle` no pool closure holds the file. A settle that
        // still failed (the thread is unwinding, or the runtime is shutting
        // down) leaves the operation running: take a duplicate if one can
        // be had, else wait (blocking the thread) until the pool lets go.
        loop {
            match Arc::try_unwrap(std) {
                Ok(file) => return file,
                Err(shared) => match shared.try_clone() {
                    Ok(dup) => return dup,
                    Err(_) => {
                        std = shared;
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                },
            }
        }
    }

    /// Waits for the operation an interrupted caller abandoned, if any.
    fn settle(&mut self) -> io::Result<()> {
        if let Some(job) = &mut self.abandoned {
            // Its result (or panic) was meant for the caller that left.
            let result = future::drive(Pin::new(job), WaitReason::Blocking)?;
            drop(result);
            self.abandoned = None;
        }
        Ok(())
    }

    /// Runs `f` on the pool with the file (inline outside a task), after any
    /// abandoned operation.
    fn run<T, F>(&mut self, f: F) -> io::Result<T>
    where
        F: FnOnce(&std::fs::File) -> io::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        if !in_task() {
            self.settle()?;
            return f(&self.std);
        }
        crate::task::park::check_current(None)?;
        self.settle()?;
        let file = Arc::clone(&self.std);
        let mut job: Job = ::blocking::unblock(move || {
            panic::catch_unwind(AssertUnwindSafe(|| {
                Box::new(f(&file)) as Box<dyn Any + Send>
            }))
        });
        match future::drive(Pin::new(&mut job), WaitReason::Blocking) {
            Ok(Ok(result)) => *result
                .downcast::<io::Result<T>>()
                .expect("a file job returns its own result type"),
            Ok(Err(payload)) => panic::resume_unwind(payload),
            Err(interrupt) => {
                self.abandoned = Some(job);
                Err(interrupt.into())
            }
        }
    }
}

impl Read for File {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !in_task() {
            self.settle()?;
            return (&*self.std).read(buf);
        }
        let len = buf.len().min(MAX_CHUNK);
        let mut tmp = std::mem::take(&mut self.buf);
        let (tmp, n) = self.run(move |mut f| {
            if tmp.len() < len {
                tmp.resize(len, 0);
            }
            f.read(&mut tmp[..len]).map(|n| (tmp, n))
        })?;
        buf[..n].copy_from_slice(&tmp[..n]);
        self.buf = tmp;
        Ok(n)
    }

    /// Reads to the end in one trip to the pool.
    fn read_to_end(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        if !in_task() {
            self.settle()?;
            return (&*self.std).read_to_end(buf);
        }
        let data = self.run(|mut f| {
            let mut data = Vec::new();
            f.read_to_end(&mut data).map(|_| data)
        })?;
        buf.extend_from_slice(&data);
        Ok(data.len())
    }

    /// Reads to the end in one trip to the pool. On invalid UTF-8 nothing is
    /// appended, as in std.
    fn read_to_string(&mut self, buf: &mut String) -> io::Result<usize> {
        if !in_task() {
            self.settle()?;
            return (&*self.std).read_to_string(buf);
        }
        let data = self.run(|mut f| {
            let mut data = String::new();
            f.read_to_string(&mut data).map(|_| data)
        })?;
        buf.push_str(&data);
        Ok(data.len())
    }
}

impl Write for File {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if !in_task() {
            self.settle()?;
            return (&*self.std).write(data);
        }
        let mut tmp = std::mem::take(&mut self.buf);
        tmp.clear();
        tmp.extend_from_slice(&data[..data.len().min(MAX_CHUNK)]);
        let (tmp, n) = self.run(move |mut f| f.write(&tmp).map(|n| (tmp, n)))?;
        self.buf = tmp;
        Ok(n)
    }

    /// Waits for an abandoned write, if any; the file itself has no buffer
    /// (use [`File::sync_all`] to reach the disk).
    fn flush(&mut self) -> io::Result<()> {
        self.settle()
    }
}

impl Seek for File {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.run(move |mut f| f.seek(pos))
    }
}

impl From<std::fs::File> for File {
    /// Wraps a `std` file; its operations then run on the pool.
    fn from(file: std::fs::File) -> File {
        File {
            std: Arc::new(file),
            abandoned: None,
            buf: Vec::new(),
        }
    }
}

impl AsFd for File {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.std.as_fd()
    }
}

impl AsRawFd for File {
    fn as_raw_fd(&self) -> RawFd {
        self.std.as_raw_fd()
    }
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("File")
            .field("fd", &self.std.as_raw_fd())
            .field("abandoned_op", &self.abandoned.is_some())
            .finish()
    }
}

/// Options for opening a [`File`], like [`std::fs::OpenOptions`].
///
/// # Examples
///
/// ```
/// use std::io::Write;
/// use corio::fs::OpenOptions;
///
/// corio::run(|| -> std::io::Result<()> {
///     let path = std::env::temp_dir().join(format!("corio-opts-doc-{}", std::process::id()));
///     let mut log = OpenOptions::new().create(true).append(true).open(&path)?;
///     log.write_all(b"one\n")?;
///     corio::fs::remove_file(&path)
/// })
/// .unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct OpenOptions(std::fs::OpenOptions);

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions::new()
    }
}

impl OpenOptions {
    /// All options off, like [`std::fs::OpenOptions::new`].
    pub fn new() -> OpenOptions {
        OpenOptions(std::fs::OpenOptions::new())
    }

    /// Open for reading.
    pub fn read(&mut self, read: bool) -> &mut OpenOptions {
        self.0.read(read);
        self
    }

    /// Open for writing.
    pub fn write(&mut self, write: bool) -> &mut OpenOptions {
        self.0.write(write);
        self
    }

    /// Open for appending: every write goes to the end.
    pub fn append(&mut self, append: bool) -> &mut OpenOptions {
        self.0.append(append);
        self
    }

    /// Truncate the file to 0 bytes when opening it for writing.
    pub fn truncate(&mut self, truncate: bool) -> &mut OpenOptions {
        self.0.truncate(truncate);
        self
    }

    /// Create the file if it does not exist.
    pub fn create(&mut self, create: bool) -> &mut OpenOptions {
        self.0.create(create);
        self
    }

    /// Create the file, failing if it exists.
    pub fn create_new(&mut self, create_new: bool) -> &mut OpenOptions {
        self.0.create_new(create_new);
        self
    }

    /// The permission bits of a newly created file (before the umask), like
    /// `std::os::unix::fs::OpenOptionsExt::mode`.
    #[cfg(unix)]
    pub fn mode(&mut self, mode: u32) -> &mut OpenOptions {
        std::os::unix::fs::OpenOptionsExt::mode(&mut self.0, mode);
        self
    }

    /// Opens `path` with these options.
    ///
    /// # Errors
    ///
    /// As [`std::fs::OpenOptions::open`]; also a cancellation or timeout of
    /// the calling task.
    pub fn open(&self, path: impl AsRef<Path>) -> io::Result<File> {
        let (opts, path) = (self.0.clone(), owned(path));
        unblock_io(move || opts.open(path))
            .map_err(crate::error::io_with_limit)
            .map(File::from)
    }
}
