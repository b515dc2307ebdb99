//! Why a send or a receive did not complete, and how each public error
//! type is made from it.

use super::*;

/// Why a blocking send did not complete.
pub(crate) enum SendFail<T> {
    Disconnected(T),
    Interrupted(Interrupt, T),
}

/// Why a send did not complete, its message still in the sender's slot
/// (the send paths carry the message by reference, not in their results).
#[derive(Clone, Copy)]
pub(crate) enum Refused {
    Full,
    Disconnected,
    Interrupted(Interrupt),
}

impl Refused {
    /// The error of a `try_send` whose message was refused. Out of line,
    /// like [`send_fail`](Self::send_fail).
    #[cold]
    #[inline(never)]
    pub(crate) fn try_send_error<T>(self, slot: &Slot<T>) -> TrySendError<T> {
        match self {
            Refused::Full => TrySendError::Full(slot.take_message()),
            _ => TrySendError::Disconnected(slot.take_message()),
        }
    }

    /// The error of a blocking send (never `Full`: it waits instead), as
    /// the caller's error type. Out of line, so that the copies of the
    /// message it makes are not in the frame of every send, a frame that
    /// stays on the stack while the sender waits.
    #[cold]
    #[inline(never)]
    pub(crate) fn send_fail<T, E>(self, slot: &Slot<T>, into: fn(SendFail<T>) -> E) -> E {
        into(match self {
            Refused::Interrupted(i) => SendFail::Interrupted(i, slot.take_message()),
            _ => SendFail::Disconnected(slot.take_message()),
        })
    }
}

/// Why a blocking receive did not complete.
pub(crate) enum RecvFail {
    Disconnected,
    Interrupted(Interrupt),
}

/// For calls whose error type cannot say "cancelled" or "the enclosing
/// `timeout` expired": unwinds for those (the task then finishes cancelled,
/// or `timeout` returns `Elapsed`). Returns for `Unwinding`: a call made
/// while unwinding fails at once with its own error.
pub(crate) fn unwind_unless_unwinding(i: Interrupt) {
    match i {
        Interrupt::Unwinding => {}
        i => crate::task::park::unwind_for(i),
    }
}

impl<T> SendFail<T> {
    /// For `send`: no timeout of its own.
    pub(crate) fn into_send_error(self) -> SendError<T> {
        match self {
            SendFail::Disconnected(v) => SendError(v),
            SendFail::Interrupted(i, v) => {
                unwind_unless_unwinding(i);
                SendError(v)
            }
        }
    }

    /// For `send_timeout`: a deadline, its own or an enclosing `timeout`'s,
    /// is a `Timeout`.
    pub(crate) fn into_send_timeout_error(self) -> SendTimeoutError<T> {
        match self {
            SendFail::Disconnected(v) => SendTimeoutError::Disconnected(v),
            SendFail::Interrupted(Interrupt::Cancelled, v) => {
                drop(v);
                crate::task::park::unwind_for(Interrupt::Cancelled)
            }
            SendFail::Interrupted(_, v) => SendTimeoutError::Timeout(v),
        }
    }
}

impl RecvFail {
    /// For `recv`: no timeout of its own.
    pub(crate) fn into_recv_error(self) -> RecvError {
        if let RecvFail::Interrupted(i) = self {
            unwind_unless_unwinding(i);
        }
        RecvError
    }

    /// For `recv_timeout`.
    pub(crate) fn into_recv_timeout_error(self) -> RecvTimeoutError {
        match self {
            RecvFail::Disconnected => RecvTimeoutError::Disconnected,
            RecvFail::Interrupted(Interrupt::Cancelled) => {
                crate::task::park::unwind_for(Interrupt::Cancelled)
            }
            RecvFail::Interrupted(_) => RecvTimeoutError::Timeout,
        }
    }
}
