#!/usr/bin/env bash
# Builds the Debian package: target/debian/mcp-exporter_<version>-1_<arch>.deb, with the release
# binary, the systemd unit (deploy/mcp-exporter.service), the example config as
# /etc/mcp-exporter/mcp-exporter.toml, and the bundle under /usr/share/mcp-exporter/ (what goes
# where: [package.metadata.deb] in Cargo.toml). Prints the package's path on stdout.
#
# Usage: package.sh [--no-build]
#   --no-build   package target/release/mcp-exporter as it is (CI builds it once for the
#                package and the container image)
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
	cargo build --release --locked >&2
fi
[[ -x target/release/mcp-exporter ]] ||
	{ printf 'package: target/release/mcp-exporter is missing (build it, or drop --no-build)\n' >&2; exit 1; }
# cargo-deb prints the path of the package it wrote.
cargo deb --no-build --quiet
