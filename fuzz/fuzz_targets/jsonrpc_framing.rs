//! Fuzz target: see `mcp_exporter::fuzz_checks::check_jsonrpc_framing`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mcp_exporter::fuzz_checks::check_jsonrpc_framing(data);
});
