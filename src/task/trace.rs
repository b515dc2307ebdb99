//! `tracing` integration (the `tracing` cargo feature): a span per task —
//! `corio.task` with its id, name and spawn location — entered on every
//! resume, so that whatever the task logs is inside it, and events at each
//! lifecycle transition (target `corio::task`: spawned, yielded, waiting,
//! woken, finished). Without the feature every hook here is an empty
//! inline function: no code and no cost.

#[cfg(feature = "tracing")]
mod on {
    use crate::task::context::Scheduler;
    use crate::task::core::Core;
    use crate::task::{Outcome, Transition};

    /// Spans of the live tasks, by registry key.
    #[derive(Default)]
    pub(crate) struct Spans(std::cell::RefCell<Vec<Option<tracing::Span>>>);

    pub(crate) fn spawned(s: &Scheduler, core: &Core) {
        let h = &core.header;
        let span = tracing::info_span!(
            target: "corio::task",
            "corio.task",
            task.id = h.id.as_u64(),
            task.name = h.name.as_deref().unwrap_or(""),
            task.location = %h.location,
        );
        span.in_scope(|| tracing::debug!(target: "corio::task", "spawned"));
        let mut spans = s.diag.spans.0.borrow_mut();
        let key = h.key();
        if spans.len() <= key {
            spans.resize(key + 1, None);
        }
        spans[key] = Some(span);
    }

    /// Enters the task's span for one resume.
    pub(crate) fn enter(s: &Scheduler, core: &Core) -> Option<tracing::span::EnteredSpan> {
        let spans = s.diag.spans.0.borrow();
        let span = spans.get(core.header.key())?.as_ref()?.clone();
        drop(spans);
        Some(span.entered())
    }

    /// The running task suspends (`Yield` or `Block`); inside its span.
    pub(crate) fn suspending(t: Transition) {
        match t {
            Transition::Yield => tracing::trace!(target: "corio::task", "yielded"),
            Transition::Block(reason) => {
                tracing::trace!(target: "corio::task", reason = %reason, "waiting")
            }
            _ => {}
        }
    }

    /// A waiting task becomes ready.
    pub(crate) fn woken(s: &Scheduler, core: &Core) {
        let spans = s.diag.spans.0.borrow();
        if let Some(Some(span)) = spans.get(core.header.key()) {
            span.in_scope(|| tracing::trace!(target: "corio::task", "woken"));
        }
    }

    /// The task finished; its span closes.
    pub(crate) fn finished(s: &Scheduler, core: &Core, outcome: Outcome) {
        let span = s
            .diag
            .spans
            .0
            .borrow_mut()
            .get_mut(core.header.key())
            .and_then(Option::take);
        if let Some(span) = span {
            span.in_scope(
                || tracing::debug!(target: "corio::task", outcome = ?outcome, "finished"),
            );
        }
    }
}

#[cfg(feature = "tracing")]
pub(crate) use on::*;

#[cfg(not(feature = "tracing"))]
mod off {
    use crate::task::context::Scheduler;
    use crate::task::core::Core;
    use crate::task::{Outcome, Transition};

    #[inline(always)]
    pub(crate) fn spawned(_: &Scheduler, _: &Core) {}
    /// Nothing entered (the guard `enter` returns with the feature).
    pub(crate) struct NoSpan;

    #[inline(always)]
    pub(crate) fn enter(_: &Scheduler, _: &Core) -> NoSpan {
        NoSpan
    }
    #[inline(always)]
    pub(crate) fn suspending(_: Transition) {}
    #[inline(always)]
    pub(crate) fn woken(_: &Scheduler, _: &Core) {}
    #[inline(always)]
    pub(crate) fn finished(_: &Scheduler, _: &Core, _: Outcome) {}
}

#[cfg(not(feature = "tracing"))]
pub(crate) use off::*;
