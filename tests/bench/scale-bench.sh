#!/bin/bash
# scale-bench.sh [DIR] - does `vecvault query` cost follow the bytes scanned,
# not the number of segments?  The same float32 rows (ROWS x DIM, default
# 500000 x 128) as 1 segment and as segments of 1000 rows, and 2*ROWS rows
# as 1 segment and as segments of 100 rows (10,000 of them by default);
# 1 query and 100 queries, k 10; on a plain directory DIR (default
# /tmp/vv-scale) and, unless MOUNT=0, on a fresh vecvault mount holding
# copies, with the query offload and without it (VV_KNN_OFFLOAD=0); with
# REMOTE=1 also on a vv:// mount of that mount's collection over loopback
# (its daemon serves it with --listen; the client CPU is not counted).
# Prints median wall time, ns per byte of segments, CPU time (the tool's,
# and the tool's plus the daemon's), and the split/unsplit ratio of each
# for the same bytes (goal: <= 1.3 for 1000-row segments, <= 2
# for 100-row ones), checks every layout reports the same ids and that
# they are the float64 nearest rows, and times the bare per-file system
# calls over the 100-row segments (scale_floor.c) against the same query, and
# the least any reader can do over each layout (its floor).  A run during
# which anyone dropped the page cache (drop_pagecache in /proc/vmstat) is
# repeated after reading the layout again: the figures are warm reads.  Not part
# of ctest: it needs ~3 GB of disk and RAM and several minutes (copying
# 10,000 files into the mount dominates the first run).
# At the end, tests/bench/scale-bench-dirs.sh runs if it exists and is
# executable, with the same environment (DIRS=0 leaves it out).
#   env: VV_BIN (default: vecvault on PATH), THREADS (default: all CPUs),
#        REPS (default 7), ROWS (500000), DIM (128), MOUNT (1), DIRS (1),
#        REMOTE (0; 1: the vv:// rows too, on a fresh mount only),
#        MNT_DIR (use this directory on an existing mount instead of making one),
#        DAEMON_PIDFILE (that mount's pid file: report the daemon's CPU time)
set -eu
DIR=${1:-/tmp/vv-scale}
VV=${VV_BIN:-$(command -v vecvault)}
export VV_BIN=$VV THREADS=${THREADS:-$(nproc)} REPS=${REPS:-7} ROWS=${ROWS:-500000} DIM=${DIM:-128}
MOUNT=${MOUNT:-1}
PY=/usr/bin/python3
HERE=$(cd "$(dirname "$0")" && pwd)

DATA=$DIR/r${ROWS}d$DIM
$PY "$HERE/scale_bench.py" gen "$DATA" "$ROWS" "$DIM"
LOCS=("plain:$DATA")

# the kernel's per-file floor over tiny/ (scale_floor.c), timed in the same
# rounds, with io_uring's modes where liburing-dev is installed; left out
# when there is no C compiler
if cc -O2 -DHAVE_URING -o "$DIR/scale_floor" "$HERE/scale_floor.c" -lpthread -luring 2>/dev/null ||
	cc -O2 -o "$DIR/scale_floor" "$HERE/scale_floor.c" -lpthread 2>/dev/null; then
	export SCALE_FLOOR=$DIR/scale_floor
fi

T=
cleanup() {
	if [ -n "$T" ]; then
		fusermount3 -u "$T/rmnt" 2>/dev/null || true
		fusermount3 -u "$T/mnt" 2>/dev/null || true
		for i in $(seq 100); do [ -e "$T/pid" ] || break; sleep 0.1; done
		rm -rf --one-file-system "$T"
	fi
}
trap cleanup EXIT

if [ "$MOUNT" = 1 ]; then
	if [ -n "${MNT_DIR:-}" ]; then
		M=$MNT_DIR
	else
		T=$(mktemp -d /tmp/vv-scale-mnt.XXXXXX)
		mkdir -m 700 "$T/state" "$T/audit" "$T/mnt"
		export VECVAULT_STATE_DIR=$T/state VECVAULT_AUDIT_DIR=$T/audit VECVAULT_TEST_KDF=1
		(umask 077; printf 'scale bench\n' > "$T/pass")
		"$VV" init "$T/store" --passfile "$T/pass" --kdf test > /dev/null
		LISTEN=()
		if [ "${REMOTE:-0}" = 1 ]; then
			"$VV" tls selfsigned --out "$T/tls" --name 127.0.0.1 > "$T/fp"
			LISTEN=(--listen 127.0.0.1:0 --tls-cert "$T/tls/cert.pem" --tls-key "$T/tls/key.pem")
		fi
		"$VV" mount "$T/store" "$T/mnt" --passfile "$T/pass" --pid-file "$T/pid" --log "$T/log" "${LISTEN[@]}"
		export DAEMON_PIDFILE=${DAEMON_PIDFILE:-$T/pid}
		M=$T/mnt/scale
		echo "# copying the data into a fresh mount ($T/mnt)"
	fi
	mkdir -p "$M"
	for l in one split one2 tiny; do
		[ -d "$M/$l" ] || cp -r "$DATA/$l" "$M/$l"
	done
	LOCS+=("mount:$M" "mount-nooffl:$M:VV_KNN_OFFLOAD=0")
	if [ "${REMOTE:-0}" = 1 ] && [ -z "${MNT_DIR:-}" ]; then
		for i in $(seq 100); do
			PORT=$(sed -n 's/.*remote: listening on 127.0.0.1:0 (port \([0-9]*\)).*/\1/p' "$T/log" | tail -1)
			[ -n "$PORT" ] && break
			sleep 0.1
		done
		"$VV" user add bench --uid 1000 --no-password "$T/mnt" > /dev/null
		"$VV" key create bench "$T/mnt" > "$T/key" 2> /dev/null
		chmod 600 "$T/key"
		mkdir -p "$T/rmnt"
		"$VV" mount "vv://127.0.0.1:$PORT/scale" "$T/rmnt" --key-file "$T/key" \
			--pin "$(sed -n 's/^sha256://p' "$T/fp")" --log "$T/rlog"
		LOCS+=("vv:$T/rmnt" "vv-nooffl:$T/rmnt:VV_KNN_OFFLOAD=0")
	fi
fi

$PY "$HERE/scale_bench.py" run "$VV" "$REPS" "$THREADS" "$DATA" "${LOCS[@]}"

if [ "${DIRS:-1}" != 0 ] && [ -x "$HERE/scale-bench-dirs.sh" ]; then
	echo "# running $HERE/scale-bench-dirs.sh"
	"$HERE/scale-bench-dirs.sh"
fi
