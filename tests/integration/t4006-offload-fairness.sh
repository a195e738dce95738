#!/bin/bash
# t4006-offload-fairness: one user hammering the query offload cannot stall
# anyone else (docs/query.md "Limits", docs/security.md "Offload limits").
# uid 65534 makes a 256 MiB sparse segment and floods the daemon with scan
# requests from several processes, the largest batch the work budget
# allows; meanwhile root's cat of a small file, a tar x of 300 small files
# and root's own offloaded query all complete with the right bytes (their
# speed is measured by tests/bench/offload-stall-bench.sh, never asserted
# here).  The 1017-query request of the original report is refused E2BIG,
# a flood past 4 queued requests per uid gets EBUSY, and the tool falls
# back to scanning itself on each.  Killing the flooders mid-request
# leaves a daemon that serves and unmounts cleanly.  And with many one-row
# segments cached, a write drops exactly its own entry.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
vv_init "$S" >/dev/null 2>&1
vv_mount "$S" "$M" --knn-cache 2G
mkdir -m 1777 "$M/pub"

IOC=$T/knn_ioc.py                   # readable by uid 65534 wherever the source is
cp "$VV_SRC/tests/integration/lib/knn_ioc.py" "$IOC"
SEG=$M/pub/big.npy
check "uid 65534 makes a 256 MiB sparse segment" \
	as_nobody "$PY" "$IOC" sparse "$SEG" $((256 << 20))

# root's material: a small file, a tree to untar, a small collection
printf 'nine byte' > "$M/small.txt"
mkdir -p "$T/src/tree"
"$PY" - "$T/src/tree" <<'PY'
import os, random, sys
r = random.Random(4004)
for i in range(300):
    d = os.path.join(sys.argv[1], "d%02d" % (i // 30))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%03d" % i), "wb") as f:
        f.write(bytes(r.getrandbits(8) for _ in range(r.randint(1, 6000))))
PY
tar -C "$T/src" -cf "$T/tree.tar" tree
mkdir "$M/coll"
"$PY" - "$M/coll/a.fvecs" "$T/q.fvecs" <<'PY'
import random, struct, sys
r = random.Random(7)
with open(sys.argv[1], "wb") as f:
    for i in range(5000):
        f.write(struct.pack("<i8f", 8, *[r.uniform(-1, 1) for _ in range(8)]))
with open(sys.argv[2], "wb") as f:
    f.write(struct.pack("<i8f", 8, *[r.uniform(-1, 1) for _ in range(8)]))
PY
"$VV_BIN" query "$M/coll" -q "$T/q.fvecs" -k 5 --no-offload > "$T/ref.out"

# the flood: six processes of uid 65534
STOP=$T/stop
A=$T/att                            # the flooders' reports (uid 65534 writes them)
mkdir -m 1777 "$A"
# flood N FIRST: start N flooders (setpriv execs python: $! is the flooder)
FLOOD=
flood() {
	local i
	for i in $(seq "$2" $(($2 + $1 - 1))); do
		setpriv --reuid=65534 --regid=65534 --clear-groups -- \
			"$PY" "$IOC" attack "$SEG" "$STOP" "$A/$i" &
		FLOOD="$FLOOD $!"
	done
}
flood 6 1
hot() {
	local i
	for i in $(seq 600); do
		ls "$A"/*.hot >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}
check "the flood is on: the daemon answers uid 65534's scans" hot

cats_ok() {
	local i
	for i in $(seq 40); do
		[ "$(cat "$M/small.txt")" = "nine byte" ] || return 1
	done
}
check "under the flood: root's cat of a small file, 40 times, right bytes" cats_ok
check "under the flood: root's tar x of 300 small files completes" \
	tar -C "$M" -xf "$T/tree.tar"
check "and the extracted tree equals the source" diff -r "$T/src/tree" "$M/tree"
root_offloaded() {
	local i
	for i in $(seq 300); do
		# small segment: offload it anyway (default: from 1 MiB, docs/query.md)
		VV_KNN_OFFLOAD_MIN=0 "$VV_BIN" query "$M/coll" -q "$T/q.fvecs" -k 5 --stats \
			> "$T/q.out" 2> "$T/q.stats" || return 1
		cmp -s "$T/q.out" "$T/ref.out" || return 1
		grep -q "offload: 1 of 1 segments scanned by the daemon" "$T/q.stats" && return 0
		sleep 0.1
	done
	return 1
}
check "under the flood: root's query is served by the offload, same results" root_offloaded

touch "$STOP"
wait
total() { cat "$A"/[0-9] | "$PY" -c '
import json, sys
t = {}
for line in sys.stdin.read().replace("}{", "}\n{").splitlines():
    for k, v in json.loads(line).items():
        t[k] = t.get(k, 0) + (v if isinstance(v, int) else (1 if v == sys.argv[1] else 0))
print(t.get(sys.argv[2], 0))' "$1" "$2"; }
check "the 1017-query request on 16M rows is refused E2BIG (work budget), for all six" \
	test "$(total E2BIG big)" -eq 6
check "uid 65534 got answers (the flood was served, not just refused)" test "$(total x OK)" -gt 0
check "six flooders, four scans queued per uid at most: some were told EBUSY" \
	test "$(total x EBUSY)" -gt 0

# killed in the middle of their requests: the daemon serves on and unmounts
rm -f "$STOP" "$A"/*.hot
FLOOD=
flood 4 11
hot || true
kill -KILL $FLOOD 2>/dev/null || true
wait 2>/dev/null || true
check "after the flooders were killed mid-request: root's cat still works" cats_ok

# many cached segments: a write drops the right one (the hash by inode)
mkdir "$M/many"
check "1000 one-row segments cached; a write drops exactly its own entry" \
	"$PY" "$IOC" many "$M/many" "${VV_TEST_KNN_SEGS:-1000}"

check "unmount completes and the daemon exits" vv_umount "$M"
check "the store is consistent afterwards (fsck)" "$VV_BIN" fsck "$S" --passfile "$PASSFILE"
test_done
