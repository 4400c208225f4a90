//! Fuzz target: any bytes through the whole front end (split, parse, names,
//! models, mappings), the renderer and the formatter. It must never panic.
//!
//! Run: cd fuzz && cargo fuzz run check -- -max_total_time=300
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    arch_driver::harness::front_end(&String::from_utf8_lossy(data));
});
