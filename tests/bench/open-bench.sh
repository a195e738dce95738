#!/bin/bash
# open-bench.sh - what one open + read + close of a small file costs the
# daemon, old binary against new.  Both vaults are mounted side by side and
# hold the same N files (1-4 KiB, inline in meta.db, and every fifth one
# 40-60 KiB: still inline, one block); passes alternate (A, B, A, B ...).
#
# Two kinds of pass, each reading every file once (open, read to EOF,
# close; a read-only handle sends no FLUSH):
#   warm  the kernel holds the dentries and the pages (keep_cache): the
#         daemon sees OPEN and RELEASE only
#   cold  dentries, inodes and pages dropped first (drop_caches 3): the
#         daemon also sees LOOKUP, READ and, later, FORGET, and loads each
#         inode again
# Per pass: the daemon's CPU time (all threads, /proc/PID/stat) and wall
# time; at the end, medians with min-max, and
# per file in microseconds.  With OB_COUNT=1, one extra cold and warm pass
# on B runs under `mount -d` and counts the FUSE requests per file.
#
#   VV_A=/tmp/rel/vecvault VV_B=/tmp/rel-new/vecvault tests/bench/open-bench.sh [RUNS [N]]
#   (root; RUNS default 6, N default 6000)
set -eu
BENCH_NAME=open-bench
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/fs-lib.sh"
A=${VV_A:?set VV_A to the old vecvault binary}
B=${VV_B:?set VV_B to the new vecvault binary}
RUNS=${1:-6}
N=${2:-6000}
W=$(mktemp -d /tmp/vv-open-bench.XXXXXX)
cleanup() {
	for s in a b c; do mountpoint -q "$W/$s/mnt" 2>/dev/null && fusermount3 -uz "$W/$s/mnt"; done
	rm -rf "$W"
}
trap cleanup EXIT
export VECVAULT_TEST_KDF=1
printf 'bench passphrase\n' > "$W/pass"
chmod 600 "$W/pass"

mount_one() {        # a|b|c BIN [mount args...]
	local s=$1 bin=$2 i
	shift 2
	mkdir -p "$W/$s/mnt" "$W/$s/st" "$W/$s/au"
	chmod 700 "$W/$s/st" "$W/$s/au"
	[ -d "$W/$s/store" ] || "$bin" init "$W/$s/store" --passfile "$W/pass" --kdf test >/dev/null
	VECVAULT_STATE_DIR=$W/$s/st VECVAULT_AUDIT_DIR=$W/$s/au "$bin" mount \
		"$W/$s/store" "$W/$s/mnt" --passfile "$W/pass" -f --log "$W/$s/log" "$@" 2>"$W/$s/err" &
	echo $! > "$W/$s/pid"
	for i in $(seq 1 600); do mountpoint -q "$W/$s/mnt" && return 0; sleep 0.2; done
	echo "open-bench: $bin did not mount" >&2
	exit 1
}

make_files() {       # DIR: N files in 20 directories
	"$PY" - "$1" "$N" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(7)
for i in range(n):
    d = os.path.join(root, "d%02d" % (i % 20))
    os.makedirs(d, exist_ok=True)
    size = rng.randint(40000, 60000) if i % 5 == 0 else rng.randint(1024, 4096)
    with open(os.path.join(d, "f%05d" % i), "wb") as f:
        f.write(rng.randbytes(size))
PY
}

cat > "$W/reader.py" <<'PY'
import os, sys
names = [l.rstrip("\n") for l in open(sys.argv[1])]
for p in names:
    fd = os.open(p, os.O_RDONLY)
    while os.read(fd, 1 << 17):
        pass
    os.close(fd)
PY

# CPU time in microseconds, all threads, from /proc/PID/stat (utime +
# stime): it keeps the time of threads that exited (libfuse ends idle
# workers past max_idle_threads and starts new ones), which a sum over
# /proc/PID/task/*/schedstat loses; its unit is a clock tick (10 ms), so
# use N large enough that a pass is many ticks.
HZ=$(getconf CLK_TCK)
ticks() { echo $(($(proc_ticks "$(cat "$W/$1/pid")") * 1000000 / HZ)); }

one_pass() {         # a|b warm|cold
	local s=$1 kind=$2 t0 t1 w0 w1
	sync
	[ "$kind" = cold ] && echo 3 > /proc/sys/vm/drop_caches
	t0=$(ticks "$s") w0=$(now_ms)
	"$PY" "$W/reader.py" "$W/$s/list"
	w1=$(now_ms)
	sleep 0.3            # FORGETs and the last RELEASEs arrive after close
	t1=$(ticks "$s")
	echo "$s $kind $((t1 - t0)) $((w1 - w0))" | tee -a "$W/runs"
}

mount_one a "$A"
mount_one b "$B"
for s in a b; do
	make_files "$W/$s/mnt/t"
	(cd "$W/$s/mnt" && find "$PWD/t" -type f | sort) > "$W/$s/list"
done
for s in a b; do "$PY" "$W/reader.py" "$W/$s/list"; done    # first opens: no keep_cache yet
: > "$W/runs"
for r in $(seq 1 "$RUNS"); do
	# Each mount's warm pass right after its own cold one: the next cold
	# pass drops every mount's caches.
	for s in a b; do
		one_pass $s cold
		one_pass $s warm
	done
done
for s in a b; do fusermount3 -u "$W/$s/mnt"; wait "$(cat "$W/$s/pid")" || true; done
echo "# open+read+close of $N files (4/5 of 1-4 KiB, 1/5 of 40-60 KiB), $RUNS runs each, alternating; load $(cut -d' ' -f1-3 /proc/loadavg)"
"$PY" - "$W/runs" "$N" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
n = int(sys.argv[2])
for kind in ("cold", "warm"):
    med = {}
    for s in "ab":
        t = [int(r[2]) for r in rows if r[0] == s and r[1] == kind]
        w = [int(r[3]) for r in rows if r[0] == s and r[1] == kind]
        med[s] = (statistics.median(t), statistics.median(w))
        us = lambda x: x / n
        print("%s %s: daemon CPU %.1f us/file (%.1f-%.1f), wall %.1f us/file (%.1f-%.1f)" %
              (kind, "old" if s == "a" else "new", us(med[s][0]), us(min(t)), us(max(t)),
               med[s][1] * 1e3 / n, min(w) * 1e3 / n, max(w) * 1e3 / n))
    print("%s old/new: CPU %.3f, wall %.3f (> 1: new is cheaper)" %
          (kind, med["a"][0] / max(med["b"][0], 1e-9), med["a"][1] / med["b"][1]))
PY

if [ "${OB_COUNT:-0}" = 1 ]; then
	# The same store as B, remounted with -d: count the requests per file.
	mv "$W/b" "$W/c"
	mount_one c "$B" -d
	(cd "$W/c/mnt" && find "$PWD/t" -type f | sort) > "$W/c/list"
	"$PY" "$W/reader.py" "$W/c/list"
	for kind in cold warm; do
		sync
		[ "$kind" = cold ] && echo 3 > /proc/sys/vm/drop_caches
		sleep 1
		o=$(cat "$W/c/err" "$W/c/log" | wc -c)
		"$PY" "$W/reader.py" "$W/c/list"
		sleep 1
		echo "# requests per file, $kind:"
		cat "$W/c/err" "$W/c/log" | tail -c +$((o + 1)) | grep -o 'opcode: [A-Z_]*' | sort | uniq -c |
			awk -v n="$N" '{ printf "  %-14s %.2f\n", $3, $1 / n }'
	done
	fusermount3 -u "$W/c/mnt"
	wait "$(cat "$W/c/pid")" || true
fi
