#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| obs_goaway::fuzzing::amf0(data));
