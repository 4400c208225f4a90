//! Fuzz target: every program that checks clean goes through the cost
//! models and a small search, each workload against every std target and
//! each mapping on its own hardware. It must never panic or hang, and every
//! prediction must keep the physical bounds (`arch_cost::bounds`).
//!
//! Run: cd fuzz && cargo fuzz run cost -- -max_total_time=300
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let broken = arch_driver::harness::cost_models(&text, &arch_driver::harness::small_search());
    assert!(broken.is_empty(), "bounds broken:\n{}", broken.join("\n"));
});
