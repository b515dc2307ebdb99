//! Introspection: see what every task is doing and why a program is stuck.
//!
//! * [`tasks`] and [`dump`]: every task of the current runtime with its
//!   state, how long it has been in it, where it was spawned, what it waits
//!   on (the mutex or semaphore and who holds it, the task it joins, the
//!   socket, the timer) and — in [`dump`] — the backtrace of its own stack, captured
//!   without disturbing it, plus the wait graph between tasks.
//! * Deadlocks: when every task waits and nothing can wake any of them, the
//!   runtime prints the dump with the cycle and `block_on` panics with a
//!   message that starts `corio: deadlock`.
//! * Stalls: [`runtime::Builder::stall_threshold`](crate::runtime::Builder::stall_threshold)
//!   (or `CORIO_STALL_MS`) reports a task that runs too long without yielding.
//! * [`dump_on_signal`]: a signal prints every runtime's dump to stderr.
//! * Metrics: [`Runtime::metrics`](crate::Runtime::metrics) and
//!   [`runtime::metrics`](crate::runtime::metrics).
//!
//! `docs/debugging.md` walks through each of them.
#![allow(unsafe_code)]

pub(crate) mod deadlock;
pub(crate) mod metrics;
pub(crate) mod signal;
pub(crate) mod stall;

use std::fmt::{self, Write as _};
use std::panic::Location;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use signal::dump_on_signal;

use crate::task::backtrace;
use crate::task::context::{Scheduler, Shared};
use crate::task::core::Core;
use crate::task::diag::{self, WaitObj};
use crate::task::park::{Unparker, park};
use crate::task::{Direction, Task, TaskId, TaskState, WaitReason};

/// A lock or semaphore whose holders were not all among the tasks of one
/// worker: the wait text up to "held by", and the holders' blocks (see
/// `resolve_holders`).
type Elsewhere = (String, Vec<usize>);

/// One task as [`tasks`] saw it.
#[derive(Clone)]
pub struct TaskInfo {
    pub(crate) task: Task,
    pub(crate) state: TaskState,
    pub(crate) in_state: Duration,
    pub(crate) stack_size: usize,
    pub(crate) location: &'static Location<'static>,
    pub(crate) worker: usize,
    pub(crate) wait: Option<String>,
    pub(crate) blocked_on: Option<TaskId>,
    pub(crate) backtrace: Option<String>,
    /// The task's block, for matching lock holders across workers.
    addr: usize,
    /// It has run (it has a stack).
    started: bool,
    holder_elsewhere: Option<Elsewhere>,
}

// By hand: the fields that only resolve edges across workers (`addr`,
// `started`, `holder_elsewhere`) say nothing to a reader.
impl std::fmt::Debug for TaskInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskInfo")
            .field("task", &self.task)
            .field("state", &self.state)
            .field("in_state", &self.in_state)
            .field("stack_size", &self.stack_size)
            .field("location", &self.location)
            .field("worker", &self.worker)
            .field("wait", &self.wait)
            .field("blocked_on", &self.blocked_on)
            .field("backtrace", &self.backtrace)
            .finish()
    }
}

impl TaskInfo {
    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.task.id()
    }

    /// The task's name, if it has one.
    pub fn name(&self) -> Option<&str> {
        self.task.name()
    }

    /// Its lifecycle state, with the wait reason when waiting.
    pub fn state(&self) -> TaskState {
        self.state
    }

    /// How long it has been in that state (measured at the scheduler's
    /// last poll, so a few microseconds coarse).
    pub fn in_state(&self) -> Duration {
        self.in_state
    }

    /// The size of its stack in bytes.
    pub fn stack_size(&self) -> usize {
        self.stack_size
    }

    /// Where the task was spawned: the caller of `corio::spawn`,
    /// `Builder::spawn`, `Scope::spawn`, `JoinSet::spawn`, … (for the main
    /// task, of `run` or `block_on`).
    ///
    /// ```
    /// corio::run(|| {
    ///     let h = corio::spawn(|| corio::yield_now()); let line = line!();
    ///     let me = corio::tasks().into_iter().find(|t| t.id() == h.id()).unwrap();
    ///     assert_eq!(me.location().file(), file!());
    ///     assert_eq!(me.location().line(), line);
    ///     h.join().unwrap();
    /// });
    /// ```
    pub fn location(&self) -> &'static Location<'static> {
        self.location
    }

    /// The worker (thread) of its runtime that runs it: 0 runs the main
    /// task of `block_on`; see
    /// [`runtime::worker_index`](crate::runtime::worker_index).
    pub fn worker(&self) -> usize {
        self.worker
    }

    /// What it waits on, with the object, when it waits: `"lock on Mutex
    /// 0x… held by task 7 'writer'"`, `"acquire on Semaphore 0x… held by
    /// task 3 'a', task 5 'b'"`, `"join task 12 'fetch'"`, `"read fd 9
    /// 127.0.0.1:5000 ← 127.0.0.1:43210"`, `"timer, 2.4 s left"`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// corio::run(|| {
    ///     let m = Arc::new(corio::sync::Mutex::new(()));
    ///     let guard = m.lock();
    ///     let m2 = Arc::clone(&m);
    ///     let waiter = corio::spawn(move || drop(m2.lock()));
    ///     corio::yield_now();
    ///     let info = corio::tasks().into_iter().find(|t| t.id() == waiter.id()).unwrap();
    ///     let wait = info.wait().unwrap();
    ///     assert!(wait.starts_with("lock on Mutex 0x"), "{wait}");
    ///     assert!(wait.ends_with("held by task 1 'main'") || wait.contains("'main'"), "{wait}");
    ///     drop(guard);
    ///     waiter.join().unwrap();
    /// });
    /// ```
    pub fn wait(&self) -> Option<&str> {
        self.wait.as_deref()
    }

    /// The task it waits for, when that is known: the task it joins, the
    /// holder of the lock it wants, the first traced holder of the
    /// semaphore permits it wants (see
    /// [`Semaphore`](crate::sync::Semaphore#holders)). The edges of the
    /// wait graph.
    pub fn blocked_on(&self) -> Option<TaskId> {
        self.blocked_on
    }

    /// The backtrace of the task's own stack, innermost frame first, from
    /// the call where it waits (or yielded) down to its closure; for the
    /// running task, from where it asked. Only in
    /// [`tasks_with_backtraces`] (and [`dump`]); `None` for a task that has
    /// not started yet, or that had too little stack left for the capture.
    pub fn backtrace(&self) -> Option<&str> {
        self.backtrace.as_deref()
    }
}

impl fmt::Display for TaskInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:>6}  {:<16}  {:<28}  {:>10.3?}  {:>6}  {}",
            self.id(),
            self.name().unwrap_or("-"),
            self.state.to_string(),
            self.in_state,
            self.worker,
            self.location
        )
    }
}

/// A snapshot of every live task of the current runtime (empty outside
/// one), on every worker, by id: id, name, worker, lifecycle state with
/// wait reason and object, time in that state, spawn location. No
/// backtraces (see [`tasks_with_backtraces`]): cheap enough to call often.
///
/// With several workers, each other worker reads its own tasks between two
/// of them and the caller waits for the answers (parked, if it is a task),
/// for at most a second: the tasks of a worker whose running task never
/// yields are missing.
///
/// # Examples
///
/// ```
/// use corio::task::{TaskState, WaitReason};
/// use std::time::Duration;
///
/// corio::run(|| {
///     let sleeper = corio::spawn(|| corio::time::sleep(Duration::from_millis(50)));
///     corio::yield_now(); // let it start and park
///     let table = corio::tasks();
///     let info = table.iter().find(|t| t.id() == sleeper.id()).unwrap();
///     assert_eq!(info.state(), TaskState::Waiting(WaitReason::Timer));
///     sleeper.join().unwrap();
/// });
/// ```
pub fn tasks() -> Vec<TaskInfo> {
    crate::task::context::with_scheduler(|s| gather(s, false).0).unwrap_or_default()
}

/// [`tasks`], with the backtrace of every task's stack. A suspended task's
/// stack is intact (waiting, or ready to run after a wait or a yield): each
/// is resumed for a moment, captures its own stack and suspends again,
/// without any change to its state, to its place in the run queue or to a
/// wakeup that is pending for it. Costs a stack walk per task.
///
/// ```
/// corio::run(|| {
///     let (tx, rx) = corio::sync::mpsc::channel::<()>();
///     let h = corio::spawn(move || rx.recv());
///     corio::yield_now();
///     let info = corio::inspect::tasks_with_backtraces()
///         .into_iter()
///         .find(|t| t.id() == h.id())
///         .unwrap();
///     assert!(info.backtrace().is_some());
///     tx.send(()).unwrap();
///     h.join().unwrap().unwrap();
/// });
/// ```
pub fn tasks_with_backtraces() -> Vec<TaskInfo> {
    crate::task::context::with_scheduler(|s| gather(s, true).0).unwrap_or_default()
}

/// Every task of the current runtime as text, for people (empty outside a
/// runtime): a table with a row per task (id, name, worker, state, time in
/// it, spawn location), then per task what it waits on and the backtrace
/// of its stack, then the wait graph between tasks, with the cycle if
/// there is one. Handy from a debug endpoint; see also [`dump_on_signal`].
///
/// ```
/// corio::run(|| {
///     let h = corio::Builder::new()
///         .name("sleeper")
///         .spawn(|| corio::time::sleep(std::time::Duration::from_millis(20)))
///         .unwrap();
///     corio::yield_now();
///     let dump = corio::inspect::dump();
///     assert!(dump.contains("sleeper") && dump.contains("waiting: timer"), "{dump}");
///     h.join().unwrap();
/// });
/// ```
pub fn dump() -> String {
    crate::task::context::with_scheduler(dump_of).unwrap_or_default()
}

/// The dump of `s`, from its thread.
pub(crate) fn dump_of(s: &Scheduler) -> String {
    let (table, silent) = gather(s, true);
    let mut out = render(&table);
    for w in silent {
        let _ = writeln!(
            out,
            "\nworker {w} did not answer within {ANSWER_WAIT:?} (a task there runs without \
             yielding?): its tasks are missing"
        );
    }
    out
}

/// How long a dump waits for the other workers of its runtime.
const ANSWER_WAIT: Duration = Duration::from_secs(1);

/// The tasks of every worker of the runtime `s` belongs to, by id: this
/// worker's read here, the others' read by each on its own thread (a
/// task's thread-owned state may be read nowhere else), which the caller
/// waits for — parked, if it is a task — up to [`ANSWER_WAIT`]. Also the
/// workers that did not answer in time (one whose task never yields).
pub(crate) fn gather(s: &Scheduler, with_backtraces: bool) -> (Vec<TaskInfo>, Vec<usize>) {
    let others: Vec<Arc<Shared>> = s
        .group
        .get()
        .map(|g| {
            g.workers
                .iter()
                .filter(|w| w.index != s.shared.index)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    if others.is_empty() {
        let mut table = snapshot(s, with_backtraces);
        table.sort_by_key(TaskInfo::id);
        return (table, Vec::new());
    }
    /// What the workers answered; `answered` counts closures run or dropped.
    struct Answers {
        tables: Mutex<Vec<(usize, Vec<TaskInfo>)>>,
        answered: AtomicUsize,
        caller: Unparker,
    }
    /// Counts its closure as answered however it ends (a worker that is
    /// gone drops it unrun).
    struct Answer(Arc<Answers>);
    impl Drop for Answer {
        fn drop(&mut self) {
            self.0.answered.fetch_add(1, Ordering::AcqRel);
            self.0.caller.unpark();
        }
    }
    let answers = Arc::new(Answers {
        tables: Mutex::new(Vec::new()),
        answered: AtomicUsize::new(0),
        caller: Unparker::current(),
    });
    for w in &others {
        let answer = Answer(Arc::clone(&answers));
        w.call(Box::new(move |s: &Scheduler| {
            let table = snapshot(s, with_backtraces);
            let mut tables = answer.0.tables.lock().unwrap_or_else(|e| e.into_inner());
            tables.push((s.shared.index, table));
        }));
    }
    let mut table = snapshot(s, with_backtraces);
    let deadline = Instant::now() + ANSWER_WAIT;
    while answers.answered.load(Ordering::Acquire) < others.len() && Instant::now() < deadline {
        // A cancelled or timed-out caller stops waiting and reports what
        // it has; its interruption is seen at its next blocking call.
        if park(
            WaitReason::Other("the other workers' tables"),
            Some(deadline),
        )
        .is_err()
        {
            break;
        }
    }
    let answered = std::mem::take(&mut *answers.tables.lock().unwrap_or_else(|e| e.into_inner()));
    let silent = others
        .iter()
        .map(|w| w.index)
        .filter(|i| !answered.iter().any(|(w, _)| w == i))
        .collect();
    table.extend(answered.into_iter().flat_map(|(_, t)| t));
    table.sort_by_key(TaskInfo::id);
    resolve_holders(&mut table);
    (table, silent)
}

/// Names the holders of locks and semaphore permits that tasks of one
/// worker wait for and tasks of another hold.
fn resolve_holders(table: &mut [TaskInfo]) {
    let by_addr: std::collections::HashMap<usize, TaskId> =
        table.iter().map(|t| (t.addr, t.id())).collect();
    let by_id: std::collections::HashMap<TaskId, String> =
        table.iter().map(|t| (t.id(), describe(t))).collect();
    for t in table.iter_mut() {
        // A join of a task of another worker: its name.
        if let (Some(id), TaskState::Waiting(WaitReason::Join(_))) = (t.blocked_on, t.state)
            && let Some(who) = by_id.get(&id)
        {
            t.wait = Some(format!("join {who}"));
        }
        let Some((text, holders)) = &t.holder_elsewhere else {
            continue;
        };
        let found: Vec<TaskId> = holders
            .iter()
            .filter_map(|h| by_addr.get(h))
            .copied()
            .collect();
        if let Some(&first) = found.first() {
            let names: Vec<&str> = found.iter().map(|id| by_id[id].as_str()).collect();
            let rest = if found.len() < holders.len() {
                " and outside this runtime's tasks"
            } else {
                ""
            };
            t.wait = Some(format!("{text} held by {}{rest}", names.join(", ")));
            t.blocked_on = Some(first);
            t.holder_elsewhere = None;
        }
    }
}

pub(crate) fn render(table: &[TaskInfo]) -> String {
    let mut out = format!(
        "{:>6}  {:<16}  {:<28}  {:>10}  {:>6}  {}\n",
        "id", "name", "state", "for", "worker", "spawned at"
    );
    for t in table {
        let _ = writeln!(out, "{t}");
    }
    for t in table {
        let _ = writeln!(
            out,
            "\n{} (worker {}): {}, for {:.3?}",
            describe(t),
            t.worker,
            match &t.wait {
                Some(w) => format!("waiting: {w}"),
                None => t.state.to_string(),
            },
            t.in_state
        );
        let _ = writeln!(out, "    spawned at {}", t.location);
        match &t.backtrace {
            Some(bt) => {
                out.push_str("    backtrace:\n");
                out.push_str(bt);
            }
            None if !t.started => out.push_str("    (not started yet)\n"),
            // Suspended (in a wait, or ready after a wait or a yield), it
            // is traced unless the capture found too little stack left, or
            // the dump runs while its thread unwinds (then no task is).
            None if matches!(t.state, TaskState::Ready | TaskState::Waiting(_)) => {
                out.push_str(
                    "    (no backtrace: too little stack left to capture one, or dumped while \
                     unwinding)\n",
                );
            }
            None => {}
        }
    }
    let edges: Vec<&TaskInfo> = table.iter().filter(|t| t.blocked_on.is_some()).collect();
    if !edges.is_empty() {
        out.push_str("\nwait graph:\n");
        for t in &edges {
            let to = t.blocked_on.unwrap();
            let _ = writeln!(out, "    {} → {}", describe(t), describe_id(table, to));
        }
        if let Some(cycle) = find_cycle(table) {
            let names: Vec<String> = cycle.iter().map(|&id| describe_id(table, id)).collect();
            let _ = writeln!(out, "cycle: {} → {}", names.join(" → "), names[0]);
        }
    }
    out
}

fn describe(t: &TaskInfo) -> String {
    match t.name() {
        Some(n) => format!("task {} '{n}'", t.id()),
        None => format!("task {}", t.id()),
    }
}

fn describe_id(table: &[TaskInfo], id: TaskId) -> String {
    table
        .iter()
        .find(|t| t.id() == id)
        .map_or_else(|| format!("task {id}"), describe)
}

/// What a task is doing, read on its runtime thread.
struct Raw<'a> {
    core: &'a Core,
    state: TaskState,
    since: Instant,
    wait: WaitObj,
    timer: Option<Instant>,
}

fn snapshot(s: &Scheduler, with_backtraces: bool) -> Vec<TaskInfo> {
    let now = Instant::now();
    let registry = s.tasks.borrow();
    let raws: Vec<Raw<'_>> = registry
        .iter()
        .map(|(_, t)| {
            let core = t.core();
            let l = core.local(s);
            Raw {
                core,
                state: l.state.get(),
                since: l.since.get(),
                wait: l.wait.get(),
                timer: l.timer.get().map(|(at, _)| at),
            }
        })
        .collect();
    // Indexes for the edges: a dump of many tasks stays linear.
    let by_addr: std::collections::HashMap<*const (), &Core> = raws
        .iter()
        .map(|r| (r.core as *const Core as *const (), r.core))
        .collect();
    let by_task: std::collections::HashMap<TaskId, &Core> =
        raws.iter().map(|r| (r.core.header.id, r.core)).collect();
    let owner_of = |p: *const ()| by_addr.get(&p).copied();
    let by_id = |id: TaskId| by_task.get(&id).copied();
    let mut out = Vec::with_capacity(raws.len());
    for r in &raws {
        let header = &r.core.header;
        let (wait, blocked_on, holder_elsewhere) = match r.state {
            TaskState::Waiting(reason) => {
                let (w, b, h) = wait_text(reason, r, &owner_of, &by_id, now);
                (Some(w), b, h)
            }
            _ => (None, None, None),
        };
        out.push(TaskInfo {
            task: header.task(),
            state: r.state,
            in_state: now.saturating_duration_since(r.since),
            stack_size: header.stack_size,
            location: header.location,
            worker: s.shared.index,
            wait,
            blocked_on,
            backtrace: None,
            addr: ptr::from_ref(r.core).addr(),
            started: header.stack_guard().1 != 0,
            holder_elsewhere,
        });
    }
    if with_backtraces {
        let cores: Vec<crate::task::TaskRef> = registry.iter().map(|(_, t)| t.clone()).collect();
        drop((by_addr, by_task, raws));
        drop(registry);
        for (info, task) in out.iter_mut().zip(&cores) {
            let core = task.core();
            let bt = if std::ptr::eq(s.current.get(), core) {
                backtrace::capture_here(core)
            } else {
                diag::trace_task(s, core)
            };
            info.backtrace = bt.map(|b| backtrace::render(&b, "        "));
        }
    }
    out
}

/// The wait text of a task waiting for `reason`, the task it waits for (an
/// edge of the wait graph), and the holders to look for on the other
/// workers (see `resolve_holders`).
fn wait_text<'a>(
    reason: WaitReason,
    r: &Raw<'a>,
    owner_of: &dyn Fn(*const ()) -> Option<&'a Core>,
    by_id: &dyn Fn(TaskId) -> Option<&'a Core>,
    now: Instant,
) -> (String, Option<TaskId>, Option<Elsewhere>) {
    let (text, on) = match reason {
        WaitReason::Lock | WaitReason::Semaphore => {
            // SAFETY: the task is parked inside the call that recorded this
            // object (every park with these reasons records its object
            // first), which borrows the primitive: it is alive.
            let Some(held) = (unsafe { r.wait.held() }) else {
                return (reason.to_string(), None, None);
            };
            // The primitive's identity: the address of its holder record.
            let text = format!("{} on {} {:p}", held.verb, held.kind, held.addr);
            let traced: Vec<*const ()> = held
                .holders
                .iter()
                .copied()
                .filter(|h| !h.is_null())
                .collect();
            let local: Vec<&Core> = traced.iter().filter_map(|&h| owner_of(h)).collect();
            let names = local
                .iter()
                .map(|c| c.header.describe())
                .collect::<Vec<_>>()
                .join(", ");
            let first = local.first().map(|c| c.header.id);
            if traced.is_empty() && held.kind == "Semaphore" {
                // Owned permits, permits of threads, more holders than
                // the semaphore traces (see `task::diag::PermitHolders`).
                (format!("{text} (no traced holder)"), None)
            } else if traced.is_empty() {
                (format!("{text} held outside this runtime's tasks"), None)
            } else if local.len() < traced.len() {
                // Perhaps by tasks of another worker (see `gather`).
                let seen = if local.is_empty() {
                    format!("{text} held outside this runtime's tasks")
                } else {
                    format!("{text} held by {names} and outside this runtime's tasks")
                };
                let all = traced.iter().map(|h| h.addr()).collect();
                return (seen, first, Some((text, all)));
            } else {
                (format!("{text} held by {names}"), first)
            }
        }
        WaitReason::Join(id) => {
            let name = by_id(id).and_then(|c| c.header.name.clone());
            match name {
                Some(n) => (format!("join task {id} '{n}'"), Some(id)),
                None => (format!("join task {id}"), Some(id)),
            }
        }
        WaitReason::Timer => match r.timer {
            Some(at) => {
                let left = at.saturating_duration_since(now).as_secs_f64();
                (format!("timer, {left:.1} s left"), None)
            }
            None => ("timer".into(), None),
        },
        WaitReason::Io { fd, direction } => (io_text(fd, direction), None),
        other => (other.to_string(), None),
    };
    (text, on, None)
}

/// "read fd 9 127.0.0.1:5000 ← 127.0.0.1:43210".
fn io_text(fd: std::os::fd::RawFd, direction: Direction) -> String {
    let (verb, arrow) = match direction {
        Direction::Read => ("read", "←"),
        Direction::Write => ("write", "→"),
    };
    // SAFETY: a task waits for this fd's readiness, so it is open (it is
    // deregistered before it is closed); borrowed for two queries only.
    let fd_ref = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let sock = socket2::SockRef::from(&fd_ref);
    let show = |a: std::io::Result<socket2::SockAddr>| {
        a.ok().and_then(|a| {
            a.as_socket().map(|s| s.to_string()).or_else(|| {
                a.as_unix()
                    .and_then(|u| u.as_pathname().map(|p| p.display().to_string()))
            })
        })
    };
    match (show(sock.local_addr()), show(sock.peer_addr())) {
        (Some(l), Some(p)) => format!("{verb} fd {fd} {l} {arrow} {p}"),
        (Some(l), None) => format!("{verb} fd {fd} {l}"),
        _ => format!("{verb} fd {fd}"),
    }
}

/// The first cycle of the wait graph of `table`, as the task ids in order.
pub(crate) fn find_cycle(table: &[TaskInfo]) -> Option<Vec<TaskId>> {
    let next = |id: TaskId| table.iter().find(|t| t.id() == id)?.blocked_on;
    for start in table {
        let mut path = vec![start.id()];
        let mut at = start.id();
        while let Some(n) = next(at) {
            if let Some(i) = path.iter().position(|&p| p == n) {
                let mut cycle = path.split_off(i);
                // Start the cycle at its smallest id, for stable output.
                let min = (0..cycle.len()).min_by_key(|&k| cycle[k]).unwrap_or(0);
                cycle.rotate_left(min);
                return Some(cycle);
            }
            if path.len() > table.len() {
                break;
            }
            path.push(n);
            at = n;
        }
    }
    None
}
