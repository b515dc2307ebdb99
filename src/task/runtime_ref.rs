//! A task's counted reference to its runtime's shared state, handed out
//! by the scheduler from a reserve instead of an `Arc` clone per spawn.
#![allow(unsafe_code)]

use std::ptr::{self, NonNull};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::context::{Shared, with_scheduler};

/// A task's counted reference to its runtime's [`Shared`] (for wakeups from
/// other threads, which may come after the runtime is gone).
///
/// Counting it with an `Arc` clone cost an atomic increment per spawn and
/// a decrement per task end — a tenth of a spawn + join. Instead the
/// scheduler takes references from `Shared::runtime_refs` in blocks (one
/// atomic add per `RUNTIME_REF_BLOCK` spawns) and hands them out from its
/// reserve; a reference dropped on the runtime's own thread while the
/// scheduler runs goes back to the reserve, any other is given back with an
/// atomic decrement. The references together hold one strong count of the
/// `Arc`, taken when their count leaves zero and released when it returns
/// to zero, so `Shared` lives as long as the last of them.
pub(crate) struct RuntimeRef(pub(super) NonNull<Shared>);

/// How many runtime references the scheduler takes at a time.
pub(crate) const RUNTIME_REF_BLOCK: usize = 1024;

// SAFETY: it only gives shared access to `Shared`, which is `Sync`, and its
// count is atomic (or, for the reserve, touched only by the owning thread).
unsafe impl Send for RuntimeRef {}
// SAFETY: as above.
unsafe impl Sync for RuntimeRef {}

impl std::ops::Deref for RuntimeRef {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        // SAFETY: the references hold a strong count of the `Arc` (see the
        // type's docs).
        unsafe { self.0.as_ref() }
    }
}

impl RuntimeRef {
    pub(crate) fn as_ptr(&self) -> *const Shared {
        self.0.as_ptr()
    }
}

impl Drop for RuntimeRef {
    fn drop(&mut self) {
        let returned = with_scheduler(|s| {
            let mine = ptr::eq(Arc::as_ptr(&s.shared), self.as_ptr());
            if mine {
                s.runtime_reserve.set(s.runtime_reserve.get() + 1);
            }
            mine
        });
        if returned != Some(true) {
            // SAFETY: `self` holds one of the counted references.
            unsafe { release_runtime_refs(self.0, 1) };
        }
    }
}

/// Gives back `n` runtime references; the last one releases the strong
/// count they held.
///
/// # Safety
///
/// The caller owns `n` counted references to `shared`.
pub(crate) unsafe fn release_runtime_refs(shared: NonNull<Shared>, n: usize) {
    // SAFETY: the references keep `Shared` alive until this returns.
    let refs = unsafe { &shared.as_ref().runtime_refs };
    if refs.fetch_sub(n, Ordering::Release) == n {
        std::sync::atomic::fence(Ordering::Acquire);
        // SAFETY: the references held this strong count (type docs).
        unsafe { Arc::decrement_strong_count(shared.as_ptr()) };
    }
}
