#!/usr/bin/env bash
# Benchmark: what a fleet of MCP servers costs the exporter (not run in CI), beside the minimal
# client doing the same requests and beside blackbox_exporter driven by a real Prometheus.
#
# HTTP sizes (the default): for each fleet size N, one process (examples/fleet_target.rs)
# serves N cheap MCP endpoints on loopback, half legacy era (initialize + ping on a session),
# half modern era (server/discover), each on its own listener so no connection pool is shared
# between two servers, as in a real fleet. mcp-exporter (release build, the default daemon:
# history store and security monitor on) probes all N with `check = "liveness"` (or CHECK)
# every 15 s. In the measured window a sampler scrapes /metrics with gzip every 5 s, as a
# Prometheus would (more often, to see every probe start); afterwards /metrics is scraped in
# sequence, gzip and plain, for the latency.
#
# In the same window, at the same total rate (N / 15 per second), against the same endpoints:
# - the floor: `fleet_target floor`, one release reqwest client on one kept connection sending
#   the legacy `ping` POST a liveness probe sends;
# - the peer (PEER=blackbox, the default): Debian's blackbox_exporter on 127.0.0.1 with two
#   http modules, driven by a real Prometheus (127.0.0.1, its own temporary TSDB,
#   scrape_interval 15 s, the usual /probe relabelling over all N targets, generated into
#   prometheus.yml). blackbox_exporter cannot keep an MCP session, so it sends the one request
#   each era answers without one: a legacy endpoint gets a POST of `initialize` (module
#   mcp_initialize), a modern one the `server/discover` POST the exporter's modern liveness
#   probe sends (module mcp_discover); both require HTTP 200 and a JSON-RPC `"result"` in the
#   body. Its probes are counted from Prometheus (`probe_success`) over the window; its CPU
#   and Prometheus' are measured separately, over the same window as the exporter's.
#
# STDIO=N (e.g. STDIO=50) instead runs one case, SIZES ignored: the exporter probes N stdio
# children of a real reference server (STDIO_SERVER=memory, the default, or everything; `node`
# and mcp-servers/node_modules) every 15 s with `check = "liveness"` (or CHECK); process
# sampling is on for stdio servers, so this is the exporter's cost of supervising, probing and
# sampling them. Their timeout is 10 s, as in the tests (tests/integration/common/servers.rs):
# 50 node processes starting at once on a loaded machine take longer than 5 s to answer
# `initialize`, and a child that does not is killed and restarted. The children's CPU and
# summed peak RSS are reported separately from the exporter's. The floor is
# `fleet_target floor-stdio`: one child of the same server, initialized once, sent the same
# `ping` at the same total rate. There is no blackbox peer (it cannot speak stdio).
#
# Reported per row: CPU % of one core and CPU per probe, the floor's CPU per request and
# probe/floor, blackbox_exporter's CPU per probe (with its successes), probe/blackbox, the CPU %
# and peak RSS of blackbox_exporter and of Prometheus, the stdio children's CPU and peak RSS,
# the exporter's peak RSS (VmHWM) and RSS per server, series and bytes per scrape (plain and
# gzip), scrape latency p50/p99 (gzip, plain), probes on time (the share of intervals between
# two starts of a server's probe, read from mcp_probe_last_run_timestamp_seconds, within 10 %
# of the configured interval), and the 1-minute load average at the end of the window.
# With FAMILIES=1 it also prints the series per family per server of the largest size.
#
# Open files: the fleet target holds a listener and a kept connection per server (5,000 servers
# need about 10,200 descriptors). The script raises the soft `ulimit -n` to the hard limit and
# says so; a size that needs more than the hard limit is reported as skipped, with the limit.
#
# Usage: scripts/bench-fleet.sh [SIZES="10 100 1000"] [WINDOW_SECONDS=60]
#   e.g. METRICS=fleet scripts/bench-fleet.sh "10 100 1000 5000" 60
#        METRICS=fleet STDIO=50 scripts/bench-fleet.sh "" 60
# Env: EXPORTER=path/to/mcp-exporter (default target/release/mcp-exporter, built here; point it
#      at another build to compare two commits in the same conditions),
#      FLEET_TARGET=path/to/fleet_target (default: the example, built here),
#      METRICS=full|fleet (the [exporter] metrics profile, docs/metrics.md#profiles; default
#      full), CHECK=liveness|readiness (default liveness; readiness adds tools/list),
#      PEER=blackbox|none (default blackbox; needs prometheus and prometheus-blackbox-exporter),
#      STDIO=N, STDIO_SERVER=memory|everything, FAMILIES=1, KEEP=1 (keep the work directory;
#      a failed run always keeps it).
# Needs: python3, curl; for the peer prometheus and prometheus-blackbox-exporter (apt); for
# STDIO node and the npm servers (scripts/install-deps.sh --servers-only).
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES="${1-10 100 1000}"
WINDOW="${2:-60}"
METRICS="${METRICS:-full}"
CHECK="${CHECK:-liveness}"
PEER="${PEER:-blackbox}"
STDIO="${STDIO:-0}"
STDIO_SERVER="${STDIO_SERVER:-memory}"
INTERVAL=15
WORK="$(mktemp -d /tmp/mcp-bench-fleet.XXXXXX)"
pids=()
notes=()
cleanup() {
	local status=$?
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	# A failed run keeps its logs and configurations (a process that died shows why there).
	if [[ "${KEEP:-0}" != 1 && $status == 0 ]]; then rm -rf "$WORK"; else echo "kept $WORK" >&2; fi
}
trap cleanup EXIT INT TERM

if ((STDIO > 0)); then
	PEER=none
	case "$STDIO_SERVER" in
	memory) STDIO_ARGS=("$PWD/mcp-servers/node_modules/@modelcontextprotocol/server-memory/dist/index.js") ;;
	everything) STDIO_ARGS=("$PWD/mcp-servers/node_modules/@modelcontextprotocol/server-everything/dist/index.js" stdio) ;;
	*)
		echo "bench: STDIO_SERVER is memory or everything, not $STDIO_SERVER" >&2
		exit 2
		;;
	esac
	command -v node >/dev/null && [[ -f "${STDIO_ARGS[0]}" ]] || {
		echo "bench: STDIO needs node and ${STDIO_ARGS[0]} (scripts/install-deps.sh --servers-only)" >&2
		exit 2
	}
fi
case "$PEER" in
blackbox)
	for tool in prometheus prometheus-blackbox-exporter curl; do
		command -v "$tool" >/dev/null || {
			echo "bench: PEER=blackbox needs $tool (apt-get install prometheus prometheus-blackbox-exporter curl), or set PEER=none" >&2
			exit 2
		}
	done
	;;
none) ;;
*)
	echo "bench: PEER is blackbox or none, not $PEER" >&2
	exit 2
	;;
esac

# The fleet target holds a listener and a kept connection per server: raise the soft open-file
# limit to the hard one (children inherit it) and say what is in force.
soft=$(ulimit -Sn)
hard=$(ulimit -Hn)
[[ "$hard" == unlimited ]] && hard=$(cat /proc/sys/fs/nr_open)
if [[ "$soft" != unlimited ]] && ((soft < hard)); then
	if ulimit -Sn "$hard" 2>/dev/null; then
		ulimit_note="ulimit -n raised from $soft to $hard (the hard limit)"
	else
		ulimit_note="ulimit -n is $soft and could not be raised to the hard limit $hard"
	fi
else
	ulimit_note="ulimit -n is $soft (the hard limit; raise it as root to go further)"
fi
open_files=$(ulimit -Sn)

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
	for _ in $(seq 1 600); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "bench: nothing listens on port $1" >&2
	exit 1
}
wait_file() {
	for _ in $(seq 1 600); do
		[[ -s "$1" ]] && return 0
		sleep 0.1
	done
	echo "bench: $1 was not written" >&2
	exit 1
}
cpu_ticks() {
	awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || {
		echo "bench: process $1 exited before the end of the window (logs in $WORK)" >&2
		exit 1
	}
}
rss_kib() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }

# Prometheus: every target through blackbox_exporter's /probe, the module from the URL's era.
write_prometheus_config() {
	local bb_port=$1 urls=$2 out=$3
	{
		printf 'global:\n  scrape_interval: %ss\n  scrape_timeout: 10s\nscrape_configs:\n' "$INTERVAL"
		printf '  - job_name: blackbox\n    metrics_path: /probe\n    static_configs:\n'
		for era in legacy modern; do
			local module=mcp_initialize
			[[ $era == modern ]] && module=mcp_discover
			printf '      - labels: {__param_module: %s}\n        targets:\n' "$module"
			{ grep "/$era/" "$urls" || true; } | sed 's/.*/          - "&"/'
		done
		printf '    relabel_configs:\n'
		printf '      - {source_labels: [__address__], target_label: __param_target}\n'
		printf '      - {source_labels: [__param_target], target_label: instance}\n'
		printf '      - {target_label: __address__, replacement: "127.0.0.1:%s"}\n' "$bb_port"
	} >"$out"
}

echo "# mcp-exporter fleet benchmark ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -m), exporter $EXPORTER)"
echo "metrics profile ${METRICS}, load average $(cut -d' ' -f1-3 /proc/loadavg) at start, $ulimit_note"
if ((STDIO > 0)); then
	echo "${CHECK} of ${STDIO} stdio children (node ${STDIO_ARGS[*]}) every ${INTERVAL} s, ${WINDOW} s window; floor = fleet_target floor-stdio, one child, same ping at the same total rate"
	SIZES=$STDIO
else
	echo "${CHECK} every ${INTERVAL} s, ${WINDOW} s window per size; floor = one reqwest client, one kept connection, same ping POST at the same total rate; peer = ${PEER}"
fi
echo
echo "| servers | CPU % of a core | CPU per probe | floor CPU per request | probe/floor | blackbox CPU per probe | probe/blackbox | blackbox CPU, peak RSS | Prometheus CPU, peak RSS | stdio children CPU, peak RSS | peak RSS | RSS per server | series | bytes plain / gzip | scrape p50/p99 gzip | scrape p50/p99 plain | probes on time | load 1m |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"

for N in $SIZES; do
	port=$(free_port)
	exporter_config="$WORK/exporter-$N.toml"
	printf '[exporter]\nlisten = "127.0.0.1:%s"\ninterval = "%ss"\ntimeout = "5s"\nmetrics = "%s"\n' \
		"$port" "$INTERVAL" "$METRICS" >"$exporter_config"
	target_pid=""
	if ((STDIO > 0)); then
		args_toml=$(printf '"%s", ' "${STDIO_ARGS[@]}")
		for ((i = 0; i < N; i++)); do
			printf '\n[[servers]]\nname = "s%05d"\ntransport = "stdio"\ncommand = "node"\nargs = [%s]\nenv = { MEMORY_FILE_PATH = "%s/memory-%s.json" }\ntimeout = "10s"\ncheck = "%s"\n' \
				"$i" "${args_toml%, }" "$WORK" "$i" "$CHECK"
		done >>"$exporter_config"
	else
		need=$((2 * N + 200))
		if ((need > open_files)); then
			echo "| $N | skipped: needs $need open files, ulimit -n is $open_files (hard limit $(ulimit -Hn)) | | | | | | | | | | | | | | | | |"
			continue
		fi
		rm -f "$WORK/urls"
		"$TARGET" serve --servers "$N" --ports-file "$WORK/urls" >"$WORK/target-$N.out" 2>"$WORK/target-$N.err" &
		target_pid=$!
		pids+=("$target_pid")
		wait_file "$WORK/urls"
		i=0
		while read -r url; do
			printf '\n[[servers]]\nname = "s%05d"\ntransport = "http"\nurl = "%s"\ncheck = "%s"\n' "$i" "$url" "$CHECK"
			i=$((i + 1))
		done <"$WORK/urls" >>"$exporter_config"
	fi
	rm -f "$WORK"/*.db*
	"$EXPORTER" --log-level warn serve --config "$exporter_config" >"$WORK/exporter-$N.log" 2>&1 &
	exporter_pid=$!
	pids+=("$exporter_pid")
	wait_port "$port"

	bb_pid="" prom_pid=""
	if [[ "$PEER" == blackbox ]]; then
		bb_port=$(free_port)
		prom_port=$(free_port)
		prometheus-blackbox-exporter --config.file=scripts/blackbox-mcp.yml \
			--web.listen-address="127.0.0.1:$bb_port" >"$WORK/blackbox-$N.log" 2>&1 &
		bb_pid=$!
		pids+=("$bb_pid")
		wait_port "$bb_port"
		write_prometheus_config "$bb_port" "$WORK/urls" "$WORK/prometheus-$N.yml"
		prometheus --config.file="$WORK/prometheus-$N.yml" --storage.tsdb.path="$WORK/tsdb-$N" \
			--web.listen-address="127.0.0.1:$prom_port" >"$WORK/prometheus-$N.log" 2>&1 &
		prom_pid=$!
		pids+=("$prom_pid")
		wait_port "$prom_port"
	fi
	# Warm-up: every server probed at least once (sessions opened, series created).
	# Then up to two more intervals until every server is up; a note after the table says how
	# many were up when the window started if not all.
	sleep $((INTERVAL + 5))
	up=$(python3 scripts/bench_fleet_sampler.py wait_up "http://127.0.0.1:$port/metrics" "$N" $((2 * INTERVAL)))
	((up < N)) && notes+=("$N servers: $up up when the window started (log: exporter-$N.log)")

	rate=$(python3 -c "print($N / $INTERVAL)")
	if ((STDIO > 0)); then
		"$TARGET" floor-stdio --command "node ${STDIO_ARGS[*]}" --rate "$rate" --seconds "$WINDOW" >"$WORK/floor-$N.json" 2>&1 &
	else
		"$TARGET" floor --url "$(head -1 "$WORK/urls")" --rate "$rate" --seconds "$WINDOW" >"$WORK/floor-$N.json" 2>&1 &
	fi
	floor_pid=$!
	tree0=- tree1=-
	if ((STDIO > 0)); then
		python3 scripts/bench_fleet_sampler.py tree "$exporter_pid" >"$WORK/tree0-$N.json"
		tree0="$WORK/tree0-$N.json" tree1="$WORK/tree1-$N.json"
	fi
	c0=$(cpu_ticks "$exporter_pid")
	[[ -n "$bb_pid" ]] && b0=$(cpu_ticks "$bb_pid") && p0=$(cpu_ticks "$prom_pid")
	t0=$(date +%s.%N)
	python3 scripts/bench_fleet_sampler.py sample "http://127.0.0.1:$port/metrics" "$WINDOW" 5 >"$WORK/sample-$N.json"
	c1=$(cpu_ticks "$exporter_pid")
	[[ -n "$bb_pid" ]] && b1=$(cpu_ticks "$bb_pid") && p1=$(cpu_ticks "$prom_pid")
	t1=$(date +%s.%N)
	if ((STDIO > 0)); then
		python3 scripts/bench_fleet_sampler.py tree "$exporter_pid" >"$tree1"
	fi
	window=$(python3 -c "print($t1 - $t0)")
	peer=-
	if [[ -n "$bb_pid" ]]; then
		peer="$WORK/peer-$N.json"
		python3 scripts/bench_fleet_sampler.py peer "http://127.0.0.1:$prom_port" "$window" "$t1" \
			"$((b1 - b0))" "$((p1 - p0))" "$(rss_kib "$bb_pid")" "$(rss_kib "$prom_pid")" >"$peer"
		# The latency scrapes below run without the peer, as before it was added.
		kill "$prom_pid" "$bb_pid" 2>/dev/null || true
		wait "$prom_pid" "$bb_pid" 2>/dev/null || true
	fi
	wait "$floor_pid" || true
	rss=$(rss_kib "$exporter_pid")
	load=$(cut -d' ' -f1 /proc/loadavg)
	python3 scripts/bench_fleet_sampler.py latency "http://127.0.0.1:$port/metrics" 40 >"$WORK/latency-$N.json"
	if [[ "${FAMILIES:-0}" == 1 ]]; then
		curl -s "http://127.0.0.1:$port/metrics" >"$WORK/metrics-$N.txt"
	fi
	kill "$exporter_pid" ${target_pid:+"$target_pid"} 2>/dev/null || true
	wait "$exporter_pid" ${target_pid:+"$target_pid"} 2>/dev/null || true

	python3 scripts/bench_fleet_sampler.py report "$N" "$INTERVAL" "$window" "$(getconf CLK_TCK)" "$((c1 - c0))" "$rss" \
		"$WORK/sample-$N.json" "$WORK/latency-$N.json" "$WORK/floor-$N.json" "$peer" "$tree0" "$tree1" |
		sed "s/|\$/| $load |/"
	last=$N
done

if ((${#notes[@]})); then
	echo
	for note in "${notes[@]}"; do echo "- $note"; done
fi
if [[ "${FAMILIES:-0}" == 1 && -n "${last:-}" ]]; then
	echo
	python3 scripts/bench_fleet_sampler.py families "$WORK/metrics-$last.txt" "$last"
fi
