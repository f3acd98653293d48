//! The chunked body decoder: see `ingress_proxy::fuzz::chunked_body`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ingress_proxy::fuzz::chunked_body(data));
