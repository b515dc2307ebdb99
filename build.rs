//! Tells the crate when it is built with AddressSanitizer (`-Zsanitizer=
//! address` on nightly; `cfg(sanitize)` itself is unstable), so that the
//! stack pool can clear the sanitizer's records of a stack it reuses.
fn main() {
    println!("cargo:rustc-check-cfg=cfg(corio_asan)");
    let sanitizers = std::env::var("CARGO_CFG_SANITIZE").unwrap_or_default();
    if sanitizers.split(',').any(|s| s == "address") {
        println!("cargo:rustc-cfg=corio_asan");
    }
}
