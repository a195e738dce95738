#!/usr/bin/env bash
# deps.sh - install what building and testing vecvault needs (Debian 12).
#
# Idempotent: checks with dpkg which packages are missing and installs only
# those (as root, or through sudo when available).  Sourced or run by
# tools/check.sh, tools/demo.sh and .ci/run.
set -eu

VV_PACKAGES="build-essential cmake pkg-config
	libfuse3-dev fuse3 libsodium-dev libsqlite3-dev libssl-dev libacl1-dev
	acl attr rsync python3 python3-numpy libopenblas-dev liburing-dev"
# Optional: benchmarks and extra checks (peers, references, sanitizers).
VV_PACKAGES_BENCH="python3-faiss gocryptfs securefs fio clang libclang-rt-14-dev valgrind"

vv_missing() {
	local p missing=""
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
			missing="$missing $p"
	done
	echo "$missing"
}

vv_install() {
	local missing sudo=""
	# shellcheck disable=SC2086
	missing=$(vv_missing $*)
	[ -n "$missing" ] || return 0
	if [ "$(id -u)" -ne 0 ]; then
		if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
			echo "deps: missing packages:$missing (run this as root to install them)" >&2
			return 1
		fi
	fi
	echo "deps: installing$missing" >&2
	$sudo apt-get update -qq
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	# shellcheck disable=SC2086
	vv_install $VV_PACKAGES
	[ "${1:-}" = "--bench" ] && vv_install $VV_PACKAGES_BENCH
	exit 0
fi
