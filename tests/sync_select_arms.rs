//! `select!` arms beyond channels and task ends — timers, socket readiness,
//! signals — and the handle expressions and separators every arm accepts.

use std::cell::Cell;
use std::io::{ErrorKind, Read, Write};
use std::rc::Rc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use corio::net::unix::UnixStream;
use corio::net::{TcpListener, TcpStream, UdpSocket};
use corio::signal::{SIGUSR2, Signals};
use corio::sync::select::{self, ReadyOp, RecvOp, SleepOp};
use corio::sync::{mpmc, mpsc};
use corio::task::{TaskState, WaitReason};

const LONG: Duration = Duration::from_secs(30);

struct Hub {
    inputs: Vec<mpsc::Receiver<u32>>,
    shared: Arc<mpmc::Receiver<u32>>,
}

impl Hub {
    fn next(&self, i: usize) -> Option<u32> {
        corio::select! {
            recv(self.inputs[i]) -> m => m.ok(),
            recv(self.shared) -> m => m.ok(),
            default => None,
        }
    }
}

#[test]
fn arms_take_handles_from_any_expression() {
    corio::run(|| {
        // A reference (it used to fail with an unrelated trait error).
        let (tx, rx) = mpsc::channel::<u32>();
        tx.send(1).unwrap();
        let r = corio::select! { recv(&rx) -> m => m.unwrap() };
        assert_eq!(r, 1);
        tx.send(2).unwrap();
        let by_ref = &rx;
        let r = corio::select! { recv(by_ref) -> m => m.unwrap() };
        assert_eq!(r, 2);

        // Fields, indexing, an `Arc`, through `&self`.
        let (tx0, rx0) = mpsc::channel::<u32>();
        let (mtx, mrx) = mpmc::channel::<u32>();
        let hub = Hub {
            inputs: vec![rx0],
            shared: Arc::new(mrx),
        };
        assert_eq!(hub.next(0), None);
        tx0.send(3).unwrap();
        assert_eq!(hub.next(0), Some(3));
        mtx.send(4).unwrap();
        assert_eq!(hub.next(0), Some(4));

        // A value: kept until the select ends.
        let make = || {
            let (tx, rx) = mpsc::channel::<u32>();
            tx.send(5).unwrap();
            rx
        };
        let r = corio::select! { recv(make()) -> m => m.unwrap() };
        assert_eq!(r, 5);
        let r = corio::select! { recv(Box::new(make())) -> m => m.unwrap() };
        assert_eq!(r, 5);
        let r = corio::select! { recv(Rc::new(make())) -> m => m.unwrap() };
        assert_eq!(r, 5);

        // `send` through a clone: the clone is gone after the select, so the
        // receiver sees the end of the channel once `tx` is dropped.
        corio::select! { send(tx.clone(), 6) -> r => r.unwrap() }
        corio::select! { send(&tx, 7) -> r => r.unwrap() }
        drop(tx);
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), [6, 7]);
        assert_eq!(rx.recv(), Err(mpsc::RecvError));

        // Each handle and message is evaluated once, in order.
        let (tx, rx) = mpsc::sync_channel::<u32>(1);
        let order = std::cell::RefCell::new(Vec::new());
        let r = corio::select! {
            recv({ order.borrow_mut().push("rx"); &rx }) -> m => m.map(|_| "recv"),
            send({ order.borrow_mut().push("tx"); &tx }, { order.borrow_mut().push("msg"); 8 }) => Ok("send"),
        };
        assert_eq!(r, Ok("send"));
        assert_eq!(*order.borrow(), ["rx", "tx", "msg"]);
    });
}

#[test]
fn bodies_may_move_or_reassign_the_handles() {
    corio::run(|| {
        let (tx, mut rx) = mpsc::channel::<u32>();
        let (tx2, rx2) = mpsc::channel::<u32>();
        tx.send(1).unwrap();
        tx2.send(2).unwrap();
        // Switch to the second channel from inside the arm.
        corio::select! {
            recv(rx) -> m => {
                assert_eq!(m, Ok(1));
                rx = rx2;
            }
        }
        assert_eq!(rx.try_recv(), Ok(2));
        // Move the receiver out in the body.
        tx2.send(3).unwrap();
        let moved = corio::select! { recv(rx) -> m => { m.unwrap(); rx } };
        drop(moved);
        // A `&mut` use of a socket in a body.
        let (mut a, mut b) = UnixStream::pair().unwrap();
        b.write_all(b"x").unwrap();
        corio::select! {
            readable(a) -> r => {
                r.unwrap();
                let mut buf = [0; 1];
                a.read_exact(&mut buf).unwrap();
            }
        }
    });
}

#[test]
fn every_arm_form_with_and_without_a_trailing_comma() {
    corio::run(|| {
        let (tx, rx) = mpsc::channel::<u32>();
        let ready = || {
            tx.send(1).unwrap();
        };
        // recv: with and without a pattern, expression and block bodies.
        ready();
        corio::select! { recv(rx) -> m => assert_eq!(m, Ok(1)) }
        ready();
        corio::select! { recv(rx) -> m => assert_eq!(m, Ok(1)), }
        ready();
        corio::select! { recv(rx) => {} }
        ready();
        corio::select! { recv(rx) => {}, }
        ready();
        corio::select! { recv(rx,) => (), }
        // send
        corio::select! { send(tx, 2) -> r => r.unwrap() }
        corio::select! { send(tx, 2) -> r => r.unwrap(), }
        corio::select! { send(tx, 2,) => {} }
        assert_eq!(rx.try_iter().count(), 3);
        // join
        let h = corio::spawn(|| 3);
        assert_eq!(corio::select! { join(h) -> r => r.unwrap() }, 3);
        let h = corio::spawn(|| 3);
        assert_eq!(corio::select! { join(h,) -> r => r.unwrap(), }, 3);
        // timers
        let ms = Duration::from_millis(1);
        corio::select! { sleep(ms) => () }
        corio::select! { sleep(ms,) => (), }
        corio::select! { sleep(ms) -> () => {} }
        corio::select! { sleep_until(Instant::now()) => () }
        corio::select! { sleep_until(Instant::now(),) => {}, }
        // readiness
        let (a, _b) = UnixStream::pair().unwrap();
        corio::select! { writable(a) -> r => r.unwrap() }
        corio::select! { writable(a,) -> r => r.unwrap(), }
        corio::select! { writable(&a) => {} }
        // default, last, after another arm
        corio::select! { recv(rx) => unreachable!(), default => () }
        corio::select! { recv(rx) => unreachable!(), default => (), }
        corio::select! { recv(rx) => unreachable!(), default => {} }
        corio::select! { recv(rx) => unreachable!(), default => {}, }
        corio::select! { recv(rx) => unreachable!(), default(ms) => () }
        corio::select! { recv(rx) => unreachable!(), default(ms) => (), }
        corio::select! { recv(rx) => unreachable!(), default(ms,) => {}, }
        // default first, then an arm
        corio::select! { default => {}, recv(rx) => unreachable!(), }
    });
}

#[test]
fn a_sleep_arm_times_out_one_wait() {
    corio::run(|| {
        let (_keep, idle) = mpsc::channel::<u32>();
        let t = Instant::now();
        let r = corio::select! {
            recv(idle) -> _ => "message",
            sleep(Duration::from_millis(20)) => "slept",
        };
        assert_eq!(r, "slept");
        assert!(t.elapsed() >= Duration::from_millis(20));

        // A message that comes first wins.
        let (tx, rx) = mpsc::channel::<u32>();
        let sender = corio::spawn(move || {
            corio::time::sleep(Duration::from_millis(5));
            tx.send(1).unwrap();
        });
        let r = corio::select! {
            recv(rx) -> m => m.unwrap(),
            sleep(LONG) => 0,
        };
        assert_eq!(r, 1);
        sender.join().unwrap();

        // The earliest of several timers wins; the select shows `Select`.
        let h = corio::spawn(|| {
            corio::select! {
                sleep(LONG) => "long",
                sleep(Duration::from_millis(30)) => "short",
                sleep_until(Instant::now() + LONG) => "deadline",
            }
        });
        corio::yield_now();
        let state = corio::tasks()
            .into_iter()
            .find(|t| t.id() == h.id())
            .unwrap()
            .state();
        assert_eq!(state, TaskState::Waiting(WaitReason::Select));
        assert_eq!(h.join().unwrap(), "short");

        // A timer that has expired is ready: it beats `default`.
        let r = corio::select! {
            sleep_until(Instant::now()) => "expired",
            default => "default",
        };
        assert_eq!(r, "expired");
        let r = corio::select! {
            sleep(LONG) => "sleep",
            default => "default",
        };
        assert_eq!(r, "default");

        // Against `default(timeout)`: the earlier one runs.
        let r = corio::select! {
            sleep(Duration::from_millis(5)) => "sleep",
            default(LONG) => "default",
        };
        assert_eq!(r, "sleep");
        let r = corio::select! {
            sleep(LONG) => "sleep",
            default(Duration::from_millis(5)) => "default",
        };
        assert_eq!(r, "default");

        // The builder form.
        let mut recv = RecvOp::new(&idle);
        let mut tick = SleepOp::new(Duration::from_millis(2));
        let mut never = SleepOp::new(Duration::MAX);
        assert_eq!(select::select(&mut [&mut never, &mut recv, &mut tick]), 2);
    });
}

#[test]
fn sleep_arms_and_timeout_scopes() {
    corio::run(|| {
        // An enclosing timeout that expires first interrupts the select.
        let r = corio::time::timeout(Duration::from_millis(10), || {
            corio::select! { sleep(LONG) => "slept" }
        });
        assert!(r.is_err());
        // A sleep arm that fires first is not a timeout of the scope.
        let r = corio::time::timeout(LONG, || {
            corio::select! { sleep(Duration::from_millis(5)) => "slept" }
        });
        assert_eq!(r, Ok("slept"));
        // A cancelled task unwinds out of it.
        let h = corio::spawn(|| corio::select! { sleep(LONG) => () });
        corio::yield_now();
        h.cancel();
        assert!(h.join().unwrap_err().is_cancelled());
    });
}

#[test]
fn sleep_arm_on_a_plain_thread() {
    let (_keep, idle) = mpsc::channel::<u32>();
    let r = corio::select! {
        recv(idle) -> _ => "message",
        sleep(Duration::from_millis(5)) => "slept",
    };
    assert_eq!(r, "slept");
}

fn try_read_byte(s: &UnixStream) -> Option<u8> {
    let mut b = [0; 1];
    match s.try_read(&mut b) {
        Ok(1) => Some(b[0]),
        Err(e) if e.kind() == ErrorKind::WouldBlock => None,
        r => panic!("unexpected read result {r:?}"),
    }
}

/// A socket and a channel, in every order: data first → the readable arm,
/// a message first → the receive arm with no byte consumed, both → either,
/// the other left as it was; with the select already waiting when the
/// byte or the message comes (from a task or from a thread) too.
#[test]
fn readable_or_a_message_loses_nothing() {
    corio::run(|| {
        let (a, b) = UnixStream::pair().unwrap();
        let b = Arc::new(b);
        let (tx, rx) = mpsc::channel::<u32>();
        let (mut bytes_sent, mut msgs_sent) = (0u32, 0u32);
        let (mut bytes_got, mut msgs_got) = (0u32, 0u32);
        let mut wins = [0u32; 2];
        for i in 0..400u32 {
            let (send_byte, send_msg) = match i % 4 {
                0 => (true, false),
                1 => (false, true),
                _ => (true, true),
            };
            // Odd rounds: the select waits before anything arrives.
            let waiting = i % 8 >= 4;
            let from_thread = i % 16 >= 8;
            let deliver = {
                let b = Arc::clone(&b);
                let tx = tx.clone();
                move || {
                    if send_byte {
                        (&*b).write_all(&[i as u8]).unwrap();
                    }
                    if send_msg {
                        tx.send(i).unwrap();
                    }
                }
            };
            bytes_sent += send_byte as u32;
            msgs_sent += send_msg as u32;
            let helper = if !waiting {
                deliver();
                None
            } else if from_thread {
                Some(Err(thread::spawn(move || {
                    thread::sleep(Duration::from_millis(1));
                    deliver()
                })))
            } else {
                Some(Ok(corio::spawn(deliver)))
            };
            let won = corio::select! {
                readable(a) -> r => { r.unwrap(); 0 }
                recv(rx) -> m => { assert_eq!(m, Ok(i)); 1 }
                sleep(LONG) => panic!("round {i}: the select was not woken"),
            };
            wins[won] += 1;
            match helper {
                Some(Ok(h)) => h.join().unwrap(),
                Some(Err(t)) => t.join().unwrap(),
                None => {}
            }
            if won == 0 {
                // Readable: the byte is there to read (written before the
                // readiness was seen); a message sent too is still queued.
                assert_eq!(try_read_byte(&a), Some(i as u8));
                bytes_got += 1;
                if send_msg {
                    assert_eq!(rx.try_recv(), Ok(i));
                    msgs_got += 1;
                }
            } else {
                msgs_got += 1;
                // The receive took no byte from the socket.
                if send_byte {
                    assert_eq!(try_read_byte(&a), Some(i as u8));
                    bytes_got += 1;
                } else {
                    assert_eq!(try_read_byte(&a), None);
                }
            }
            assert_eq!(try_read_byte(&a), None);
            assert_eq!(rx.try_recv(), Err(mpsc::TryRecvError::Empty));
        }
        assert_eq!((bytes_got, msgs_got), (bytes_sent, msgs_sent));
        assert!(wins[0] > 0 && wins[1] > 0, "{wins:?}");
    });
}

#[test]
fn writable_waits_for_room() {
    corio::run(|| {
        let (a, b) = UnixStream::pair().unwrap();
        // Fill the send buffer.
        let chunk = [0u8; 4096];
        let mut filled = 0;
        loop {
            match a.try_write(&chunk) {
                Ok(n) => filled += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        // No room: a message that comes later wins.
        let (tx, rx) = mpsc::channel::<&str>();
        let t = thread::spawn(move || {
            thread::sleep(Duration::from_millis(10));
            tx.send("stop").unwrap();
        });
        let r = corio::select! {
            writable(a) -> _ => "writable",
            recv(rx) -> m => m.unwrap(),
        };
        assert_eq!(r, "stop");
        t.join().unwrap();
        // Room made while the select waits: the writable arm.
        let reader = corio::spawn(move || {
            corio::time::sleep(Duration::from_millis(5));
            let mut buf = vec![0; filled];
            (&b).read_exact(&mut buf).unwrap();
            b
        });
        let (_tx, idle) = mpsc::channel::<()>();
        let r = corio::select! {
            writable(a) -> w => { w.unwrap(); "writable" }
            recv(idle) -> _ => "message",
            sleep(LONG) => "timeout",
        };
        assert_eq!(r, "writable");
        let _b = reader.join().unwrap();
        let r = corio::select! {
            writable(a) -> w => { w.unwrap(); "writable" }
            recv(idle) -> _ => "message",
        };
        assert_eq!(r, "writable");
        assert!(a.try_write(b"more").is_ok());
    });
}

#[test]
fn readiness_of_listeners_udp_and_closed_peers() {
    corio::run(|| {
        let (_tx, idle) = mpsc::channel::<()>();
        // A listener is readable when a connection waits.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let r = corio::select! {
            readable(listener) => "connection",
            recv(idle) => "message",
            default => "nothing",
        };
        assert_eq!(r, "nothing");
        let client = corio::spawn(move || TcpStream::connect(addr).unwrap());
        let r = corio::select! {
            readable(listener) -> r => { r.unwrap(); "connection" }
            recv(idle) => "message",
        };
        assert_eq!(r, "connection");
        let (server, _) = listener.accept().unwrap();
        let client = client.join().unwrap();

        // A peer that closes makes the stream readable (end of stream).
        drop(client);
        corio::select! { readable(server) -> r => r.unwrap(), recv(idle) => unreachable!() }
        assert_eq!((&server).read(&mut [0; 8]).unwrap(), 0);

        // UDP.
        let u1 = UdpSocket::bind("127.0.0.1:0").unwrap();
        let u2 = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = u1.local_addr().unwrap();
        let sender = corio::spawn(move || {
            corio::yield_now();
            u2.send_to(b"dgram", to).unwrap();
        });
        corio::select! { readable(u1) -> r => r.unwrap(), recv(idle) => unreachable!() }
        let mut buf = [0; 16];
        assert_eq!(u1.try_recv_from(&mut buf).unwrap().0, 5);
        sender.join().unwrap();
    });
}

/// The reactor must not keep a waiter entry for a task that left its
/// select by cancellation or an expired timeout: an event for the socket
/// after that would wake a task that is gone (debug builds assert it).
#[test]
fn interrupted_readiness_selects_leave_no_entry_behind() {
    corio::run(|| {
        let (a, b) = UnixStream::pair().unwrap();
        let a = Arc::new(a);
        let (_tx, idle) = mpsc::channel::<()>();
        let (_tx2, idle2) = mpsc::channel::<()>();
        let waiting = {
            let a = Arc::clone(&a);
            corio::spawn(move || {
                corio::select! { readable(a) => (), recv(idle) => () }
            })
        };
        corio::yield_now();
        waiting.cancel();
        assert!(waiting.join().unwrap_err().is_cancelled());
        let r = corio::time::timeout(Duration::from_millis(5), || {
            corio::select! { readable(a) => (), recv(idle2) => () }
        });
        assert!(r.is_err());
        // Events for the socket now find no stale entry.
        (&b).write_all(b"x").unwrap();
        corio::time::sleep(Duration::from_millis(5));
        corio::select! { readable(a) -> r => r.unwrap() }
        assert!(try_read_byte(&a).is_some());
    });
}

#[test]
fn readiness_on_a_plain_thread() {
    let (a, b) = UnixStream::pair().unwrap();
    let (_tx, idle) = mpsc::channel::<()>();
    // Checking works anywhere.
    let r = corio::select! { readable(a) => "readable", default => "nothing" };
    assert_eq!(r, "nothing");
    (&b).write_all(b"x").unwrap();
    let r = corio::select! { readable(a) => "readable", recv(idle) => "message" };
    assert_eq!(r, "readable");
    assert!(try_read_byte(&a).is_some());
    // Waiting needs a task: the arm reports it at once.
    let r = corio::select! { readable(a) -> r => r, recv(idle) => unreachable!() };
    let e = r.unwrap_err();
    assert!(
        matches!(
            e.get_ref().and_then(|e| e.downcast_ref::<corio::Error>()),
            Some(corio::Error::NoRuntime)
        ),
        "{e:?}"
    );
    // The builder form reports the same.
    let mut op = ReadyOp::readable(&a);
    let mut recv = RecvOp::new(&idle);
    assert_eq!(select::select(&mut [&mut op, &mut recv]), 0);
    assert!(op.into_output().is_err());
}

/// "A socket, or Ctrl-C": a `Signals` listener as an arm (SIGUSR2 stands in
/// for SIGINT, which would stop the test harness if no listener caught it).
#[test]
fn a_signal_or_a_message() {
    corio::run(|| {
        let mut signals = Signals::new([SIGUSR2]).unwrap();
        let (tx, rx) = mpsc::channel::<u32>();
        // A message first: the signal arm takes nothing.
        tx.send(1).unwrap();
        let r = corio::select! {
            signal(signals) -> s => s.unwrap() as u32,
            recv(rx) -> m => m.unwrap() + 100,
        };
        assert_eq!(r, 101);
        assert_eq!(signals.try_recv(), None);
        // A signal while the select waits.
        let raiser = thread::spawn(|| {
            thread::sleep(Duration::from_millis(10));
            signal_hook::low_level::raise(SIGUSR2).unwrap();
        });
        let r = corio::select! {
            signal(signals) -> s => s.unwrap(),
            recv(rx) -> _ => unreachable!(),
        };
        assert_eq!(r, SIGUSR2);
        raiser.join().unwrap();
        // A signal already there and a message: either, the other kept.
        signal_hook::low_level::raise(SIGUSR2).unwrap();
        tx.send(2).unwrap();
        let got_signal = corio::select! {
            signal(signals) -> s => { assert_eq!(s.unwrap(), SIGUSR2); true }
            recv(rx) -> m => { assert_eq!(m, Ok(2)); false }
        };
        if got_signal {
            assert_eq!(rx.try_recv(), Ok(2));
        } else {
            assert_eq!(signals.try_recv(), Some(SIGUSR2));
        }
        // The Ctrl-C pattern: a socket or the signal, no helper task.
        let (a, _b) = UnixStream::pair().unwrap();
        let stop = Rc::new(Cell::new(false));
        let raiser = thread::spawn(|| {
            thread::sleep(Duration::from_millis(5));
            signal_hook::low_level::raise(SIGUSR2).unwrap();
        });
        while !stop.get() {
            corio::select! {
                readable(a) => unreachable!("nothing was written"),
                signal(signals) -> s => { s.unwrap(); stop.set(true) }
            }
        }
        raiser.join().unwrap();
    });
}
