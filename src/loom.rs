//! The synchronization types of the cross-thread protocols that are model
//! checked: std's here. `tests/loom.rs` includes the protocol files
//! (`task/inject.rs`, `task/join_state.rs`, `sync/waiter/state.rs`,
//! `reactor/lazy.rs`) with a module of this name that re-exports loom's
//! instead, so that loom explores every interleaving of the very code the
//! library runs (see `docs/testing.md`). Those files use nothing else of
//! the crate.

pub(crate) use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
pub(crate) use std::sync::{Mutex, OnceLock};
