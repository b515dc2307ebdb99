//! [`select!`](crate::select!) and its internal muncher.

/// Waits on several channel operations, task ends, timers, socket
/// readiness and signals at once, like Go's `select` or crossbeam's
/// `select!`; runs the arm of the one that completed.
///
/// ```text
/// corio::select! {
///     recv(rx) -> msg => { /* msg: Result<T, RecvError> */ },
///     send(tx, value) -> res => { /* res: Result<(), SendError<T>> */ },
///     join(handle) -> res => { /* res: Result<T, JoinError>; the handle is joined (moved) */ },
///     sleep(Duration::from_millis(100)) => { /* 100 ms passed first */ },
///     sleep_until(deadline) => { /* the Instant `deadline` passed first */ },
///     readable(stream) -> res => { /* res: io::Result<()>; now try_read, accept, ... */ },
///     writable(stream) -> res => { /* res: io::Result<()>; now try_write, ... */ },
///     signal(signals) -> sig => { /* sig: io::Result<c_int> */ },
///     default(Duration::from_secs(1)) => { /* nothing completed in time */ },
/// }
/// ```
///
/// * `recv(r)` receives from an `mpsc`, `mpmc` or `oneshot` receiver `r`.
/// * `send(s, msg)` sends `msg` through an `mpsc` or `mpmc` sender; `msg` is
///   evaluated before waiting (as in Go) and dropped, unsent, if another
///   arm wins.
/// * `join(h)` completes when the task of the `JoinHandle` `h` has
///   finished; the arm then joins `h` — which moves it — without waiting.
///   If another arm wins, `h` is untouched. `h` must be a place the arm
///   can move out of, such as a local variable (a value such as
///   `spawn(..)` is refused: the handle would be lost).
/// * `sleep(duration)` completes `duration` after the `select!` started;
///   `sleep_until(instant)` at `instant` (at once if it has passed). Unlike
///   `default(timeout)`, a timer is an arm like the others: it can stand
///   next to `default`, and several can race (a per-message timeout and an
///   overall deadline). In a loop, `sleep` starts afresh with each
///   `select!`; for one deadline across iterations use `sleep_until`.
///   See [`SleepOp`](crate::sync::select::SleepOp).
/// * `readable(socket)` / `writable(socket)` complete when a corio socket
///   (`TcpStream`, `UdpSocket`, the Unix sockets; `readable` also for
///   `TcpListener` and `UnixListener`: a connection waits to be accepted)
///   is ready, doing no IO; a losing arm takes nothing. Follow them with
///   `try_read`/`try_write`, `accept`, `try_recv`..., which may still find
///   nothing to do (then select again). Waiting for them needs a corio
///   task; see [`ReadyOp`](crate::sync::select::ReadyOp).
/// * `signal(signals)` receives the next signal of a mutable
///   [`Signals`](crate::signal::Signals) listener (a losing arm takes
///   none); see [`SignalOp`](crate::sync::select::SignalOp).
/// * `default => ...` runs if no operation can complete right now (seen
///   at one instant: an arm that was ready the whole time is never
///   missed; see [`try_select`](crate::sync::select::try_select)); it never
///   waits, so `select!` with `default` is not a yield point;
///   `default(timeout) => ...` if none completes within `timeout` (or an
///   enclosing [`time::timeout`](crate::time::timeout) expires).
/// * `-> pattern` may be left out (for timers it would bind `()`). Arms are
///   separated by commas (optional after a block); a trailing comma after
///   the last arm, and after the last argument of an operation, is allowed.
///
/// The channel, socket or signal listener of an arm may be any expression,
/// evaluated once, in the order of the arms, before the `select!` waits:
/// a place — `rx`, `&rx`, `self.rx`, `rxs[i]`, `*boxed` — is borrowed,
/// never moved; a value — `make_rx()`, `tx.clone()` — is kept, borrowed,
/// until the `select!` ends (after the body of the arm that ran), then
/// dropped (so `send(tx.clone(), v)` costs a clone, and the clone does not
/// outlive the `select!`). References and `Box`, `Rc` and `Arc` of
/// channels and sockets work too. Every operation is over before a body
/// runs: a body may use, move or reassign the channels and sockets.
///
/// Exactly one arm runs; the operations of the others do not happen (see
/// [`sync::select`](crate::sync::select)). Without `default`, a cancelled
/// task unwinds out of `select!`. Up to 32 operations.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use corio::sync::mpsc;
///
/// corio::run(|| {
///     let (tx, rx) = mpsc::sync_channel::<u32>(0);
///     let (done_tx, done_rx) = mpsc::channel::<()>();
///     let worker = corio::spawn(move || {
///         let mut got = Vec::new();
///         loop {
///             corio::select! {
///                 recv(rx) -> msg => match msg {
///                     Ok(m) => got.push(m),
///                     Err(_) => break,
///                 },
///                 recv(done_rx) => break,
///             }
///         }
///         got
///     });
///     for i in 0..3 {
///         tx.send(i).unwrap();
///     }
///     done_tx.send(()).unwrap();
///     assert_eq!(worker.join().unwrap(), [0, 1, 2]);
///
///     let (_keep, idle) = mpsc::channel::<u32>();
///     let timed_out = corio::select! {
///         recv(idle) -> _ => false,
///         default(Duration::from_millis(10)) => true,
///     };
///     assert!(timed_out);
/// });
/// ```
///
/// A timer as an arm, and handles from expressions:
///
/// ```
/// use std::time::Duration;
/// use corio::sync::mpsc;
///
/// struct Hub {
///     inputs: Vec<mpsc::Receiver<u32>>,
/// }
///
/// corio::run(|| {
///     let (tx, rx) = mpsc::channel::<u32>();
///     let hub = Hub { inputs: vec![rx] };
///     let (_idle_tx, idle) = mpsc::channel::<u32>();
///     let got = corio::select! {
///         recv(hub.inputs[0]) -> m => m.ok(),
///         recv(&idle) -> m => m.ok(),
///         send(tx.clone(), 5) => None, // room in the channel: this arm runs
///     };
///     assert_eq!(got, None);
///     let got = corio::select! {
///         recv(idle) -> m => m.ok(),
///         sleep(Duration::from_millis(5)) => Some(0), // nothing else happens
///         default(Duration::from_secs(10)) => unreachable!(),
///     };
///     assert_eq!(got, Some(0));
/// });
/// ```
///
/// A connection that ends on Ctrl-C, with no helper task:
///
/// ```no_run
/// use std::io::ErrorKind;
/// use corio::net::TcpStream;
/// use corio::signal::{Signals, SIGINT};
///
/// corio::run(|| -> std::io::Result<()> {
///     let mut ctrl_c = Signals::new([SIGINT])?;
///     let stream = TcpStream::connect("127.0.0.1:7000")?;
///     let mut buf = [0; 4096];
///     loop {
///         corio::select! {
///             readable(stream) -> ready => {
///                 ready?;
///                 match stream.try_read(&mut buf) {
///                     Ok(0) => return Ok(()), // the peer closed
///                     Ok(n) => println!("{n} bytes"),
///                     Err(e) if e.kind() == ErrorKind::WouldBlock => {} // select again
///                     Err(e) => return Err(e),
///                 }
///             }
///             signal(ctrl_c) => return Ok(()),
///         }
///     }
/// })
/// .unwrap();
/// ```
///
/// `join` needs a handle it can move:
///
/// ```compile_fail,E0745
/// corio::run(|| {
///     corio::select! { join(corio::spawn(|| 1)) -> r => r.unwrap() }
/// });
/// ```
#[macro_export]
macro_rules! select {
    ($($tokens:tt)*) => {
        $crate::__select_internal!(
            @parse [] []
            [(__corio_op0 0) (__corio_op1 1) (__corio_op2 2) (__corio_op3 3)
             (__corio_op4 4) (__corio_op5 5) (__corio_op6 6) (__corio_op7 7)
             (__corio_op8 8) (__corio_op9 9) (__corio_op10 10) (__corio_op11 11)
             (__corio_op12 12) (__corio_op13 13) (__corio_op14 14) (__corio_op15 15)
             (__corio_op16 16) (__corio_op17 17) (__corio_op18 18) (__corio_op19 19)
             (__corio_op20 20) (__corio_op21 21) (__corio_op22 22) (__corio_op23 23)
             (__corio_op24 24) (__corio_op25 25) (__corio_op26 26) (__corio_op27 27)
             (__corio_op28 28) (__corio_op29 29) (__corio_op30 30) (__corio_op31 31)]
            $($tokens)*
        )
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __select_internal {
    // Separators left after a block body.
    (@parse $arms:tt $def:tt $ids:tt , $($rest:tt)*) => {
        $crate::__select_internal!(@parse $arms $def $ids $($rest)*)
    };
    // default
    (@parse $arms:tt [] $ids:tt default => $body:block $($rest:tt)*) => {
        $crate::__select_internal!(@parse $arms [(try) $body] $ids $($rest)*)
    };
    (@parse $arms:tt [] $ids:tt default => $body:expr $(, $($rest:tt)*)?) => {
        $crate::__select_internal!(@parse $arms [(try) { $body }] $ids $($($rest)*)?)
    };
    (@parse $arms:tt [] $ids:tt default($t:expr $(,)?) => $body:block $($rest:tt)*) => {
        $crate::__select_internal!(@parse $arms [(timeout $t) $body] $ids $($rest)*)
    };
    (@parse $arms:tt [] $ids:tt default($t:expr $(,)?) => $body:expr $(, $($rest:tt)*)?) => {
        $crate::__select_internal!(@parse $arms [(timeout $t) { $body }] $ids $($($rest)*)?)
    };
    (@parse $arms:tt [$($def:tt)+] $ids:tt default $($rest:tt)*) => {
        ::core::compile_error!("corio::select!: more than one `default` arm")
    };
    // An operation without `-> pattern`.
    (@parse $arms:tt $def:tt $ids:tt $op:ident ($($args:tt)*) => $($rest:tt)*) => {
        $crate::__select_internal!(@parse $arms $def $ids $op ($($args)*) -> _ => $($rest)*)
    };
    // An operation.
    (@parse [$($arms:tt)*] $def:tt [($id:ident $idx:tt) $($ids:tt)*]
        $op:ident ($($args:tt)*) -> $res:pat => $body:block $($rest:tt)*) => {
        $crate::__select_internal!(@parse
            [$($arms)* ($op $id $idx ($($args)*) ($res) $body)] $def [$($ids)*] $($rest)*)
    };
    (@parse [$($arms:tt)*] $def:tt [($id:ident $idx:tt) $($ids:tt)*]
        $op:ident ($($args:tt)*) -> $res:pat => $body:expr $(, $($rest:tt)*)?) => {
        $crate::__select_internal!(@parse
            [$($arms)* ($op $id $idx ($($args)*) ($res) { $body })] $def [$($ids)*]
            $($($rest)*)?)
    };
    (@parse $arms:tt $def:tt [] $op:ident $($rest:tt)*) => {
        ::core::compile_error!("corio::select!: more than 32 operations")
    };
    // All parsed.
    (@parse [$(($op:ident $id:ident $idx:tt ($($args:tt)*) ($res:pat) $body:block))*]
        [$($def:tt)*] $ids:tt) => {{
        $(
            // The handles, evaluated once, in order: a place (`rx`,
            // `self.rxs[i]`) is borrowed, a value (`make_rx()`,
            // `tx.clone()`) lives, borrowed, until the end of the select.
            let $id = $crate::__select_internal!(@handle $op $($args)*);
            let mut $id = $crate::__select_internal!(@op $op $id $($args)*);
        )*
        let __corio_index: ::core::option::Option<usize> = $crate::__select_internal!(
            @run [$(&mut $id as &mut dyn $crate::sync::select::Operation),*] $($def)*
        );
        // Every operation is dropped (the winner's output kept) before a
        // body runs, ending its borrow: the bodies may move the channels
        // and sockets, or use them through `&mut`.
        $(
            let $id = $crate::__select_internal!(
                @take $op $id (__corio_index == ::core::option::Option::Some($idx))
            );
        )*
        match __corio_index {
            $( ::core::option::Option::Some($idx) => {
                $crate::__select_internal!(@complete $op $id ($($args)*) ($res) $body)
            } )*
            _ => $crate::__select_internal!(@default $($def)*),
        }
    }};
    (@parse $arms:tt $def:tt $ids:tt $($rest:tt)+) => {
        ::core::compile_error!(::core::concat!(
            "corio::select!: expected `recv(r) -> pat => body`, `send(s, msg) -> pat => body`, ",
            "`join(handle) -> pat => body`, `sleep(duration) => body`, ",
            "`sleep_until(instant) => body`, `readable(socket) -> pat => body`, ",
            "`writable(socket) -> pat => body`, `signal(signals) -> pat => body`, ",
            "`default => body` or `default(timeout) => body`, ",
            "found `",
            ::core::stringify!($($rest)+), "`"
        ))
    };

    // `let h = &expr;` extends the life of a temporary to the enclosing
    // block (a tuple's `&` operands too), so any expression works.
    (@handle recv $rx:expr $(,)?) => { &$rx };
    (@handle send $tx:expr, $msg:expr $(,)?) => { (&$tx, $msg) };
    // Only a place: the arm moves it, and a value (say `spawn(..)`) would
    // be evaluated twice. `addr_of!` refuses a temporary (E0745).
    (@handle join $h:expr $(,)?) => { ::core::ptr::addr_of!($h) };
    (@handle sleep $d:expr $(,)?) => { $crate::sync::select::SleepOp::new($d) };
    (@handle sleep_until $at:expr $(,)?) => { $crate::sync::select::SleepOp::until($at) };
    (@handle readable $s:expr $(,)?) => { &$s };
    (@handle writable $s:expr $(,)?) => { &$s };
    (@handle signal $s:expr $(,)?) => { &mut $s };
    (@handle $op:ident $($args:tt)*) => {
        ::core::compile_error!(::core::concat!(
            "corio::select!: unknown operation `", ::core::stringify!($op), "(",
            ::core::stringify!($($args)*), ")` (expected recv(r), send(s, msg), join(handle), ",
            "sleep(duration), sleep_until(instant), readable(socket), writable(socket) or ",
            "signal(signals))"
        ))
    };

    (@op recv $h:ident $($args:tt)*) => { $crate::sync::select::RecvOp::new($h) };
    (@op send $h:ident $($args:tt)*) => { $crate::sync::select::SendOp::new($h.0, $h.1) };
    (@op join $h:ident $handle:expr $(,)?) => { $crate::sync::select::JoinOp::new(&$handle) };
    (@op sleep $h:ident $($args:tt)*) => { $h };
    (@op sleep_until $h:ident $($args:tt)*) => { $h };
    (@op readable $h:ident $($args:tt)*) => { $crate::sync::select::ReadyOp::readable($h) };
    (@op writable $h:ident $($args:tt)*) => { $crate::sync::select::ReadyOp::writable($h) };
    (@op signal $h:ident $($args:tt)*) => { $crate::sync::select::SignalOp::new($h) };
    // An unknown operation, reported by `@handle`.
    (@op $op:ident $($args:tt)*) => {
        $crate::sync::select::SleepOp::new(::core::time::Duration::MAX)
    };

    (@run [$($ops:expr),*]) => {
        ::core::option::Option::Some($crate::sync::select::select(&mut [$($ops),*]))
    };
    (@run [$($ops:expr),*] (try) $body:block) => {
        $crate::sync::select::try_select(&mut [$($ops),*])
    };
    (@run [$($ops:expr),*] (timeout $t:expr) $body:block) => {
        $crate::sync::select::select_timeout(&mut [$($ops),*], $t)
    };

    (@take join $id:ident $won:expr) => { () };
    (@take sleep $id:ident $won:expr) => { () };
    (@take sleep_until $id:ident $won:expr) => { () };
    (@take recv $id:ident $won:expr) => { $crate::__select_internal!(@output $id $won) };
    (@take send $id:ident $won:expr) => { $crate::__select_internal!(@output $id $won) };
    (@take readable $id:ident $won:expr) => { $crate::__select_internal!(@output $id $won) };
    (@take writable $id:ident $won:expr) => { $crate::__select_internal!(@output $id $won) };
    (@take signal $id:ident $won:expr) => { $crate::__select_internal!(@output $id $won) };
    // An unknown operation, reported by `@handle`.
    (@take $op:ident $id:ident $won:expr) => { () };
    (@output $id:ident $won:expr) => {
        if $won {
            ::core::option::Option::Some($id.into_output())
        } else {
            $crate::sync::select::__discard($id);
            ::core::option::Option::None
        }
    };

    // The operation only borrowed the handle, and has no destructor: the
    // borrow is over, the handle can be joined (moved).
    (@complete join $id:ident ($h:expr $(,)?) ($res:pat) $body:block) => {{
        let $res = $h.join();
        $body
    }};
    (@complete sleep $id:ident ($($args:tt)*) ($res:pat) $body:block) => {{
        let $res = $id;
        $body
    }};
    (@complete sleep_until $id:ident ($($args:tt)*) ($res:pat) $body:block) => {{
        let $res = $id;
        $body
    }};
    (@complete $op:ident $id:ident ($($args:tt)*) ($res:pat) $body:block) => {{
        let $res = $crate::__select_internal!(@won $op $id);
        $body
    }};
    (@won recv $id:ident) => { $crate::__select_internal!(@unwrap $id) };
    (@won send $id:ident) => { $crate::__select_internal!(@unwrap $id) };
    (@won readable $id:ident) => { $crate::__select_internal!(@unwrap $id) };
    (@won writable $id:ident) => { $crate::__select_internal!(@unwrap $id) };
    (@won signal $id:ident) => { $crate::__select_internal!(@unwrap $id) };
    (@won $op:ident $id:ident) => { ::core::unreachable!() };
    (@unwrap $id:ident) => {
        match $id {
            ::core::option::Option::Some(output) => output,
            ::core::option::Option::None => ::core::unreachable!(),
        }
    };


    (@default) => { ::core::unreachable!("corio::select! returned without an operation") };
    (@default (try) $body:block) => { $body };
    (@default (timeout $t:expr) $body:block) => { $body };
}
