//! Stack memory for coroutines: pooled, guard-protected, sized in bytes.
//!
//! Creating a coroutine on a fresh `mmap`ed stack costs about 4 µs (map,
//! guard, first page fault, unmap); on a reused stack about 11 ns. So stacks
//! come from a per-thread pool and go back to it when their coroutine is
//! dropped. A task takes its stack when it first runs, on the worker that
//! runs it: the most recently freed, still warm in the caches (see
//! `take` for what that means for errors).
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
//! chunk of hundreds of stacks is two entries in `/proc/self/maps` (see
//! below) and `vm.max_map_count` hardly limits the number of tasks. Elsewhere the
//! guard is an `mprotect(PROT_NONE)` page, which splits the mapping; each
//! stack then gets its own two-mapping chunk, and about `vm.max_map_count / 2`
//! stacks can exist at once. Either way, hitting a limit returns a typed
//! [`Error`] that names it.
//!
//! A chunk's guards are installed when it is mapped, on the thread whose
//! pool it joins, with one `process_madvise` for all of them where the
//! kernel allows it (Linux ≥ 6.15), else one call each. Since a task takes
//! its stack only when it first runs, that is the worker that runs it: a
//! task that moves to an idle worker before it runs costs no stack, no
//! guard and no page tables on the worker it left.
//!
//! Every chunk also starts with an `mprotect(PROT_NONE)` page (the guard of
//! its lowest stack): chunks are alike, and the kernel would merge
//! neighbours into one mapping, which each new chunk then expands while
//! every page fault in it waits. So a chunk is two mappings, and a million
//! stacks take about 8,000 of the 65,530 that `vm.max_map_count` allows by
//! default (about 8 million stacks, where a merged chunk took none).
//!
//! # When a stack cannot be had
//!
//! The stack is taken at the task's first run, so it is then, not at
//! `spawn`, that a full address space, `vm.max_map_count` or a memory limit
//! shows: the task ends without running, cancelled, and its `JoinHandle`
//! returns a [`JoinError`](crate::JoinError) whose
//! [`start_error`](crate::JoinError::start_error) is the [`Error`] naming
//! the limit and how to raise it (a detached task says it on stderr; the
//! main task of `block_on` panics with it). Never an abort: corosensei,
//! which would panic, is never asked for a stack. Promising every spawned
//! task a stack up front kept that error at `spawn`, but cost the spawner
//! the mapping and guard of every stack, and a second stack for every task
//! an idle worker took over: a million parked tasks on two workers
//! installed 1.5 million guards.
//!
//! # Memory use
//!
//! Mappings are `MAP_NORESERVE`: only touched pages cost memory, so a
//! generous virtual size is cheap. A stack that grew deep is trimmed with
//! `MADV_DONTNEED` when it returns to the pool, so one deep recursion does not
//! pin memory for the life of the thread.
//!
//! The pool also gives back what a burst of tasks left behind:
//!
//! * **A bound on resident idle stacks.** Each size class keeps its free
//!   stacks coldest first, and knows how many at the bottom hold no resident
//!   pages (never touched, or released). When more than 1,024 free stacks
//!   may be resident, the coldest
//!   are released with `MADV_DONTNEED`: their pages go back to the system,
//!   their mapping stays, and reusing one later costs a page fault, as a
//!   fresh stack does. The most recently freed stacks, the ones taken next,
//!   are never touched, so spawn and join pay two comparisons for this. A
//!   burst of up to 1,024 tasks thus costs no system call, and at most 1,024
//!   idle stacks per size pin memory once it is over (one or two pages each:
//!   4–8 MiB).
//! * **Idle chunks are unmapped.** Once the released stacks have doubled
//!   since the last look, chunks whose every stack is free and released are
//!   unmapped, which also frees their page tables (guard pages keep a page
//!   table alive: 200,000 stacks hold about 100 MB of them) and, with the
//!   `mprotect` fallback, their mappings.
//! * **A runtime frees the idle stacks of its thread when dropped**: every
//!   stack's pages, and every chunk none of whose stacks is in use (a
//!   [`Generator`](crate::generator::Generator) alive on the thread keeps its
//!   own chunk). A thread that starts runtime after runtime thus maps its
//!   stacks afresh each time (about 10 µs per runtime).
//! * **Without a runtime** (generators only) the bound and the unmapping of
//!   idle chunks apply as stacks come back; what remains is freed when the
//!   thread exits, or by calling [`release_idle`].
//!
//! Setting the environment variable `CORIO_STACK_GUARD=mprotect` before the
//! first stack is created forces the `mprotect` fallback (used by the tests).
#![allow(unsafe_code)]

use std::cell::RefCell;
use std::num::NonZeroUsize;
use std::rc::Rc;

use crate::error::Error;

mod map;

pub(crate) use map::page_size;
use map::{Chunk, GuardMode, guard_mode};

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

/// Stacks that grew past this depth are trimmed on their way back to the pool.
const TRIM_DEPTH: usize = 32 * 1024;
/// How much of the top of a trimmed stack stays resident (it is hot).
const TRIM_KEEP: usize = 16 * 1024;
/// Largest number of slots in one chunk when guards don't split mappings.
const MAX_CHUNK_SLOTS: usize = 256;
/// How many idle stacks of one size a thread keeps resident (their touched
/// pages; typically one or two each, at most `TRIM_DEPTH`): a burst of up to
/// this many tasks reuses warm stacks without a system call, and at most this
/// many pin memory once it is over (4–8 MiB, 32 MiB at worst).
const IDLE_RESIDENT: usize = 1024;
/// The first chunk of a size class (they double up to `MAX_CHUNK_SLOTS`).
const FIRST_CHUNK_SLOTS: usize = 4;

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

/// A stack slot: `bottom` is the start of its guard page; the usable stack is
/// `size` bytes above the guard.
struct Slot {
    /// Keeps the mapping alive while this slot exists; its strong count is
    /// the number of the chunk's slots still alive (free or in use).
    chunk: Rc<Chunk>,
    bottom: usize,
}

/// A guard-protected stack borrowed from the current thread's pool; it goes
/// back to that pool when dropped. Two words: every task's coroutine holds
/// one, so its size is a part of every task's memory.
pub struct PooledStack {
    /// Keeps the mapping alive (`None` only while being dropped); it also
    /// knows the stack's size.
    chunk: Option<Rc<Chunk>>,
    /// The top (highest address) of the stack, cached: corosensei asks for
    /// it on every resume.
    top: usize,
}

impl std::fmt::Debug for PooledStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledStack")
            .field("size", &self.size())
            .field("top", &format_args!("{:#x}", self.top))
            .finish()
    }
}

impl PooledStack {
    fn size(&self) -> usize {
        self.chunk.as_ref().map_or(0, |c| c.stack_size)
    }

    /// The start of the slot: its guard page.
    fn bottom(&self) -> usize {
        self.top - self.size() - page_size()
    }

    /// The address range of the guard page: a fault there is an overflow.
    pub(crate) fn guard_range(&self) -> (usize, usize) {
        let bottom = self.bottom();
        (bottom, bottom + page_size())
    }

    /// Trims a stack that grew deep: if the words at `TRIM_DEPTH` below the
    /// top were ever written, the pages below the hot top are given back.
    fn trim_if_deep(&self) {
        if self.size() < TRIM_DEPTH + page_size() {
            return;
        }
        let top = self.top;
        let probe = (top - TRIM_DEPTH) as *const u64;
        // SAFETY: `probe` lies inside the usable part of this slot (above the
        // guard, below the top), which stays mapped read/write; untouched
        // pages read as zero. Eight words stay inside one page because
        // `probe` is page-aligned.
        let touched = (0..8).any(|i| unsafe { probe.add(i).read_volatile() } != 0);
        if touched {
            let start = self.bottom() + page_size();
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
// by `map::map_chunk` before any slot is handed out, and never removed while
// the chunk is mapped), the usable range is at least MIN_STACK_SIZE, and
// `base`/`limit` are page-aligned and so STACK_ALIGNMENT-aligned.
unsafe impl corosensei::stack::Stack for PooledStack {
    #[inline]
    fn base(&self) -> corosensei::stack::StackPointer {
        // SAFETY: `top` is above a non-null mapping, so it is never 0.
        unsafe { NonZeroUsize::new_unchecked(self.top) }
    }

    fn limit(&self) -> corosensei::stack::StackPointer {
        NonZeroUsize::new(self.bottom()).expect("mapping is never at address 0")
    }
}

impl Drop for PooledStack {
    fn drop(&mut self) {
        self.trim_if_deep();
        let bottom = self.bottom();
        let Some(chunk) = self.chunk.take() else {
            return;
        };
        let size = chunk.stack_size;
        // If the pool is already gone (thread exiting), the slot just drops
        // and the chunk is unmapped with its last slot.
        let _ = POOL.try_with(|pool| pool.borrow_mut().give_back(size, Slot { chunk, bottom }));
    }
}

/// Free slots of one stack size.
struct SizeClass {
    size: usize,
    /// Coldest first: slots are taken from and given back at the end.
    free: Vec<Slot>,
    /// `free[..clean]` have no resident pages (never touched, or released
    /// with `MADV_DONTNEED`); the slots above may have some.
    clean: usize,
    next_chunk_slots: usize,
    /// `clean` after the last sweep for idle chunks: the next one waits until
    /// it has doubled, so sweeps cost O(1) per released stack.
    swept: usize,
}

impl SizeClass {
    /// Releases the pages of the coldest free slots until at most `keep`
    /// may be resident, and unmaps chunks whose
    /// every slot is free and released: now if `all` (before releasing, so
    /// their pages need no `madvise`), else once `clean` has doubled.
    #[cold]
    #[inline(never)]
    fn release_idle(&mut self, keep: usize, all: bool) {
        if all {
            // The `keep` warmest stay, with their chunks.
            self.sweep(self.free.len().saturating_sub(keep));
        }
        let page = page_size();
        while self.free.len() - self.clean > keep {
            let start = self.free[self.clean].bottom + page;
            // SAFETY: `start..start+size` is the usable stack of a free slot:
            // mapped (the slot holds its chunk), and no coroutine runs on it
            // or will until it is taken again. MADV_DONTNEED only resets
            // those pages to zero-fill; the guard page below `start` is not
            // in the range, so guards of either kind stay in place.
            unsafe {
                libc::madvise(start as *mut libc::c_void, self.size, libc::MADV_DONTNEED);
            }
            self.clean += 1;
        }
        if !all && self.clean >= 2 * self.swept + MAX_CHUNK_SLOTS {
            self.sweep(self.clean);
        }
    }

    /// Maps a new chunk into an empty free list (its slots are untouched,
    /// so all clean). Chunks double in size up to `MAX_CHUNK_SLOTS`.
    #[cold]
    #[inline(never)]
    fn refill(&mut self, mode: GuardMode) -> Result<(), Error> {
        debug_assert!(self.free.is_empty());
        let slots = match mode {
            GuardMode::Madvise => {
                let n = self.next_chunk_slots;
                self.next_chunk_slots = (n * 2).min(MAX_CHUNK_SLOTS);
                n
            }
            // Each guard splits the mapping anyway: map stacks one by one
            // so unused slots cost no mappings.
            GuardMode::Mprotect => 1,
        };
        let (chunk, bottoms) = map::map_chunk(self.size, slots, mode)?;
        self.free = bottoms
            .into_iter()
            .map(|bottom| Slot {
                chunk: Rc::clone(&chunk),
                bottom,
            })
            .collect();
        self.clean = self.free.len();
        self.swept = self.swept.min(self.clean);
        Ok(())
    }

    /// Unmaps every chunk whose slots are all in `free[..upto]`.
    fn sweep(&mut self, upto: usize) {
        use std::collections::HashMap;
        // Chunk -> (its free slots below `upto`, whether to unmap it).
        let mut chunks: HashMap<*const Chunk, (usize, bool)> = HashMap::new();
        for slot in &self.free[..upto] {
            chunks.entry(Rc::as_ptr(&slot.chunk)).or_default().0 += 1;
        }
        for slot in &self.free[..upto] {
            let (count, unmap) = chunks
                .get_mut(&Rc::as_ptr(&slot.chunk))
                .expect("counted above");
            // Only these free slots hold the chunk when its count is theirs.
            *unmap = Rc::strong_count(&slot.chunk) == *count;
        }
        // Dropping a chunk's last slot unmaps it (`Chunk::drop`); `retain`
        // keeps the order, coldest first.
        let (clean, mut index, mut clean_removed) = (self.clean, 0, 0);
        self.free.retain(|slot| {
            let unmap = chunks.get(&Rc::as_ptr(&slot.chunk)).is_some_and(|c| c.1);
            if unmap && index < clean {
                clean_removed += 1;
            }
            index += 1;
            !unmap
        });
        self.clean -= clean_removed;
        self.swept = self.clean;
        if self.free.is_empty() {
            self.next_chunk_slots = FIRST_CHUNK_SLOTS;
        }
    }
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
                    clean: 0,
                    next_chunk_slots: FIRST_CHUNK_SLOTS,
                    swept: 0,
                });
                self.classes.len() - 1
            }
        };
        &mut self.classes[i]
    }

    #[inline]
    fn give_back(&mut self, size: usize, slot: Slot) {
        let class = self.class(size);
        class.free.push(slot);
        // The slots above `clean` may be resident. Past the bound, release
        // the coldest.
        if class.free.len() - class.clean > IDLE_RESIDENT {
            class.release_idle(IDLE_RESIDENT, false);
        }
    }

    /// Releases every idle stack but the `keep` warmest of each size: pages
    /// of all other free slots, and the mappings of chunks none
    /// of whose slots is in use or kept.
    fn release_all(&mut self, keep: usize) {
        for class in &mut self.classes {
            class.release_idle(keep, true);
        }
    }

    /// Takes the most recently freed slot of `size`, mapping a new chunk
    /// when none is free.
    #[inline]
    fn take(&mut self, size: usize) -> Result<Slot, Error> {
        let class = self.class(size);
        if class.free.is_empty() {
            class.refill(guard_mode())?;
        }
        let slot = class.free.pop().expect("a free stack slot after refill");
        class.clean = class.clean.min(class.free.len());
        Ok(slot)
    }
}

/// Takes a stack of `size` usable bytes (already checked and page-rounded by
/// [`checked_size`]) from this thread's pool: the most recently freed one,
/// still warm in the caches, or a fresh one from a new mapping.
///
/// A task takes its stack when it first runs, on the worker that runs it,
/// not when it is spawned: a batch of 1,000 short tasks spawned before any
/// runs thus runs on one or two stacks instead of touching 1,000 cold
/// ones, and a task that moves to an idle worker before it runs costs its
/// first worker nothing. Running out of memory or mappings is then the
/// task's error, not the spawner's: it finishes without running, and its
/// `JoinHandle` returns a `JoinError` that carries this function's
/// [`Error`] (see [`JoinError::start_error`](crate::JoinError::start_error)).
#[inline]
pub(crate) fn take(size: usize) -> Result<PooledStack, Error> {
    let slot = POOL.with(|pool| pool.borrow_mut().take(size))?;
    Ok(PooledStack {
        top: slot.bottom + page_size() + size,
        chunk: Some(slot.chunk),
    })
}

/// Gives this thread's idle stacks back to the system: the pages of every
/// stack in its pool that no task or generator is using, and the mappings
/// of the chunks none of whose stacks is in use.
///
/// A runtime does this when it is dropped. A thread that uses [`Generator`](crate::generator::Generator)s
/// without a runtime keeps at most a bounded number of idle stacks resident
/// (see the [module docs](self)) and its mappings until it exits; this
/// function releases them earlier. The next stack is mapped afresh (a few
/// microseconds).
pub fn release_idle() {
    let _ = POOL.try_with(|pool| pool.borrow_mut().release_all(0));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the page at `addr` can be read in (`MADV_POPULATE_READ`
    /// fails on a guard page, of either kind).
    #[cfg(target_os = "linux")]
    fn readable(addr: usize) -> bool {
        // SAFETY: populating for reading changes no contents; the page is in
        // a mapping this pool owns.
        unsafe { libc::madvise(addr as *mut _, page_size(), libc::MADV_POPULATE_READ) == 0 }
    }

    /// Whether the page at `addr` is resident.
    #[cfg(target_os = "linux")]
    fn resident(addr: usize) -> bool {
        let mut v = 0u8;
        // SAFETY: `v` has room for the one page asked about.
        let rc = unsafe { libc::mincore(addr as *mut _, page_size(), &mut v) };
        assert_eq!(rc, 0);
        v & 1 == 1
    }

    /// Every stack has its guard page, and its pages are untouched until it
    /// runs; every chunk starts with its own `PROT_NONE` mapping, so no two
    /// chunks ever merge into one mapping.
    #[cfg(target_os = "linux")]
    #[test]
    fn every_stack_is_guarded_and_chunks_never_merge() {
        let size = checked_size(40 * 1024).unwrap();
        // 4 + 8 + ... + 128 = 252 slots in the growing chunks, then 256.
        let stacks: Vec<_> = (0..252 + MAX_CHUNK_SLOTS)
            .map(|_| take(size).unwrap())
            .collect();
        let mut chunk_starts = std::collections::HashMap::new();
        for (i, s) in stacks.iter().enumerate() {
            let (guard, _) = s.guard_range();
            assert!(!readable(guard), "stack {i} has no guard page");
            assert!(readable(guard + page_size()), "stack {i}");
            assert!(!resident(s.top - page_size()), "stack {i} was touched");
            let chunk = Rc::as_ptr(s.chunk.as_ref().unwrap());
            let start = chunk_starts.entry(chunk).or_insert(guard);
            *start = (*start).min(guard);
        }
        assert_eq!(
            chunk_starts.len(),
            if uses_guard_install() { 7 } else { 508 }
        );
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let mappings: Vec<(usize, usize, &str)> = maps
            .lines()
            .map(|l| {
                let (range, rest) = l.split_once(' ').unwrap();
                let (a, b) = range.split_once('-').unwrap();
                let hex = |h| usize::from_str_radix(h, 16).unwrap();
                (hex(a), hex(b), &rest[..4])
            })
            .collect();
        for &start in chunk_starts.values() {
            let own = mappings.iter().find(|m| m.0 == start);
            assert_eq!(
                own,
                Some(&(start, start + page_size(), "---p")),
                "the chunk at {start:#x} does not start with its own guard mapping"
            );
        }
        drop(stacks);
        release_idle();
    }

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

    /// (free slots, of them released, distinct chunks among them) of a size.
    fn pool_state(size: usize) -> (usize, usize, usize) {
        POOL.with(|p| {
            let mut p = p.borrow_mut();
            let class = p.class(size);
            let mut chunks: Vec<_> = class.free.iter().map(|s| Rc::as_ptr(&s.chunk)).collect();
            chunks.sort_unstable();
            chunks.dedup();
            (class.free.len(), class.clean, chunks.len())
        })
    }

    /// Takes `n` stacks of `size`, writes to the top word of each, and gives
    /// them back in order; returns their top words' addresses.
    fn touch_and_free(size: usize, n: usize) -> Vec<usize> {
        let stacks: Vec<_> = (0..n).map(|_| take(size).unwrap()).collect();
        let tops: Vec<usize> = stacks.iter().map(|s| s.top - 8).collect();
        for &t in &tops {
            // SAFETY: the top word of a stack this test holds, run by nobody.
            unsafe { (t as *mut u64).write_volatile(7) };
        }
        drop(stacks);
        tops
    }

    #[test]
    fn idle_stacks_beyond_the_bound_are_released_coldest_first() {
        let size = checked_size(72 * 1024).unwrap();
        let extra = 10;
        let tops = touch_and_free(size, IDLE_RESIDENT + extra);
        let (free, clean, _) = pool_state(size);
        assert_eq!(free - clean, IDLE_RESIDENT, "resident idle stacks");
        let pooled: Vec<usize> = POOL.with(|p| {
            let mut p = p.borrow_mut();
            let class = p.class(size);
            class
                .free
                .iter()
                .map(|s| s.bottom + page_size() + size - 8)
                .collect()
        });
        // The first given back are the coldest: released, they read zero;
        // the last given back (the warm ones, reused next) keep their pages.
        for (i, &t) in tops.iter().enumerate() {
            assert!(pooled.contains(&t), "stack {i} was unmapped");
            // SAFETY: the top word of a stack still in this thread's pool,
            // so still mapped, and run by nobody.
            let word = unsafe { (t as *const u64).read_volatile() };
            assert_eq!(word, if i < extra { 0 } else { 7 }, "stack {i}");
        }
        // The next stack taken is the last one freed.
        assert_eq!(take(size).unwrap().top - 8, tops[tops.len() - 1]);
    }

    #[test]
    fn idle_chunks_are_unmapped_and_release_idle_frees_all() {
        let size = checked_size(88 * 1024).unwrap();
        let n = 4 * IDLE_RESIDENT;
        touch_and_free(size, n);
        let (free, clean, chunks) = pool_state(size);
        assert_eq!(free - clean, IDLE_RESIDENT);
        assert!(free < n, "no idle chunk was unmapped: {free} free slots");
        assert!(chunks > 0);
        // A stack in use keeps its chunk mapped through `release_idle`.
        let kept = take(size).unwrap();
        release_idle();
        let (free, clean, chunks) = pool_state(size);
        assert_eq!(free, clean, "every free stack released");
        assert!(chunks <= 1, "{chunks} chunks left");
        drop(kept);
        release_idle();
        assert_eq!(pool_state(size), (0, 0, 0));
        // The pool starts again from a small chunk.
        let s = take(size).unwrap();
        let (free, _, _) = pool_state(size);
        assert!(free < FIRST_CHUNK_SLOTS, "{free}");
        drop(s);
    }
}
