#!/usr/bin/env bash
# Benchmark: what traces cost a probe (docs/tracing.md). Two mcp-exporter daemons (release
# build) run side by side in the same window against the same real server-everything over
# Streamable HTTP, N readiness targets each on a 1 s interval (ping + tools/list + tools/call
# echo per probe): one with traces off, one exporting every probe (sampling 1.0) to a real Arize
# Phoenix over OTLP PROTOCOL (http/protobuf to its HTTP port, or grpc to its gRPC port). Reported:
# CPU time per probe of each daemon (utime+stime from /proc over the window), the ratio
# traced/untraced, and the spans Phoenix received for the traced daemon's probes (root spans
# counted against its probes, so the export is confirmed), with the machine's load (`uptime`).
# Phoenix is started through tests/fixtures/phoenix_loopback.py so its gRPC port binds 127.0.0.1.
#
# Usage: scripts/bench-tracing.sh [TARGETS=10] [SECONDS=30] [PROTOCOL=http/protobuf|grpc]
# Needs: node and the npm servers, Arize Phoenix in tests/phoenix/.venv (scripts/install-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS="${1:-10}"
WINDOW="${2:-30}"
PROTOCOL="${3:-http/protobuf}"
case "$PROTOCOL" in
http/protobuf | grpc) ;;
*)
	echo "bench: protocol $PROTOCOL is not http/protobuf or grpc" >&2
	exit 2
	;;
esac
WORK="$(mktemp -d /tmp/mcp-bench-tracing.XXXXXX)"
PHOENIX=tests/phoenix/.venv/bin/phoenix
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

command -v node >/dev/null || {
	echo "bench: node is not installed" >&2
	exit 2
}
[[ -x "$PHOENIX" ]] || {
	echo "bench: $PHOENIX is missing (run scripts/install-deps.sh)" >&2
	exit 2
}
cargo build --release --quiet

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() {
	for _ in $(seq 1 600); do
		if curl -sf "$1" >/dev/null 2>&1; then return 0; fi
		sleep 0.2
	done
	echo "bench: $1 never answered" >&2
	exit 1
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
probes_of() { curl -s "127.0.0.1:$1/metrics" | awk '/^mcp_probes_total/ {s+=$2} END {print s+0}'; }

PHOENIX_PORT=$(free_port)
PHOENIX_GRPC_PORT=$(free_port)
PHOENIX_HOST=127.0.0.1 PHOENIX_PORT=$PHOENIX_PORT PHOENIX_GRPC_PORT=$PHOENIX_GRPC_PORT \
	PHOENIX_WORKING_DIR="$WORK/phoenix" PHOENIX_TELEMETRY_ENABLED=false \
	"$(dirname "$PHOENIX")/python" tests/fixtures/phoenix_loopback.py serve >"$WORK/phoenix.log" 2>&1 &
pids+=("$!")

MCP_PORT=$(free_port)
PORT=$MCP_PORT node --require ./tests/fixtures/loopback.cjs \
	mcp-servers/node_modules/@modelcontextprotocol/server-everything/dist/index.js streamableHttp \
	>"$WORK/everything.log" 2>&1 &
pids+=("$!")
URL="http://127.0.0.1:$MCP_PORT/mcp"
wait_http "http://127.0.0.1:$PHOENIX_PORT/v1/projects"

start_exporter() {
	local name="$1" port="$2" otlp="$3"
	{
		printf '[exporter]\nlisten = "127.0.0.1:%s"\ninterval = "1s"\ntimeout = "5s"\n' "$port"
		printf '[store]\nenabled = false\n'
		printf '%b' "$otlp"
		for i in $(seq 1 "$TARGETS"); do
			printf '\n[[servers]]\nname = "t%s"\ntransport = "http"\nurl = "%s"\ncheck = "readiness"\n' "$i" "$URL"
			printf 'call = { tool = "echo", arguments = { message = "b" } }\n'
		done
	} >"$WORK/$name.toml"
	target/release/mcp-exporter --log-level warn serve --config "$WORK/$name.toml" >"$WORK/$name.log" 2>&1 &
	pids+=("$!")
	started_pid=$!
}

OFF_PORT=$(free_port)
ON_PORT=$(free_port)
start_exporter off "$OFF_PORT" ""
off_pid=$started_pid
if [[ "$PROTOCOL" == grpc ]]; then
	COLLECTOR="http://127.0.0.1:$PHOENIX_GRPC_PORT"
else
	COLLECTOR="http://127.0.0.1:$PHOENIX_PORT"
fi
start_exporter on "$ON_PORT" "[otlp]\nendpoint = \"$COLLECTOR\"\nprotocol = \"$PROTOCOL\"\nsampling_ratio = 1.0\n"
on_pid=$started_pid
wait_http "http://127.0.0.1:$OFF_PORT/metrics"
wait_http "http://127.0.0.1:$ON_PORT/metrics"

sleep 5 # warm-up: sessions established, first batches exported
load_before=$(uptime)
off0=$(cpu_ticks "$off_pid")
on0=$(cpu_ticks "$on_pid")
offp0=$(probes_of "$OFF_PORT")
onp0=$(probes_of "$ON_PORT")
sleep "$WINDOW"
off1=$(cpu_ticks "$off_pid")
on1=$(cpu_ticks "$on_pid")
offp1=$(probes_of "$OFF_PORT")
onp1=$(probes_of "$ON_PORT")
load_after=$(uptime)
# Stop the traced daemon (it exports what is queued on SIGTERM), then count what Phoenix
# stored once the count settles: root spans of its probes, and all spans.
onp_total=$(probes_of "$ON_PORT")
dropped=$(curl -s "127.0.0.1:$ON_PORT/metrics" | awk '/^mcp_exporter_spans_dropped_total/ {print $2}')
kill -TERM "$on_pid"
wait "$on_pid" 2>/dev/null || true
read -r roots spans < <(python3 - "$PHOENIX_PORT" <<'EOF'
import json, sys, time, urllib.request
port = sys.argv[1]

def count():
    roots = spans = 0
    cursor = None
    while True:
        url = f"http://127.0.0.1:{port}/v1/projects/default/spans?limit=1000"
        if cursor:
            url += f"&cursor={cursor}"
        page = json.load(urllib.request.urlopen(url))
        for span in page["data"]:
            spans += 1
            if span["parent_id"] is None and span["name"].startswith("probe "):
                roots += 1
        cursor = page.get("next_cursor")
        if not cursor:
            return roots, spans

last = None
for _ in range(60):
    now = count()
    if now == last:
        break
    last = now
    time.sleep(2)
print(*last)
EOF
)

python3 - "$TARGETS" "$WINDOW" "$((off1 - off0))" "$((offp1 - offp0))" "$((on1 - on0))" "$((onp1 - onp0))" \
	"$(getconf CLK_TCK)" "$roots" "$spans" "$onp_total" "${dropped:-0}" "$PROTOCOL" \
	"$load_before" "$load_after" <<'EOF'
import sys
targets, window, off_t, off_p, on_t, on_p, hz, roots, spans, on_total, dropped, protocol, load_before, load_after = sys.argv[1:]
off_t, off_p, on_t, on_p, hz = int(off_t), int(off_p), int(on_t), int(on_p), int(hz)
off_ms = off_t * 1000 / hz / off_p if off_p else float("nan")
on_ms = on_t * 1000 / hz / on_p if on_p else float("nan")
print(f"\n## readiness over Streamable HTTP: {targets} targets per daemon, {window} s window, OTLP {protocol}")
print(f"load before the window: {load_before.strip()}")
print(f"load after the window:  {load_after.strip()}")
print(f"| | traces off | traces on (Phoenix over {protocol}, sampling 1.0) | ratio (on/off) |")
print("|---|---|---|---|")
print(f"| probes in window | {off_p} | {on_p} | |")
print(f"| CPU time per probe | {off_ms:.3f} ms | {on_ms:.3f} ms | {on_ms / off_ms:.2f} |")
print(f"| spans in Phoenix | | {spans} ({roots} probe roots; the daemon ran {on_total} probes, dropped {dropped} spans) | |")
EOF
