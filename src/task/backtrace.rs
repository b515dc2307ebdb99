//! Backtraces of task stacks: captured on the task's own stack, trimmed to
//! the task's frames (from its closure to the call that waits) for dumps.

#![allow(unsafe_code)]

use std::backtrace::Backtrace;

use crate::task::core::Core;

/// Stack a capture needs below the caller's frame: the unwinder walks the
/// stack with a few kilobytes of its own.
const CAPTURE_STACK: usize = 24 * 1024;

/// Captures the stack of the running task `core`, if it has room for it.
pub(crate) fn capture_here(core: &Core) -> Option<Backtrace> {
    let sp = stack_pointer();
    let (_, guard_end) = core.header.stack_guard();
    if guard_end != 0 && sp.saturating_sub(guard_end) < CAPTURE_STACK {
        return None;
    }
    Some(Backtrace::force_capture())
}

/// The stack pointer of the caller. Not the address of a local: under
/// AddressSanitizer a local whose address is taken lives in a "fake stack"
/// on the heap, far from the task's stack, and would read as no room left.
#[inline(always)]
fn stack_pointer() -> usize {
    let sp: usize;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: copies a register; touches no memory and no flags.
    unsafe {
        std::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags));
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: copies a register; touches no memory and no flags.
    unsafe {
        std::arch::asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags));
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let here = 0u8;
        sp = std::ptr::addr_of!(here) as usize;
    }
    sp
}

/// Frames of corio's own machinery above the frames worth showing.
const ABOVE: &[&str] = &[
    "std::backtrace",
    "corio::inspect",
    "corio::task::backtrace::",
    "corio::task::diag::",
    "corio::task::park::",
    "corio::task::context::",
    "corosensei",
    "<corosensei",
];

/// Frames that may sit between two of `ABOVE` (closures called through
/// `FnOnce`, thread-local accessors).
const ABOVE_GLUE: &[&str] = &[
    "core::ops::function",
    "std::thread::local",
    "<core::",
    "core::",
];

/// Frames where a task's own frames end (below them: the task's start).
const BELOW: &[&str] = &["corio::task::core::run_body", "corosensei::"];

/// Frames between the task's closure and `BELOW`: the `catch_unwind` that
/// runs it.
const GLUE: &[&str] = &[
    "std::panicking",
    "std::panic::",
    "core::ops::function",
    "<core::panic::unwind_safe",
    "corio::task::core::start_task",
    "__rust_try",
];

/// One frame: its symbol and its `at file:line` lines.
struct Frame<'a> {
    symbol: &'a str,
    at: Vec<&'a str>,
}

fn frames(text: &str) -> Vec<Frame<'_>> {
    let mut out: Vec<Frame<'_>> = Vec::new();
    for line in text.lines() {
        let t = line.trim_start();
        if let Some(at) = t.strip_prefix("at ") {
            if let Some(f) = out.last_mut() {
                f.at.push(at);
            }
            continue;
        }
        if let Some((n, sym)) = t.split_once(": ")
            && n.chars().all(|c| c.is_ascii_digit())
        {
            out.push(Frame {
                symbol: sym,
                at: Vec::new(),
            });
        }
    }
    out
}

/// The task's frames of `bt`, one per line with its source location
/// indented below, each line prefixed with `indent`.
pub(crate) fn render(bt: &Backtrace, indent: &str) -> String {
    let text = bt.to_string();
    let all = frames(&text);
    let is = |f: &Frame<'_>, set: &[&str]| set.iter().any(|p| f.symbol.starts_with(p));
    let mut start = 0;
    for (i, f) in all.iter().enumerate() {
        if is(f, ABOVE) {
            start = i + 1;
        } else if !is(f, ABOVE_GLUE) {
            break;
        }
    }
    let mut end = all[start..]
        .iter()
        .position(|f| BELOW.iter().any(|p| f.symbol.starts_with(p)))
        .map_or(all.len(), |n| start + n);
    while end > start && GLUE.iter().any(|p| all[end - 1].symbol.starts_with(p)) {
        end -= 1;
    }
    let mut out = String::new();
    for f in &all[start..end] {
        out.push_str(indent);
        out.push_str(f.symbol);
        out.push('\n');
        for at in &f.at {
            out.push_str(indent);
            out.push_str("    at ");
            out.push_str(at);
            out.push('\n');
        }
    }
    if out.is_empty() {
        out.push_str(indent);
        out.push_str("(no frames: built without symbols?)\n");
    }
    out
}
