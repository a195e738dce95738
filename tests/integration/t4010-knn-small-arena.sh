#!/bin/bash
# t4010-knn-small-arena: the daemon's copies of small segments (the query
# offload's small entries, up to 120 KiB) live in its arena (knn_slab.c):
# one mapping advised huge pages and out of core dumps (smaps VmFlags hg
# and dd) whose resident bytes grow by the entries', not a mapping each;
# rewritten files are answered from their new bytes (the freed slots
# reused, the arena not grown by the second set), as root and u1000, the
# output the plain local scan (--no-offload) gives.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse
vv_need_numpy

S=$T/store
M=$T/mnt
vv_init "$S" >/dev/null 2>&1
vv_mount "$S" "$M"
C=$M/c
mkdir "$C"
pid=$(cat "$T/.pids/$(echo "$M" | tr / _)")

# gen SEED: 1,000 npy segments of 100 x 16 (6,528 bytes each)
gen() {
	"$PY" - "$C" "$1" <<'PY'
import numpy as np, sys
C, seed = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(seed)
for i in range(1000):
    np.save("%s/s%04d.npy" % (C, i), (rng.standard_normal((100, 16)) * seed).astype('<f4'))
PY
}
gen 1
"$PY" -c 'import numpy as np; np.save("'"$T"'/q.npy", np.random.default_rng(7).standard_normal((2, 16)).astype("<f4"))'

# arena_kb: resident kB of the daemon's mappings flagged both hg and dd
arena_kb() {
	awk '/^[0-9a-f]+-[0-9a-f]+ / { rss = 0 } /^Rss:/ { rss = $2 }
	     /^VmFlags:/ { if (/ hg/ && / dd/) t += rss } END { print t + 0 }' /proc/$pid/smaps
}
maps() { wc -l < /proc/$pid/maps; }
# q WHO OUT [args]: vecvault query as root or u1000, with --stats
q() {
	local who=$1 out=$2
	shift 2
	if [ "$who" = u1000 ]; then
		as_u1000 "$VV_BIN" query "$C" -q "$T/q.npy" -k 10 --stats "$@" > "$out" 2> "$out.stats"
	else
		"$VV_BIN" query "$C" -q "$T/q.npy" -k 10 --stats "$@" > "$out" 2> "$out.stats"
	fi
}
served() { sed -n 's/.*directory offload: \([0-9]*\) of.*/\1/p' "$1.stats"; }

a0=$(arena_kb)
m0=$(maps)
q root "$T/plain1" --no-offload
q root "$T/r1"
q root "$T/r1b"
a1=$(arena_kb)
m1=$(maps)
# (the tool opens the first segment itself: it reads its header)
check "999 of 1,000 small segments served by name" test "$(served "$T/r1b")" = 999
check "answers as the plain scan" cmp "$T/plain1" "$T/r1b"
check "and as the first query's" cmp "$T/plain1" "$T/r1"
check "their copies in a huge-page, no-dump mapping ($a0 -> $a1 kB)" test "$((a1 - a0))" -ge 6000
check "not a mapping each ($m0 -> $m1 maps)" test "$m1" -lt $((m0 + 50))
q u1000 "$T/u1"
check "u1000 gets the same answer" cmp "$T/plain1" "$T/u1"

# the same names with other bytes: each write drops its copy; the new
# copies take the freed slots
gen 3
q root "$T/plain2" --no-offload
q root "$T/r2"
q root "$T/r2b"
a2=$(arena_kb)
check "rewritten: the new bytes answer" cmp "$T/plain2" "$T/r2b"
check "from the first query on" cmp "$T/plain2" "$T/r2"
expect_fail "the plain scans differ (the test means something)" cmp -s "$T/plain1" "$T/plain2"
check "served by name again" test "$(served "$T/r2b")" = 999
check "the arena reused the freed slots ($a1 -> $a2 kB)" test "$a2" -le $((a1 + 4096))
q u1000 "$T/u2"
check "u1000 too" cmp "$T/plain2" "$T/u2"

test_done
