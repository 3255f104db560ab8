//! Replays every input kept in `fuzz/regressions/<target>/` (crashes found by `scripts/fuzz.sh`
//! and seeds) and a bounded run of seeded random inputs through the fuzz properties, so the
//! normal suite keeps guarding them without the nightly toolchain.

use std::path::Path;

use mcp_exporter::fuzz_checks::{check_config, check_jsonrpc_framing, check_sse};
use rand::{RngExt, SeedableRng};

type Check = fn(&[u8]);

const TARGETS: [(&str, Check); 3] = [
    ("jsonrpc_framing", check_jsonrpc_framing),
    ("sse_parse", check_sse),
    ("config_parse", check_config),
];

/// Fragments that reach the interesting branches quickly.
const TOKENS: [&[u8]; 20] = [
    b"\n",
    b"\r",
    b"\r\n",
    b":",
    b" ",
    b"data:",
    b"event: message",
    b"id: 7",
    b"retry: 10",
    b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}",
    b"{\"jsonrpc\":\"2.0\",\"method\":\"n\"}",
    b"[",
    b"]",
    b"\"",
    b"[[servers]]\nname = \"a\"\ntransport = \"stdio\"\ncommand = \"x\"\n",
    b"${",
    b"}",
    b"\xff\xfe",
    b"basic_auth_users:\n  u: '$2y$10$x'\n",
    b"x",
];

#[test]
fn kept_fuzz_inputs_still_pass() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    for (target, check) in TARGETS {
        let Ok(entries) = std::fs::read_dir(root.join(target)) else {
            continue;
        };
        for entry in entries.flatten() {
            let data = std::fs::read(entry.path()).expect("read regression input");
            check(&data);
        }
    }
}

#[test]
fn random_inputs_hold_the_fuzz_properties() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x6d63_7065);
    for (_, check) in TARGETS {
        for _ in 0..3000 {
            let mut data = vec![rng.random::<u8>()];
            let parts = rng.random_range(0..40);
            for _ in 0..parts {
                if rng.random_bool(0.8) {
                    data.extend_from_slice(TOKENS[rng.random_range(0..TOKENS.len())]);
                } else {
                    let n = rng.random_range(0..300);
                    data.extend((0..n).map(|_| rng.random::<u8>()));
                }
            }
            check(&data);
        }
    }
}
