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
//! The handler only reads thread-locals and task state with plain loads and
//! calls `write(2)` and `abort(3)`: it is async-signal-safe.
#![allow(unsafe_code)]

use std::cell::Cell;
use std::mem::MaybeUninit;
use std::ptr;
use std::sync::Once;

static mut PREV_SEGV: MaybeUninit<libc::sigaction> = MaybeUninit::uninit();
static mut PREV_BUS: MaybeUninit<libc::sigaction> = MaybeUninit::uninit();
static INSTALL: Once = Once::new();

thread_local! {
    static ALT_STACK: Cell<bool> = const { Cell::new(false) };
}

const ALT_STACK_SIZE: usize = 64 * 1024;

/// Installs the handler (once per process) and makes sure this thread has an
/// alternate signal stack to run it on.
pub(crate) fn install() {
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
fn write_stderr(bytes: &[u8]) {
    // SAFETY: `bytes` is a valid buffer of that length.
    unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
}

/// Formats `n` in decimal into `buf` without allocating.
fn write_u64(n: u64) {
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
    let hit = |guard: (usize, usize)| guard.1 != 0 && addr >= guard.0 && addr < guard.1;
    // SAFETY: a non-null slot names the generator the interrupted context
    // executes, whose resume (or drop) keeps it in place until it resets
    // the slot; only plain fields are read.
    let generator = unsafe { crate::generator::running_for_signal().as_ref() };
    if let Some(g) = generator.filter(|g| hit(g.guard)) {
        write_stderr(b"\ncorio: the generator created at ");
        write_stderr(g.created_at.file().as_bytes());
        write_stderr(b":");
        write_u64(u64::from(g.created_at.line()));
        write_stderr(b":");
        write_u64(u64::from(g.created_at.column()));
        write_stderr(b" overflowed its stack of ");
        write_u64(g.size as u64);
        write_stderr(
            b" bytes; give it a bigger stack with \
              corio::generator::Generator::with_stack_size\n",
        );
        // SAFETY: abort is async-signal-safe.
        unsafe { libc::abort() };
    }
    let task = crate::task::context::running_task_header();
    // SAFETY: the header of the task running on this thread, alive while it
    // runs (the scheduler holds a reference); only immutable fields are read.
    if let Some(h) = unsafe { task.as_ref() }.filter(|h| hit(h.stack_guard())) {
        write_stderr(b"\ncorio: task ");
        write_u64(h.id.as_u64());
        if let Some(name) = &h.name {
            write_stderr(b" '");
            write_stderr(name.as_bytes());
            write_stderr(b"'");
        }
        write_stderr(b" overflowed its stack of ");
        write_u64(h.stack_size as u64);
        write_stderr(
            b" bytes; give it a bigger stack with corio::Builder::stack_size \
              (or corio::runtime::Builder::stack_size for every task)\n",
        );
        // SAFETY: abort is async-signal-safe.
        unsafe { libc::abort() };
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
