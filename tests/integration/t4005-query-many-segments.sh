#!/bin/bash
# t4005-query-many-segments: the same rows split in different ways answer
# the same.  One segment of 6000 rows, 60 segments of 100 rows, and ~800
# tiny segments (0 to 15 rows: empty ones, most with fewer rows than k,
# npy and fvecs mixed) hold identical data; `vecvault query` (l2, ip,
# cosine; 1 query and a 30-query batch; 1 and 2 threads) must report the
# same ids and scores for every layout, equal to a float64 numpy brute
# force, on a plain directory and through a real mount, with the offload
# (the single segment is large enough to be offloaded), without it, and
# with every tiny segment offloaded too (VV_KNN_OFFLOAD_MIN=0).  On the
# mount the whole output (segment names and rows too) equals the plain
# directory's byte for byte.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

vv_need_numpy

P=$T/plain
S=$T/store
M=$T/mnt
mkdir -p "$P"
"$PY" - "$T" <<'PY'
import numpy as np, os, sys
T = sys.argv[1]; P = T + "/plain"
rng = np.random.default_rng(4005)
n, d = 6000, 64
c = rng.standard_normal((12, d)) * 3
X = (c[rng.integers(0, 12, n)] + rng.standard_normal((n, d))).astype('<f4')
# exact duplicates of row 10 across segment boundaries: ties that must
# come out in (segment, row) order, i.e. by global row, in every layout
dup = [10, 99, 100, 101, 2047, 2048, 3333, 5999]
X[dup] = X[10]
q = (c[rng.integers(0, 12, 30)] + rng.standard_normal((30, d))).astype('<f4')
q[0] = X[10]
np.save(T + "/q30.npy", q); np.save(T + "/q1.npy", q[:1]); np.save(T + "/X.npy", X.astype(np.float64))
def fvecs(path, rows):
    with open(path, "wb") as f:
        for r in rows: np.int32(d).tofile(f); r.tofile(f)
for lay in ("one", "hundred", "tiny"): os.mkdir(P + "/" + lay)
np.save(P + "/one/all.npy", X)
for s in range(60): np.save(P + "/hundred/h%03d.npy" % s, X[s * 100:(s + 1) * 100])
r0 = s = 0
while r0 < n:
    k = min(int(rng.integers(0, 16)), n - r0) if s % 10 else 0     # every 10th empty
    if s % 3 == 1 and k: fvecs(P + "/tiny/t%04d.fvecs" % s, X[r0:r0 + k])
    else: np.save(P + "/tiny/t%04d.npy" % s, X[r0:r0 + k])
    r0 += k; s += 1
PY
NTINY=$(ls "$P/tiny" | wc -l)
echo "# tiny layout: $NTINY segments"

# refcheck OUT METRIC NQ: each query's 10 results (id, score) equal the
# float64 brute force: ids in order where distances do not tie within 1e-5
refcheck() {
	"$PY" - "$T" "$1" "$2" "$3" <<'PY'
import numpy as np, sys
T, out, m, nq = sys.argv[1:5]
X = np.load(T + "/X.npy"); Q = np.load(T + "/q%s.npy" % nq).astype(np.float64)
if m == "l2": D = ((Q[:, None, :] - X[None]) ** 2).sum(2); key = D
elif m == "ip": D = Q @ X.T; key = -D
else: D = 1 - (Q @ X.T) / np.linalg.norm(Q, axis=1)[:, None] / np.linalg.norm(X, axis=1)[None]; key = D
got = {}
for line in open(out):
    qi, rank, i, s = line.split("\t")[:4]
    got.setdefault(int(qi), []).append((int(i), float(s)))
bad = 0
for qi in range(len(Q)):
    order = np.lexsort((np.arange(len(X)), key[qi]))
    g = got.get(qi, [])
    if len(g) != 10: bad += 1; print("# q%d: %d results" % (qi, len(g))); continue
    for r, (i, s) in enumerate(g):
        want = order[r]
        if abs(D[qi][i] - s) > 1e-5 * (1 + abs(s)) or (i != want and abs(key[qi][want] - key[qi][i]) > 1e-5 * (1 + abs(key[qi][i]))):
            bad += 1; print("# q%d rank %d: id %d score %g, want id %d score %g" % (qi, r, i, s, want, D[qi][want]))
if m == "l2" and [i for i, _ in got[0][:8]] != [10, 99, 100, 101, 2047, 2048, 3333, 5999]:
    bad += 1; print("# exact ties not in row order: %s" % got[0][:8])
sys.exit(1 if bad else 0)
PY
}

# q DIR OUT NQ METRIC THREADS [args]: query; results to OUT, stats to OUT.stats
q() {
	local dir=$1 out=$2 nq=$3 m=$4 th=$5
	shift 5
	"$VV_BIN" query "$dir" -q "$T/q$nq.npy" -k 10 --metric "$m" --threads "$th" --stats "$@" \
		> "$out" 2> "$out.stats"
}
# same_ids A B: the same (query, rank, id, score) lines
same_ids() { cmp -s <(cut -f1-4 "$1") <(cut -f1-4 "$2"); }

# plain directory: every layout against the reference, and against each other
for m in l2 ip cosine; do
	for nq in 1 30; do
		q "$P/one" "$T/one.$m.$nq.2" "$nq" "$m" 2
		check "plain, 1 segment, $m, $nq queries: equals float64 brute force" \
			refcheck "$T/one.$m.$nq.2" "$m" "$nq"
		for lay in hundred tiny; do
			for th in 1 2; do
				q "$P/$lay" "$T/$lay.$m.$nq.$th" "$nq" "$m" "$th"
				check "plain, $lay layout, $m, $nq queries, $th threads: same ids and scores as 1 segment" \
					same_ids "$T/$lay.$m.$nq.$th" "$T/one.$m.$nq.2"
			done
		done
	done
done
check "plain, tiny layout: also equals the brute force" refcheck "$T/tiny.l2.30.2" l2 30

# the mount: copies of the three layouts
vv_init "$S" >/dev/null 2>&1
vv_mount "$S" "$M"
cp -r "$P/one" "$P/hundred" "$P/tiny" "$M/"
check "all $NTINY tiny segments copied in" test "$(ls "$M/tiny" | wc -l)" -eq "$NTINY"

# offloaded N OUT: the stats line says N segments were scanned by the daemon
offloaded() { grep -q "offload: $1 of" "$2.stats"; }
# wait_offload N DIR OUT NQ METRIC [env]: query until N segments are
# offloaded (the daemon decrypts each in the background first; <= 30 s)
wait_offload() {
	local n=$1 i
	shift
	for i in $(seq 150); do
		q "$@" 2 || return 1
		offloaded "$n" "$2" && return 0
		sleep 0.2
	done
	echo "# not offloaded: $(cat "$2.stats")"
	return 1
}

for lay in one hundred tiny; do
	for nq in 1 30; do
		q "$M/$lay" "$T/m.$lay.$nq.no" "$nq" l2 2 --no-offload
		check "mount, $lay, $nq queries, no offload: output equals the plain directory's" \
			cmp -s "$T/m.$lay.$nq.no" "$T/$lay.l2.$nq.2"
	done
done
check "mount, 1 segment of 1.5 MB: offloaded once the daemon holds it" \
	wait_offload 1 "$M/one" "$T/m.one.off" 1 l2
check "offloaded single segment: output equals the plain directory's" cmp -s "$T/m.one.off" "$T/one.l2.1.2"
q "$M/hundred" "$T/m.hundred.def" 1 l2 2
# no per-file request for them (below the crossover); since the directory
# request the daemon scans all but the first (which the open reads) by
# name, in one round trip per 256 names (t4009)
check "segments of 25 KB: no per-file request, 59 scanned by name, same output" \
	eval 'grep -q "directory offload: 59 of 60 segments" "$T/m.hundred.def.stats" &&
	      offloaded 59 "$T/m.hundred.def" && cmp -s "$T/m.hundred.def" "$T/hundred.l2.1.2" &&
	      [ "$(sed -n "s/.* in \([0-9]*\) directory requests.*/\1/p" "$T/m.hundred.def.stats")" = \
	        "$(sed -n "s/.*daemon in \([0-9]*\) requests.*/\1/p" "$T/m.hundred.def.stats")" ]'
for m in l2 cosine; do
	check "VV_KNN_OFFLOAD_MIN=0: all 60 small segments offloaded ($m), output equals plain" \
		eval 'VV_KNN_OFFLOAD_MIN=0 wait_offload 60 "$M/hundred" "$T/m.hundred.$m" 1 "$m" &&
		      cmp -s "$T/m.hundred.$m" "$T/hundred.$m.1.2"'
done
# tiny segments: the daemon answers empty ones and ones under k too
NONEMPTY=$(cd "$P/tiny" && "$PY" -c '
import os
print(sum(1 for f in os.listdir(".") if os.path.getsize(f) > (128 if f.endswith(".npy") else 0)))')
check "VV_KNN_OFFLOAD_MIN=0: the tiny segments are offloaded" \
	eval 'VV_KNN_OFFLOAD_MIN=0 wait_offload "$NTINY" "$M/tiny" "$T/m.tiny.off" 1 l2 ||
	      VV_KNN_OFFLOAD_MIN=0 wait_offload "$NONEMPTY" "$M/tiny" "$T/m.tiny.off" 1 l2'
check "offloaded tiny segments: output equals the plain directory's" \
	cmp -s "$T/m.tiny.off" "$T/tiny.l2.1.2"
VV_KNN_OFFLOAD_MIN=0 q "$M/tiny" "$T/m.tiny.off30" 30 ip 2
check "tiny segments, 30 queries, ip, offload allowed: output equals plain" \
	cmp -s "$T/m.tiny.off30" "$T/tiny.ip.30.2"

vv_umount "$M"
test_done
