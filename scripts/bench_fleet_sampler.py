#!/usr/bin/env python3
"""Measurements of scripts/bench-fleet.sh: scrapes /metrics and turns them into one table row.

  sample URL SECONDS EVERY    scrape (gzip) every EVERY s for SECONDS s; print JSON with the
                              probes counted, series, bytes and each server's probe start times
  latency URL COUNT           COUNT sequential scrapes with gzip, then COUNT plain; JSON timings
  report N INTERVAL WINDOW HZ TICKS RSS_KIB SAMPLE LATENCY FLOOR    one markdown table row
  families METRICS_TEXT N     series per family per server (a markdown table)
"""

import gzip
import json
import re
import sys
import time
import urllib.request

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)')
SERVER = re.compile(r'server="([^"]*)"')


def scrape(url, use_gzip):
    headers = {"Accept-Encoding": "gzip"} if use_gzip else {}
    started = time.perf_counter()
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as r:
        raw = r.read()
    took = time.perf_counter() - started
    text = gzip.decompress(raw) if use_gzip else raw
    return took, len(raw), text.decode()


def series(text):
    for line in text.splitlines():
        if line and not line.startswith("#"):
            m = SAMPLE.match(line)
            if m:
                yield m.group(1), m.group(2) or "", m.group(3)


def sample(url, seconds, every):
    starts = {}
    probes = []
    sizes = None
    until = time.monotonic() + seconds
    while True:
        began = time.monotonic()
        try:
            _, gz_bytes, text = scrape(url, True)
        except OSError:
            if began >= until:
                break
            continue
        total = 0
        count = 0
        for name, labels, value in series(text):
            count += 1
            if name == "mcp_probes_total":
                total += float(value)
            elif name == "mcp_probe_last_run_timestamp_seconds":
                server = SERVER.search(labels)
                if server:
                    starts.setdefault(server.group(1), set()).add(float(value))
        probes.append(total)
        sizes = {"series": count, "plain_bytes": len(text.encode()), "gzip_bytes": gz_bytes}
        if began >= until:
            break
        time.sleep(max(0.0, min(every, until - time.monotonic())))
    json.dump(
        {"probes": probes[-1] - probes[0], **sizes,
         "starts": {s: sorted(v) for s, v in starts.items()}},
        sys.stdout,
    )


def timed(url, use_gzip):
    """A scrape's seconds; a failed or timed-out scrape counts as the 30 s timeout."""
    try:
        return scrape(url, use_gzip)[0]
    except OSError:
        return 30.0


def latency(url, count):
    out = {}
    for use_gzip in (True, False):
        out["gzip" if use_gzip else "plain"] = [timed(url, use_gzip) for _ in range(count)]
    json.dump(out, sys.stdout)


def percentile(values, p):
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[k]


def report(n, interval, window, hz, ticks, rss_kib, sample_path, latency_path, floor_path):
    window = float(window)
    n, interval, hz, ticks, rss_kib = int(n), float(interval), int(hz), int(ticks), int(rss_kib)
    with open(sample_path) as f:
        s = json.load(f)
    with open(latency_path) as f:
        lat = json.load(f)
    try:
        with open(floor_path) as f:
            floor = json.loads(f.read().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        floor = {"requests": 0, "cpu_seconds": 0.0}
    gaps = [b - a for v in s["starts"].values() for a, b in zip(v, v[1:])]
    on_time = sum(1 for g in gaps if abs(g - interval) <= 0.1 * interval)
    cpu_ms = ticks * 1000 / hz
    probes = s["probes"]
    per_probe = cpu_ms / probes if probes else float("nan")
    floor_per = (floor["cpu_seconds"] * 1000 / floor["requests"]) if floor.get("requests") else float("nan")
    ms = lambda xs, p: f"{1000 * percentile(xs, p):.1f}"
    print(
        f"| {n} | {100 * cpu_ms / 1000 / window:.2f} % | {per_probe:.3f} ms | {floor_per:.3f} ms | "
        f"{per_probe / floor_per:.1f} | {rss_kib / 1024:.1f} MiB | {rss_kib / n:.1f} KiB | "
        f"{s['series']} ({s['series'] / n:.1f}/server) | {s['plain_bytes'] / 1e6:.2f} MB / "
        f"{s['gzip_bytes'] / 1e6:.2f} MB | {ms(lat['gzip'], 50)} / {ms(lat['gzip'], 99)} ms | "
        f"{ms(lat['plain'], 50)} / {ms(lat['plain'], 99)} ms | "
        f"{100 * on_time / len(gaps) if gaps else float('nan'):.1f} % of {len(gaps)} |"
    )


def families(path, n):
    n = int(n)
    kinds = {}
    counts = {}
    with open(path) as f:
        text = f.read()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            kinds[name] = kind
    for name, labels, _ in series(text):
        family = name
        for suffix in ("_bucket", "_sum", "_count", "_total", "_created", "_info"):
            if name.endswith(suffix) and name[: -len(suffix)] in kinds:
                family = name[: -len(suffix)]
                break
        if 'server="' in labels:
            counts[family] = counts.get(family, 0) + 1
    print("| family | type | series per liveness server |")
    print("|---|---|---|")
    for family, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"| `{family}` | {kinds.get(family, '?')} | {count / n:.2f} |")
    print(f"| all with a `server` label | | {sum(counts.values()) / n:.2f} |")


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "sample":
        sample(args[0], float(args[1]), float(args[2]))
    elif mode == "latency":
        latency(args[0], int(args[1]))
    elif mode == "report":
        report(*args)
    elif mode == "families":
        families(*args)
    else:
        sys.exit(f"unknown mode {mode}")
