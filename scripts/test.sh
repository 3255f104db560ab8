#!/usr/bin/env bash
# The project's test command: install test dependencies, then fmt, clippy and the test suite.
# Stops at the first failing step and names it; prints how long each step took.
#
# Environment (passed through to the tests):
#   CI=true                         a test whose tool is missing fails instead of skipping
#   MCP_EXPORTER_TEST_DEPS=require  the same outside CI
#   MCP_EXPORTER_SKIP_APT=1         install-deps.sh leaves apt alone
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

step "install test dependencies" scripts/install-deps.sh
step "cargo fmt --check" cargo fmt --all -- --check
step "cargo clippy" cargo clippy --all-targets --locked -- -D warnings
if command -v cargo-nextest >/dev/null; then
	# nextest runs each test in its own process but not doctests; those run first so the
	# test suite's summary is the last thing printed.
	step "cargo test --doc" cargo test --doc --locked
	step "cargo nextest run" cargo nextest run --all-targets --locked --no-fail-fast
else
	step "cargo test" cargo test --all-targets --locked --no-fail-fast
fi

printf '\ntest.sh: all steps passed in %ds\n' "$((SECONDS - TOTAL_START))"
