//! An error backend's response and the rewrites of upstream header values: see
//! `ingress_proxy::fuzz::error_page`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ingress_proxy::fuzz::error_page(data));
