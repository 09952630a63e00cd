#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rampart_config::fuzzing::config_load(data));
