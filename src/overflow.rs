//! Reporting coroutine stack overflows.
//!
//! A coroutine that runs off the bottom of its stack touches its guard page
//! and gets `SIGSEGV`. Without help that dies as a bare "Segmentation
//! fault". corio installs a `SIGSEGV`/`SIGBUS` handler (running on the
//! thread's alternate signal stack) when a runtime starts or a generator is
//! made. It checks whether the faulting address is the guard page of the
//! generator the running context (task, or thread outside tasks) executes,
//! or else of the running task; if so it prints which one overflowed, its
//! stack size and how to raise it, then aborts. Any other fault goes on to
//! the handler installed before corio's (std's own overflow report for
//! thread stacks, or the default action).
//!
//! This module is a leaf: it does not know generators or tasks. Each of
//! those layers installs a [`Reporter`] that recognises its own guard page
//! and writes its own report. The handler and the reporters only read
//! thread-locals and task state with plain loads and call `write(2)` and
//! `abort(3)`: they are async-signal-safe.
#![allow(unsafe_code)]

use std::cell::Cell;
use std::mem::MaybeUninit;
use std::ptr;
use std::sync::Once;
use std::sync::atomic::{AtomicPtr, Ordering};

static mut PREV_SEGV: MaybeUninit<libc::sigaction> = MaybeUninit::uninit();
static mut PREV_BUS: MaybeUninit<libc::sigaction> = MaybeUninit::uninit();
static INSTALL: Once = Once::new();

thread_local! {
    static ALT_STACK: Cell<bool> = const { Cell::new(false) };
}

const ALT_STACK_SIZE: usize = 64 * 1024;

/// What a layer that owns coroutine stacks gives the handler: given the
/// faulting address, if it is the guard page of the stack that layer runs on
/// this thread, writes the report (with [`write_stderr`], [`write_u64`]) and
/// returns `true` (the handler then aborts). It runs in the signal handler:
/// plain loads of thread-locals and `write(2)` only.
pub(crate) type Reporter = fn(fault_addr: usize) -> bool;

/// The reporters installed so far (generators, tasks), asked in turn. This
/// module knows nothing of either: each installs its own.
static REPORTERS: [AtomicPtr<()>; 2] = [const { AtomicPtr::new(ptr::null_mut()) }; 2];

/// Installs the handler (once per process), adds `reporter` to those it
/// asks, and makes sure this thread has an alternate signal stack to run
/// it on.
pub(crate) fn install(reporter: Reporter) {
    let f = reporter as *mut ();
    for slot in &REPORTERS {
        match slot.compare_exchange(ptr::null_mut(), f, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => break,
            Err(present) if present == f => break,
            Err(_) => {}
        }
    }
    INSTALL.call_once(|| {
        // SAFETY: `action` is fully initialised before use; the previous
        // actions are written into statics exactly once, here, before the
        // handler that reads them can run (it is installed by these calls).
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = handler as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(
                libc::SIGSEGV,
                &action,
                (&raw mut PREV_SEGV).cast::<libc::sigaction>(),
            );
            libc::sigaction(
                libc::SIGBUS,
                &action,
                (&raw mut PREV_BUS).cast::<libc::sigaction>(),
            );
        }
    });
    ensure_alt_stack();
}

fn ensure_alt_stack() {
    if ALT_STACK.with(Cell::get) {
        return;
    }
    ALT_STACK.with(|c| c.set(true));
    // SAFETY: querying the current alternate stack has no preconditions.
    let mut current: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: `current` is a valid out-pointer.
    unsafe { libc::sigaltstack(ptr::null(), &mut current) };
    if current.ss_flags & libc::SS_DISABLE == 0 {
        return; // std (or someone) already gave this thread one
    }
    // SAFETY: a fresh anonymous mapping, deliberately leaked: it must stay
    // valid for as long as the thread may take a signal.
    let stack = unsafe {
        libc::mmap(
            ptr::null_mut(),
            ALT_STACK_SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if stack == libc::MAP_FAILED {
        return;
    }
    let alt = libc::stack_t {
        ss_sp: stack,
        ss_flags: 0,
        ss_size: ALT_STACK_SIZE,
    };
    // SAFETY: `alt` describes the mapping made above.
    unsafe { libc::sigaltstack(&alt, ptr::null_mut()) };
}

/// Writes `bytes` to stderr (async-signal-safe).
pub(crate) fn write_stderr(bytes: &[u8]) {
    // SAFETY: `bytes` is a valid buffer of that length.
    unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
}

/// Writes `n` in decimal to stderr, without allocating (async-signal-safe).
pub(crate) fn write_u64(n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    write_stderr(&buf[i..]);
}

extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    for slot in &REPORTERS {
        let f = slot.load(Ordering::Acquire);
        if f.is_null() {
            continue;
        }
        // SAFETY: only `install` stores into `REPORTERS`, and only
        // `Reporter` function pointers.
        let report: Reporter = unsafe { std::mem::transmute::<*mut (), Reporter>(f) };
        if report(addr) {
            // SAFETY: abort is async-signal-safe.
            unsafe { libc::abort() };
        }
    }
    // Not ours: hand over to whoever was installed before.
    // SAFETY: PREV_* were written by `install` before this handler existed.
    let prev = unsafe {
        if sig == libc::SIGBUS {
            (&raw const PREV_BUS).cast::<libc::sigaction>().read()
        } else {
            (&raw const PREV_SEGV).cast::<libc::sigaction>().read()
        }
    };
    if prev.sa_sigaction == libc::SIG_DFL || prev.sa_sigaction == libc::SIG_IGN {
        // Restore the default action and return: the faulting instruction
        // runs again and the process dies with the signal, as it would have.
        // SAFETY: resetting a signal disposition to SIG_DFL.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    } else if prev.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous handler was installed with SA_SIGINFO, so it
        // has this signature.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(prev.sa_sigaction) };
        f(sig, info, ctx);
    } else {
        // SAFETY: a plain handler takes the signal number only.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(prev.sa_sigaction) };
        f(sig);
    }
}
