//! Channels, locks and other ways for tasks to talk and wait for each other.
//!
//! (module docs written below)

mod barrier;
mod chan;
mod condvar;
mod error;
pub mod mpmc;
pub mod mpsc;
mod mutex;
mod notify;
pub mod oneshot;
mod rwlock;
pub mod select;
mod semaphore;
mod spin;
mod wait_group;
mod waiter;

pub use barrier::{Barrier, BarrierWaitResult};
pub use condvar::{Condvar, WaitTimeoutResult};
pub use mutex::{Mutex, MutexGuard};
pub use notify::{Event, Notify};
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
pub use semaphore::{Semaphore, SemaphorePermit};
pub use wait_group::WaitGroup;
