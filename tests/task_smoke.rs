use std::time::{Duration, Instant};

#[test]
fn spawn_join_yield() {
    let r = corio::run(|| {
        let a = corio::spawn(|| {
            for _ in 0..3 {
                corio::yield_now();
            }
            1
        });
        let b = corio::spawn(|| 2);
        a.join().unwrap() + b.join().unwrap()
    });
    assert_eq!(r, 3);
}

#[test]
fn sleep_and_timeout() {
    corio::run(|| {
        let t = Instant::now();
        let hs: Vec<_> = (0..100)
            .map(|_| corio::spawn(|| corio::time::sleep(Duration::from_millis(50))))
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let e = t.elapsed();
        assert!(
            e >= Duration::from_millis(50) && e < Duration::from_millis(500),
            "{e:?}"
        );
        let r = corio::time::timeout(Duration::from_millis(10), || {
            corio::time::sleep(Duration::from_secs(5))
        });
        assert!(r.is_err());
    });
}

#[test]
fn panic_isolated() {
    corio::run(|| {
        let h = corio::spawn(|| panic!("boom {}", 7));
        let e = h.join().unwrap_err();
        assert_eq!(e.panic_message(), Some("boom 7"));
        assert_eq!(corio::spawn(|| 5).join().unwrap(), 5);
    });
}

#[test]
fn join_from_thread() {
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        let h: corio::JoinHandle<u32> = rx.recv().unwrap();
        h.join().unwrap()
    });
    corio::run(move || {
        let h = corio::spawn(|| {
            corio::time::sleep(Duration::from_millis(30));
            9
        });
        tx.send(h).unwrap();
        corio::time::sleep(Duration::from_millis(100));
    });
    assert_eq!(t.join().unwrap(), 9);
}
