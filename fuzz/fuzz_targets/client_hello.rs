//! The TLS ClientHello reader of the passthrough front: see `ingress_proxy::fuzz::client_hello`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ingress_proxy::fuzz::client_hello(data));
