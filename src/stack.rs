//! Stack memory for coroutines: pooled, guard-protected, sized in bytes.
//!
//! Creating a coroutine on a fresh `mmap`ed stack costs about 4 µs (map,
//! guard, first page fault, unmap); on a reused stack about 11 ns. So stacks
//! come from a per-thread pool and go back to it when their coroutine is
//! dropped. A task *reserves* a stack when it is spawned (so running out is
//! the spawner's error) and takes one when it first runs: the most recently
//! freed, still warm in the caches.
//!
//! # Layout and guard pages
//!
//! Stacks are carved out of large anonymous mappings ("chunks"). Each slot is
//! one guard page followed by the usable stack, which grows down towards the
//! guard:
//!
//! ```text
//!  chunk:  | guard | stack 0 ... | guard | stack 1 ... | ...
//!          ^limit()       base()^
//! ```
//!
//! On Linux ≥ 6.13 the guard pages are installed with
//! `madvise(MADV_GUARD_INSTALL)`, which does not split the mapping, so a
//! chunk of hundreds of stacks stays one entry in `/proc/self/maps` and
//! `vm.max_map_count` does not limit the number of tasks. Elsewhere the
//! guard is an `mprotect(PROT_NONE)` page, which splits the mapping; each
//! stack then gets its own two-mapping chunk, and about `vm.max_map_count / 2`
//! stacks can exist at once. Either way, hitting a limit returns a typed
//! [`Error`] that names it.
//!
//! # Memory use
//!
//! Mappings are `MAP_NORESERVE`: only touched pages cost memory, so a
//! generous virtual size is cheap. A stack that grew deep is trimmed with
//! `MADV_DONTNEED` when it returns to the pool, so one deep recursion does not
//! pin memory for the life of the thread.
//!
//! Setting the environment variable `CORIO_STACK_GUARD=mprotect` before the
//! first stack is created forces the `mprotect` fallback (used by the tests).
#![allow(unsafe_code)]

use std::cell::RefCell;
use std::io;
use std::num::NonZeroUsize;
use std::rc::Rc;
use std::sync::OnceLock;

use crate::error::Error;

/// The default usable size of a task or generator stack, in bytes.
///
/// 256 KiB of address space: measured, a panic that prints a full
/// backtrace needs 20–24 KiB (it overflows a 20 KiB stack, not a 24 KiB
/// one; `tests/stack_limits.rs` checks it fits in 64 KiB), and a rustls handshake plus one exchange touches 16–20 KiB
/// in a release build and 52–60 KiB in a debug build (`tests/tls.rs`). Only
/// pages a task touches cost memory (typically one or two pages, 4–8 KiB).
pub const DEFAULT_STACK_SIZE: usize = 256 * 1024;

/// The smallest stack size accepted, in bytes.
pub const MIN_STACK_SIZE: usize = 16 * 1024;

/// The largest stack size accepted, in bytes (1 GiB).
pub const MAX_STACK_SIZE: usize = 1 << 30;

/// `MADV_GUARD_INSTALL` (Linux 6.13); not in every `libc` release.
#[cfg(target_os = "linux")]
const MADV_GUARD_INSTALL: libc::c_int = 102;

/// Stacks that grew past this depth are trimmed on their way back to the pool.
const TRIM_DEPTH: usize = 32 * 1024;
/// How much of the top of a trimmed stack stays resident (it is hot).
const TRIM_KEEP: usize = 16 * 1024;
/// Largest number of slots in one chunk when guards don't split mappings.
const MAX_CHUNK_SLOTS: usize = 256;

fn page_size() -> usize {
    static PAGE: OnceLock<usize> = OnceLock::new();
    // SAFETY: sysconf has no preconditions.
    *PAGE.get_or_init(|| unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum GuardMode {
    /// `madvise(MADV_GUARD_INSTALL)`: guards inside one mapping.
    Madvise,
    /// `mprotect(PROT_NONE)`: every guard splits the mapping.
    Mprotect,
}

/// The guard mode, decided once per process: `Madvise` when the kernel accepts
/// it (probed on a scratch mapping), unless `CORIO_STACK_GUARD=mprotect`.
fn guard_mode() -> GuardMode {
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

/// Whether stacks on this machine use `MADV_GUARD_INSTALL` guards (and so do
/// not count against `vm.max_map_count` one by one).
pub fn uses_guard_install() -> bool {
    guard_mode() == GuardMode::Madvise
}

/// Checks a requested stack size and rounds it up to whole pages.
pub(crate) fn checked_size(requested: usize) -> Result<usize, Error> {
    if !(MIN_STACK_SIZE..=MAX_STACK_SIZE).contains(&requested) {
        return Err(Error::InvalidStackSize {
            requested,
            min: MIN_STACK_SIZE,
            max: MAX_STACK_SIZE,
        });
    }
    let page = page_size();
    Ok(requested.div_ceil(page) * page)
}

/// One anonymous mapping holding one or more stack slots; unmapped when the
/// last stack carved from it is dropped.
struct Chunk {
    addr: *mut u8,
    len: usize,
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

/// A stack slot: `bottom` is the start of its guard page; the usable stack is
/// `size` bytes above the guard.
struct Slot {
    /// Keeps the mapping alive while this slot exists.
    _chunk: Rc<Chunk>,
    bottom: usize,
}

/// A guard-protected stack borrowed from the current thread's pool; it goes
/// back to that pool when dropped.
pub struct PooledStack {
    slot: Option<Slot>,
    size: usize,
    /// The top (highest address) of the stack, cached: corosensei asks for
    /// it on every resume.
    top: usize,
}

impl std::fmt::Debug for PooledStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledStack")
            .field("size", &self.size)
            .field("top", &format_args!("{:#x}", self.top))
            .finish()
    }
}

impl PooledStack {
    /// The address range of the guard page: a fault there is an overflow.
    pub(crate) fn guard_range(&self) -> (usize, usize) {
        let bottom = self.slot.as_ref().map_or(0, |s| s.bottom);
        (bottom, bottom + page_size())
    }

    fn top_of(&self, slot: &Slot) -> usize {
        slot.bottom + page_size() + self.size
    }

    /// Trims a stack that grew deep: if the words at `TRIM_DEPTH` below the
    /// top were ever written, the pages below the hot top are given back.
    fn trim_if_deep(&self, slot: &Slot) {
        if self.size < TRIM_DEPTH + page_size() {
            return;
        }
        let top = self.top_of(slot);
        let probe = (top - TRIM_DEPTH) as *const u64;
        // SAFETY: `probe` lies inside the usable part of this slot (above the
        // guard, below the top), which stays mapped read/write; untouched
        // pages read as zero. Eight words stay inside one page because
        // `probe` is page-aligned.
        let touched = (0..8).any(|i| unsafe { probe.add(i).read_volatile() } != 0);
        if touched {
            let start = slot.bottom + page_size();
            let len = top - TRIM_KEEP - start;
            // SAFETY: the range is inside this slot's usable stack, which no
            // coroutine is running on (the coroutine owning it was dropped);
            // MADV_DONTNEED only resets the pages to zero-fill.
            unsafe {
                libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED);
            }
        }
    }
}

// SAFETY: every slot has a guard page directly below its usable range (set up
// by `Pool::new_chunk` before any slot is handed out, and never removed while
// the chunk is mapped), the usable range is at least MIN_STACK_SIZE, and
// `base`/`limit` are page-aligned and so STACK_ALIGNMENT-aligned.
unsafe impl corosensei::stack::Stack for PooledStack {
    #[inline]
    fn base(&self) -> corosensei::stack::StackPointer {
        // SAFETY: `top` is above a non-null mapping, so it is never 0.
        unsafe { NonZeroUsize::new_unchecked(self.top) }
    }

    fn limit(&self) -> corosensei::stack::StackPointer {
        NonZeroUsize::new(self.slot.as_ref().expect("stack slot present").bottom)
            .expect("mapping is never at address 0")
    }
}

impl Drop for PooledStack {
    fn drop(&mut self) {
        let Some(slot) = self.slot.take() else { return };
        self.trim_if_deep(&slot);
        let size = self.size;
        // If the pool is already gone (thread exiting), the slot just drops
        // and the chunk is unmapped with its last slot.
        let _ = POOL.try_with(|pool| pool.borrow_mut().give_back(size, slot));
    }
}

/// Free slots of one stack size.
struct SizeClass {
    size: usize,
    free: Vec<Slot>,
    /// Free slots promised to [`Reservation`]s: `free.len() >= reserved`.
    reserved: usize,
    next_chunk_slots: usize,
}

#[derive(Default)]
struct Pool {
    classes: Vec<SizeClass>,
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::new(Pool::default());
}

impl Pool {
    #[inline]
    fn class(&mut self, size: usize) -> &mut SizeClass {
        // Nearly every task uses the runtime's default size: check the first
        // class before searching.
        if self.classes.first().is_some_and(|c| c.size == size) {
            return &mut self.classes[0];
        }
        let i = match self.classes.iter().position(|c| c.size == size) {
            Some(i) => i,
            None => {
                self.classes.push(SizeClass {
                    size,
                    free: Vec::new(),
                    reserved: 0,
                    next_chunk_slots: 4,
                });
                self.classes.len() - 1
            }
        };
        &mut self.classes[i]
    }

    fn give_back(&mut self, size: usize, slot: Slot) {
        self.class(size).free.push(slot);
    }

    /// Promises one free slot of `size`, mapping more stacks if every free
    /// one is promised already.
    fn reserve(&mut self, size: usize) -> Result<(), Error> {
        let mode = guard_mode();
        let class = self.class(size);
        if class.free.len() <= class.reserved {
            let slots = match mode {
                GuardMode::Madvise => {
                    let n = class.next_chunk_slots;
                    class.next_chunk_slots = (n * 2).min(MAX_CHUNK_SLOTS);
                    n
                }
                // Each guard splits the mapping anyway: map stacks one by one
                // so unused slots cost no mappings.
                GuardMode::Mprotect => 1,
            };
            let new = new_chunk(size, slots, mode)?;
            // Keep the most recently freed (warm) slots on top.
            class.free.splice(0..0, new);
        }
        class.reserved += 1;
        Ok(())
    }

    /// Takes the most recently freed slot, promised by a reservation.
    fn take_reserved(&mut self, size: usize) -> Slot {
        let class = self.class(size);
        class.reserved -= 1;
        class.free.pop().expect("a reserved stack slot is free")
    }

    fn unreserve(&mut self, size: usize) {
        let class = self.class(size);
        debug_assert!(class.reserved > 0, "a stack promise released twice");
        class.reserved = class.reserved.saturating_sub(1);
    }
}

/// Maps a chunk of `slots` stacks of `size` bytes, each above a guard page.
/// Slots come back in reverse address order so the pool hands out the lowest
/// address first.
fn new_chunk(size: usize, slots: usize, mode: GuardMode) -> Result<Vec<Slot>, Error> {
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
    });
    let mut out = Vec::with_capacity(slots);
    for i in (0..slots).rev() {
        let bottom = addr as usize + i * slot_len;
        // SAFETY: `bottom..bottom+page` is the first page of slot `i`, inside
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
        if rc != 0 {
            // Dropping `chunk` (and the slots made so far) unmaps it.
            return Err(map_error(size, io::Error::last_os_error()));
        }
        out.push(Slot {
            _chunk: Rc::clone(&chunk),
            bottom,
        });
    }
    Ok(out)
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

/// Takes a stack of `size` usable bytes (already checked and page-rounded by
/// [`checked_size`]) from this thread's pool, mapping more if it is empty.
pub(crate) fn take(size: usize) -> Result<PooledStack, Error> {
    Ok(reserve(size)?.take())
}

/// Promises a stack of `size` usable bytes (checked and page-rounded) from
/// this thread's pool without picking one yet.
///
/// A task reserves its stack when it is spawned, so that running out of
/// memory or mappings is reported to the spawner, and takes it when it
/// first runs: then it gets the stack freed most recently, still warm in
/// the caches. A batch of 1,000 short tasks spawned before any runs thus
/// runs on one or two stacks instead of touching 1,000 cold ones.
pub(crate) fn reserve(size: usize) -> Result<Reservation, Error> {
    POOL.with(|pool| pool.borrow_mut().reserve(size))?;
    Ok(Reservation { size })
}

/// A stack promised by [`reserve`]; dropping it releases the promise. Only
/// meaningful on the thread that made it.
pub(crate) struct Reservation {
    size: usize,
}

impl Reservation {
    /// The promised stack: the most recently freed one of its size.
    pub(crate) fn take(self) -> PooledStack {
        let size = self.size;
        std::mem::forget(self);
        let slot = POOL.with(|pool| pool.borrow_mut().take_reserved(size));
        PooledStack {
            top: slot.bottom + page_size() + size,
            slot: Some(slot),
            size,
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let _ = POOL.try_with(|pool| pool.borrow_mut().unreserve(self.size));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_checked_and_rounded() {
        assert!(matches!(
            checked_size(1),
            Err(Error::InvalidStackSize { requested: 1, .. })
        ));
        assert!(checked_size(MAX_STACK_SIZE + 1).is_err());
        let s = checked_size(MIN_STACK_SIZE + 1).unwrap();
        assert_eq!(s % page_size(), 0);
        assert!(s > MIN_STACK_SIZE);
    }

    #[test]
    fn stacks_are_reused_lifo() {
        let size = checked_size(64 * 1024).unwrap();
        let a = take(size).unwrap();
        let base = a.top;
        drop(a);
        let b = take(size).unwrap();
        assert_eq!(b.top, base);
    }

    fn reserved(size: usize) -> usize {
        POOL.with(|p| p.borrow_mut().class(size).reserved)
    }

    #[test]
    fn reservations_are_released_by_take_and_by_drop() {
        let size = checked_size(96 * 1024).unwrap();
        let before = reserved(size);
        let a = reserve(size).unwrap();
        let b = reserve(size).unwrap();
        assert_eq!(reserved(size), before + 2);
        let stack = a.take();
        assert_eq!(reserved(size), before + 1);
        drop(b);
        assert_eq!(reserved(size), before);
        // Every promise was backed by a free slot: the pool never hands out
        // a slot twice.
        let c = reserve(size).unwrap().take();
        assert_ne!(c.top, stack.top);
    }

    #[test]
    fn deep_stack_is_trimmed() {
        let size = checked_size(128 * 1024).unwrap();
        let s = take(size).unwrap();
        let probe = (s.top - TRIM_DEPTH) as *mut u64;
        // SAFETY: inside the usable range of a stack nobody runs on.
        unsafe { probe.write_volatile(7) };
        let top = s.top;
        drop(s);
        let s = take(size).unwrap();
        assert_eq!(s.top, top);
        // SAFETY: as above; MADV_DONTNEED made the page read as zero again.
        assert_eq!(unsafe { probe.read_volatile() }, 0);
    }
}
