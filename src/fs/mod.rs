//! Files and directories, mirroring [`std::fs`], with every operation run on
//! the blocking pool (see [`unblock`](crate::unblock)) so that a task waiting
//! for the disk does not block its runtime thread.
//!
//! Regular files cannot be watched by a readiness reactor (they are always
//! "ready", and a read may still wait for the disk), so this is the only way
//! to keep other tasks running while file IO is in flight. Outside a task
//! every function simply runs the `std::fs` call on the calling thread.
//!
//! # Cancellation and timeouts
//!
//! Every function is a cancellation point. If the calling task is cancelled
//! or an enclosing [`time::timeout`](crate::time::timeout) expires while an
//! operation waits for the pool, the call returns that error at once
//! ([`Error::Cancelled`](crate::Error::Cancelled) inside an `io::Error`, or
//! [`io::ErrorKind::TimedOut`]). The operation itself cannot be interrupted:
//! if the pool had not started it, it never runs; if it had, it completes.
//! [`File`] orders its operations, so a later one never overtakes an
//! abandoned one.
//!
//! # Differences from std
//!
//! * Paths and data are copied to the pool thread (the operation may
//!   outlive a cancelled caller, so it cannot borrow them).
//! * [`ReadDir`] reads entries in batches on the pool; [`DirEntry`]'s
//!   `metadata` and `file_type` run on the pool too.
//! * `File` implements `Read`/`Write`/`Seek` for `File`, not for `&File`.
//!
//! # Examples
//!
//! ```
//! use corio::fs;
//!
//! corio::run(|| -> std::io::Result<()> {
//!     let dir = std::env::temp_dir().join(format!("corio-fs-doc-{}", std::process::id()));
//!     fs::create_dir_all(&dir)?;
//!     fs::write(dir.join("hello.txt"), "hello, corio")?;
//!     assert_eq!(fs::read_to_string(dir.join("hello.txt"))?, "hello, corio");
//!     fs::remove_dir_all(&dir)
//! })
//! .unwrap();
//! ```

mod file;
mod read_dir;

use std::io;
use std::path::{Path, PathBuf};

pub use file::{File, OpenOptions};
pub use read_dir::{DirEntry, ReadDir, read_dir};
pub use std::fs::{FileType, Metadata, Permissions};

use crate::pool::unblock_io;

fn owned(path: impl AsRef<Path>) -> PathBuf {
    path.as_ref().to_path_buf()
}

/// Reads the entire contents of a file into a bytes vector, like
/// [`std::fs::read`].
///
/// # Errors
///
/// As [`std::fs::read`]; also a cancellation or timeout of the calling task
/// (see the [module docs](self)).
pub fn read(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    let path = owned(path);
    unblock_io(move || std::fs::read(path))
}

/// Reads the entire contents of a file into a string, like
/// [`std::fs::read_to_string`].
///
/// # Errors
///
/// As [`std::fs::read_to_string`] (including `InvalidData` for invalid
/// UTF-8); also a cancellation or timeout of the calling task.
pub fn read_to_string(path: impl AsRef<Path>) -> io::Result<String> {
    let path = owned(path);
    unblock_io(move || std::fs::read_to_string(path))
}

/// Writes a slice as the entire contents of a file, creating or truncating
/// it, like [`std::fs::write`].
///
/// # Errors
///
/// As [`std::fs::write`]; also a cancellation or timeout of the calling
/// task, in which case the file may or may not have been written.
pub fn write(path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> io::Result<()> {
    let path = owned(path);
    let contents = contents.as_ref().to_vec();
    unblock_io(move || std::fs::write(path, contents))
}

/// Queries the metadata of a file or directory, following symlinks, like
/// [`std::fs::metadata`].
///
/// # Errors
///
/// As [`std::fs::metadata`]; also a cancellation or timeout.
pub fn metadata(path: impl AsRef<Path>) -> io::Result<Metadata> {
    let path = owned(path);
    unblock_io(move || std::fs::metadata(path))
}

/// Queries the metadata of a path without following symlinks, like
/// [`std::fs::symlink_metadata`].
///
/// # Errors
///
/// As [`std::fs::symlink_metadata`]; also a cancellation or timeout.
pub fn symlink_metadata(path: impl AsRef<Path>) -> io::Result<Metadata> {
    let path = owned(path);
    unblock_io(move || std::fs::symlink_metadata(path))
}

/// Whether a path exists, like [`std::fs::exists`]: `Ok(false)` for a broken
/// symlink or a missing file, an error if it cannot be determined.
///
/// # Errors
///
/// As [`std::fs::exists`]; also a cancellation or timeout.
pub fn exists(path: impl AsRef<Path>) -> io::Result<bool> {
    let path = owned(path);
    unblock_io(move || std::fs::exists(path))
}

/// Creates a directory, like [`std::fs::create_dir`].
///
/// # Errors
///
/// As [`std::fs::create_dir`] (including `AlreadyExists`); also a
/// cancellation or timeout.
pub fn create_dir(path: impl AsRef<Path>) -> io::Result<()> {
    let path = owned(path);
    unblock_io(move || std::fs::create_dir(path))
}

/// Creates a directory and all missing parents, like
/// [`std::fs::create_dir_all`].
///
/// # Errors
///
/// As [`std::fs::create_dir_all`]; also a cancellation or timeout.
pub fn create_dir_all(path: impl AsRef<Path>) -> io::Result<()> {
    let path = owned(path);
    unblock_io(move || std::fs::create_dir_all(path))
}

/// Removes an empty directory, like [`std::fs::remove_dir`].
///
/// # Errors
///
/// As [`std::fs::remove_dir`]; also a cancellation or timeout.
pub fn remove_dir(path: impl AsRef<Path>) -> io::Result<()> {
    let path = owned(path);
    unblock_io(move || std::fs::remove_dir(path))
}

/// Removes a directory and everything in it, like
/// [`std::fs::remove_dir_all`].
///
/// # Errors
///
/// As [`std::fs::remove_dir_all`]; also a cancellation or timeout.
pub fn remove_dir_all(path: impl AsRef<Path>) -> io::Result<()> {
    let path = owned(path);
    unblock_io(move || std::fs::remove_dir_all(path))
}

/// Removes a file, like [`std::fs::remove_file`].
///
/// # Errors
///
/// As [`std::fs::remove_file`] (`NotFound` if it does not exist); also a
/// cancellation or timeout.
pub fn remove_file(path: impl AsRef<Path>) -> io::Result<()> {
    let path = owned(path);
    unblock_io(move || std::fs::remove_file(path))
}

/// Renames a file or directory, replacing `to` if it exists, like
/// [`std::fs::rename`].
///
/// # Errors
///
/// As [`std::fs::rename`]; also a cancellation or timeout.
pub fn rename(from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<()> {
    let (from, to) = (owned(from), owned(to));
    unblock_io(move || std::fs::rename(from, to))
}

/// Copies the contents and permissions of one file to another, returning
/// the number of bytes copied, like [`std::fs::copy`].
///
/// # Errors
///
/// As [`std::fs::copy`]; also a cancellation or timeout.
pub fn copy(from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<u64> {
    let (from, to) = (owned(from), owned(to));
    unblock_io(move || std::fs::copy(from, to))
}

/// Creates a hard link, like [`std::fs::hard_link`].
///
/// # Errors
///
/// As [`std::fs::hard_link`]; also a cancellation or timeout.
pub fn hard_link(original: impl AsRef<Path>, link: impl AsRef<Path>) -> io::Result<()> {
    let (original, link) = (owned(original), owned(link));
    unblock_io(move || std::fs::hard_link(original, link))
}

/// Reads the target of a symbolic link, like [`std::fs::read_link`].
///
/// # Errors
///
/// As [`std::fs::read_link`]; also a cancellation or timeout.
pub fn read_link(path: impl AsRef<Path>) -> io::Result<PathBuf> {
    let path = owned(path);
    unblock_io(move || std::fs::read_link(path))
}

/// Returns the canonical, absolute form of a path, like
/// [`std::fs::canonicalize`].
///
/// # Errors
///
/// As [`std::fs::canonicalize`]; also a cancellation or timeout.
pub fn canonicalize(path: impl AsRef<Path>) -> io::Result<PathBuf> {
    let path = owned(path);
    unblock_io(move || std::fs::canonicalize(path))
}

/// Changes the permissions of a file or directory, like
/// [`std::fs::set_permissions`].
///
/// # Errors
///
/// As [`std::fs::set_permissions`]; also a cancellation or timeout.
pub fn set_permissions(path: impl AsRef<Path>, perm: Permissions) -> io::Result<()> {
    let path = owned(path);
    unblock_io(move || std::fs::set_permissions(path, perm))
}
