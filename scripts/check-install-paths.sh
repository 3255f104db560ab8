#!/usr/bin/env bash
# Proves two of the README's install paths as an operator takes them (the third, `cargo install
# --locked`, is what the test suite's build already does):
#
#   deb    scripts/package.sh builds the .deb; `dpkg -i` installs it; the unit passes
#          `systemd-analyze verify`; the installed binary, run as the package's system user,
#          validates the installed example config; `mcp-exporter wrap` runs as the wrapper's own
#          executable installed beside it; the bundle is in /usr/share/mcp-exporter;
#          `dpkg -r` removes the program and `dpkg -P` the config, leaving nothing behind.
#   image  deploy/Dockerfile's runtime stage, built by buildah (vfs storage, chroot isolation) on
#          a Debian base made by debootstrap (with Node.js), around the release binary; run with
#          its own ENTRYPOINT and CMD: it runs as uid 10001, reads the config from
#          /etc/mcp-exporter/mcp-exporter.toml, probes a stdio server (server-everything, from
#          mcp-servers/node_modules mounted where the example config looks) HEALTHY, serves
#          /metrics, and exits 0 on SIGTERM; `mcp-exporter wrap` in it runs as the wrapper's own
#          executable. The image storage is removed afterwards.
#
# Usage: check-install-paths.sh [deb|image]...   (default: both)
# Needs root, the release binary (built here if missing), cargo-deb, dpkg, systemd-analyze,
# buildah, debootstrap and network access to deb.debian.org for the base (cached under
# target/image-base/). The rule for what is missing is the tests' (tests/integration/common/
# tools.rs): with CI set it fails, otherwise the check is skipped with the reason.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

BIN="$ROOT/target/release/mcp-exporter"
# The example config's listen port inside the image (its CMD says 0.0.0.0:8931).
IMAGE_PORT=8931
# The image check's buildah storage and command (globals: its EXIT trap needs them).
work=""
B=()
BASE_PACKAGES="ca-certificates,tini,nodejs"
BASE_SUITE=bookworm

log() { printf 'check-install-paths: %s\n' "$*" >&2; }
die() {
	printf 'check-install-paths: FAILED: %s\n' "$*" >&2
	exit 1
}
ci_set() {
	local ci="${CI:-}"
	[[ -n "$ci" && "${ci,,}" != false && "$ci" != 0 ]] || [[ "${MCP_EXPORTER_TEST_DEPS:-}" == require ]]
}
# Missing prerequisite: fail under CI, else skip this check ($1: check, $2: why).
missing() {
	if ci_set; then
		die "$1: $2 (CI is set, so this fails instead of skipping; scripts/install-deps.sh installs it)"
	fi
	log "skipped $1: $2"
	return 1
}
need_root_and() {
	local check="$1"
	shift
	[[ "$(id -u)" -eq 0 ]] || { missing "$check" "needs root"; return 1; }
	local tool
	for tool in "$@"; do
		command -v "$tool" >/dev/null || { missing "$check" "$tool not found"; return 1; }
	done
}

# The release binaries both checks ship (a no-op when they are up to date).
release_binary() {
	log "cargo build --release --locked --bins"
	cargo build --release --locked --bins --quiet
}

# The shell command that checks an installed `mcp-exporter wrap`: a line passes through it
# unchanged, and the process the wrapped server sees as its parent (the wrapper, same pid as the
# `mcp-exporter wrap` started) runs the companion /usr/bin/mcp-exporter-wrap, not
# /usr/bin/mcp-exporter (src/cli/wrap.rs). No daemon listens on the socket; that costs nothing.
WRAP_CHECK='printf "hello\n" | /usr/bin/mcp-exporter wrap --exporter /nonexistent/traffic.sock -- sh -c '"'"'readlink /proc/$PPID/exe; cat; exit 7'"'"'; echo "exit $?"'
WRAP_EXPECTED=$'/usr/bin/mcp-exporter-wrap\nhello\nexit 7'
# $1: where it ran; $2: what it printed.
check_wrap_output() {
	[[ "$2" == "$WRAP_EXPECTED" ]] ||
		die "$1: mcp-exporter wrap did not run through /usr/bin/mcp-exporter-wrap; it printed: $2"
}

check_deb() {
	need_root_and deb dpkg cargo-deb systemd-analyze runuser || return 0
	if dpkg-query -W -f='${Status}' mcp-exporter 2>/dev/null | grep -q installed; then
		missing deb "a package mcp-exporter is already installed here; remove it first" || return 0
	fi
	release_binary
	local deb
	deb="$(scripts/package.sh --no-build | tail -n 1)"
	[[ -f "$deb" ]] || die "scripts/package.sh printed no package path (got '$deb')"
	log "dpkg -i $deb"
	dpkg -i "$deb" >/dev/null || die "dpkg -i $deb"

	local f
	for f in /usr/bin/mcp-exporter /usr/bin/mcp-exporter-wrap /etc/mcp-exporter/mcp-exporter.toml \
		/usr/share/mcp-exporter/alerts/mcp-exporter.rules.yml \
		/usr/share/mcp-exporter/alerts/tests/mcp-exporter.test.yml \
		/usr/share/mcp-exporter/dashboards/mcp-overview.json \
		/usr/share/mcp-exporter/runbooks/MCPServerDown.md \
		/usr/share/doc/mcp-exporter/README.md; do
		[[ -f "$f" ]] || die "the package did not install $f"
	done
	local unit
	unit="$(dpkg -L mcp-exporter | grep -E '/systemd/system/mcp-exporter\.service$' | head -n 1)"
	[[ -n "$unit" && -f "$unit" ]] || die "the package installed no mcp-exporter.service"
	cmp -s "$unit" deploy/mcp-exporter.service || die "$unit differs from deploy/mcp-exporter.service"
	getent passwd mcp-exporter >/dev/null || die "postinst made no system user mcp-exporter"
	[[ "$(stat -c '%a %G' /etc/mcp-exporter/mcp-exporter.toml)" == "640 mcp-exporter" ]] ||
		die "config is $(stat -c '%a %U:%G' /etc/mcp-exporter/mcp-exporter.toml), want 640 group mcp-exporter"

	local verify
	verify="$(systemd-analyze verify "$unit" 2>&1)" || die "systemd-analyze verify $unit: $verify"
	[[ -z "$verify" ]] || die "systemd-analyze verify $unit warns: $verify"
	runuser -u mcp-exporter -- /usr/bin/mcp-exporter validate /etc/mcp-exporter/mcp-exporter.toml >/dev/null ||
		die "the installed binary, as user mcp-exporter, does not validate the installed config"
	check_wrap_output deb "$(runuser -u mcp-exporter -- sh -c "$WRAP_CHECK" 2>&1)"
	if command -v promtool >/dev/null; then
		promtool check rules /usr/share/mcp-exporter/alerts/mcp-exporter.rules.yml >/dev/null ||
			die "promtool rejects the installed rules"
	fi

	log "dpkg -r mcp-exporter"
	dpkg -r mcp-exporter >/dev/null || die "dpkg -r mcp-exporter"
	for f in /usr/bin/mcp-exporter /usr/bin/mcp-exporter-wrap "$unit" /usr/share/mcp-exporter /usr/share/doc/mcp-exporter; do
		[[ ! -e "$f" ]] || die "dpkg -r left $f behind"
	done
	[[ -f /etc/mcp-exporter/mcp-exporter.toml ]] || die "dpkg -r removed the conffile (only purge may)"
	dpkg -P mcp-exporter >/dev/null || die "dpkg -P mcp-exporter"
	[[ ! -e /etc/mcp-exporter ]] || die "dpkg -P left /etc/mcp-exporter behind"
	log "deb: ok ($(du -h "$deb" | cut -f1) package)"
}

# A debootstrapped Debian with the runtime's packages, as a tarball cached by its package list.
base_tarball() {
	local cache="$ROOT/target/image-base"
	local tarball="$cache/$BASE_SUITE-$(printf '%s' "$BASE_PACKAGES" | sha256sum | cut -c1-12).tar"
	if [[ ! -f "$tarball" ]]; then
		mkdir -p "$cache"
		local rootfs
		rootfs="$(mktemp -d "$cache/rootfs.XXXXXX")"
		log "debootstrap $BASE_SUITE with $BASE_PACKAGES (about 80 s)"
		debootstrap --variant=minbase --include="$BASE_PACKAGES" "$BASE_SUITE" "$rootfs" \
			http://deb.debian.org/debian >"$cache/debootstrap.log" 2>&1 ||
			{ tail -n 20 "$cache/debootstrap.log" >&2; die "debootstrap failed"; }
		# What an image needs no copy of.
		rm -rf "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/* \
			"$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
		tar -C "$rootfs" -cf "$tarball.tmp" .
		rm -rf "$rootfs"
		mv "$tarball.tmp" "$tarball"
	fi
	printf '%s\n' "$tarball"
}

check_image() {
	need_root_and image buildah debootstrap curl python3 || return 0
	local servers="$ROOT/mcp-servers/node_modules"
	[[ -f "$servers/@modelcontextprotocol/server-everything/dist/index.js" ]] ||
		{ missing image "server-everything not installed in mcp-servers/node_modules" || return 0; }
	if curl -s -o /dev/null "http://127.0.0.1:$IMAGE_PORT/"; then
		missing image "port $IMAGE_PORT is taken on this machine; the image's CMD listens there" || return 0
	fi
	release_binary
	local tarball
	tarball="$(base_tarball)"

	# Globals: the EXIT trap runs after this function's locals are gone.
	work="$(mktemp -d /tmp/mcp-exporter-image.XXXXXX)"
	B=(buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs)
	export BUILDAH_ISOLATION=chroot
	RUN_PID=""
	cleanup_image() {
		if [[ -n "$RUN_PID" ]]; then kill -KILL "$RUN_PID" 2>/dev/null || true; fi
		"${B[@]}" rm --all >/dev/null 2>&1 || true
		"${B[@]}" rmi --all --force >/dev/null 2>&1 || true
		rm -rf "$work"
	}
	trap cleanup_image EXIT

	log "base image from $(basename "$tarball")"
	local ctr mnt
	ctr="$("${B[@]}" from scratch)"
	mnt="$("${B[@]}" mount "$ctr")"
	tar -C "$mnt" -xf "$tarball"
	"${B[@]}" umount "$ctr" >/dev/null
	"${B[@]}" commit --quiet --rm "$ctr" localhost/mcp-exporter-base:check >/dev/null

	log "buildah build of deploy/Dockerfile's runtime stage (BINARY_FROM=prebuilt)"
	"${B[@]}" build --quiet --layers=false --pull=never -f deploy/Dockerfile --target runtime \
		--build-arg BINARY_FROM=prebuilt \
		--build-arg RUNTIME_BASE=localhost/mcp-exporter-base:check \
		--build-arg EXTRA_PACKAGES=nodejs \
		-t localhost/mcp-exporter:check . >"$work/build.log" 2>&1 ||
		{ tail -n 30 "$work/build.log" >&2; die "buildah build failed"; }

	# The image's own ENTRYPOINT and CMD, as a container runtime would start them.
	local config
	config="$("${B[@]}" inspect --type image localhost/mcp-exporter:check)"
	local -a command
	mapfile -t command < <(python3 -c 'import json,sys; c=json.loads(sys.argv[1])["OCIv1"]["config"]; print("\n".join((c.get("Entrypoint") or [])+(c.get("Cmd") or [])))' "$config")
	local user
	user="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["OCIv1"]["config"].get("User",""))' "$config")"
	[[ "$user" == 10001:10001 ]] || die "the image's USER is '$user', want 10001:10001"
	ctr="$("${B[@]}" from --pull=never localhost/mcp-exporter:check)"
	log "run: mcp-exporter wrap (through /usr/bin/mcp-exporter-wrap)"
	check_wrap_output image "$("${B[@]}" run "$ctr" -- sh -c "$WRAP_CHECK" 2>&1)"
	log "run: ${command[*]}"
	"${B[@]}" run --volume "$servers:/var/lib/mcp-exporter/mcp-servers/node_modules:ro" \
		"$ctr" -- "${command[@]}" >"$work/run.log" 2>&1 &
	RUN_PID=$!

	local metrics="" i
	for ((i = 0; i < 120; i++)); do
		metrics="$(curl -sf "http://127.0.0.1:$IMAGE_PORT/metrics" || true)"
		if grep -q '^mcp_server_health_status{server="everything"[^}]*} 2$' <<<"$metrics"; then
			break
		fi
		kill -0 "$RUN_PID" 2>/dev/null || { tail -n 30 "$work/run.log" >&2; die "the container exited early"; }
		sleep 1
	done
	grep -q '^mcp_server_health_status{server="everything"[^}]*} 2$' <<<"$metrics" ||
		{ tail -n 30 "$work/run.log" >&2; die "server-everything inside the image never became HEALTHY"; }

	# The daemon (child of tini): its user, and the config it was started with.
	local daemon_pid
	daemon_pid="$(pgrep -f -n '^/usr/bin/mcp-exporter serve --config /etc/mcp-exporter/mcp-exporter.toml')" ||
		die "no mcp-exporter serve process found"
	local uid
	uid="$(awk '/^Uid:/ { print $2 }' "/proc/$daemon_pid/status")"
	[[ "$uid" == 10001 ]] || die "the daemon runs as uid $uid, want 10001"
	local tini_pid
	tini_pid="$(awk '/^PPid:/ { print $2 }' "/proc/$daemon_pid/status")"
	[[ "$(cat "/proc/$tini_pid/comm")" == tini ]] || die "the daemon's parent is $(cat "/proc/$tini_pid/comm"), want tini"
	pgrep -P "$daemon_pid" -f server-everything >/dev/null ||
		die "no server-everything child of the daemon inside the image"

	log "SIGTERM to the container's init (tini, pid $tini_pid)"
	kill -TERM "$tini_pid"
	local status=0
	wait "$RUN_PID" || status=$?
	RUN_PID=""
	[[ "$status" -eq 0 ]] || { tail -n 30 "$work/run.log" >&2; die "the container exited $status on SIGTERM, want 0"; }
	log "image: ok ($("${B[@]}" images --format '{{.Size}}' localhost/mcp-exporter:check) image)"
	cleanup_image
	trap - EXIT
}

checks=("$@")
[[ ${#checks[@]} -gt 0 ]] || checks=(deb image)
for check in "${checks[@]}"; do
	case "$check" in
	deb) check_deb ;;
	image) check_image ;;
	*) die "unknown check $check (usage: check-install-paths.sh [deb|image]...)" ;;
	esac
done
