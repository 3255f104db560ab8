#!/usr/bin/env bash
# Builds the Debian package: target/debian/mcp-exporter_<version>-1_<arch>.deb, with the release
# binaries (mcp-exporter and the wrapper's own mcp-exporter-wrap beside it), the systemd unit (deploy/mcp-exporter.service), the example config as
# /etc/mcp-exporter/mcp-exporter.toml, and the bundle under /usr/share/mcp-exporter/ (what goes
# where: [package.metadata.deb] in Cargo.toml). Prints the package's path on stdout.
#
# Usage: package.sh [--no-build]
#   --no-build   package target/release/mcp-exporter and mcp-exporter-wrap as they are (CI
#                builds them once for the package and the container image)
# Needs cargo-deb (scripts/install-deps.sh installs the pinned version).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

BUILD=1
for arg in "$@"; do
	case "$arg" in
	--no-build) BUILD=0 ;;
	*)
		printf 'package: unknown argument %s (usage: package.sh [--no-build])\n' "$arg" >&2
		exit 2
		;;
	esac
done

command -v cargo-deb >/dev/null ||
	{ printf 'package: cargo-deb not found; run scripts/install-deps.sh\n' >&2; exit 1; }
if [[ "$BUILD" -eq 1 ]]; then
	cargo build --release --locked --bins >&2
fi
for bin in mcp-exporter mcp-exporter-wrap; do
	[[ -x "target/release/$bin" ]] ||
		{ printf 'package: target/release/%s is missing (build it, or drop --no-build)\n' "$bin" >&2; exit 1; }
done
# cargo-deb prints the path of the package it wrote.
cargo deb --no-build --quiet
