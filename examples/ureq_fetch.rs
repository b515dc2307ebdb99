//! Many concurrent GETs with ureq, the blocking HTTP client, over corio
//! sockets: one task per request, all on one thread.
//!
//! ```text
//! cargo run --release --features ureq --example ureq_fetch -- \
//!     --repeat 50 http://127.0.0.1:8080/ https://example.com/
//! ```
//!
//! `corio::compat::ureq::agent()` is an ordinary `ureq::Agent` whose
//! sockets and name lookups suspend the task instead of the thread, so the
//! requests overlap; TLS, redirects and chunked bodies are ureq's own. Each
//! request prints `URL STATUS BYTES` (in the order given), then a summary
//! line `N requests, F failed, B bytes`; the exit status is non-zero if one
//! failed. Options: `--repeat N` (fetch each URL N times, default 1),
//! `--ca FILE` (trust this PEM certificate instead of the webpki roots,
//! for a local TLS server), `--timeout-ms MS` (per request, default
//! 30000).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use ureq::tls::{Certificate, RootCerts, TlsConfig};

fn main() {
    let mut urls = Vec::new();
    let mut repeat = 1;
    let mut ca = None;
    let mut timeout = Duration::from_secs(30);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage(&arg));
        match arg.as_str() {
            "--repeat" => repeat = value().parse().unwrap_or_else(|_| usage("--repeat")),
            "--ca" => ca = Some(value()),
            "--timeout-ms" => {
                timeout =
                    Duration::from_millis(value().parse().unwrap_or_else(|_| usage("--timeout-ms")))
            }
            _ if arg.starts_with("--") => usage(&arg),
            _ => urls.push(arg),
        }
    }
    if urls.is_empty() {
        usage("no URL");
    }

    let mut config = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        // Report 4xx/5xx as statuses, not errors.
        .http_status_as_error(false);
    if let Some(path) = ca {
        let pem = std::fs::read(&path).unwrap_or_else(|e| fail(&format!("{path}: {e}")));
        let cert = Certificate::from_pem(&pem).unwrap_or_else(|e| fail(&format!("{path}: {e}")));
        let roots = RootCerts::Specific(Arc::new(vec![cert]));
        config = config.tls_config(TlsConfig::builder().root_certs(roots).build());
    }
    let agent = corio::compat::ureq::agent_with(config.build());

    let failed = corio::run(move || {
        let fetches: Vec<_> = urls
            .iter()
            .flat_map(|url| std::iter::repeat_n(url.clone(), repeat))
            .map(|url| {
                let agent = agent.clone();
                let task = corio::spawn({
                    let url = url.clone();
                    move || fetch(&agent, &url)
                });
                (url, task)
            })
            .collect();
        let (mut failed, mut bytes) = (0, 0);
        let requests = fetches.len();
        for (url, task) in fetches {
            match task.join().expect("a fetch task panicked") {
                Ok((status, n)) => {
                    println!("{url} {status} {n}");
                    bytes += n;
                }
                Err(e) => {
                    println!("{url} error: {e}");
                    failed += 1;
                }
            }
        }
        println!("{requests} requests, {failed} failed, {bytes} bytes");
        failed
    });
    if failed > 0 {
        std::process::exit(1);
    }
}

/// GETs `url`; its status and the length of its body, read to the end.
fn fetch(agent: &ureq::Agent, url: &str) -> Result<(u16, u64), ureq::Error> {
    let mut response = agent.get(url).call()?;
    let status = response.status().as_u16();
    let mut body = response.body_mut().as_reader();
    // ureq checks the framing: a body cut short is an error here.
    let n = io::copy(&mut body, &mut io::sink())?;
    Ok((status, n))
}

fn usage(what: &str) -> ! {
    fail(&format!(
        "bad argument {what}\nusage: ureq_fetch [--repeat N] [--ca PEM] [--timeout-ms MS] URL..."
    ))
}

fn fail(msg: &str) -> ! {
    eprintln!("{msg}");
    std::process::exit(2)
}
