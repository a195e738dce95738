#!/bin/bash
# audit-bench.sh - what the audit log costs the daemon.  Runs the small-files
# workload (tar -x of BENCH_FILES files, ls -lR, rm -rf) and a bulk cold
# read (BENCH_SIZE file, page cache dropped, fresh daemon) on a vecvault
# mount with the audit log on and off (--no-audit), REPS interleaved
# repetitions each (the on/off order alternates every rep), and reports the
# daemon's CPU seconds (utime+stime of /proc/PID/stat, PID from --pid-file)
# and the wall time: median (min-max) and the audit's cost in % of the
# daemon's CPU.  Target (issue): at most 5%.  Not part of ctest; run as root:
#
#   sudo VV_BIN=build-rel/vecvault REPS=10 tests/bench/audit-bench.sh
#
#   env: VV_BIN       vecvault binary (default build/vecvault)
#        REPS         repetitions per mode (default 10)
#        BENCH_FILES  files in the small-file tree (default 3000)
#        BENCH_SIZE   bulk file size (default 256M; K/M/G suffix)
#        BENCH_DIR    scratch directory (default /var/tmp/vv-audit-bench.PID)
#        SETTLE       seconds to wait after a workload before reading the CPU
#                     counters, so the audit writer's periodic flush (1 s)
#                     is counted (default 1.5; same wait in both modes)
#
# CPU is sampled after the mount and after the workload + SETTLE, so the
# mount's unlock and the final unmount are not counted in either mode.
set -eu

REPS=${REPS:-10}
BENCH_FILES=${BENCH_FILES:-3000}
BENCH_SIZE=${BENCH_SIZE:-256M}
SETTLE=${SETTLE:-1.5}
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
VV=${VV_BIN:-$SRC/build/vecvault}
PY=/usr/bin/python3
die() { echo "audit-bench: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (cold reads drop the page cache)"
[ -x "$VV" ] || die "no vecvault binary at $VV (set VV_BIN)"
SIZE_B=$(numfmt --from=iec "$BENCH_SIZE") || die "bad BENCH_SIZE"
TCK=$(getconf CLK_TCK)

D=${BENCH_DIR:-/var/tmp/vv-audit-bench.$$}
mkdir -p "$D"
D=$(cd "$D" && pwd)
M=$D/mnt
cleanup() {
	fusermount3 -u "$M" 2>/dev/null || fusermount3 -uz "$M" 2>/dev/null || true
	sleep 0.5
	rm -rf --one-file-system "$D"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export VECVAULT_TEST_KDF=1 VECVAULT_STATE_DIR=$D/state VECVAULT_AUDIT_DIR=$D/audit
mkdir -p "$M" "$D/state" "$D/audit"
printf 'bench passphrase\n' > "$D/pass"
chmod 600 "$D/pass"
"$VV" init "$D/store" --passfile "$D/pass" --kdf test >/dev/null

# The small-file tree (30 per directory, two levels; 60% <= 4 KiB, 30% <=
# 32 KiB, 10% <= 128 KiB), as a tar file on the scratch disk.
"$PY" - "$D/tree" "$BENCH_FILES" <<'EOF'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(42)
for i in range(n):
    d = os.path.join(root, "d%02d" % (i // 900), "e%02d" % (i // 30 % 30))
    os.makedirs(d, exist_ok=True)
    p = rnd.random()
    size = rnd.randint(1, 4096) if p < 0.6 else rnd.randint(4097, 32768) if p < 0.9 else rnd.randint(32769, 131072)
    with open(os.path.join(d, "f%05d" % i), "wb") as f:
        f.write(rnd.randbytes(size))
EOF
tar -C "$D" -cf "$D/tree.tar" tree
rm -rf "$D/tree"

PIDF=$D/pid
mount_vv() {   # mount_vv on|off
	local extra=()
	[ "$1" = off ] && extra=(--no-audit)
	"$VV" mount "$D/store" "$M" --passfile "$D/pass" --pid-file "$PIDF" \
		--log "$D/daemon.log" "${extra[@]}"
	DPID=$(cat "$PIDF")
}
umount_vv() {
	fusermount3 -u "$M"
	while kill -0 "$DPID" 2>/dev/null; do sleep 0.05; done
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$DPID/stat"; }
now() { date +%s.%N; }
loglines() { cat "$D"/audit/*/audit.log 2>/dev/null | wc -l; }

# The bulk file, written once (with the audit on).
head -c "$SIZE_B" /dev/urandom > "$D/bulk.src"
mount_vv on
cp "$D/bulk.src" "$M/bulk"
umount_vv
rm -f "$D/bulk.src"

RES=$D/results          # lines: workload mode cpu_s wall_s records
: > "$RES"
run_one() {   # run_one on|off
	local mode=$1 c0 c1 t0 t1 l0 l1
	# small files
	sync; echo 3 > /proc/sys/vm/drop_caches
	mount_vv "$mode"
	l0=$(loglines); c0=$(cpu_ticks); t0=$(now)
	tar -C "$M" -xf "$D/tree.tar"
	ls -lR "$M/tree" > /dev/null
	rm -rf "$M/tree"
	t1=$(now)
	sleep "$SETTLE"
	c1=$(cpu_ticks)
	umount_vv
	l1=$(loglines)
	echo "small $mode $(echo "($c1 - $c0) / $TCK" | bc -l) $(echo "$t1 - $t0" | bc -l) $((l1 - l0))" >> "$RES"
	# bulk cold read (fresh daemon, page cache dropped)
	sync; echo 3 > /proc/sys/vm/drop_caches
	mount_vv "$mode"
	l0=$(loglines); c0=$(cpu_ticks); t0=$(now)
	cat "$M/bulk" > /dev/null
	t1=$(now)
	sleep "$SETTLE"
	c1=$(cpu_ticks)
	umount_vv
	l1=$(loglines)
	echo "bulk $mode $(echo "($c1 - $c0) / $TCK" | bc -l) $(echo "$t1 - $t0" | bc -l) $((l1 - l0))" >> "$RES"
}

echo "# audit-bench: $REPS reps, $BENCH_FILES files, bulk $BENCH_SIZE, vecvault $VV"
for r in $(seq 1 "$REPS"); do
	if [ $((r % 2)) = 1 ]; then order="on off"; else order="off on"; fi
	for mode in $order; do run_one "$mode"; done
	echo "# rep $r/$REPS done"
done

"$PY" - "$RES" <<'EOF'
import statistics as st, sys
rows = [l.split() for l in open(sys.argv[1])]
def cell(v):
    return "%.3f (%.3f-%.3f)" % (st.median(v), min(v), max(v))
print("%-7s %-4s %-24s %-24s %s" % ("work", "log", "daemon CPU s", "wall s", "records"))
for w in ("small", "bulk"):
    med = {}
    for m in ("on", "off"):
        r = [x for x in rows if x[0] == w and x[1] == m]
        cpu = [float(x[2]) for x in r]; wall = [float(x[3]) for x in r]
        rec = [int(x[4]) for x in r]
        med[m] = (st.median(cpu), st.median(wall), st.median(rec))
        print("%-7s %-4s %-24s %-24s %d" % (w, m, cell(cpu), cell(wall), st.median(rec)))
    on, off = med["on"], med["off"]
    cost = 100.0 * (on[0] - off[0]) / off[0] if off[0] else float("nan")
    per = 1e6 * (on[0] - off[0]) / on[2] if on[2] else float("nan")
    print("%-7s audit cost: %+.1f%% of the daemon's CPU (target <= 5%%), wall %+.1f%%, "
          "%.1f us CPU per record (%s)" % (w, cost, 100.0 * (on[1] - off[1]) / off[1], per,
          "ok" if cost <= 5 else "MISS"))
EOF
