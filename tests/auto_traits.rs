//! Auto traits the API promises (the promises that must *not* hold are
//! `compile_fail` doctests in the crate docs).

fn assert_send<T: Send>() {}
fn assert_sync<T: Sync>() {}

#[test]
fn handles_and_errors_cross_threads() {
    assert_send::<corio::JoinHandle<u32>>();
    assert_sync::<corio::JoinHandle<u32>>();
    assert_send::<corio::JoinError>();
    assert_send::<corio::Error>();
    assert_sync::<corio::Error>();
    assert_send::<corio::Task>();
    assert_sync::<corio::Task>();
    assert_send::<corio::TaskId>();
    assert_send::<corio::inspect::TaskInfo>();
    assert_send::<corio::Builder>();
    assert_send::<corio::runtime::Builder>();
    assert_send::<corio::time::Elapsed>();
}

#[test]
fn files_processes_and_signal_listeners_cross_threads() {
    // Like their std counterparts, they can be handed to another task or
    // thread (a registered fd keeps the runtime that registered it).
    assert_send::<corio::fs::File>();
    assert_send::<corio::fs::ReadDir>();
    assert_send::<corio::fs::DirEntry>();
    assert_sync::<corio::fs::DirEntry>();
    assert_send::<corio::fs::OpenOptions>();
    assert_send::<corio::process::Command>();
    assert_send::<corio::process::Child>();
    assert_send::<corio::process::ChildStdin>();
    assert_send::<corio::process::ChildStdout>();
    assert_send::<corio::process::ChildStderr>();
    assert_sync::<corio::process::ChildStdout>();
    assert_send::<corio::signal::Signals>();
}
