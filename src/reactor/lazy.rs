//! Lazy registration: an fd is registered with the poller of the runtime
//! whose task first runs a blocking operation on it (reactor rules 1 and 3), and only that runtime's
//! tasks may wait on it afterwards. Tasks of two runtimes may race to be
//! first: one registration wins, the other is dropped, and the loser must
//! see that the winner is not its own.
//!
//! Model checked by `tests/loom.rs` (it includes this file): it uses
//! nothing of the crate but `crate::loom`.

use crate::loom::OnceLock;

/// The value in `cell` if `mine` says it is the caller's, making it with
/// `make` if there is none yet; `Ok(None)` if it belongs to another owner.
#[inline]
pub(crate) fn get_or_make<R, E>(
    cell: &OnceLock<R>,
    mine: impl Fn(&R) -> bool,
    make: impl FnOnce() -> Result<R, E>,
) -> Result<Option<&R>, E> {
    if let Some(r) = cell.get() {
        return Ok(mine(r).then_some(r));
    }
    let made = make()?;
    // If another thread won the race, ours is dropped (deregistered), and
    // the winner may be another owner's: check it like any found value.
    let r = cell.get_or_init(|| made);
    Ok(mine(r).then_some(r))
}
