#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (default 60 s each; FUZZ_SECONDS overrides).
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`).
# A crash leaves its input in fuzz/artifacts/<target>/: copy it to fuzz/regressions/<target>/
# so the normal test suite (tests/integration/fuzz_regressions.rs) replays it forever.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-60}"
if ! rustup toolchain list | grep -q '^nightly'; then
	echo "fuzz.sh: the nightly toolchain is missing (rustup toolchain install nightly)" >&2
	exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
	echo "fuzz.sh: cargo-fuzz is missing (cargo install cargo-fuzz --locked)" >&2
	exit 2
fi
status=0
for target in jsonrpc_framing sse_parse config_parse; do
	corpus="fuzz/corpus/$target"
	mkdir -p "$corpus"
	if [ -d "fuzz/regressions/$target" ]; then cp -n fuzz/regressions/"$target"/* "$corpus"/ 2>/dev/null || true; fi
	echo "fuzz.sh: $target for ${seconds}s"
	if ! cargo +nightly fuzz run "$target" "$corpus" -- -max_total_time="$seconds" -rss_limit_mb=1024 -max_len=65536; then
		echo "fuzz.sh: $target found a crash; see fuzz/artifacts/$target/" >&2
		status=1
	fi
done
exit "$status"
