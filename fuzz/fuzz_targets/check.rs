//! Fuzz target: any bytes through the whole front end (split, parse, names,
//! models, mappings), the renderer and the formatter. It must never panic.
//!
//! Run: cd fuzz && cargo fuzz run check -- -max_total_time=300
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut db = arch_sema::RootDatabase::default();
    let file = db.set_file("/fuzz/input.arch", text.to_string());
    let diags = arch_sema::file_diagnostics(&db, file).clone();
    for d in &diags {
        let r = arch_driver::render::Rendered::from_sema(&db, d, &|p: &str| p.to_string());
        let mut sink = Vec::new();
        arch_driver::render::write_text(&r, &arch_driver::render::TextOptions { color: false }, &mut sink);
    }
    if let Some(formatted) = arch_syntax::format::format(&text) {
        assert_eq!(arch_syntax::format::format(&formatted).as_deref(), Some(formatted.as_str()), "fmt is idempotent");
    }
});
