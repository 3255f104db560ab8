#!/usr/bin/env python3
"""Measurements of scripts/bench-fleet.sh: scrapes /metrics and turns them into one table row.

  sample URL SECONDS EVERY    scrape (gzip) every EVERY s for SECONDS s; print JSON with the
                              probes counted, series, bytes and each server's probe start times
  wait_up URL N SECONDS       poll /metrics until N servers have mcp_server_up 1 or SECONDS
                              pass; print how many are up
  latency URL COUNT           COUNT sequential scrapes with gzip, then COUNT plain; JSON timings
  tree PID                    JSON of PID's descendant processes: per-pid CPU ticks
                              (utime+stime), summed VmRSS and VmHWM in KiB
  peer PROM_URL SECONDS AT BB_TICKS PROM_TICKS BB_RSS_KIB PROM_RSS_KIB
                              JSON for the blackbox peer: the probes Prometheus recorded (and
                              how many succeeded) in the SECONDS before unix time AT, with the
                              CPU ticks and peak RSS of blackbox_exporter and Prometheus
  report N INTERVAL WINDOW HZ TICKS RSS_KIB SAMPLE LATENCY FLOOR [PEER|-] [TREE0 TREE1|- -]
                              one markdown table row (PEER from `peer`, TREE0/TREE1 from
                              `tree` at the start and the end of the window)
  families METRICS_TEXT N     series per family per server (a markdown table)
"""

import gzip
import json
import os
import re
import sys
import time
import urllib.parse
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


def wait_up(url, n, seconds):
    until = time.monotonic() + float(seconds)
    up = 0
    while True:
        try:
            text = scrape(url, True)[2]
            up = sum(1 for name, _, value in series(text) if name == "mcp_server_up" and float(value) == 1)
        except OSError:
            pass
        if up >= int(n) or time.monotonic() >= until:
            print(up)
            return
        time.sleep(1)


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


def tree(root):
    """CPU ticks of each descendant of ROOT (by pid) and their summed VmRSS and VmHWM."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    # The command name may hold spaces: fields start after its closing paren.
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    wanted = {int(root)}
    changed = True
    while changed:
        changed = False
        for pid, (ppid, _) in parents.items():
            if ppid in wanted and pid not in wanted:
                wanted.add(pid)
                changed = True
    wanted.discard(int(root))
    ticks, rss, hwm = {}, 0, 0
    for pid in wanted:
        ticks[str(pid)] = parents[pid][1]
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
                    elif line.startswith("VmHWM:"):
                        hwm += int(line.split()[1])
        except OSError:
            pass
    json.dump({"ticks": ticks, "rss_kib": rss, "hwm_kib": hwm}, sys.stdout)


def prom_value(prom_url, query, at):
    url = f"{prom_url}/api/v1/query?" + urllib.parse.urlencode({"query": query, "time": at})
    with urllib.request.urlopen(url, timeout=30) as r:
        result = json.load(r)["data"]["result"]
    return int(float(result[0]["value"][1])) if result else 0


def peer(prom_url, seconds, at, bb_ticks, prom_ticks, bb_rss_kib, prom_rss_kib):
    window = f"{max(1, round(float(seconds)))}s"
    json.dump(
        {"probes": prom_value(prom_url, f'sum(count_over_time(probe_success{{job="blackbox"}}[{window}]))', at),
         "ok": prom_value(prom_url, f'sum(sum_over_time(probe_success{{job="blackbox"}}[{window}]))', at),
         "bb_ticks": int(bb_ticks), "prom_ticks": int(prom_ticks),
         "bb_rss_kib": int(bb_rss_kib), "prom_rss_kib": int(prom_rss_kib)},
        sys.stdout,
    )


def percentile(values, p):
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[k]


def load_json(path):
    if path in (None, "-"):
        return None
    with open(path) as f:
        return json.load(f)


def report(n, interval, window, hz, ticks, rss_kib, sample_path, latency_path, floor_path,
           peer_path="-", tree0_path="-", tree1_path="-"):
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
    share = lambda t: f"{100 * t / hz / window:.2f} %"
    p = load_json(peer_path)
    if p:
        bb_per = p["bb_ticks"] * 1000 / hz / p["probes"] if p["probes"] else float("nan")
        peer_cols = (
            f"{bb_per:.3f} ms ({p['ok']} of {p['probes']} ok) | {per_probe / bb_per:.2f} | "
            f"{share(p['bb_ticks'])}, {p['bb_rss_kib'] / 1024:.1f} MiB | "
            f"{share(p['prom_ticks'])}, {p['prom_rss_kib'] / 1024:.1f} MiB | "
        )
    else:
        peer_cols = "– | – | – | – | "
    t0, t1 = load_json(tree0_path), load_json(tree1_path)
    if t1:
        child_ticks = sum(v - t0["ticks"].get(pid, 0) for pid, v in t1["ticks"].items())
        children = (f"{share(child_ticks)}, {len(t1['ticks'])} processes, "
                    f"{t1['hwm_kib'] / 1024:.1f} MiB peak (sum) | ")
    else:
        children = "– | "
    print(
        f"| {n} | {100 * cpu_ms / 1000 / window:.2f} % | {per_probe:.3f} ms | {floor_per:.3f} ms | "
        f"{per_probe / floor_per:.1f} | {peer_cols}{children}"
        f"{rss_kib / 1024:.1f} MiB | {rss_kib / n:.1f} KiB | "
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
    elif mode == "wait_up":
        wait_up(*args)
    elif mode == "latency":
        latency(args[0], int(args[1]))
    elif mode == "tree":
        tree(args[0])
    elif mode == "peer":
        peer(*args)
    elif mode == "report":
        report(*args)
    elif mode == "families":
        families(*args)
    else:
        sys.exit(f"unknown mode {mode}")
