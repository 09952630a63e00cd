#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rampart_server::fuzzing::client_hello_sni(data));
