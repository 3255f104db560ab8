#!/usr/bin/env bash
# Benchmark: what `mcp-exporter wrap` costs an MCP client over stdio. The same client talks to
# the same stdio server directly and through the wrapper, alternating in one run:
#   - latency: one request at a time, p50/p99 of the round trip, added = wrapped - direct;
#   - throughput: 32 requests in flight, requests per second, wrapped / direct;
#   - wrapper peak RSS (VmHWM), its anonymous and file-backed parts at the end (RssAnon: the
#     wrapper's own data; RssFile: the executable's pages, shared), and CPU per request, of the
#     process the client started as `mcp-exporter wrap`: that process replaces itself with the
#     wrapper's own executable, mcp-exporter-wrap, found beside mcp-exporter (src/cli/wrap.rs),
#     and the script prints which executable it ended up running;
# with small results and 1 MB results from a minimal responder, and with the real
# server-everything (echo). The wrapper reports to a real receiver (examples/traffic_receiver.rs)
# as in production.
# Then the reporting design: the receiver's CPU per 1000 client requests when wrappers send
# aggregated deltas every second (the default) and when they send one report per message
# (`--report-interval 0`, what an event stream would cost).
#
# The minimal responder (Python, no MCP SDK) answers in a few microseconds, so its rows show the
# wrapper's own cost; the server-everything row shows what a client of a real server sees.
# Not run in CI.
#
# BENCH_BASE_WRAPPER=/path/to/an/older/mcp-exporter adds a third column, the same client through
# that binary's wrapper, interleaved with the others: before/after figures under the same load.
# A copy of target/release/mcp-exporter alone in a directory (no mcp-exporter-wrap beside it) is
# this build wrapping in its own process.
# The load average is printed before and after (the machine may be shared).
#
# BENCH_ONLY_COMPARE=1 stops after the comparison (skips the reporting part); BENCH_NO_RECEIVER=1
# also leaves the receiver out (the wrappers find no daemon and retry every 5 s, which costs
# nothing measurable) and saves building the example in release.
#
# Usage: [BENCH_BASE_WRAPPER=...] [BENCH_ONLY_COMPARE=1] [BENCH_NO_RECEIVER=1] scripts/bench-wrap.sh [REQUESTS=20000] [ROUNDS=3]
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS="${1:-20000}"
ROUNDS="${2:-3}"
WORK="$(mktemp -d /tmp/mcp-bench-wrap.XXXXXX)"
receiver_pid=""
cleanup() {
	if [ -n "$receiver_pid" ]; then kill "$receiver_pid" 2>/dev/null || true; fi
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

for tool in python3 node; do
	command -v "$tool" >/dev/null || { echo "bench: $tool is needed" >&2; exit 2; }
done
EVERYTHING="$PWD/mcp-servers/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
[ -f "$EVERYTHING" ] || { echo "bench: run scripts/install-deps.sh for the npm servers" >&2; exit 2; }
cargo build --release --quiet
if [ "${BENCH_NO_RECEIVER:-0}" = 1 ]; then BENCH_ONLY_COMPARE=1; else
	cargo build --release --quiet --example traffic_receiver
fi
WRAPPER="$PWD/target/release/mcp-exporter"
[ -x "$PWD/target/release/mcp-exporter-wrap" ] || { echo "bench: target/release/mcp-exporter-wrap was not built" >&2; exit 1; }
RECEIVER="$PWD/target/release/examples/traffic_receiver"
SOCK="$WORK/traffic.sock"

cat >"$WORK/responder.py" <<'EOF'
# Answers every tools/call line at once: "big" gets a 1 MB text result, anything else "ok".
import re, sys
small = b'{"content":[{"type":"text","text":"ok"}]}'
big = b'{"content":[{"type":"text","text":"' + b"x" * 1_000_000 + b'"}]}'
out = sys.stdout.buffer
for line in sys.stdin.buffer:
    m = re.search(rb'"id":(\d+)', line)
    if not m:
        continue
    out.write(b'{"jsonrpc":"2.0","id":' + m.group(1) + b',"result":' + (big if b'"big"' in line else small) + b"}\n")
    out.flush()
EOF

cat >"$WORK/driver.py" <<'EOF'
import json, os, statistics, subprocess, sys, time

mode, requests = sys.argv[1], int(sys.argv[2])
wrapper, sock, responder, interval, everything = sys.argv[3:8]
RESPONDER = [sys.executable, responder]
EVERYTHING = ["node", everything, "stdio"]
INITIALIZE = (b'{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25",'
              b'"capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}\n')
INITIALIZED = b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n'

BASE = os.environ.get("BENCH_BASE_WRAPPER", "")

def start(server, wrapped):
    cmd = server
    if wrapped:
        binary = BASE if wrapped == "baseline" else wrapper
        cmd = [binary, "wrap", "--exporter", sock, "--name", "bench", "--report-interval", interval, "--"] + server
    return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)

class Lines:
    def __init__(self, fd):
        self.fd, self.buf = fd, bytearray()
    def next(self):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[: i + 1])
                del self.buf[: i + 1]
                return line
            chunk = os.read(self.fd, 1 << 20)
            if not chunk:
                raise EOFError
            self.buf += chunk

def request(i, tool, args):
    return b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"%s","arguments":%s}}\n' % (
        i + 1, tool.encode(), args.encode())

def proc_stats(pid):
    """Peak RSS, and of the current RSS the anonymous part (the wrapper's own data: heap, stacks,
    buffers) and the file-backed part (pages of the executable, shared with every other process
    running it), KiB; and CPU seconds."""
    with open(f"/proc/{pid}/status") as f:
        status = {l.split(":")[0]: l.split()[1] for l in f if l.startswith(("VmHWM", "RssAnon", "RssFile"))}
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    memory = {key: int(status.get(key, 0)) for key in ("VmHWM", "RssAnon", "RssFile")}
    EXECUTABLES.add(os.path.basename(os.readlink(f"/proc/{pid}/exe")))
    return memory, ticks / os.sysconf("SC_CLK_TCK")

EXECUTABLES = set()  # what the wrapped runs' processes ended up running (after the exec)

def run(server, wrapped, tool, args, n, window):
    p = start(server, wrapped)
    out = Lines(p.stdout.fileno())
    fd = p.stdin.fileno()
    os.write(fd, INITIALIZE); out.next(); os.write(fd, INITIALIZED)
    for i in range(50):  # warm-up
        os.write(fd, request(i, tool, args)); out.next()
    lat = []
    for i in range(n):
        t0 = time.perf_counter_ns()
        os.write(fd, request(i, tool, args))
        out.next()
        lat.append(time.perf_counter_ns() - t0)
    sent = done = 0
    t0 = time.perf_counter()
    while done < n:
        while sent < n and sent - done < window:
            os.write(fd, request(sent, tool, args)); sent += 1
        out.next(); done += 1
    rps = n / (time.perf_counter() - t0)
    memory, cpu = proc_stats(p.pid) if wrapped else ({}, 0.0)
    p.stdin.close(); p.wait()
    lat.sort()
    return {"p50": lat[len(lat) // 2] / 1000, "p99": lat[len(lat) * 99 // 100] / 1000, "rps": rps,
            "rss_kib": memory.get("VmHWM", 0), "anon_kib": memory.get("RssAnon", 0),
            "file_kib": memory.get("RssFile", 0), "cpu_us_per_request": cpu / (2 * n + 51) * 1e6}

if mode == "compare":
    rounds = int(os.environ.get("ROUNDS", "3"))
    cases = (
        ("responder, small results", RESPONDER, "small", "{}", requests),
        ("responder, 1 MB results", RESPONDER, "big", "{}", max(requests // 40, 200)),
        ("server-everything echo", EVERYTHING, "echo", '{"message":"hi"}', max(requests // 10, 500)),
    )
    for label, server, tool, args, n in cases:
        results = {"direct": [], "wrapped": [], "baseline": []}
        for _ in range(rounds):
            results["direct"].append(run(server, False, tool, args, n, 32))
            results["wrapped"].append(run(server, True, tool, args, n, 32))
            if BASE:
                results["baseline"].append(run(server, "baseline", tool, args, n, 32))
        med = lambda side, key: statistics.median(r[key] for r in results[side])
        d50, w50, d99, w99 = med("direct", "p50"), med("wrapped", "p50"), med("direct", "p99"), med("wrapped", "p99")
        print(f"{label}: {n} requests x {rounds} rounds (medians)")
        print(f"  latency p50  direct {d50:8.1f} us  wrapped {w50:8.1f} us  added {w50 - d50:+7.1f} us")
        print(f"  latency p99  direct {d99:8.1f} us  wrapped {w99:8.1f} us  added {w99 - d99:+7.1f} us")
        print(f"  throughput   direct {med('direct', 'rps'):8.0f} /s  wrapped {med('wrapped', 'rps'):8.0f} /s  "
              f"ratio {med('wrapped', 'rps') / med('direct', 'rps'):.3f}")
        print(f"  wrapper      peak RSS {med('wrapped', 'rss_kib') / 1024:.1f} MiB "
              f"(at the end: own anonymous {med('wrapped', 'anon_kib') / 1024:.1f} MiB, "
              f"executable's shared pages {med('wrapped', 'file_kib') / 1024:.1f} MiB), "
              f"CPU {med('wrapped', 'cpu_us_per_request'):.1f} us per request")
        if BASE:
            b50, b99 = med("baseline", "p50"), med("baseline", "p99")
            print(f"  baseline     latency p50 {b50:8.1f} us (added {b50 - d50:+7.1f} us), p99 added {b99 - d99:+7.1f} us, "
                  f"throughput ratio {med('baseline', 'rps') / med('direct', 'rps'):.3f}, "
                  f"peak RSS {med('baseline', 'rss_kib') / 1024:.1f} MiB "
                  f"(own anonymous {med('baseline', 'anon_kib') / 1024:.1f} MiB, "
                  f"executable's shared pages {med('baseline', 'file_kib') / 1024:.1f} MiB), "
                  f"CPU {med('baseline', 'cpu_us_per_request'):.1f} us per request")
    print(f"wrapper processes ran: {', '.join(sorted(EXECUTABLES))}")
else:  # "chatty": one wrapped throughput run, for the receiver's cost
    r = run(RESPONDER, True, "small", "{}", requests, 32)
    print(json.dumps({"rps": r["rps"], "wrapper_cpu_us_per_request": r["cpu_us_per_request"]}))
EOF

start_receiver() {
	if [ "${BENCH_NO_RECEIVER:-0}" = 1 ]; then return 0; fi
	rm -f "$SOCK"
	"$RECEIVER" "$SOCK" 1000000 >"$WORK/receiver.out" 2>/dev/null &
	receiver_pid=$!
	for _ in $(seq 1 100); do [ -S "$SOCK" ] && return 0; sleep 0.05; done
	echo "bench: the receiver did not start" >&2
	exit 1
}
# Stops the receiver; its summary line is left in $WORK/receiver.out.
stop_receiver() {
	if [ -z "$receiver_pid" ]; then return 0; fi
	kill -TERM "$receiver_pid"
	wait "$receiver_pid" || true
	receiver_pid=""
}

echo "== mcp-exporter wrap: direct vs wrapped over stdio ($(nproc) CPUs, $(uname -r))"
echo "load before: $(uptime)"
echo "executables: mcp-exporter $(stat -c %s "$WRAPPER") bytes, mcp-exporter-wrap $(stat -c %s "$WRAPPER-wrap") bytes${BENCH_BASE_WRAPPER:+, baseline $(stat -c %s "$BENCH_BASE_WRAPPER") bytes}"
start_receiver
ROUNDS="$ROUNDS" python3 "$WORK/driver.py" compare "$REQUESTS" "$WRAPPER" "$SOCK" "$WORK/responder.py" 1s "$EVERYTHING"
stop_receiver
echo "load after: $(uptime)"
if [ -n "${BENCH_ONLY_COMPARE:-}" ]; then exit 0; fi

echo
echo "== reporting: receiver CPU for 2 x $REQUESTS chatty requests (plus initialize and 50 warm-up)"
start_receiver
stop_receiver
idle=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["cpu_seconds"])' <"$WORK/receiver.out")
for interval in 1s 0; do
	start_receiver
	client=$(python3 "$WORK/driver.py" chatty "$REQUESTS" "$WRAPPER" "$SOCK" "$WORK/responder.py" "$interval" "$EVERYTHING")
	sleep 1.5 # the last reports
	stop_receiver
	summary=$(cat "$WORK/receiver.out")
	python3 - "$interval" "$idle" "$REQUESTS" "$client" "$summary" <<'EOF'
import json, sys
interval, idle, n = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
client, summary = json.loads(sys.argv[4]), json.loads(sys.argv[5])
counted = summary["servers"].get("bench", {}).get("requests", 0)
cpu_ms = max(summary["cpu_seconds"] - idle, 0.0) * 1000
label = "deltas every 1 s " if interval != "0" else "a report per frame"
print(f"  {label}: {summary['reports']:6d} reports, receiver CPU {cpu_ms:7.1f} ms "
      f"({cpu_ms / (2 * n + 51) * 1000:6.2f} us per client request), "
      f"wrapper CPU {client['wrapper_cpu_us_per_request']:.1f} us per request, "
      f"{client['rps']:.0f} requests/s; counted {counted} of {2 * n + 51}")
EOF
done
