//! The panic message of a task names the task.
//!
//! Rust's default panic hook prints `thread 'main' panicked at …`, which in
//! a runtime where thousands of tasks share one thread says nothing about
//! which task failed. The first runtime a process builds installs a hook
//! that, for a panic inside a task, prints
//!
//! ```text
//! task 7 'worker' panicked at src/main.rs:12:9:
//! the message
//! ```
//!
//! (with the backtrace when `RUST_BACKTRACE` asks for one) and hands every
//! other panic to the hook that was installed before. A hook the program
//! sets later replaces it, as with any hook.

use std::backtrace::{Backtrace, BacktraceStatus};
use std::panic::{self, PanicHookInfo};
use std::sync::Once;

static INSTALL: Once = Once::new();

/// Installs the hook once per process.
pub(crate) fn install() {
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !report_in_task(info) {
                previous(info);
            }
        }));
    });
}

/// Prints the report of a panic in a task; `false` outside tasks.
fn report_in_task(info: &PanicHookInfo<'_>) -> bool {
    let Some(task) = super::context::current_task() else {
        return false;
    };
    let message = payload_text(info.payload());
    let location = info
        .location()
        .map(|l| format!(" at {}:{}:{}", l.file(), l.line(), l.column()))
        .unwrap_or_default();
    let name = task.name().map(|n| format!(" '{n}'")).unwrap_or_default();
    let backtrace = Backtrace::capture();
    let mut out = format!("task {}{name} panicked{location}:\n{message}\n", task.id());
    match backtrace.status() {
        BacktraceStatus::Captured => out.push_str(&format!("stack backtrace:\n{backtrace}\n")),
        _ => out.push_str(
            "note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n",
        ),
    }
    // One write, so that reports of tasks on other threads do not
    // interleave line by line; `eprint!` (not a raw stderr write) so that
    // the test harness captures it like the default hook's output.
    eprint!("{out}");
    true
}

fn payload_text(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "Box<dyn Any>"
    }
}
