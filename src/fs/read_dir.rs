//! [`read_dir`], [`ReadDir`] and [`DirEntry`].

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{FileType, Metadata, owned};
use crate::pool::unblock_io;

/// Entries read per trip to the pool.
const BATCH: usize = 64;

/// Returns an iterator over the entries of a directory, like
/// [`std::fs::read_dir`].
///
/// Entries are read from the directory in batches of 64 on the blocking
/// pool; iterating within a batch does not suspend.
///
/// # Errors
///
/// As [`std::fs::read_dir`] (`NotFound`, `NotADirectory`, …); also a
/// cancellation or timeout. Errors while iterating come as `Some(Err(_))`.
///
/// # Examples
///
/// ```
/// corio::run(|| -> std::io::Result<()> {
///     let dir = std::env::temp_dir().join(format!("corio-readdir-doc-{}", std::process::id()));
///     corio::fs::create_dir_all(&dir)?;
///     corio::fs::write(dir.join("a"), "")?;
///     let names: Vec<_> = corio::fs::read_dir(&dir)?
///         .map(|e| e.map(|e| e.file_name()))
///         .collect::<Result<_, _>>()?;
///     assert_eq!(names, ["a"]);
///     corio::fs::remove_dir_all(&dir)
/// })
/// .unwrap();
/// ```
pub fn read_dir(path: impl AsRef<Path>) -> io::Result<ReadDir> {
    let path = owned(path);
    let inner = unblock_io(move || std::fs::read_dir(path))?;
    Ok(ReadDir {
        batch: VecDeque::new(),
        inner: Some(inner),
    })
}

/// An iterator over the entries of a directory, returned by [`read_dir`].
///
/// Like [`std::fs::ReadDir`], the order of entries is unspecified and `.`
/// and `..` are skipped.
pub struct ReadDir {
    batch: VecDeque<io::Result<std::fs::DirEntry>>,
    /// `None` when the directory is exhausted, or the iterator was
    /// interrupted while a batch was being read.
    inner: Option<std::fs::ReadDir>,
}

impl Iterator for ReadDir {
    type Item = io::Result<DirEntry>;

    fn next(&mut self) -> Option<io::Result<DirEntry>> {
        if self.batch.is_empty() {
            let mut inner = self.inner.take()?;
            let read = unblock_io(move || {
                let batch: VecDeque<_> = inner.by_ref().take(BATCH).collect();
                Ok((inner, batch))
            });
            match read {
                Ok((inner, batch)) => {
                    if batch.len() == BATCH {
                        self.inner = Some(inner);
                    }
                    self.batch = batch;
                }
                // The pool still owns the std iterator: this one ends here.
                Err(e) => return Some(Err(e)),
            }
        }
        let entry = self.batch.pop_front()?;
        Some(entry.map(|e| DirEntry(Arc::new(e))))
    }
}

impl fmt::Debug for ReadDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadDir")
            .field("buffered", &self.batch.len())
            .field("exhausted", &self.inner.is_none())
            .finish()
    }
}

/// An entry of a directory, yielded by [`ReadDir`], like
/// [`std::fs::DirEntry`].
#[derive(Clone)]
pub struct DirEntry(Arc<std::fs::DirEntry>);

impl DirEntry {
    /// The full path of the entry (the directory's path joined with the
    /// file name).
    pub fn path(&self) -> PathBuf {
        self.0.path()
    }

    /// The bare file name of the entry.
    pub fn file_name(&self) -> OsString {
        self.0.file_name()
    }

    /// The entry's metadata, not following symlinks, like
    /// [`std::fs::DirEntry::metadata`]; runs on the pool.
    ///
    /// # Errors
    ///
    /// As [`std::fs::DirEntry::metadata`]; also a cancellation or timeout.
    pub fn metadata(&self) -> io::Result<Metadata> {
        let entry = Arc::clone(&self.0);
        unblock_io(move || entry.metadata())
    }

    /// The entry's file type, not following symlinks, like
    /// [`std::fs::DirEntry::file_type`]; runs on the pool (on most file
    /// systems the directory already says, but not on all).
    ///
    /// # Errors
    ///
    /// As [`std::fs::DirEntry::file_type`]; also a cancellation or timeout.
    pub fn file_type(&self) -> io::Result<FileType> {
        let entry = Arc::clone(&self.0);
        unblock_io(move || entry.file_type())
    }
}

impl fmt::Debug for DirEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DirEntry").field(&self.path()).finish()
    }
}
