//! The baseline file parser on any bytes: an error, never a panic; what parses round-trips through
//! the CLI's writer.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| cargo_perfgate::fuzz::check_baseline(data));
