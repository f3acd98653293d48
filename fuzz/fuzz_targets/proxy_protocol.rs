//! The PROXY protocol header parser: see `ingress_proxy::fuzz::proxy_protocol`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ingress_proxy::fuzz::proxy_protocol(data));
