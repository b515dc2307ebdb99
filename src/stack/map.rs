//! The system side of the stack pool: mapping chunks of stacks, their
//! guard pages (`MADV_GUARD_INSTALL` or `mprotect`), and the errors that
//! name the limit a failed mapping hit.
//!
//! The kernel's work per stack is what a burst of tasks pays for: a million
//! parked tasks spend most of their creation time mapping, guarding and
//! faulting in stack pages. So a chunk's guards go in with one
//! `process_madvise` where the kernel allows it (Linux ≥ 6.15 for the
//! calling process), and chunks are kept from merging (see `map_chunk`).
//! Populating the top page of a chunk's stacks in one call too
//! (`MADV_POPULATE_WRITE`) saved 10% of system time with one worker, but
//! holds the process-wide mmap lock for the whole call, and with two
//! workers it made the other worker's `mmap` and `brk` wait: 2.1 s instead
//! of 1.5 s for a million tasks. Page faults take only the lock of their
//! own mapping.
#![allow(unsafe_code)]

use std::io;
use std::rc::Rc;
use std::sync::OnceLock;

use crate::error::Error;

/// `MADV_GUARD_INSTALL` (Linux 6.13); not in every `libc` release.
#[cfg(target_os = "linux")]
const MADV_GUARD_INSTALL: libc::c_int = 102;
#[cfg(not(target_os = "linux"))]
const MADV_GUARD_INSTALL: libc::c_int = 0;

/// The system's page size.
pub(crate) fn page_size() -> usize {
    static PAGE: OnceLock<usize> = OnceLock::new();
    // SAFETY: sysconf has no preconditions.
    *PAGE.get_or_init(|| unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize)
}

/// How guard pages are made.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum GuardMode {
    /// `madvise(MADV_GUARD_INSTALL)`: guards inside one mapping.
    Madvise,
    /// `mprotect(PROT_NONE)`: every guard splits the mapping.
    Mprotect,
}

/// The guard mode, decided once per process: `Madvise` when the kernel accepts
/// it (probed on a scratch mapping), unless `CORIO_STACK_GUARD=mprotect`.
pub(crate) fn guard_mode() -> GuardMode {
    static MODE: OnceLock<GuardMode> = OnceLock::new();
    *MODE.get_or_init(|| {
        if std::env::var_os("CORIO_STACK_GUARD").is_some_and(|v| v == "mprotect") {
            return GuardMode::Mprotect;
        }
        if probe_madvise_guard() {
            GuardMode::Madvise
        } else {
            GuardMode::Mprotect
        }
    })
}

#[cfg(target_os = "linux")]
fn probe_madvise_guard() -> bool {
    let page = page_size();
    // SAFETY: a fresh private anonymous mapping, unmapped below; nothing else
    // refers to it.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            2 * page,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return false;
        }
        let ok = libc::madvise(p, page, MADV_GUARD_INSTALL) == 0;
        libc::munmap(p, 2 * page);
        ok
    }
}

#[cfg(not(target_os = "linux"))]
fn probe_madvise_guard() -> bool {
    false
}

/// One anonymous mapping holding one or more stack slots; unmapped when the
/// last stack carved from it is dropped.
pub(crate) struct Chunk {
    addr: *mut u8,
    len: usize,
    /// The usable size of each of its stacks.
    pub(crate) stack_size: usize,
}

impl Drop for Chunk {
    fn drop(&mut self) {
        // SAFETY: `addr..addr+len` is a mapping this chunk created and owns;
        // every stack in it holds an `Rc<Chunk>`, so none is in use any more.
        unsafe {
            libc::munmap(self.addr.cast(), self.len);
        }
    }
}

/// Maps a chunk of `slots` stacks of `size` bytes, each above a guard page;
/// returns it and the bottoms of its slots (their guard pages) in reverse
/// address order, so that the pool hands out the lowest address first.
pub(crate) fn map_chunk(
    size: usize,
    slots: usize,
    mode: GuardMode,
) -> Result<(Rc<Chunk>, Vec<usize>), Error> {
    let page = page_size();
    let slot_len = size + page;
    let len = slot_len * slots;
    // SAFETY: a fresh private anonymous mapping; no existing memory is touched.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | map_stack(),
            -1,
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        return Err(map_error(size, io::Error::last_os_error()));
    }
    let chunk = Rc::new(Chunk {
        addr: addr.cast(),
        len,
        stack_size: size,
    });
    let bottoms: Vec<usize> = (0..slots)
        .rev()
        .map(|i| addr as usize + i * slot_len)
        .collect();
    // The lowest guard is an `mprotect`ed page in either mode: it keeps the
    // kernel from merging this chunk with the one mapped next to it (chunks
    // are alike, so they would merge into one mapping). A chunk mapped
    // beside a merged one expands that mapping, which waits for every page
    // fault in flight in it and sends the next ones to wait for the
    // process-wide mmap lock: with two workers mapping chunks and faulting
    // in stacks at once, they ran at 1.1 cores out of 2. So every chunk is
    // two mappings.
    // SAFETY: the first page of the mapping just created, not handed out.
    let lowest = unsafe { libc::mprotect(addr, page, libc::PROT_NONE) };
    let guarded = if lowest == 0 {
        // `bottoms` ends with the lowest slot, whose guard that page is.
        install_guards(&bottoms[..slots - 1], mode)
    } else {
        Err(io::Error::last_os_error())
    };
    if let Err(e) = guarded {
        // Dropping `chunk` unmaps it.
        return Err(map_error(size, e));
    }
    Ok((chunk, bottoms))
}

/// Installs the guard page at each of `bottoms`: with one `process_madvise`
/// per chunk where the kernel allows it, else one call per guard.
fn install_guards(bottoms: &[usize], mode: GuardMode) -> io::Result<()> {
    let page = page_size();
    if mode == GuardMode::Madvise && advise_all(bottoms, MADV_GUARD_INSTALL).is_ok() {
        return Ok(());
    }
    // Installing a guard twice is harmless, so after a partial batch this
    // simply does them all.
    bottoms.iter().try_for_each(|&bottom| {
        // SAFETY: `bottom..bottom+page` is the first page of a slot, inside
        // the mapping just created and not yet handed out.
        let rc = unsafe {
            match mode {
                #[cfg(target_os = "linux")]
                GuardMode::Madvise => libc::madvise(bottom as *mut _, page, MADV_GUARD_INSTALL),
                #[cfg(not(target_os = "linux"))]
                GuardMode::Madvise => unreachable!("MADV_GUARD_INSTALL is Linux-only"),
                GuardMode::Mprotect => libc::mprotect(bottom as *mut _, page, libc::PROT_NONE),
            }
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    })
}

/// Applies `advice` to the page at each address of `starts` (page-aligned,
/// inside stack mappings this pool owns and no coroutine runs on) with one
/// `process_madvise(PIDFD_SELF, ...)` per 1,024 pages (Linux ≥ 6.15 takes
/// any advice for the calling process). Fails, having perhaps applied part
/// of it, where that is not available.
#[cfg(target_os = "linux")]
pub(crate) fn advise_all(starts: &[usize], advice: libc::c_int) -> io::Result<()> {
    /// `PIDFD_SELF` (`<linux/pidfd.h>`): the calling thread, and its memory.
    const PIDFD_SELF: libc::c_int = -10000;
    /// `UIO_MAXIOV`: the most ranges one call takes.
    const MAX_RANGES: usize = 1024;
    use std::sync::atomic::{AtomicBool, Ordering};
    static UNAVAILABLE: AtomicBool = AtomicBool::new(false);
    if UNAVAILABLE.load(Ordering::Relaxed) {
        return Err(io::ErrorKind::Unsupported.into());
    }
    let page = page_size();
    for batch in starts.chunks(MAX_RANGES) {
        let ranges: Vec<libc::iovec> = batch
            .iter()
            .map(|&start| libc::iovec {
                iov_base: start as *mut libc::c_void,
                iov_len: page,
            })
            .collect();
        // SAFETY: `ranges` is a valid array of `ranges.len()` iovecs, each
        // a page the caller vouches for (see above); the kernel only reads
        // the array.
        let done = unsafe {
            libc::syscall(
                libc::SYS_process_madvise,
                PIDFD_SELF,
                ranges.as_ptr(),
                ranges.len(),
                advice,
                0,
            )
        };
        if done < 0 {
            let e = io::Error::last_os_error();
            // No such system call, no `PIDFD_SELF`, or not this advice:
            // the kernel is too old, and will stay so.
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOSYS | libc::EBADF | libc::EINVAL | libc::EPERM)
            ) {
                UNAVAILABLE.store(true, Ordering::Relaxed);
            }
            return Err(e);
        }
        if done as usize != page * batch.len() {
            return Err(io::ErrorKind::Other.into());
        }
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn advise_all(_starts: &[usize], _advice: libc::c_int) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

#[cfg(target_os = "linux")]
fn map_stack() -> libc::c_int {
    libc::MAP_STACK
}

#[cfg(not(target_os = "linux"))]
fn map_stack() -> libc::c_int {
    0
}

/// Turns a failed `mmap`/`mprotect`/`madvise` into the error that names the
/// limit that was hit.
fn map_error(stack_size: usize, os_error: io::Error) -> Error {
    if os_error.raw_os_error() == Some(libc::ENOMEM)
        && let (Some(limit), Some(mappings)) = (max_map_count(), mapping_count())
        // mmap fails a little before the count reaches the limit exactly.
        && mappings + 16 >= limit
    {
        return Error::MapLimit {
            limit,
            mappings,
            stack_size,
            suggested: (limit * 4).max(262_144),
        };
    }
    Error::OutOfMemory {
        stack_size,
        os_error,
    }
}

/// The current `vm.max_map_count`, where the platform has one.
pub(crate) fn max_map_count() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// How many memory mappings this process has (lines of `/proc/self/maps`).
pub(crate) fn mapping_count() -> Option<u64> {
    let maps = std::fs::read("/proc/self/maps").ok()?;
    Some(maps.iter().filter(|&&b| b == b'\n').count() as u64)
}
