#!/usr/bin/env bash
# Runs the daemon on examples/mcp-exporter.toml against real reference MCP servers:
# installs the pinned servers (npm, PyPI) if needed, starts the HTTP ones on loopback,
# builds and runs the exporter on http://127.0.0.1:8931 until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh --servers-only

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

PORT=3001 node --require ./tests/fixtures/loopback.cjs \
  mcp-servers/node_modules/@modelcontextprotocol/server-everything/dist/index.js streamableHttp \
  >/tmp/mcp-exporter-demo-everything-http.log 2>&1 &
pids+=("$!")
mcp-servers/.venv/bin/python tests/fixtures/py_modern_server.py http 3002 \
  >/tmp/mcp-exporter-demo-python.log 2>&1 &
pids+=("$!")

cargo build --release --quiet
echo "mcp-exporter on http://127.0.0.1:8931/ (status page) and /metrics; Ctrl-C stops everything."
target/release/mcp-exporter serve --config examples/mcp-exporter.toml "$@"
