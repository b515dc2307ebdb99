//! The fuzz target's checks (`fuzz/http_request_check.rs`) on the request
//! parser of `examples/http_server.rs`, on stable Rust: over the fuzz seeds
//! and over random mutations of them (byte flips, cuts, insertions,
//! duplicated headers), so `cargo test` keeps the invariants that libFuzzer
//! explores for longer in the long CI run.

#[path = "../examples/http_server/parse.rs"]
#[allow(dead_code)]
mod parse;

#[path = "../fuzz/http_request_check.rs"]
mod check;

use proptest::prelude::*;

fn seeds() -> Vec<Vec<u8>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/seeds/http_request");
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .expect("the fuzz seeds are in the repository")
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 4, "seeds missing from {dir}");
    seeds
}

#[test]
fn every_seed_passes_the_checks() {
    for seed in seeds() {
        check::check(&seed);
    }
    // And the parser accepts the seeds that are valid requests.
    let get = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fuzz/seeds/http_request/get"
    ))
    .unwrap();
    assert!(matches!(parse::parse(&get), parse::Parsed::Request { .. }));
}

#[test]
fn oversized_and_malformed_heads_are_rejected_not_panicking() {
    let mut long = b"GET / HTTP/1.1\r\n".to_vec();
    while long.len() < 3 * parse::MAX_HEAD {
        long.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    check::check(&long);
    assert!(matches!(parse::parse(&long), parse::Parsed::Reject(_)));
    for bad in [
        &b"\0\0\0\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
    ] {
        check::check(bad);
        assert!(matches!(parse::parse(bad), parse::Parsed::Reject(_)));
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Cut(usize),
    Insert(usize, Vec<u8>),
    Repeat(usize, usize),
}

fn apply(mut data: Vec<u8>, m: &Mutation) -> Vec<u8> {
    if data.is_empty() {
        return data;
    }
    match m {
        Mutation::Flip(i, b) => {
            let i = i % data.len();
            data[i] ^= b;
        }
        Mutation::Cut(i) => data.truncate(i % (data.len() + 1)),
        Mutation::Insert(i, bytes) => {
            let i = i % (data.len() + 1);
            data.splice(i..i, bytes.iter().copied());
        }
        Mutation::Repeat(i, n) => {
            let i = i % data.len();
            let line_end = data[i..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(data.len(), |p| i + p + 1);
            let line = data[i..line_end].to_vec();
            for _ in 0..(n % 40) {
                data.splice(line_end..line_end, line.iter().copied());
            }
        }
    }
    data
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<usize>().prop_map(Mutation::Cut),
        (
            any::<usize>(),
            prop::collection::vec(
                prop_oneof![
                    Just(b'\r'),
                    Just(b'\n'),
                    Just(b':'),
                    Just(b' '),
                    any::<u8>()
                ],
                0..16
            )
        )
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), any::<usize>()).prop_map(|(i, n)| Mutation::Repeat(i, n)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]
    #[test]
    fn mutated_seeds_pass_the_checks(
        seed in 0usize..64,
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let seeds = seeds();
        let mut data = seeds[seed % seeds.len()].clone();
        for m in &mutations {
            data = apply(data, m);
        }
        check::check(&data);
    }
}
