#!/usr/bin/env python3
"""Writes the Grafana dashboards into dashboards/: the three of the playbook (MCP Overview, MCP
Performance, System Resources) and MCP Traffic (real clients' traffic through mcp-exporter wrap).

Every query of a family that both the probes and real traffic fill names its `source` label
(docs/metrics.md#sources).

The JSON files are committed and compiled into the binary; edit this script, run it, commit both:
    python3 scripts/gen-dashboards.py [OUTPUT_DIR]
tests/integration/alerts.rs checks that the committed files are this script's output, that every expression
parses and that it names only emitted metrics.
"""
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'server=~"$server"'
PROBE = SEL + ',source="probe"'
TRAFFIC = SEL + ',source="traffic"'
BOTH = SEL + ',source=~"probe|traffic"'
SERVERS_PROBED = "label_values(mcp_server_up, server)"
SERVERS_WITH_TRAFFIC = 'label_values(mcp_requests_total{source="traffic"}, server)'

# The health scale of every *_status gauge: words and colours.
HEALTH_MAPPINGS = [
    {
        "type": "value",
        "options": {
            "2": {"text": "HEALTHY", "color": "green", "index": 0},
            "1": {"text": "DEGRADED", "color": "orange", "index": 1},
            "0": {"text": "UNHEALTHY", "color": "red", "index": 2},
            "-1": {"text": "UNKNOWN", "color": "text", "index": 3},
        },
    }
]
UP_MAPPINGS = [
    {
        "type": "value",
        "options": {
            "1": {"text": "UP", "color": "green", "index": 0},
            "0": {"text": "DOWN", "color": "red", "index": 1},
        },
    }
]


def steps(*pairs):
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in pairs]}


class Board:
    def __init__(self, uid, title, description, servers=SERVERS_PROBED):
        self.uid, self.title, self.description = uid, title, description
        self.servers = servers
        self.panels, self.x, self.y, self.row_h, self.next_id = [], 0, 0, 0, 1

    def _place(self, w, h):
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        pos = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def row(self, title):
        self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        self.panels.append({"type": "row", "title": title, "id": self.next_id, "collapsed": False,
                            "gridPos": {"x": 0, "y": self.y, "w": 24, "h": 1}, "panels": []})
        self.next_id += 1
        self.y += 1

    def panel(self, kind, title, targets, unit, w=12, h=8, description="", mappings=None,
              thresholds=None, options=None, overrides=None, transformations=None, links=None,
              custom=None, minimum=None, maximum=None):
        defaults = {"unit": unit, "mappings": mappings or [],
                    "thresholds": thresholds or steps((None, "green"))}
        if custom:
            defaults["custom"] = custom
        if minimum is not None:
            defaults["min"] = minimum
        if maximum is not None:
            defaults["max"] = maximum
        if links:
            defaults["links"] = links
        p = {
            "type": kind,
            "title": title,
            "description": description,
            "id": self.next_id,
            "datasource": DS,
            "gridPos": self._place(w, h),
            "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
            "options": options or {},
            "targets": [
                dict({"datasource": DS, "refId": chr(ord("A") + i), "expr": expr,
                      "legendFormat": legend}, **extra)
                for i, (expr, legend, extra) in enumerate(
                    t if len(t) == 3 else (t[0], t[1], {}) for t in targets)
            ],
        }
        if transformations:
            p["transformations"] = transformations
        self.next_id += 1
        self.panels.append(p)

    def json(self, links):
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": ["mcp", "mcp-exporter"],
            "editable": True,
            "graphTooltip": 1,
            "schemaVersion": 39,
            "version": 1,
            "refresh": "30s",
            "time": {"from": "now-6h", "to": "now"},
            "timepicker": {},
            "timezone": "browser",
            "fiscalYearStartMonth": 0,
            "liveNow": False,
            "annotations": {"list": [{
                "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
                "name": "Annotations & Alerts", "type": "dashboard"}]},
            "links": links,
            "templating": {"list": [
                {"name": "datasource", "label": "Data source", "type": "datasource",
                 "query": "prometheus", "current": {}, "hide": 0, "refresh": 1,
                 "regex": "", "options": []},
                {"name": "server", "label": "MCP server", "type": "query", "datasource": DS,
                 "definition": self.servers,
                 "query": {"query": self.servers, "refId": "server"},
                 "refresh": 2, "multi": True, "includeAll": True, "allValue": ".*",
                 "current": {}, "hide": 0, "sort": 1, "regex": "", "options": []},
            ]},
            "panels": self.panels,
        }


def dash_links(own_uid):
    return [
        {"title": t, "type": "link", "url": f"/d/{u}?${{server:queryparam}}&${{datasource:queryparam}}",
         "icon": "dashboard", "targetBlank": False, "tooltip": t, "keepTime": True,
         "includeVars": False, "asDropdown": False, "tags": []}
        for u, t in [("mcp-overview", "MCP Overview"), ("mcp-performance", "MCP Performance"),
                     ("system-resources", "System Resources"), ("mcp-traffic", "MCP Traffic")]
        if u != own_uid
    ]


def server_links():
    """Data links from a server row to its details."""
    return [
        {"title": f"{t} of ${{__data.fields.server}}",
         "url": f"/d/{u}?var-server=${{__data.fields.server}}&${{datasource:queryparam}}&${{__url_time_range}}"}
        for u, t in [("mcp-performance", "Performance"), ("system-resources", "Resources")]
    ]


def overview():
    b = Board("mcp-overview", "MCP Overview",
              "Availability and health of every MCP server the exporter probes.")
    stat = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background", "graphMode": "none", "textMode": "auto",
            "justifyMode": "auto", "orientation": "auto"}
    b.panel("stat", "Servers up", [(f"sum(mcp_server_up{{{SEL}}})", "up")], "none", w=6, h=4,
            options=stat, description="Servers whose last probe completed the handshake in time.")
    b.panel("stat", "Servers down", [(f"count(mcp_server_up{{{SEL}}} == 0) or vector(0)", "down")],
            "none", w=6, h=4, options=stat, thresholds=steps((None, "green"), (1, "red")))
    b.panel("stat", "Servers degraded",
            [(f"count(mcp_server_health_status{{{SEL}}} == 1) or vector(0)", "degraded")],
            "none", w=6, h=4, options=stat, thresholds=steps((None, "green"), (1, "orange")))
    b.panel("stat", "Security events (1h)",
            [(f"sum(increase(mcp_security_events_total{{{SEL}}}[1h])) or vector(0)", "events")],
            "none", w=6, h=4, options=stat, thresholds=steps((None, "green"), (1, "red")))

    b.row("Servers")
    col = lambda name, **props: {"matcher": {"id": "byName", "options": name},
                                 "properties": [{"id": k, "value": v} for k, v in props.items()]}
    b.panel(
        "table", "Servers",
        # One row per server: every query aggregates to the `server` label alone, so the merge
        # transformation joins them (a raw selector would keep __name__, instance and job).
        [(f"max by (server) (mcp_server_health_status{{{SEL}}})", "", {"instant": True, "format": "table"}),
         (f"max by (server) (mcp_server_up{{{SEL}}})", "", {"instant": True, "format": "table"}),
         # The whole probe's p95 where the fleet metrics profile leaves out the per-method histograms.
         (f"max by (server) (server:mcp_request_duration_seconds:p95_5m{{{SEL}}} or server:mcp_probe_duration_seconds:p95_5m{{{SEL}}})", "", {"instant": True, "format": "table"}),
         (f"max by (server) (mcp_server_tools{{{SEL}}})", "", {"instant": True, "format": "table"}),
         (f"min by (server) (time() - mcp_probe_last_run_timestamp_seconds{{{SEL}}})", "", {"instant": True, "format": "table"})],
        "none", w=24, h=9,
        description="One row per server; click a server for its performance and resources.",
        transformations=[
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {
                "excludeByName": {"Time": True},
                "renameByName": {"Value #A": "Health", "Value #B": "Up", "Value #C": "p95 latency",
                                 "Value #D": "Tools", "Value #E": "Last probe"},
                "indexByName": {"server": 0, "Value #A": 1, "Value #B": 2, "Value #C": 3,
                                "Value #D": 4, "Value #E": 5}}},
        ],
        options={"showHeader": True, "cellHeight": "sm",
                 "sortBy": [{"displayName": "Health", "desc": False}]},
        overrides=[
            col("server", links=server_links()),
            col("Health", mappings=HEALTH_MAPPINGS, unit="none",
                **{"custom.cellOptions": {"type": "color-background"}}),
            col("Up", mappings=UP_MAPPINGS, unit="none",
                **{"custom.cellOptions": {"type": "color-text"}}),
            col("p95 latency", unit="s"),
            col("Tools", unit="none"),
            col("Last probe", unit="s"),
        ],
    )

    b.row("History")
    b.panel("state-timeline", "Health over time", [(f"mcp_server_health_status{{{SEL}}}", "{{server}}")],
            "none", w=24, h=8, mappings=HEALTH_MAPPINGS,
            options={"showValue": "never", "mergeValues": True, "rowHeight": 0.8},
            description="2 HEALTHY, 1 DEGRADED, 0 UNHEALTHY, -1 UNKNOWN.")
    b.panel("timeseries", "Probe failures by class",
            [(f"sum by (server, class) (increase(mcp_probe_failures_total{{{SEL}}}[$__rate_interval]))",
              "{{server}} {{class}}")], "short",
            description="down, auth_required, misconfigured, protocol_error, check_failed, login_required, credential_rejected, auth_server_down.")
    b.panel("timeseries", "Security events",
            [(f"sum by (server, kind) (increase(mcp_security_events_total{{{SEL}}}[$__rate_interval]))",
              "{{server}} {{kind}}"),
             ("sum(increase(mcp_exporter_http_unauthorized_total[$__rate_interval]))",
              "exporter: unauthorized HTTP requests")], "short")
    b.panel("state-timeline", "Dependency status",
            [(f"mcp_server_dependency_status{{{SEL}}}", "{{server}} {{dependency}} ({{kind}})")],
            "none", mappings=HEALTH_MAPPINGS, options={"showValue": "never", "mergeValues": True})
    b.panel("table", "Health reasons",
            [(f"mcp_server_health_reason{{{SEL}}} == 1", "", {"instant": True, "format": "table"})],
            "none", transformations=[{"id": "organize", "options": {
                "excludeByName": {"Time": True, "Value": True, "instance": True, "job": True,
                                  "__name__": True}}}],
            overrides=[col("server", links=server_links())],
            description="Why a server is not HEALTHY (probe_failed, dependency_down, slow, ...).")
    b.panel("timeseries", "Sessions started",
            [(f"sum by (server, source) (increase(mcp_sessions_started_total{{{BOTH}}}[$__rate_interval]))",
              "{{server}} ({{source}})")], "short",
            description="probe: a reconnect or a respawned stdio child; traffic: a real client's "
                        "initialize through a wrapper.")
    b.panel("timeseries", "Messages processed",
            [(f"sum by (server, direction, source) (rate(mcp_messages_processed_total{{{BOTH}}}[$__rate_interval]))",
              "{{server}} {{direction}} ({{source}})")], "ops")
    return b.json(dash_links("mcp-overview"))


def performance():
    b = Board("mcp-performance", "MCP Performance",
              "Latency, throughput and errors of MCP requests, per server and method.")
    b.row("Latency")
    for q, quantile in (("p50", "0.5"), ("p95", "0.95"), ("p99", "0.99")):
        # Servers without per-method probe histograms (the fleet metrics profile,
        # docs/metrics.md#profiles) show the whole probe's quantile instead.
        b.panel("timeseries", f"Request latency {q} by method",
                [(f"server_method:mcp_request_duration_seconds:{q}_5m{{{SEL}}}", "{{server}} {{method}}"),
                 (f"max by (server) (quantile_over_time({quantile}, mcp_probe_duration_seconds{{{SEL}}}[5m])) "
                  f"unless on(server) server_method:mcp_request_duration_seconds:{q}_5m{{{SEL}}}",
                  "{{server}} (whole probe)")],
                "s", w=8,
                thresholds=steps((None, "green"), (5, "red")) if q == "p95" else None,
                custom={"thresholdsStyle": {"mode": "line"}} if q == "p95" else None,
                description="From the recording rules; MCPSlowResponseTime fires at p95 > 5 s. "
                "In the fleet metrics profile, the whole probe per server."
                if q == "p95" else "In the fleet metrics profile, the whole probe per server.")
    b.panel("timeseries", "Tool execution p95",
            [(f"server_tool:mcp_tool_execution_duration_seconds:p95_5m{{{SEL}}}", "{{server}} {{tool}}")], "s",
            description="Probes' tool calls; empty in the fleet metrics profile unless method_histograms "
            "is on (the whole probe, tools/call included, is in Request latency and Probe duration).")
    b.panel("timeseries", "Probe duration",
            [(f"mcp_probe_duration_seconds{{{SEL}}}", "{{server}}")], "s",
            description="Whole probe (handshake when needed, ping, tools/list, call).")
    b.panel("timeseries", "Probe latency p95 (exemplars: traces)",
            [(f"histogram_quantile(0.95, sum by (server, le) (rate(mcp_probe_latency_seconds_bucket{{{SEL}}}[5m])))",
              "{{server}}", {"exemplar": True})], "s",
            description="From mcp_probe_latency_seconds. With traces on (docs/tracing.md) and "
                        "Prometheus' exemplar storage, each dot is a probe's trace: link the "
                        "trace_id label to your trace data source.")
    b.panel("timeseries", "Probe request latency p95 (exemplars: traces)",
            [(f"histogram_quantile(0.95, sum by (server, method, le) (rate(mcp_request_duration_seconds_bucket{{{SEL},source=\"probe\"}}[5m])))",
              "{{server}} {{method}}", {"exemplar": True})], "s",
            description="The prober's own requests, from the raw buckets so their exemplars "
                        "(the trace id of a probe in each bucket, docs/tracing.md) show.")
    b.panel("timeseries", "HTTP phases of the last probe",
            [(f"mcp_probe_http_phase_duration_seconds{{{SEL}}}", "{{server}} {{phase}}")], "s",
            custom={"stacking": {"mode": "normal", "group": "A"}, "fillOpacity": 30},
            description="HTTP transports: DNS resolve, TCP+TLS connect (only when a connection "
                        "was opened), server processing until the response headers, transfer "
                        "of the response; summed over the probe's requests.")
    b.panel("timeseries", "Session cache hit rate",
            [(f"mcp_cache_hit_rate{{{SEL}}}", "{{server}}")], "percentunit",
            minimum=0, maximum=1,
            description="Share of the last 20 probes served by the kept MCP session rather than "
                        "a new handshake; low means the server loses sessions.")
    b.panel("timeseries", "HTTP connections opened",
            [(f"sum by (server) (increase(mcp_http_connections_opened_total{{{SEL}}}[$__rate_interval]))",
              "{{server}}")], "short",
            description="One connection per probe: idle connections are not kept between "
                        "probes (docs/probing.md#connections); more means the server or a "
                        "proxy closes them between a probe's requests.")
    b.row("Throughput and errors")
    b.panel("timeseries", "Requests per second by method",
            [(f"sum by (server, method) (rate(mcp_requests_total{{{PROBE}}}[$__rate_interval]))",
              "{{server}} {{method}}")], "reqps",
            description="The probes' requests; real clients' are on the MCP Traffic dashboard.")
    b.panel("timeseries", "Error ratio",
            [(f"server:mcp_request_errors:ratio_rate5m{{{SEL}}}", "{{server}}")], "percentunit",
            minimum=0, maximum=1)
    b.panel("timeseries", "Concurrent operations",
            [(f"mcp_concurrent_operations{{{BOTH}}}", "{{server}} ({{source}})")], "short",
            description="Requests awaiting their response: the prober's and real clients'.")
    b.panel("timeseries", "Throughput (sliding window)",
            [(f"mcp_throughput_requests_per_second{{{SEL}}}", "{{server}}")], "reqps")
    b.panel("timeseries", "Probe success ratio",
            [(f"avg_over_time(mcp_probe_success{{{SEL}}}[$__rate_interval])", "{{server}}")],
            "percentunit", minimum=0, maximum=1)
    b.panel("timeseries", "Protocol violations",
            [(f"sum by (server, kind) (increase(mcp_protocol_violations_total{{{SEL}}}[$__rate_interval]))",
              "{{server}} {{kind}}")], "short")
    b.row("Dependencies")
    b.panel("timeseries", "Dependency check duration",
            [("mcp_dependency_check_duration_seconds", "{{dependency}} ({{kind}})")], "s", w=8)
    b.panel("state-timeline", "Dependency check status",
            [("mcp_dependency_status", "{{dependency}} ({{kind}})")], "none", w=8,
            mappings=HEALTH_MAPPINGS, options={"showValue": "never", "mergeValues": True})
    b.panel("timeseries", "Dependency rate limit",
            [("mcp_dependency_rate_limit_remaining", "{{dependency}} remaining"),
             ("mcp_dependency_retry_after_seconds", "{{dependency}} retry after (s)"),
             ("mcp_dependency_up", "{{dependency}} up")], "short", w=8)
    return b.json(dash_links("mcp-performance"))


def resources():
    b = Board("system-resources", "System Resources",
              "Resources of the MCP servers' process trees, and of the exporter itself.")
    b.row("MCP server processes")
    b.panel("timeseries", "CPU", [(f"mcp_server_cpu_usage_percent{{{SEL}}}", "{{server}}")], "percent",
            thresholds=steps((None, "green"), (90, "red")), custom={"thresholdsStyle": {"mode": "line"}},
            description="Process tree; 100 = one core. MCPHighCPUUsage fires over 90 for 10m.")
    b.panel("timeseries", "Memory (resident)", [(f"mcp_server_memory_usage_bytes{{{SEL}}}", "{{server}}")],
            "bytes", thresholds=steps((None, "green"), (2147483648, "red")),
            custom={"thresholdsStyle": {"mode": "line"}},
            description="MCPHighMemoryUsage fires over 2 GiB for 5m.")
    b.panel("timeseries", "File descriptors used of limit",
            [(f"mcp_server_file_descriptors{{{SEL}}} / (mcp_server_file_descriptors_limit{{{SEL}}} > 0)",
              "{{server}}")], "percentunit", minimum=0, maximum=1,
            thresholds=steps((None, "green"), (0.9, "red")), custom={"thresholdsStyle": {"mode": "line"}})
    b.panel("timeseries", "Open file descriptors and connections",
            [(f"mcp_server_file_descriptors{{{SEL}}}", "{{server}} fds"),
             (f"mcp_server_connections_active{{{SEL}}}", "{{server}} connections")], "short")
    b.panel("timeseries", "Threads and processes",
            [(f"mcp_server_threads{{{SEL}}}", "{{server}} threads"),
             (f"mcp_server_processes{{{SEL}}}", "{{server}} processes")], "short")
    b.panel("timeseries", "Resource usage score",
            [(f"mcp_resource_usage_score{{{SEL}}}", "{{server}}")], "percentunit", minimum=0, maximum=1)
    b.row("Restarts")
    b.panel("timeseries", "Process uptime",
            [(f"time() - mcp_server_process_start_time_seconds{{{SEL}}}", "{{server}}")], "s", w=8)
    b.panel("timeseries", "Restarts and remediations",
            [(f"sum by (server) (increase(mcp_server_restarts_total{{{SEL}}}[$__rate_interval]))",
              "{{server}} restarts"),
             (f"sum by (server, outcome) (increase(mcp_remediation_total{{{SEL}}}[$__rate_interval]))",
              "{{server}} remediation {{outcome}}")], "short", w=8)
    b.panel("state-timeline", "Process state",
            [(f"mcp_server_crash_looping{{{SEL}}}", "{{server}} crash-looping"),
             (f"mcp_server_process_found{{{SEL}}}", "{{server}} process found")], "none", w=8,
            mappings=[{"type": "value", "options": {
                "0": {"text": "no", "color": "green", "index": 0},
                "1": {"text": "yes", "color": "blue", "index": 1}}}],
            options={"showValue": "auto", "mergeValues": True})
    b.row("Exporter")
    b.panel("timeseries", "Store size", [("mcp_store_size_bytes", "{{instance}}")], "bytes", w=8)
    b.panel("timeseries", "Store writes and drops",
            [("sum by (kind) (rate(mcp_store_writes_total[$__rate_interval]))", "written {{kind}}"),
             ("sum by (kind) (rate(mcp_store_dropped_total[$__rate_interval]))", "dropped {{kind}}")],
            "wps", w=8)
    b.panel("timeseries", "Server log lines by level",
            [(f"sum by (server, level) (rate(mcp_log_lines_total{{{SEL}}}[$__rate_interval]))",
              "{{server}} {{level}}")], "short", w=8,
            description="Lines per second the servers wrote to stderr, by level.")
    b.panel("table", "Exporter build", [("mcp_exporter_build_info", "", {"instant": True, "format": "table"})],
            "none", w=24, h=5, transformations=[{"id": "organize", "options": {
                "excludeByName": {"Time": True, "Value": True, "__name__": True}}}])
    return b.json(dash_links("system-resources"))


def traffic():
    b = Board("mcp-traffic", "MCP Traffic",
              "What real MCP clients experience: requests reported by mcp-exporter wrap "
              "(source=\"traffic\"), per tool and method.", servers=SERVERS_WITH_TRAFFIC)
    b.row("Tools")
    b.panel("timeseries", "Tool calls per second",
            [(f"server_tool:mcp_traffic_tool_calls:rate5m{{{SEL}}}", "{{server}} {{tool}}")], "reqps")
    b.panel("timeseries", "Tool error ratio",
            [(f"server_tool:mcp_traffic_tool_errors:ratio_rate5m{{{SEL}}}", "{{server}} {{tool}}")],
            "percentunit", minimum=0, maximum=1,
            thresholds=steps((None, "green"), (0.1, "red")), custom={"thresholdsStyle": {"mode": "line"}},
            description="JSON-RPC errors and isError results over all calls; MCPToolHighErrorRatio "
                        "fires above 10% (at least 10 calls in 5 minutes) for 10m.")
    b.panel("timeseries", "Tool failures by outcome",
            [(f"sum by (server, tool, outcome) (rate(mcp_tool_calls_total{{{TRAFFIC},outcome!=\"ok\"}}[$__rate_interval]))",
              "{{server}} {{tool}} {{outcome}}")], "reqps",
            description="tool_error: the tool reported a failure (isError); error: a JSON-RPC "
                        "error; cancelled; unanswered: the server exited first.")
    b.panel("timeseries", "Tool p95",
            [(f"server_tool:mcp_traffic_tool_duration_seconds:p95_5m{{{SEL}}}", "{{server}} {{tool}}")],
            "s", thresholds=steps((None, "green"), (5, "red")), custom={"thresholdsStyle": {"mode": "line"}},
            description="MCPToolSlowResponseTime fires above 5 s for 10m.")
    b.row("Requests")
    b.panel("timeseries", "Requests per second by method",
            [(f"sum by (server, method) (rate(mcp_requests_total{{{TRAFFIC}}}[$__rate_interval]))",
              "{{server}} {{method}}")], "reqps", w=8)
    b.panel("timeseries", "Request p95 by method",
            [(f"server_method:mcp_traffic_request_duration_seconds:p95_5m{{{SEL}}}", "{{server}} {{method}}")],
            "s", w=8)
    b.panel("timeseries", "Requests in flight",
            [(f"mcp_concurrent_operations{{{TRAFFIC}}}", "{{server}}")], "short", w=8,
            description="Requests of real clients awaiting their response now, over the "
                        "connected wrappers.")
    b.panel("timeseries", "Response size p95 by method",
            [(f"histogram_quantile(0.95, sum by (server, method, le) (rate(mcp_response_size_bytes_bucket{{{TRAFFIC}}}[5m])))",
              "{{server}} {{method}}")], "bytes", w=8)
    b.panel("timeseries", "Wrappers and sessions",
            [(f"mcp_traffic_wrappers_connected{{{SEL}}}", "{{server}} wrappers"),
             (f"mcp_traffic_sessions_active{{{SEL}}}", "{{server}} sessions")], "short", w=8)
    b.panel("timeseries", "Messages per second",
            [(f"sum by (server, direction) (rate(mcp_messages_processed_total{{{TRAFFIC}}}[$__rate_interval]))",
              "{{server}} {{direction}}")], "ops", w=8)
    b.row("Receiver")
    b.panel("stat", "Traffic socket", [("max(mcp_traffic_socket_up)", "up")], "none", w=8, h=6,
            mappings=UP_MAPPINGS, thresholds=steps((None, "red"), (1, "green")),
            options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                     "colorMode": "background", "graphMode": "none", "textMode": "auto",
                     "justifyMode": "auto", "orientation": "auto"},
            description="DOWN: the daemon could not bind the socket (see its log); wrappers "
                        "pass traffic through uncounted.")
    b.panel("timeseries", "Wrapper connections",
            [("sum by (outcome) (increase(mcp_traffic_connections_total[$__rate_interval]))", "{{outcome}}")],
            "short", w=8, h=6)
    b.panel("timeseries", "Reports received",
            [("sum(rate(mcp_traffic_reports_total[$__rate_interval]))", "reports")], "ops", w=8, h=6)
    return b.json(dash_links("mcp-traffic"))


if __name__ == "__main__":
    # Optional argument: the output directory (tests write to a temp dir and compare).
    out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "dashboards"
    out.mkdir(exist_ok=True)
    for name, board in [("mcp-overview", overview()), ("mcp-performance", performance()),
                        ("system-resources", resources()), ("mcp-traffic", traffic())]:
        (out / f"{name}.json").write_text(json.dumps(board, indent=2) + "\n")
        print(f"wrote {out / name}.json")
