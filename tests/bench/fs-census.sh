#!/bin/bash
# fs-census.sh - how many FUSE requests each small-file line of fs-bench.sh
# sends, per file system: a count that does not depend on the machine's
# load, where fs-bench's timings of 30-60 ms lines do (two runs of the same
# binary differed by 0.4-3.4x per rep at load 5-8).  Not part of ctest; run
# by hand, as root.  See tests/bench/README.md.
#
# The lines are fs-bench's, in its order, on its tree (fs-lib.sh,
# bench_tree): tar -x, ls -lR cold (unmount, drop_caches, mount), rm -rf,
# rsync -a into the mount, rsync -a again (no change).  vecvault runs in
# the foreground with -d and its requests are counted by opcode from
# libfuse's trace; gocryptfs and securefs are counted from outside, as the
# reads of /dev/fuse by their daemon (strace -c -f -p; each read is one
# request, FORGETs included), so only their totals are known.  Asynchronous
# requests (RELEASE, RELEASEDIR, FORGET) that trail a line are counted
# after a 0.3 s pause.
#
#   env: VV_BIN       vecvault binary (default: build/vecvault, then PATH)
#        BENCH_FILES  files in the tree (default 300)
#        BENCH_FS     file systems (default "vecvault gocryptfs securefs")
#        BENCH_DIR    scratch directory (default /var/tmp/vv-fs-census.PID;
#                     what the script made there is removed at exit)
set -eu

case ${1:-} in -h | --help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
BENCH_FILES=${BENCH_FILES:-300}
BENCH_FS=${BENCH_FS:-"vecvault gocryptfs securefs"}
HERE=$(cd "$(dirname "$0")" && pwd)
BENCH_NAME=fs-census
. "$HERE/fs-lib.sh"
bench_need_root "cold lines drop the page cache"
for t in strace rsync tar; do command -v $t >/dev/null || die "needs $t"; done

B=${BENCH_DIR:-/var/tmp/vv-fs-census.$$}
mkdir -p "$B"
B=$(cd "$B" && pwd)
CENSUS_PID=

cleanup() {
	local rc=$?
	set +e
	[ -n "$CENSUS_PID" ] && kill "$CENSUS_PID" 2>/dev/null
	unmount_all
	rm -rf "$B"/vecvault "$B"/gocryptfs "$B"/securefs "$B"/src-tree "$B"/tree.tar \
		"$B"/pass "$B"/vv-state "$B"/vv-audit "$B"/census.*
	rmdir "$B" 2>/dev/null
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
printf 'fs-census passphrase\n' > "$B/pass"
chmod 600 "$B/pass"

# vecvault in the foreground with libfuse's request trace (-d); fs-lib's
# vv_wait finds it by its pid file.
vv_debug_mount() {
	local d=$B/vecvault
	VECVAULT_TEST_KDF=1 VECVAULT_STATE_DIR=$B/vv-state VECVAULT_AUDIT_DIR=$B/vv-audit \
		"$VV" mount "$d/store" "$d/mnt" --passfile "$B/pass" --pid-file "$d/pid" -d \
		>> "$B/census.vv" 2>&1 &
	wait_mounted "$d/mnt" || die "vecvault did not mount"
}
mount_fs() { if [ "$1" = vecvault ]; then vv_debug_mount; else fs_mount "$1"; fi; }
daemon_pid() {
	case $1 in
	vecvault) cat "$B/vecvault/pid" ;;
	*) pgrep -n -f -- "$B/$1/store" ;;
	esac
}

# line FS NAME CMD...: run CMD, print the requests it caused.
line() {
	local fs=$1 name=$2 n0 out
	shift 2
	sync
	if [ "$fs" = vecvault ]; then
		n0=$(wc -l < "$B/census.vv")
		"$@"
		sleep 0.3
		out=$(tail -n +"$((n0 + 1))" "$B/census.vv" |
			awk '/ opcode: / { c[$7]++; n++ } END {
				printf "%d", n; for (k in c) printf " %s=%d", k, c[k] }')
	else
		strace -f -c -e trace=read -o "$B/census.st" -p "$(daemon_pid "$fs")" 2>/dev/null &
		CENSUS_PID=$!
		sleep 0.5                  # strace attaches to every thread
		"$@"
		sleep 0.3
		kill -INT "$CENSUS_PID"; wait "$CENSUS_PID" 2>/dev/null || true
		CENSUS_PID=
		# calls, less the failed ones (interrupted reads) when listed
		out=$(awk '$NF == "read" { print (NF == 6 ? $4 - $5 : $4) }' "$B/census.st")
	fi
	printf '%-10s %-16s %s\n' "$fs" "$name" "${out:-?}"
}

bench_tree "$B/src-tree" "$BENCH_FILES"
tar -cf "$B/tree.tar" -C "$B/src-tree" .
note "fs-census: $BENCH_FILES files, $(find "$B/src-tree" -type d | wc -l) dirs; $(uname -r)"
note "columns: fs, line, requests (vecvault: by opcode)"
for fs in $BENCH_FS; do
	fs_available "$fs" || { note "$fs: not available, skipped"; continue; }
	fs_setup "$fs"
	mount_fs "$fs"
	m=$B/$fs/mnt
	mkdir -p "$m/t"
	line "$fs" tar_extract tar -xf "$B/tree.tar" -C "$m/t"
	fs_umount "$fs"; drop_caches; mount_fs "$fs"
	line "$fs" ls_lR_cold sh -c "ls -lR '$m/t' > /dev/null"
	line "$fs" rm_rf rm -rf "$m/t"
	line "$fs" rsync rsync -a "$B/src-tree/" "$m/r/"
	line "$fs" rsync_nochange rsync -a "$B/src-tree/" "$m/r/"
	rm -rf "$m/r"
	fs_umount "$fs"
done
