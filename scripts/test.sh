#!/usr/bin/env bash
# The project's test command: install test dependencies, then fmt, clippy and the test suite.
# Stops at the first failing step and names it; prints how long each step took.
#
# Environment (passed through to the tests):
#   CI=true                         a test whose tool is missing fails instead of skipping
#   MCP_EXPORTER_TEST_DEPS=require  the same outside CI
#   MCP_EXPORTER_TEST_PYTHON=PATH   the Python with the MCP SDK, instead of mcp-servers/.venv
#   MCP_EXPORTER_SKIP_APT=1         install-deps.sh leaves apt alone
# The rule for a missing tool (node, the venv, promtool, PostgreSQL, ...) is in
# tests/integration/common/tools.rs; without CI or =require such a test prints
# "skipped: <tool> not found" and passes.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

export CI="${CI:-}"
export MCP_EXPORTER_TEST_DEPS="${MCP_EXPORTER_TEST_DEPS:-}"

TOTAL_START=$SECONDS

step() {
	local name="$1"
	shift
	local start=$SECONDS
	printf '\n==> %s\n' "$name"
	if "$@"; then
		printf '==> %s: ok (%ds)\n' "$name" "$((SECONDS - start))"
	else
		local rc=$?
		printf '\n==> FAILED: %s (exit %d after %ds): %s\n' "$name" "$rc" "$((SECONDS - start))" "$*" >&2
		exit "$rc"
	fi
}

printf 'test.sh: CI=%s MCP_EXPORTER_TEST_DEPS=%s\n' "${CI:-<unset>}" "${MCP_EXPORTER_TEST_DEPS:-<unset>}"

# The build needs about 1.5 GB under target/ (clippy, doctests and the test binaries); say so
# up front when the disk is short, because the compiler's own message is a bus error.
free_kib=$(df -Pk . | awk 'NR == 2 { print $4 }')
if [ "${free_kib:-0}" -lt $((2 * 1024 * 1024)) ]; then
	printf 'test.sh: warning: only %d MiB free on the disk holding %s; the build needs about 1.5 GB\n' \
		"$((free_kib / 1024))" "$ROOT" >&2
fi

step "install test dependencies" scripts/install-deps.sh
step "cargo fmt --check" cargo fmt --all -- --check
step "cargo clippy" cargo clippy --all-targets --locked -- -D warnings
# The API documentation builds without a broken or private intra-doc link.
step "cargo doc" env RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked --quiet
if command -v cargo-nextest >/dev/null; then
	# nextest runs each test in its own process but not doctests; those run first so the
	# test suite's summary is the last thing printed.
	step "cargo test --doc" cargo test --doc --locked
	step "cargo nextest run" cargo nextest run --all-targets --locked --no-fail-fast
else
	step "cargo test" cargo test --all-targets --locked --no-fail-fast
fi
# The .deb and the container image, installed and run as an operator would (needs root; without
# CI it skips, naming what is missing). One release build serves both.
step "install paths (.deb, container image)" scripts/check-install-paths.sh

printf '\ntest.sh: all steps passed in %ds; build on disk: %s\n' "$((SECONDS - TOTAL_START))" \
	"$(du -sh "${CARGO_TARGET_DIR:-$ROOT/target}" 2>/dev/null | cut -f1)"
