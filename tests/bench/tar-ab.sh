#!/bin/bash
# tar-ab.sh - what a tar -x of fs-bench's small-file tree costs the daemon,
# old binary against new.  Both are mounted side by side; the extracts
# alternate (A, B, A, B ...), each into an emptied directory, so slow
# drifts of a shared machine hit both alike.  Per run: the daemon's CPU
# ticks (utime + stime, all threads) and wall time; at the end, medians
# and the ratios old/new.  CPU ticks are steadier than wall time at load,
# but still swing by tens of percent there: use 8 or more runs.
#
# With TAR_CG=1 it instead counts instructions: each daemon runs under
# callgrind with counting on only during one tar -x (deterministic, but
# the number of commits follows wall time: the ticker commits every
# 200 ms, and callgrind runs the daemon ~50x slower).
#
#   VV_A=/tmp/rel/vecvault VV_B=/tmp/rel-new/vecvault tests/bench/tar-ab.sh [RUNS]   (root; default 8)
set -eu
BENCH_NAME=tar-ab
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/fs-lib.sh"
A=${VV_A:?set VV_A to the old vecvault binary}
B=${VV_B:?set VV_B to the new vecvault binary}
RUNS=${1:-8}
W=$(mktemp -d /tmp/vv-tar-ab.XXXXXX)
cleanup() {
	for s in a b; do mountpoint -q "$W/$s/mnt" && fusermount3 -uz "$W/$s/mnt"; done
	rm -rf "$W"
}
trap cleanup EXIT
export VECVAULT_TEST_KDF=1
printf 'bench passphrase\n' > "$W/pass"
chmod 600 "$W/pass"

bench_tree "$W/src" 1500
tar -cf "$W/tree.tar" -C "$W/src" .

mount_one() {        # a|b BIN [valgrind args...]
	local s=$1 bin=$2 i
	shift 2
	mkdir -p "$W/$s/mnt" "$W/$s/st" "$W/$s/au"
	chmod 700 "$W/$s/st" "$W/$s/au"
	"$bin" init "$W/$s/store" --passfile "$W/pass" --kdf test >/dev/null
	VECVAULT_STATE_DIR=$W/$s/st VECVAULT_AUDIT_DIR=$W/$s/au "$@" "$bin" mount \
		"$W/$s/store" "$W/$s/mnt" --passfile "$W/pass" -f --log "$W/$s/log" 2>"$W/$s/err" &
	echo $! > "$W/$s/pid"
	for i in $(seq 1 600); do mountpoint -q "$W/$s/mnt" && return 0; sleep 0.2; done
	echo "tar-ab: $bin did not mount" >&2
	exit 1
}

ticks() { proc_ticks "$(cat "$W/$1/pid")"; }

if [ "${TAR_CG:-0}" = 1 ]; then
	command -v callgrind_control >/dev/null || { echo "tar-ab: needs valgrind" >&2; exit 2; }
	for s in a b; do
		bin=$A; [ $s = b ] && bin=$B
		mount_one $s "$bin" valgrind --tool=callgrind --instr-atstart=no \
			--callgrind-out-file="$W/$s/cg.out"
		mkdir "$W/$s/mnt/t"
		sleep 1
		callgrind_control -i on "$(cat "$W/$s/pid")" >/dev/null 2>&1
		tar -xf "$W/tree.tar" -C "$W/$s/mnt/t"
		callgrind_control -i off "$(cat "$W/$s/pid")" >/dev/null 2>&1
		fusermount3 -u "$W/$s/mnt"
		wait "$(cat "$W/$s/pid")" || true
		callgrind_annotate --inclusive=yes "$W/$s/cg.out" 2>/dev/null | tr -d , | awk -v s=$s '
			/PROGRAM TOTALS/ { t = $1 } !c && / [?]+:sqlite3WalCheckpoint / { c = $1 }
			!f && / [?]+:sqlite3WalFrames / { f = $1 }
			END { printf "%s: instructions %d, checkpoints %d, commit frames %d\n", s, t, c, f }'
	done
	exit 0
fi

mount_one a "$A"
mount_one b "$B"
: > "$W/runs"
for r in $(seq 1 "$RUNS"); do
	for s in a b; do
		rm -rf "$W/$s/mnt/t"
		mkdir "$W/$s/mnt/t"
		sync
		t0=$(ticks $s) w0=$(now_ms)
		tar -xf "$W/tree.tar" -C "$W/$s/mnt/t"
		w1=$(now_ms) t1=$(ticks $s)
		echo "$s $((t1 - t0)) $((w1 - w0))" | tee -a "$W/runs"
	done
done
for s in a b; do fusermount3 -u "$W/$s/mnt"; wait "$(cat "$W/$s/pid")" || true; done
echo "# tar -x of 1500 files, $RUNS runs each, alternating; load $(cut -d' ' -f1-3 /proc/loadavg)"
"$PY" - "$W/runs" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
med = {}
for s in "ab":
    t = [int(r[1]) for r in rows if r[0] == s]
    w = [int(r[2]) for r in rows if r[0] == s]
    med[s] = (statistics.median(t), statistics.median(w))
    print("%s: daemon CPU median %.1f ticks (%d-%d), wall median %.2f s" %
          ("old" if s == "a" else "new", med[s][0], min(t), max(t), med[s][1] / 1000))
print("old/new: CPU %.3f, wall %.3f (> 1: new is cheaper)" %
      (med["a"][0] / med["b"][0], med["a"][1] / med["b"][1]))
PY
