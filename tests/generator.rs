//! Generators: values, completion, state, panics, destructors.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use corio::generator::{Generator, GeneratorState, Status};

#[test]
fn yields_values_then_completes() {
    let mut g = Generator::new(|y| {
        for i in 0..3 {
            y.yield_(i);
        }
        "done"
    });
    assert_eq!(g.state(), Status::Created);
    assert_eq!(g.resume(), GeneratorState::Yielded(0));
    assert_eq!(g.state(), Status::Suspended);
    assert_eq!(g.resume(), GeneratorState::Yielded(1));
    assert_eq!(g.resume(), GeneratorState::Yielded(2));
    assert_eq!(g.resume(), GeneratorState::Complete("done"));
    assert_eq!(g.state(), Status::Completed);
    assert!(g.is_complete());
}

#[test]
#[should_panic(expected = "resumed a generator that has completed")]
fn resuming_a_completed_generator_panics() {
    let mut g = Generator::<(), ()>::new(|_| ());
    let _ = g.resume();
    let _ = g.resume();
}

#[test]
fn unit_generator_is_an_iterator() {
    let fib = Generator::new(|y| {
        let (mut a, mut b) = (0u64, 1u64);
        for _ in 0..10 {
            y.yield_(a);
            (a, b) = (b, a + b);
        }
    });
    assert_eq!(fib.collect::<Vec<_>>(), [0, 1, 1, 2, 3, 5, 8, 13, 21, 34]);
}

#[test]
fn panic_inside_propagates_to_resume_caller() {
    let mut g = Generator::<u32, ()>::new(|y| {
        y.yield_(1);
        panic!("generator broke");
    });
    assert_eq!(g.resume(), GeneratorState::Yielded(1));
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| g.resume())).unwrap_err();
    assert_eq!(err.downcast_ref::<&str>(), Some(&"generator broke"));
    assert_eq!(g.state(), Status::Completed);
}

struct Counted(Rc<Cell<u32>>);
impl Drop for Counted {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

#[test]
fn dropping_an_unfinished_generator_runs_destructors_on_its_stack() {
    let drops = Rc::new(Cell::new(0));
    let d = Rc::clone(&drops);
    let mut g = Generator::new(move |y| {
        let _a = Counted(Rc::clone(&d));
        let _b = Counted(d);
        loop {
            y.yield_(());
        }
    });
    let _ = g.resume();
    assert_eq!(drops.get(), 0);
    drop(g);
    assert_eq!(drops.get(), 2);

    // Never resumed: the captured values are dropped.
    let drops2 = Rc::new(Cell::new(0));
    let c = Counted(Rc::clone(&drops2));
    let g = Generator::<(), ()>::new(move |_| drop(c));
    drop(g);
    assert_eq!(drops2.get(), 1);
}

#[test]
fn custom_stack_size_and_errors() {
    let mut g = Generator::with_stack_size(32 * 1024, |y| y.yield_(5)).unwrap();
    assert_eq!(g.resume(), GeneratorState::Yielded(5));
    let err = Generator::<(), ()>::with_stack_size(10, |_| ()).unwrap_err();
    assert!(matches!(err, corio::Error::InvalidStackSize { .. }));
}

#[test]
fn generator_inside_a_task_can_block() {
    corio::run(|| {
        let mut g = Generator::new(|y| {
            for i in 0..3 {
                corio::time::sleep(Duration::from_millis(1));
                y.yield_(i);
            }
        });
        let other = corio::spawn(|| 7);
        let mut got = vec![];
        while let GeneratorState::Yielded(v) = g.resume() {
            got.push(v);
        }
        assert_eq!(got, [0, 1, 2]);
        assert_eq!(other.join().unwrap(), 7);
    });
}

#[test]
fn many_generators_reuse_stacks() {
    for _ in 0..10_000 {
        let mut g = Generator::new(|y| y.yield_(1));
        assert_eq!(g.resume(), GeneratorState::Yielded(1));
    }
}
