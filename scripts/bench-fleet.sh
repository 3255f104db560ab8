#!/usr/bin/env bash
# Benchmark: what a fleet of Streamable HTTP servers costs the exporter (not run in CI).
#
# For each fleet size N, one process (examples/fleet_target.rs) serves N cheap MCP endpoints on
# loopback, half legacy era (initialize + ping on a session), half modern era (server/discover),
# each on its own listener so no connection pool is shared between two servers, as in a real
# fleet. mcp-exporter (release build, the default daemon: history store and security monitor
# on) probes all N with `check = "liveness"` (or CHECK) every 15 s. In the measured window a sampler
# scrapes /metrics with gzip every 5 s, as a Prometheus would (more often, to see every probe
# start); afterwards /metrics is scraped in sequence, gzip and plain, for the latency.
#
# Reported per size: CPU % of one core and CPU per probe, peak RSS (VmHWM) and RSS per server,
# series and bytes per scrape (plain and gzip), scrape latency p50/p99 (gzip, plain), probes on
# time (the share of intervals between two starts of a server's probe, read from
# mcp_probe_last_run_timestamp_seconds, within 10 % of the configured interval), and, in the
# same window, the floor: `fleet_target floor`, one release reqwest client on one kept
# connection sending the same legacy `ping` POST at the same total rate (N / 15 per second).
# With FAMILIES=1 it also prints the series per family per server of the largest size.
#
# Usage: scripts/bench-fleet.sh [SIZES="10 100 1000"] [WINDOW_SECONDS=60]
#   e.g. scripts/bench-fleet.sh "10 100 1000 5000" 60
# Env: EXPORTER=path/to/mcp-exporter (default target/release/mcp-exporter, built here; point it
#      at another build to compare two commits in the same conditions),
#      FLEET_TARGET=path/to/fleet_target (default: the example, built here),
#      METRICS=full|fleet (the [exporter] metrics profile, docs/metrics.md#profiles; default
#      full), CHECK=liveness|readiness (default liveness; readiness adds tools/list),
#      FAMILIES=1, KEEP=1 (keep the work directory).
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES="${1:-10 100 1000}"
WINDOW="${2:-60}"
METRICS="${METRICS:-full}"
CHECK="${CHECK:-liveness}"
INTERVAL=15
WORK="$(mktemp -d /tmp/mcp-bench-fleet.XXXXXX)"
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [[ "${KEEP:-0}" != 1 ]]; then rm -rf "$WORK"; else echo "kept $WORK" >&2; fi
}
trap cleanup EXIT INT TERM

if [[ -z "${FLEET_TARGET:-}" ]]; then
	cargo build --release --quiet --example fleet_target
	FLEET_TARGET=target/release/examples/fleet_target
fi
if [[ -z "${EXPORTER:-}" ]]; then
	cargo build --release --quiet
	EXPORTER=target/release/mcp-exporter
fi
TARGET=$FLEET_TARGET

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
	for _ in $(seq 1 300); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "bench: nothing listens on port $1" >&2
	exit 1
}
wait_file() {
	for _ in $(seq 1 300); do
		[[ -s "$1" ]] && return 0
		sleep 0.1
	done
	echo "bench: $1 was not written" >&2
	exit 1
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }

echo "# mcp-exporter fleet benchmark ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -m), exporter $EXPORTER)"
echo "metrics profile ${METRICS}, load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
echo "${CHECK} every ${INTERVAL} s, ${WINDOW} s window per size; floor = one reqwest client, one kept connection, same ping POST at the same total rate"
echo
echo "| servers | CPU % of a core | CPU per probe | floor CPU per request | probe/floor | peak RSS | RSS per server | series | bytes plain / gzip | scrape p50/p99 gzip | scrape p50/p99 plain | probes on time | load 1m |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"

for N in $SIZES; do
	need=$((2 * N + 200))
	if ((need > $(ulimit -n))); then
		echo "| $N | skipped: needs $need open files, ulimit -n is $(ulimit -n) | | | | | | | | | | | |"
		continue
	fi
	rm -f "$WORK/urls"
	"$TARGET" serve --servers "$N" --ports-file "$WORK/urls" >"$WORK/target-$N.out" 2>&1 &
	target_pid=$!
	pids+=("$target_pid")
	wait_file "$WORK/urls"

	port=$(free_port)
	{
		printf '[exporter]\nlisten = "127.0.0.1:%s"\ninterval = "%ss"\ntimeout = "5s"\nmetrics = "%s"\n' "$port" "$INTERVAL" "$METRICS"
		i=0
		while read -r url; do
			printf '\n[[servers]]\nname = "s%05d"\ntransport = "http"\nurl = "%s"\ncheck = "%s"\n' "$i" "$url" "$CHECK"
			i=$((i + 1))
		done <"$WORK/urls"
	} >"$WORK/exporter-$N.toml"
	rm -f "$WORK"/*.db*
	"$EXPORTER" --log-level warn serve --config "$WORK/exporter-$N.toml" >"$WORK/exporter-$N.log" 2>&1 &
	exporter_pid=$!
	pids+=("$exporter_pid")
	wait_port "$port"
	# Warm-up: every server probed at least once (sessions opened, series created).
	sleep $((INTERVAL + 5))

	floor_url=$(head -1 "$WORK/urls")
	rate=$(python3 -c "print($N / $INTERVAL)")
	"$TARGET" floor --url "$floor_url" --rate "$rate" --seconds "$WINDOW" >"$WORK/floor-$N.json" 2>&1 &
	floor_pid=$!
	c0=$(cpu_ticks "$exporter_pid")
	t0=$(date +%s.%N)
	python3 scripts/bench_fleet_sampler.py sample "http://127.0.0.1:$port/metrics" "$WINDOW" 5 >"$WORK/sample-$N.json"
	c1=$(cpu_ticks "$exporter_pid")
	window=$(python3 -c "print($(date +%s.%N) - $t0)")
	wait "$floor_pid" || true
	rss=$(rss_kib "$exporter_pid")
	python3 scripts/bench_fleet_sampler.py latency "http://127.0.0.1:$port/metrics" 40 >"$WORK/latency-$N.json"
	if [[ "${FAMILIES:-0}" == 1 ]]; then
		curl -s "http://127.0.0.1:$port/metrics" >"$WORK/metrics-$N.txt"
	fi
	kill "$exporter_pid" "$target_pid" 2>/dev/null || true
	wait "$exporter_pid" "$target_pid" 2>/dev/null || true

	load=$(cut -d' ' -f1 /proc/loadavg)
	python3 scripts/bench_fleet_sampler.py report "$N" "$INTERVAL" "$window" "$(getconf CLK_TCK)" "$((c1 - c0))" "$rss" \
		"$WORK/sample-$N.json" "$WORK/latency-$N.json" "$WORK/floor-$N.json" | sed "s/|\$/| $load |/"
	last=$N
done

if [[ "${FAMILIES:-0}" == 1 && -n "${last:-}" ]]; then
	echo
	python3 scripts/bench_fleet_sampler.py families "$WORK/metrics-$last.txt" "$last"
fi
