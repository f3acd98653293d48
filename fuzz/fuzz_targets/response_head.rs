//! The response head parser and the head written for the client: see
//! `ingress_proxy::fuzz::response_head`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ingress_proxy::fuzz::response_head(data));
