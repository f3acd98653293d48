//! The request head parser and the upstream request written from it: see
//! `ingress_proxy::fuzz::request_head`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ingress_proxy::fuzz::request_head(data));
