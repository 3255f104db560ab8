//! Fuzz target: see `mcp_exporter::fuzz_checks::check_config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mcp_exporter::fuzz_checks::check_config(data);
});
