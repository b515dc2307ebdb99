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
