//! Generators and the rest of corio: task-locals, scoped tasks, nested
//! runtimes, unwinding and stack-overflow reports.
//!
//! Cases that crashed (use after free, a stack switch into reused memory,
//! an abort) run in a child process — this test binary re-run with
//! `--ignored --exact NAME` — with a timeout; the parent judges its exit
//! status and output.

use std::cell::{Cell, RefCell};
use std::os::unix::process::ExitStatusExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

mod common;
use corio::generator::{Generator, GeneratorState, Status, YieldErrorKind, Yielder};

struct ChildOutput {
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs the ignored test `name` of this binary in a child process, killing
/// it after 60 s (a hang fails the test).
fn child(name: &str) -> ChildOutput {
    let run = common::run_ignored_test(name, Duration::from_secs(60), &[]);
    let status = run
        .status
        .unwrap_or_else(|| panic!("{name}: child hung\n{}", run.stderr));
    ChildOutput {
        status,
        stdout: run.stdout,
        stderr: run.stderr,
    }
}

impl ChildOutput {
    fn assert_success(&self) {
        assert!(
            self.status.success(),
            "{:?}\n{}\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
    }

    fn line(&self, prefix: &str) -> &str {
        self.stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} line\n{}\n{}", self.stdout, self.stderr))
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

corio::task_local! {
    static NAME: RefCell<String> = RefCell::new(String::new());
}

// ---- task-locals ---------------------------------------------------------

#[test]
#[ignore = "run in a child process by a_generator_cannot_suspend_inside_a_task_local_borrow"]
fn child_yield_in_task_local_borrow() {
    corio::run(|| {
        let h = corio::spawn_local(|| {
            NAME.set("task a".repeat(100));
            let mut g = Generator::<usize, usize>::new(|y| {
                NAME.with_borrow(|s| {
                    y.yield_(s.len());
                    s.len()
                })
            });
            let first = catch_unwind(AssertUnwindSafe(|| g.resume()));
            let first = first.map_err(|p| panic_message(&*p));
            println!("\nFIRST {first:?}");
            g
        });
        // The task ends here and frees its task-locals.
        let mut g = h.join().unwrap();
        // Reused memory, to make a read of the freed value visible.
        let _noise: Vec<String> = (0..100).map(|_| "x".repeat(600)).collect();
        println!("\nSTATE {:?}", g.state());
        if !g.is_complete() {
            println!("\nAFTER {:?}", g.resume());
        }
    });
}

/// A generator suspended inside `LocalKey::with` and resumed after its task
/// ended read the freed value. The yield now fails instead of suspending.
#[test]
fn a_generator_cannot_suspend_inside_a_task_local_borrow() {
    let out = child("child_yield_in_task_local_borrow");
    out.assert_success();
    let first = out.line("FIRST ");
    assert!(
        first.contains("Err") && first.contains("a task-local value is borrowed"),
        "{first}"
    );
    assert_eq!(out.line("STATE "), "STATE Completed");
}

#[test]
fn try_yield_inside_a_task_local_borrow_hands_the_value_back() {
    corio::run(|| {
        let mut g = Generator::<usize, ()>::new(|y| {
            let err = NAME.with_borrow(|_| y.try_yield(7).unwrap_err());
            assert_eq!(err.kind(), YieldErrorKind::TaskLocalBorrowed);
            assert_eq!(err.into_value(), 7);
            // Outside the borrow it suspends.
            y.yield_(8);
            // A nested generator with no borrow of its own may suspend
            // inside its resumer's borrow.
            NAME.with_borrow(|_| {
                let mut inner = Generator::<u32, ()>::new(|y| y.yield_(1));
                assert_eq!(inner.resume(), GeneratorState::Yielded(1));
            });
        });
        assert_eq!(g.resume(), GeneratorState::Yielded(8));
        assert_eq!(g.resume(), GeneratorState::Complete(()));
    });
}

/// A generator is no task: whoever resumes it lends it their task-locals.
#[test]
fn a_generator_sees_the_task_locals_of_whoever_resumes_it() {
    corio::run(|| {
        let mut g = Generator::<String, ()>::new(|y| {
            loop {
                let name = NAME.with_borrow(Clone::clone);
                y.yield_(name);
            }
        });
        NAME.set("main".into());
        assert_eq!(g.resume(), GeneratorState::Yielded("main".into()));
        let g = corio::spawn_local(move || {
            NAME.set("other".into());
            assert_eq!(g.resume(), GeneratorState::Yielded("other".into()));
            g
        })
        .join()
        .unwrap();
        let mut g = g;
        assert_eq!(g.resume(), GeneratorState::Yielded("main".into()));
    });
}

// ---- a Yielder used outside its generator's body -------------------------

#[test]
#[ignore = "run in a child process by a_scoped_task_cannot_yield_its_parents_generator"]
fn child_scoped_task_yields_parent_generator() {
    corio::run(|| {
        let mut g = Generator::<u32, ()>::new(|y| {
            let kind = corio::scope(|s| s.spawn(|| y.try_yield(1).unwrap_err().kind()).join());
            println!("\nTRY {:?}", kind.unwrap());
            corio::scope(|s| {
                s.spawn(|| {
                    y.yield_(2);
                });
            });
        });
        let r = catch_unwind(AssertUnwindSafe(|| g.resume()));
        println!("\nRESUME {:?}", r.map_err(|p| panic_message(&*p)));
        // The runtime still works: other tasks run on recycled stacks.
        let hs: Vec<_> = (0..10)
            .map(|i| {
                corio::spawn(move || {
                    for _ in 0..3 {
                        corio::yield_now();
                    }
                    i
                })
            })
            .collect();
        let sum: u32 = hs.into_iter().map(|h| h.join().unwrap()).sum();
        println!("\nSUM {sum}");
    });
}

/// A scoped child capturing its parent's `Yielder` switched the generator's
/// stack from its own: resuming the generator jumped into reused memory.
#[test]
fn a_scoped_task_cannot_yield_its_parents_generator() {
    let out = child("child_scoped_task_yields_parent_generator");
    out.assert_success();
    assert_eq!(out.line("TRY "), "TRY NotRunningHere");
    let resume = out.line("RESUME ");
    assert!(
        resume.contains("Err") && resume.contains("not the one running here"),
        "{resume}"
    );
    assert_eq!(out.line("SUM "), "SUM 45");
}

#[test]
#[ignore = "run in a child process by a_runtime_inside_a_generator_cannot_yield_it"]
fn child_run_inside_generator() {
    let mut g = Generator::<u32, ()>::new(|y| {
        let kind = corio::run(|| y.try_yield(1).unwrap_err().kind());
        println!("\nTRY {kind:?}");
        corio::run(|| {
            y.yield_(2);
        });
    });
    let r = catch_unwind(AssertUnwindSafe(|| g.resume()));
    println!("\nRESUME {:?}", r.map_err(|p| panic_message(&*p)));
    // After the runtime, the generator's own body may yield again.
    let mut g = Generator::<u32, ()>::new(|y| {
        let n = corio::run(|| corio::spawn(|| 5).join().unwrap());
        y.yield_(n);
    });
    println!("\nAGAIN {:?}", g.resume());
}

/// `corio::run` inside a generator: its main task yielded the generator
/// from the task's stack.
#[test]
fn a_runtime_inside_a_generator_cannot_yield_it() {
    let out = child("child_run_inside_generator");
    out.assert_success();
    assert_eq!(out.line("TRY "), "TRY NotRunningHere");
    let resume = out.line("RESUME ");
    assert!(
        resume.contains("Err") && resume.contains("not the one running here"),
        "{resume}"
    );
    assert_eq!(out.line("AGAIN "), "AGAIN Yielded(5)");
}

// ---- unwinding ----------------------------------------------------------

struct YieldOnDrop<'a, 'b>(&'a Yielder<'b, u32>);

impl Drop for YieldOnDrop<'_, '_> {
    fn drop(&mut self) {
        self.0.yield_(99);
    }
}

#[test]
#[ignore = "run in a child process by a_generator_does_not_suspend_while_its_thread_unwinds"]
fn child_yield_during_unwind() {
    corio::run(|| {
        let mut g = Generator::<u32, ()>::new(|y| {
            let _d = YieldOnDrop(y);
            y.yield_(1);
            panic!("generator broke");
        });
        assert_eq!(g.resume(), GeneratorState::Yielded(1));
        let r = catch_unwind(AssertUnwindSafe(|| g.resume()));
        println!("\nRESUME {:?}", r.map_err(|p| panic_message(&*p)));
        println!("\nPANICKING {}", std::thread::panicking());
        let start = Instant::now();
        corio::time::sleep(Duration::from_millis(50));
        println!("\nSLEPT {}", start.elapsed() >= Duration::from_millis(50));
        let h = corio::spawn(|| {
            corio::time::sleep(Duration::from_millis(10));
            3
        });
        println!("\nJOINED {:?}", h.join().map_err(|e| e.is_cancelled()));
        drop(g);
        println!("\nDROPPED");
    });
}

/// A destructor yielding during its generator's unwinding suspended it
/// mid-panic: the thread stayed "panicking" (sleep returned at once, join
/// cancelled its target) and dropping the generator aborted.
#[test]
fn a_generator_does_not_suspend_while_its_thread_unwinds() {
    let out = child("child_yield_during_unwind");
    out.assert_success();
    assert_eq!(out.line("RESUME "), "RESUME Err(\"generator broke\")");
    assert_eq!(out.line("PANICKING "), "PANICKING false");
    assert_eq!(out.line("SLEPT "), "SLEPT true");
    assert_eq!(out.line("JOINED "), "JOINED Ok(3)");
    out.line("DROPPED");
}

#[test]
fn a_yield_while_unwinding_returns_the_default_input_or_an_error() {
    struct Probe<'a, 'b>(
        &'a Yielder<'b, u32, Option<u32>>,
        &'a Cell<Option<Option<u32>>>,
    );
    impl Drop for Probe<'_, '_> {
        fn drop(&mut self) {
            assert_eq!(
                self.0.try_yield(5).unwrap_err().kind(),
                YieldErrorKind::Unwinding
            );
            self.1.set(Some(self.0.yield_(6)));
        }
    }
    let seen = std::rc::Rc::new(Cell::new(None));
    let s = std::rc::Rc::clone(&seen);
    let mut g = Generator::<u32, (), Option<u32>>::new_with_input(move |y, _| {
        let _p = Probe(y, &s);
        assert_eq!(y.yield_(1), Some(10));
        panic!("input generator broke");
    });
    assert_eq!(g.resume_with(None), GeneratorState::Yielded(1));
    let r = catch_unwind(AssertUnwindSafe(|| g.resume_with(Some(10))));
    assert_eq!(panic_message(&*r.unwrap_err()), "input generator broke");
    assert_eq!(seen.get(), Some(None), "yield_ returned I::default()");
    assert!(g.is_complete());
}

#[test]
#[ignore = "run in a child process by dropping_a_generator_whose_destructor_yields"]
fn child_drop_generator_whose_destructor_yields() {
    let mut g = Generator::<u32, ()>::new(|y| {
        let _d = YieldOnDrop(y);
        y.yield_(1);
    });
    assert_eq!(g.resume(), GeneratorState::Yielded(1));
    drop(g);
    println!("\nDROPPED panicking={}", std::thread::panicking());
}

/// Dropping a suspended generator unwinds its stack; a destructor there
/// that yields must not suspend it again (that aborted).
#[test]
fn dropping_a_generator_whose_destructor_yields() {
    let out = child("child_drop_generator_whose_destructor_yields");
    out.assert_success();
    assert_eq!(out.line("DROPPED "), "DROPPED panicking=false");
}

// ---- stack overflow -----------------------------------------------------

fn recurse(depth: u64) -> u64 {
    let buf = std::hint::black_box([depth as u8; 512]);
    if depth == u64::MAX {
        return 0;
    }
    recurse(depth + 1) + buf[7] as u64
}

fn assert_generator_overflow(out: &ChildOutput, line_of_new: u32) {
    let stderr = &out.stderr;
    assert_eq!(out.status.signal(), Some(6), "{:?}\n{stderr}", out.status);
    let at = format!("the generator created at tests/generator_soundness.rs:{line_of_new}:");
    assert!(stderr.contains(&at), "{at}\n{stderr}");
    assert!(
        stderr.contains("overflowed its stack of 65536 bytes"),
        "{stderr}"
    );
    assert!(
        stderr.contains("corio::generator::Generator::with_stack_size"),
        "{stderr}"
    );
    assert!(!stderr.contains("corio::Builder::stack_size"), "{stderr}");
}

const INTERLEAVED_LINE: u32 = line!() + 8;

#[test]
#[ignore = "run in a child process by overflow_after_generators_interleaved_across_tasks"]
fn child_interleaved_overflow() {
    corio::run(|| {
        let a = corio::spawn_local(|| {
            // B resumes its generator while this one sleeps.
            let mut g1 = Generator::<(), u64>::with_stack_size(64 * 1024, |_| {
                corio::time::sleep(Duration::from_millis(20));
                recurse(0)
            })
            .unwrap();
            let _ = g1.resume();
        });
        let b = corio::spawn_local(|| {
            let mut g2 = Generator::<(), ()>::new(|_| {
                corio::time::sleep(Duration::from_secs(5));
            });
            let _ = g2.resume();
        });
        let _ = a.join();
        let _ = b.join();
    });
}

/// Generators resumed by two tasks at once left the overflow handler's
/// "current generator" naming the other task's: the overflow was a bare
/// SIGSEGV.
#[test]
fn overflow_after_generators_interleaved_across_tasks() {
    let out = child("child_interleaved_overflow");
    assert_generator_overflow(&out, INTERLEAVED_LINE);
}

const NO_RUNTIME_LINE: u32 = line!() + 5;

#[test]
#[ignore = "run in a child process by generator_overflow_without_a_runtime_is_reported"]
fn child_overflow_without_runtime() {
    let mut g = Generator::<(), u64>::with_stack_size(64 * 1024, |_| recurse(0)).unwrap();
    let _ = g.resume();
}

/// With no runtime ever started, the handler was never installed: a bare
/// SIGSEGV.
#[test]
fn generator_overflow_without_a_runtime_is_reported() {
    let out = child("child_overflow_without_runtime");
    assert_generator_overflow(&out, NO_RUNTIME_LINE);
}

// ---- the input protocol -------------------------------------------------

#[test]
fn inputs_reach_the_closure_and_each_yield() {
    let mut g = Generator::<String, usize, &'static str>::new_with_input(|y, first| {
        let mut seen = vec![first];
        loop {
            let next = y.yield_(seen.join(","));
            if next.is_empty() {
                return seen.len();
            }
            seen.push(next);
        }
    });
    assert_eq!(g.state(), Status::Created);
    assert_eq!(g.resume_with("a"), GeneratorState::Yielded("a".into()));
    assert_eq!(g.state(), Status::Suspended);
    assert_eq!(g.resume_with("b"), GeneratorState::Yielded("a,b".into()));
    // `resume` sends `I::default()`.
    assert_eq!(g.resume(), GeneratorState::Complete(2));
    assert_eq!(g.state(), Status::Completed);
}

#[test]
fn an_input_generator_with_a_default_input_is_an_iterator() {
    let g = Generator::<u32, (), Option<u32>>::new_with_input(|y, mut step| {
        let mut i = 0;
        while i < 10 {
            y.yield_(i);
            i += step.take().unwrap_or(3);
        }
    });
    assert_eq!(g.collect::<Vec<_>>(), [0, 3, 6, 9]);
    let mut g = Generator::<u32, (), u32>::with_stack_size_and_input(32 * 1024, |y, x| {
        let x = y.yield_(x * 2);
        y.yield_(x * 3);
    })
    .unwrap();
    assert_eq!(g.resume_with(4), GeneratorState::Yielded(8));
    assert_eq!(g.resume_with(5), GeneratorState::Yielded(15));
}

/// An input type without a default: `try_yield` carries the protocol.
#[test]
fn an_input_without_a_default_goes_through_try_yield() {
    #[derive(Debug, PartialEq)]
    enum Cmd {
        Add(u32),
        Stop,
    }
    let mut g = Generator::<u32, u32, Cmd>::new_with_input(|y, mut cmd| {
        let mut total = 0;
        while let Cmd::Add(n) = cmd {
            total += n;
            cmd = y.try_yield(total).unwrap_or(Cmd::Stop);
        }
        total
    });
    assert_eq!(g.resume_with(Cmd::Add(2)), GeneratorState::Yielded(2));
    assert_eq!(g.resume_with(Cmd::Add(5)), GeneratorState::Yielded(7));
    assert_eq!(g.resume_with(Cmd::Stop), GeneratorState::Complete(7));
}

#[test]
fn yielder_and_stack_implement_debug() {
    let mut g = Generator::<String, ()>::new(|y| y.yield_(format!("{y:?}")));
    let GeneratorState::Yielded(s) = g.resume() else {
        panic!()
    };
    assert!(s.starts_with("Yielder"), "{s}");
    fn debug<T: std::fmt::Debug>() {}
    debug::<corio::stack::PooledStack>();
}
