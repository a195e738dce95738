#!/bin/bash
# knn-dir-bench.sh [SRC] - the query offload's directory request
# (VV_IOC_KNN_DIR) against one VV_IOC_KNN per opened segment, on a fresh
# mount: N (default 10000) segments of 100 rows copied from SRC/tiny (the
# layout scale-bench.sh makes, default /var/tmp/vv-scale/r500000d128), and
# SRC/one2 (the same bytes as one segment) unless ONE=0.  Daemon CPU and
# wall per pass, interleaved, medians of REPS (default 7); the daemon's
# CPU per name; its VmRSS and map count with every segment cached.  Not
# part of ctest (copying 10,000 files into the mount takes a while).
#   env: VV_BIN (default build/vecvault), N, REPS, ONE, WORK (scratch,
#        default /var/tmp/knn-dir-bench)
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=${1:-/var/tmp/vv-scale/r500000d128}
VV=${VV_BIN:-$HERE/../../build/vecvault}
N=${N:-10000} REPS=${REPS:-7} ONE=${ONE:-1}
W=${WORK:-/var/tmp/knn-dir-bench}
export VECVAULT_TEST_KDF=1 VECVAULT_STATE_DIR=$W/state VECVAULT_AUDIT_DIR=$W/audit
rm -rf "$W"
mkdir -p "$W/mnt" "$W/state" "$W/audit"
cleanup() {
	fusermount3 -u "$W/mnt" 2>/dev/null || true
	for i in $(seq 100); do [ -e "$W/pid" ] && kill -0 "$(cat "$W/pid")" 2>/dev/null || break; sleep 0.1; done
	rm -rf "$W"
}
trap cleanup EXIT
printf 'bench\n' > "$W/pass"
"$VV" init "$W/store" --passfile "$W/pass" --kdf test >/dev/null
"$VV" mount "$W/store" "$W/mnt" --passfile "$W/pass" --pid-file "$W/pid" --log "$W/log"
mkdir "$W/mnt/c" "$W/mnt/c/tiny"
ls "$SRC/tiny" | head -n "$N" | (cd "$SRC/tiny" && xargs cp -t "$W/mnt/c/tiny")
ONEF=
if [ "$ONE" = 1 ]; then
	cp "$SRC"/one2/*.npy "$W/mnt/c/one.npy"
	ONEF=$W/mnt/c/one.npy
fi
/usr/bin/python3 "$HERE/knn_dir_bench.py" "$W/mnt/c/tiny" "$(cat "$W/pid")" "$REPS" $ONEF
