#!/usr/bin/env bash
# Benchmark: what the HTTP proxy (`mcp-exporter proxy`, src/proxy/) costs an MCP client. The
# same load goes to the same upstream directly and through the proxy, alternating in one run:
#   - latency: one connection, one request at a time (wrk -t1 -c1), p50/p99 of the round trip;
#     added = proxied - direct;
#   - throughput: 16 connections (wrk -t2 -c16), requests per second, proxied / direct;
#   - the proxy's CPU per request (from /proc during the throughput runs) and peak RSS;
# for a small `tools/call` result and a 1 MB one. The upstream is a minimal Node.js responder
# (no MCP SDK: a fixed JSON-RPC answer with Content-Length), so the rows show the proxy's own
# cost. The proxy reports to a real receiver (examples/traffic_receiver.rs) as in production;
# BENCH_NO_RECEIVER=1 leaves it out (the proxy then finds no daemon and retries every 5 s, which
# costs nothing measurable) and saves building the example in release.
# BENCH_BASE_BIN=/path/to/an/older/mcp-exporter adds a third target, the same load through a
# proxy of that binary, interleaved with the others: before/after figures under the same load.
# BENCH_PEERS="haproxy nginx" adds mature reverse proxies from Debian (apt-get install haproxy
# nginx-light) as peers over the same upstream, same load, interleaved: each keeps its upstream
# connections alive and streams the body unbuffered, as ours does, and reads nothing of it. Their
# rows show what a second HTTP hop costs on this machine whatever the proxy does.
# The load average is printed before and after (the machine may be shared).
# Results: docs/benchmarks.md. Not run in CI.
#
# Usage: [BENCH_NO_RECEIVER=1] [BENCH_BASE_BIN=...] scripts/bench-proxy.sh [SECONDS=5] [ROUNDS=3]
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH="${1:-5}"
ROUNDS="${2:-3}"
WORK="$(mktemp -d /tmp/mcp-bench-proxy.XXXXXX)"
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

for tool in node wrk python3; do
	command -v "$tool" >/dev/null || { echo "bench: $tool is needed (apt-get install -y wrk)" >&2; exit 2; }
done
cargo build --release --quiet
if [ "${BENCH_NO_RECEIVER:-0}" != 1 ]; then
	cargo build --release --quiet --example traffic_receiver
fi
BIN="$PWD/target/release/mcp-exporter"
RECEIVER="$PWD/target/release/examples/traffic_receiver"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
	for _ in $(seq 100); do
		if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "bench: nothing listens on $1" >&2
	exit 1
}

cat >"$WORK/upstream.js" <<'JS'
// POST /small answers a short tools/call result, POST /big a 1 MB one; both with Content-Length.
const http = require("http");
const answer = (text) =>
  Buffer.from(JSON.stringify({ jsonrpc: "2.0", id: 1, result: { content: [{ type: "text", text }] } }));
const small = answer("ok");
const big = answer("x".repeat(1000000));
http
  .createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      const body = req.url.startsWith("/big") ? big : small;
      res.writeHead(200, { "content-type": "application/json", "content-length": body.length });
      res.end(body);
    });
  })
  .listen(Number(process.argv[2]), "127.0.0.1");
JS

cat >"$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %.1f %d\n", latency:percentile(50), latency:percentile(99),
    summary.requests / (summary.duration / 1e6), summary.requests))
end
LUA

UP_PORT="$(free_port)"
node "$WORK/upstream.js" "$UP_PORT" &
pids+=($!)
if [ "${BENCH_NO_RECEIVER:-0}" != 1 ]; then
	"$RECEIVER" "$WORK/traffic.sock" >"$WORK/receiver.log" 2>&1 &
	pids+=($!)
fi
PROXY_PORT="$(free_port)"
"$BIN" proxy --listen "127.0.0.1:$PROXY_PORT" --upstream "http://127.0.0.1:$UP_PORT" --name bench \
	--exporter "$WORK/traffic.sock" 2>"$WORK/proxy.log" &
PROXY_PID=$!
pids+=($PROXY_PID)
targets="direct proxied"
if [ -n "${BENCH_BASE_BIN:-}" ]; then
	BASE_PORT="$(free_port)"
	"$BENCH_BASE_BIN" proxy --listen "127.0.0.1:$BASE_PORT" --upstream "http://127.0.0.1:$UP_PORT" --name base \
		--exporter "$WORK/traffic.sock" 2>"$WORK/base.log" &
	BASE_PID=$!
	pids+=($BASE_PID)
	wait_port "$BASE_PORT"
	targets="direct proxied baseline"
fi
peer_pids=()
for peer in ${BENCH_PEERS:-}; do
	port="$(free_port)"
	case "$peer" in
	haproxy)
		cat >"$WORK/haproxy.cfg" <<CFG
global
	nbthread 2
defaults
	mode http
	timeout connect 10s
	timeout client 60s
	timeout server 60s
	http-reuse always
frontend bench
	bind 127.0.0.1:$port
	default_backend upstream
backend upstream
	server node 127.0.0.1:$UP_PORT
CFG
		haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
		;;
	nginx)
		mkdir -p "$WORK/nginx"
		cat >"$WORK/nginx.conf" <<CFG
worker_processes 2;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path $WORK/nginx;
	proxy_temp_path $WORK/nginx;
	upstream node { server 127.0.0.1:$UP_PORT; keepalive 32; }
	server {
		listen 127.0.0.1:$port;
		location / {
			proxy_pass http://node;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_buffering off;
			proxy_request_buffering off;
		}
	}
}
CFG
		nginx -p "$WORK/nginx" -c "$WORK/nginx.conf" >"$WORK/nginx.log" 2>&1 &
		;;
	*) echo "bench: unknown peer $peer (haproxy or nginx)" >&2; exit 2 ;;
	esac
	pids+=($!)
	peer_pids+=("$peer:$port:$!")
	targets="$targets $peer"
done
wait_port "$UP_PORT"
wait_port "$PROXY_PORT"
for entry in "${peer_pids[@]}"; do
	wait_port "$(echo "$entry" | cut -d: -f2)"
done
echo "load before: $(uptime)" >&2

# A process's CPU ticks, its children's and threads' included (nginx's workers are children).
cpu_ticks() {
	local total=0 child
	total=$(awk '{print $14 + $15}' "/proc/$1/stat")
	for child in $(pgrep -P "$1" || true); do
		total=$((total + $(awk '{print $14 + $15}' "/proc/$child/stat")))
	done
	echo "$total"
}
TICKS="$(getconf CLK_TCK)"

# run NAME PORT PATH THREADS CONNECTIONS -> "p50_us p99_us rps requests"
run() {
	wrk -t"$4" -c"$5" -d"${SECONDS_EACH}s" -s "$WORK/post.lua" "http://127.0.0.1:$2$3" | awk '/^RESULT/ {print $2, $3, $4, $5}'
}

: >"$WORK/results"
for round in $(seq "$ROUNDS"); do
	for size in small big; do
		for target in $targets; do
			port="$UP_PORT" pid=""
			[ "$target" = proxied ] && port="$PROXY_PORT" pid="$PROXY_PID"
			[ "$target" = baseline ] && port="$BASE_PORT" pid="$BASE_PID"
			for entry in "${peer_pids[@]}"; do
				[ "${entry%%:*}" = "$target" ] && port="$(echo "$entry" | cut -d: -f2)" pid="$(echo "$entry" | cut -d: -f3)"
			done
			read -r p50 p99 _ _ < <(run "$target" "$port" "/$size" 1 1)
			before=0 after=0
			[ -n "$pid" ] && before="$(cpu_ticks "$pid")"
			read -r _ _ rps requests < <(run "$target" "$port" "/$size" 2 16)
			[ -n "$pid" ] && after="$(cpu_ticks "$pid")"
			cpu_us=0
			if [ -n "$pid" ]; then
				cpu_us="$(python3 -c "print(round(($after - $before) / $TICKS * 1e6 / max($requests, 1), 1))")"
			fi
			echo "$round $size $target $p50 $p99 $rps $cpu_us" >>"$WORK/results"
			echo "round $round $size $target: p50 ${p50}us p99 ${p99}us, ${rps} req/s" >&2
		done
	done
done
echo "load after: $(uptime)" >&2
RSS_KB="$(awk '/VmHWM/ {print $2}' "/proc/$PROXY_PID/status")"
BASE_RSS_KB=0
[ -n "${BASE_PID:-}" ] && BASE_RSS_KB="$(awk '/VmHWM/ {print $2}' "/proc/$BASE_PID/status")"

python3 - "$WORK/results" "$RSS_KB" "$BASE_RSS_KB" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
med = lambda xs: statistics.median(xs)
print(f"proxy peak RSS: {int(sys.argv[2]) / 1024:.1f} MiB")
if int(sys.argv[3]):
    print(f"baseline proxy peak RSS: {int(sys.argv[3]) / 1024:.1f} MiB")
print("| result | proxy | direct p50 / p99 | proxied p50 / p99 | added p50 / p99 | direct req/s | proxied req/s | ratio | proxy CPU per request |")
print("|---|---|---|---|---|---|---|---|---|")
for size, label in (("small", "small"), ("big", "1 MB")):
    def col(target, i):
        return med([float(r[i]) for r in rows if r[1] == size and r[2] == target])
    d50, d99, drps = col("direct", 3), col("direct", 4), col("direct", 5)
    others = sorted({r[2] for r in rows} - {"direct", "proxied", "baseline"})
    for target in ["proxied", "baseline"] + others:
        if not any(r[2] == target for r in rows):
            continue
        p50, p99, prps = col(target, 3), col(target, 4), col(target, 5)
        cpu = col(target, 6)
        name = {"proxied": "this build", "baseline": "baseline"}.get(target, target)
        print(f"| {label} | {name} | {d50:.0f} / {d99:.0f} µs | {p50:.0f} / {p99:.0f} µs | {p50 - d50:+.0f} / {p99 - d99:+.0f} µs "
              f"| {drps:.0f} | {prps:.0f} | {prps / drps:.2f} | {cpu:.1f} µs |")
PY
