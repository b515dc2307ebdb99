//! The `tracing` feature: a span per task, entered on every resume, and
//! events at lifecycle transitions. (`cargo test --features tracing --test tracing`.)
#![cfg(feature = "tracing")]

use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

#[derive(Default)]
struct Log {
    /// (span id, name, fields) of each span created.
    spans: Vec<(u64, String)>,
    /// (current span id, message) of each event.
    events: Vec<(Option<u64>, String)>,
    entered: Vec<u64>,
    stack: Vec<u64>,
}

#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Log>>);

struct Text(String);
impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={:?} ", field.name(), value));
    }
}

impl Subscriber for Collect {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let mut log = self.0.lock().unwrap();
        let id = log.spans.len() as u64 + 1;
        let mut t = Text(format!("{} ", attrs.metadata().name()));
        attrs.record(&mut t);
        log.spans.push((id, t.0));
        Id::from_u64(id)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut t = Text(String::new());
        event.record(&mut t);
        let mut log = self.0.lock().unwrap();
        let cur = log.stack.last().copied();
        log.events.push((cur, t.0));
    }
    fn enter(&self, span: &Id) {
        let mut log = self.0.lock().unwrap();
        log.entered.push(span.into_u64());
        log.stack.push(span.into_u64());
    }
    fn exit(&self, _: &Id) {
        self.0.lock().unwrap().stack.pop();
    }
}

#[test]
fn each_task_has_a_span_entered_on_every_resume_and_lifecycle_events() {
    let collect = Collect::default();
    let log = Arc::clone(&collect.0);
    tracing::subscriber::with_default(collect, || {
        corio::run(|| {
            let h = corio::Builder::new()
                .name("worker")
                .spawn(|| {
                    tracing::info!("inside the task");
                    corio::yield_now();
                    corio::time::sleep(std::time::Duration::from_millis(1));
                    tracing::info!("after the wait");
                })
                .unwrap();
            h.join().unwrap();
        });
    });
    let log = log.lock().unwrap();
    let (worker, desc) = log
        .spans
        .iter()
        .find(|(_, d)| d.contains("task.name=\"worker\""))
        .cloned()
        .expect("a span for the task");
    assert!(desc.starts_with("corio.task "), "{desc}");
    assert!(desc.contains("task.location=tests/tracing.rs:"), "{desc}");
    assert!(desc.contains("task.id="), "{desc}");
    // Resumed three times: start, after the yield, after the sleep.
    let entries = log.entered.iter().filter(|&&e| e == worker).count();
    assert!(entries >= 3, "entered {entries} times: {:?}", log.entered);
    let in_worker: Vec<&str> = log
        .events
        .iter()
        .filter(|(s, _)| *s == Some(worker))
        .map(|(_, m)| m.as_str())
        .collect();
    for want in [
        "spawned",
        "inside the task",
        "yielded",
        "reason=timer",
        "woken",
        "after the wait",
        "finished",
    ] {
        assert!(
            in_worker.iter().any(|m| m.contains(want)),
            "{want:?} not in {in_worker:?}"
        );
    }
}
