#!/usr/bin/env bash
# Benchmark: the cost of probing MCP servers with mcp-exporter, against blackbox_exporter
# (Debian package prometheus-blackbox-exporter) doing the closest thing it can: one HTTP POST
# of an MCP `initialize` per probe. Both probe the same real server-everything (Streamable HTTP)
# at the same rate, driven the way production drives them:
#   - mcp-exporter probes N targets on its own 1 s timer (liveness: one ping POST per probe on
#     a kept session; readiness: ping + tools/list + tools/call echo);
#   - blackbox_exporter probes N targets when a real Prometheus scrapes /probe every 1 s.
# Prometheus also scrapes mcp-exporter's /metrics every 1 s, so both sides serve scrapes.
# Reported: CPU time per probe (utime+stime from /proc, over the window), peak RSS, and the
# /metrics scrape throughput (wrk), each with the ratio mcp-exporter / blackbox_exporter.
#
# Usage: scripts/bench-daemon.sh [TARGETS=20] [SECONDS=60]
# Needs: prometheus, prometheus-blackbox-exporter, wrk (apt), the npm servers (install-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS="${1:-20}"
WINDOW="${2:-60}"
WORK="$(mktemp -d /tmp/mcp-bench.XXXXXX)"
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

for tool in prometheus prometheus-blackbox-exporter wrk node; do
	command -v "$tool" >/dev/null || {
		echo "bench: $tool is not installed (apt-get install prometheus prometheus-blackbox-exporter wrk)" >&2
		exit 2
	}
done
scripts/install-deps.sh --servers-only >/dev/null 2>&1
cargo build --release --quiet

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
	for _ in $(seq 1 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "bench: nothing listens on port $1" >&2
	exit 1
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }

MCP_PORT=$(free_port)
PORT=$MCP_PORT node --require ./tests/fixtures/loopback.cjs \
	mcp-servers/node_modules/@modelcontextprotocol/server-everything/dist/index.js streamableHttp \
	>"$WORK/everything.log" 2>&1 &
pids+=("$!")
wait_port "$MCP_PORT"
URL="http://127.0.0.1:$MCP_PORT/mcp"

run_case() {
	local check="$1"
	local exporter_port bb_port prom_port
	exporter_port=$(free_port)
	bb_port=$(free_port)
	prom_port=$(free_port)

	{
		printf '[exporter]\nlisten = "127.0.0.1:%s"\ninterval = "1s"\ntimeout = "5s"\n' "$exporter_port"
		for i in $(seq 1 "$TARGETS"); do
			printf '\n[[servers]]\nname = "t%s"\ntransport = "http"\nurl = "%s"\ncheck = "%s"\n' "$i" "$URL" "$check"
			if [[ "$check" == readiness ]]; then
				printf 'call = { tool = "echo", arguments = { message = "b" } }\n'
			fi
		done
	} >"$WORK/exporter.toml"
	target/release/mcp-exporter --log-level warn serve --config "$WORK/exporter.toml" >"$WORK/exporter.log" 2>&1 &
	local exporter_pid=$!
	pids+=("$exporter_pid")

	prometheus-blackbox-exporter --config.file=scripts/blackbox-mcp.yml \
		--web.listen-address="127.0.0.1:$bb_port" >"$WORK/blackbox.log" 2>&1 &
	local bb_pid=$!
	pids+=("$bb_pid")
	wait_port "$exporter_port"
	wait_port "$bb_port"

	{
		printf 'global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n'
		printf '  - job_name: mcp-exporter\n    static_configs: [{targets: ["127.0.0.1:%s"]}]\n' "$exporter_port"
		printf '  - job_name: blackbox\n    metrics_path: /probe\n    params: {module: [mcp_initialize]}\n    static_configs:\n      - targets:\n'
		for i in $(seq 1 "$TARGETS"); do printf '          - "%s?t=%s"\n' "$URL" "$i"; done
		printf '    relabel_configs:\n      - {source_labels: [__address__], target_label: __param_target}\n      - {source_labels: [__param_target], target_label: instance}\n      - {target_label: __address__, replacement: "127.0.0.1:%s"}\n' "$bb_port"
	} >"$WORK/prometheus.yml"
	prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb-$check" \
		--web.listen-address="127.0.0.1:$prom_port" >"$WORK/prometheus.log" 2>&1 &
	local prom_pid=$!
	pids+=("$prom_pid")
	wait_port "$prom_port"

	sleep 5 # warm-up: sessions established, first scrapes done
	local e0 b0 probes0
	e0=$(cpu_ticks "$exporter_pid")
	b0=$(cpu_ticks "$bb_pid")
	probes0=$(curl -s "127.0.0.1:$exporter_port/metrics" | awk '/^mcp_probes_total/ {s+=$2} END {print s+0}')
	sleep "$WINDOW"
	local e1 b1 probes1
	e1=$(cpu_ticks "$exporter_pid")
	b1=$(cpu_ticks "$bb_pid")
	probes1=$(curl -s "127.0.0.1:$exporter_port/metrics" | awk '/^mcp_probes_total/ {s+=$2} END {print s+0}')
	local bb_probes
	bb_probes=$(curl -s "127.0.0.1:$prom_port/api/v1/query" --data-urlencode \
		"query=sum(count_over_time(probe_success{job=\"blackbox\"}[${WINDOW}s]))" |
		python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(int(float(r[0]["value"][1])) if r else 0)')
	local bb_ok
	bb_ok=$(curl -s "127.0.0.1:$prom_port/api/v1/query" --data-urlencode \
		"query=sum(sum_over_time(probe_success{job=\"blackbox\"}[${WINDOW}s]))" |
		python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(int(float(r[0]["value"][1])) if r else 0)')
	local hz
	hz=$(getconf CLK_TCK)
	local e_probes=$((probes1 - probes0))
	local e_cpu_ms=$(((e1 - e0) * 1000 / hz))
	local b_cpu_ms=$(((b1 - b0) * 1000 / hz))
	local e_rss b_rss
	e_rss=$(rss_kib "$exporter_pid")
	b_rss=$(rss_kib "$bb_pid")

	local e_rps b_rps
	e_rps=$(wrk -t1 -c4 -d5s "http://127.0.0.1:$exporter_port/metrics" | awk '/Requests\/sec/ {print $2}')
	b_rps=$(wrk -t1 -c4 -d5s "http://127.0.0.1:$bb_port/metrics" | awk '/Requests\/sec/ {print $2}')

	python3 - "$check" "$TARGETS" "$WINDOW" "$e_probes" "$e_cpu_ms" "$bb_probes" "$bb_ok" "$b_cpu_ms" "$e_rss" "$b_rss" "$e_rps" "$b_rps" <<'EOF'
import sys
check, targets, window, e_probes, e_cpu, b_probes, b_ok, b_cpu, e_rss, b_rss, e_rps, b_rps = sys.argv[1:]
e_probes, e_cpu, b_probes, b_ok, b_cpu = int(e_probes), int(e_cpu), int(b_probes), int(b_ok), int(b_cpu)
e_rss, b_rss, e_rps, b_rps = int(e_rss), int(b_rss), float(e_rps), float(b_rps)
e_per = e_cpu / e_probes if e_probes else float("nan")
b_per = b_cpu / b_probes if b_probes else float("nan")
print(f"\n## {check}: {targets} targets, {window} s window")
print("| | mcp-exporter | blackbox_exporter | ratio (mcp/bb) |")
print("|---|---|---|---|")
print(f"| probes in window | {e_probes} | {b_probes} ({b_ok} successful) | |")
print(f"| CPU time per probe | {e_per:.3f} ms | {b_per:.3f} ms | {e_per / b_per:.2f} |")
print(f"| CPU share of one core | {100 * e_cpu / (int(window) * 1000):.2f} % | {100 * b_cpu / (int(window) * 1000):.2f} % | |")
print(f"| peak RSS | {e_rss / 1024:.1f} MiB | {b_rss / 1024:.1f} MiB | {e_rss / b_rss:.2f} |")
print(f"| /metrics requests/s (wrk, 4 conns) | {e_rps:.0f} | {b_rps:.0f} | {e_rps / b_rps:.2f} |")
EOF
	kill "$prom_pid" "$bb_pid" "$exporter_pid" 2>/dev/null || true
	wait "$prom_pid" "$bb_pid" "$exporter_pid" 2>/dev/null || true
}

echo "# mcp-exporter vs blackbox_exporter ($(date -u +%Y-%m-%d), $(nproc) cores, $(uname -m))"
echo "blackbox does one HTTP POST initialize per probe; mcp-exporter liveness does one ping POST on a kept session, readiness does ping + tools/list + tools/call."
run_case liveness
run_case readiness
