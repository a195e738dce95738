#!/bin/bash
# snap-bench.sh - what a snapshot costs (docs/design.md "Snapshots").
#
#   sudo tests/bench/snap-bench.sh [SCRATCH_DIR]
#
# 1. `vecvault snapshot create` on a vault holding DATA_GIB GiB of data
#    (default 10: a 1 GiB file and 64 MiB files) and FILES small files
#    (default "10000 50000 100000", grown in place): median of REPS (3)
#    creates at each size, their ratio to the first size's and the cost of
#    each file added (us), and `snapshot delete` likewise.  Goal: under 1 s at 100k files
#    and 10 GiB, and O(metadata): no chunk is copied (checked: the count of
#    chunk objects does not change).
# 2. Reading the 1 GiB file cold (remount, caches dropped) from
#    .snapshots/NAME/ against the live file, interleaved, medians of REPS;
#    printed as the ratio snapshot/live.  Goal: within 5%.
# Ratios are of numbers measured in the same run; absolute times on this
# shared 2-core machine are noisy.
set -eu
BENCH_NAME=snap-bench
HERE=$(cd "$(dirname "$0")" && pwd)
B=${1:-/tmp/vv-snap-bench}
FILES=${FILES:-"10000 50000 100000"}
DATA_GIB=${DATA_GIB:-10}
REPS=${REPS:-3}
mkdir -p "$B"
B=$(cd "$B" && pwd)
. "$HERE/fs-lib.sh"
bench_need_root "drops the page cache, mounts FUSE"
trap unmount_all EXIT
printf 'snap bench passphrase\n' > "$B/pass"
chmod 600 "$B/pass"
fs_setup vecvault
fs_mount vecvault
M=$B/vecvault/mnt
S=$B/vecvault/store

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
chunks() { find "$S/chunks" -type f ! -name '.tmp-*' | wc -l; }
# The daemon's CPU time (user + system, ms): steadier than wall time on a
# loaded machine.
dcpu() { awk -v hz="$(getconf CLK_TCK)" '{ print int(($14 + $15) * 1000 / hz) }' \
	"/proc/$(cat "$B/vecvault/pid")/stat"; }

note "data: 1 GiB file + $((DATA_GIB - 1)) GiB in 64 MiB files"
mkdir -p "$M/data"
dd if=/dev/urandom of="$M/data/big.bin" bs=1M count=1024 status=none
for i in $(seq 1 $(((DATA_GIB - 1) * 16))); do
	dd if=/dev/urandom of="$M/data/part-$i.bin" bs=1M count=64 status=none
done
sync "$M/data/big.bin"

have=0
echo "files      create_ms  delete_ms  create_vs_first  us/file_added  chunks_copied  create_cpu_ms  delete_cpu_ms"
first_cm=""; first_n=""
for n in $FILES; do
	"$PY" - "$M/small" "$have" "$n" <<'PY'
import os, sys
d, a, b = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(a, b):
    sub = "%s/d%03d" % (d, i % 100)
    if i < 100:
        os.makedirs(sub, exist_ok=True)
    with open("%s/f%06d" % (sub, i), "wb") as f:
        f.write(b"x" * 512)
PY
	have=$n
	sync "$M"
	c0=$(chunks)
	cs=""; ds=""; ccs=""; dcs=""
	for r in $(seq 1 "$REPS"); do
		u0=$(dcpu); t0=$(now_us); "$VV" snapshot create "$M" "b$n-$r" >/dev/null; t1=$(now_us); u1=$(dcpu)
		cs="$cs $(( (t1 - t0) / 1000 ))"; ccs="$ccs $((u1 - u0))"
	done
	c1=$(chunks)
	for r in $(seq 1 "$REPS"); do
		u0=$(dcpu); t0=$(now_us); "$VV" snapshot delete "$M" "b$n-$r" >/dev/null; t1=$(now_us); u1=$(dcpu)
		ds="$ds $(( (t1 - t0) / 1000 ))"; dcs="$dcs $((u1 - u0))"
	done
	cm=$(echo $cs | tr ' ' '\n' | median)
	dm=$(echo $ds | tr ' ' '\n' | median)
	ccm=$(echo $ccs | tr ' ' '\n' | median)
	dcm=$(echo $dcs | tr ' ' '\n' | median)
	[ -n "$first_cm" ] || { first_cm=$cm; first_n=$n; }
	growth=$(awk -v a="$cm" -v b="$first_cm" 'BEGIN { printf "%.2f", a / b }')
	per=$(awk -v a="$cm" -v b="$first_cm" -v n="$n" -v f="$first_n" \
		'BEGIN { if (n == f) print "-"; else printf "%.1f", (a - b) * 1000 / (n - f) }')
	printf '%-10s %-10s %-10s %-16s %-14s %-14s %-14s %s\n' "$n" "$cm" "$dm" "$growth" "$per" \
		"$((c1 - c0))" "$ccm" "$dcm"
done

"$VV" snapshot create "$M" read >/dev/null
echo
echo "cold read of 1 GiB   live_ms  snapshot_ms  live_cpu_ms  snapshot_cpu_ms"
ls_=""; ss=""; lc=""; sc=""
for r in $(seq 1 "$REPS"); do
	cold vecvault
	u0=$(dcpu); t0=$(now_us); cat "$M/data/big.bin" > /dev/null; t1=$(now_us); u1=$(dcpu)
	ls_="$ls_ $(( (t1 - t0) / 1000 ))"; lc="$lc $((u1 - u0))"
	cold vecvault
	u0=$(dcpu); t0=$(now_us); cat "$M/.snapshots/read/data/big.bin" > /dev/null; t1=$(now_us); u1=$(dcpu)
	ss="$ss $(( (t1 - t0) / 1000 ))"; sc="$sc $((u1 - u0))"
done
lm=$(echo $ls_ | tr ' ' '\n' | median)
sm=$(echo $ss | tr ' ' '\n' | median)
lcm=$(echo $lc | tr ' ' '\n' | median)
scm=$(echo $sc | tr ' ' '\n' | median)
printf 'median               %-8s %-12s %-12s %s\n' "$lm" "$sm" "$lcm" "$scm"
awk -v l="$lm" -v s="$sm" 'BEGIN { printf "ratio snapshot/live: %.3f (goal <= 1.05)\n", s / l }'
awk -v l="$lcm" -v s="$scm" 'BEGIN { if (l > 0) printf "daemon CPU ratio snapshot/live: %.3f\n", s / l }'
echo "meta.db: $(stat -c %s "$S/meta.db") bytes; load: $(cut -d' ' -f1-3 /proc/loadavg)"
fs_umount vecvault
