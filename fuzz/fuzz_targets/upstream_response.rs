#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rampart_upstream::fuzzing::upstream_response(data));
