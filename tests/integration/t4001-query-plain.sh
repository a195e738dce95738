#!/bin/bash
# t4001-query-plain: `vecvault query` on a plain directory of segments
# (npy f32/f16/u8-free mix, fvecs, id sidecar, rsync temp and junk files)
# against a float64 numpy brute force; output formats; bad segments;
# --skip-bad; ivecs refusing int64 ids; EACCES for an unreadable segment.
set -u
: "${VV_BIN:?VV_BIN must point at the vecvault binary}"
PY=/usr/bin/python3
$PY -c 'import numpy' 2>/dev/null || { echo "# no numpy"; exit 77; }
"$VV_BIN" query --help >/dev/null 2>&1 || { echo "# $VV_BIN has no query verb"; exit 77; }

T=$(mktemp -d /tmp/t4001.XXXXXX)
trap 'chmod -R u+rwX "$T" 2>/dev/null; rm -rf "$T"' EXIT
n=0 fail=0
check() { n=$((n+1)); if "$@"; then echo "ok $n - $DESC"; else echo "not ok $n - $DESC"; fail=$((fail+1)); fi; }

mkdir -p "$T/c"
$PY - "$T" <<'PY'
import numpy as np, sys, os
T = sys.argv[1]; c = T + "/c"
rng = np.random.default_rng(4001)
d = 24
centers = rng.standard_normal((20, d)) * 3
def clus(n): return (centers[rng.integers(0, 20, n)] + rng.standard_normal((n, d))).astype('<f4')
a, b, e = clus(3000), clus(2000), clus(1500)
np.save(c + "/a.npy", a)
np.save(c + "/a.ids.npy", (np.arange(3000) * 7 + 10**10).astype('<i8'))
with open(c + "/b.fvecs", "wb") as f:
    for r in b: np.int32(d).tofile(f); r.tofile(f)
with open(c + "/e.npy", "wb") as f:
    np.lib.format.write_array(f, e, version=(2, 0))
eh = e
os.mkdir(T + "/c16")
h16 = clus(800).astype('<f2'); np.save(T + "/c16/h.npy", h16)
np.save(T + "/X16.npy", h16.astype(np.float64)); np.save(T + "/ids16.npy", np.arange(800))
open(c + "/.b.fvecs.A1b2C3", "wb").write(b"partial rsync temp")
open(c + "/notes.txt", "w").write("not a segment")
q = clus(50); q[0] = b[17]
np.save(T + "/q.npy", q)
with open(T + "/q.fvecs", "wb") as f:
    for r in q: np.int32(d).tofile(f); r.tofile(f)
X = np.vstack([a.astype(np.float64), b.astype(np.float64), eh.astype(np.float64)])
ids = np.concatenate([np.arange(3000) * 7 + 10**10, 3000 + np.arange(2000), 5000 + np.arange(1500)])
Q = q.astype(np.float64)
np.save(T + "/X.npy", X); np.save(T + "/ids.npy", ids); np.save(T + "/Q.npy", Q)
PY

# compare: OUT (text) vs reference for metric M, k K
cmp_ref() {
	$PY - "$T" "$1" "$2" "$3" "${4:-}" <<'PY'
import numpy as np, sys
T, out, m, k, sfx = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
X, ids, Q = np.load(T + "/X%s.npy" % sfx), np.load(T + "/ids%s.npy" % sfx), np.load(T + "/Q.npy")
if m == "l2": D = (Q**2).sum(1)[:, None] - 2 * Q @ X.T + (X**2).sum(1)[None]; key = D
elif m == "ip": D = Q @ X.T; key = -D
else:
    D = 1 - (Q @ X.T) / np.linalg.norm(Q, axis=1)[:, None] / np.linalg.norm(X, axis=1)[None]; key = D
got = {}
for line in open(out):
    qi, rank, i, s, seg, row = line.split("\t")
    got.setdefault(int(qi), []).append((int(i), float(s)))
TOL = 1e-5
bad = 0
for qi in range(len(Q)):
    order = np.lexsort((np.arange(len(X)), key[qi]))
    kth = key[qi][order[k - 1]]
    g = got.get(qi, [])
    if len(g) != k: bad += 1; print("# q%d: %d results" % (qi, len(g))); continue
    for r, (i, s) in enumerate(g):
        j = np.nonzero(ids == i)[0][0]
        ref_key = key[qi][j]
        # the reported score is this row's distance, and the row is within
        # tolerance of the k-th best; where ids differ, distances tie
        if abs(D[qi][j] - s) > TOL * (1 + abs(s)) or ref_key > kth + TOL * (1 + abs(kth)):
            bad += 1; print("# q%d rank %d id %d score %g ref %g kth %g" % (qi, r, i, s, D[qi][j], kth))
        if i != ids[order[r]] and abs(key[qi][order[r]] - ref_key) > TOL * (1 + abs(ref_key)):
            bad += 1; print("# q%d rank %d id %d want %d" % (qi, r, i, ids[order[r]]))
sys.exit(1 if bad else 0)
PY
}

for m in l2 ip cosine; do
	for th in 1 2; do
		"$VV_BIN" query "$T/c" -q "$T/q.npy" -k 10 --metric $m --threads $th > "$T/out.$m.$th" 2> "$T/err"
		DESC="query $m threads=$th exits 0"; check test $? -eq 0
		DESC="query $m threads=$th matches numpy float64 brute force"; check cmp_ref "$T/out.$m.$th" $m 10
	done
done
"$VV_BIN" query "$T/c16" -q "$T/q.npy" -k 10 --metric cosine > "$T/out.16"
DESC="float16 npy collection matches brute force"; check cmp_ref "$T/out.16" cosine 10 16
"$VV_BIN" query "$T/c" -q "$T/q.fvecs" -k 7 > "$T/out.fv"
DESC="fvecs queries, k=7"; check cmp_ref "$T/out.fv" l2 7
"$VV_BIN" query "$T/c" --vector "$($PY -c "import numpy as np; print(','.join(map(repr, np.load('$T/Q.npy')[0].tolist())))")" -k 1 > "$T/out.v"
DESC="--vector finds the duplicated row (b.fvecs row 17, id 3017) at distance 0"
check grep -qP '^0\t1\t3017\t0\tb.fvecs\t17$' "$T/out.v"

"$VV_BIN" query "$T/c" -q "$T/q.npy" -k 5 --format npy -o "$T/ids.npy" 
DESC="npy output keeps int64 ids"
check $PY -c "
import numpy as np, sys
a = np.load('$T/ids.npy'); ref = [l.split('\t') for l in open('$T/out.l2.1')]
ok = a.dtype == np.int64 and a.shape == (50, 5) and a.max() >= 10**10
ok = ok and all(int(r[2]) == a[int(r[0]), int(r[1]) - 1] for r in ref if int(r[1]) <= 5)
sys.exit(0 if ok else 1)"
"$VV_BIN" query "$T/c" -q "$T/q.npy" -k 5 --format json > "$T/out.json"
DESC="json output parses"; check $PY -c "import json; d = json.load(open('$T/out.json')); assert len(d['results']) == 50 and len(d['results'][0]) == 5"
"$VV_BIN" query "$T/c" -q "$T/q.npy" -k 5 --format ivecs -o "$T/out.ivecs" 2> "$T/err"
DESC="ivecs refuses ids past int32 with a clear message"
check bash -c "grep -q 'does not fit' '$T/err' && test ! -e '$T/out.ivecs'"
mv "$T/c/a.ids.npy" "$T/a.ids.keep"
"$VV_BIN" query "$T/c" -q "$T/q.npy" -k 5 --format ivecs -o "$T/out.ivecs"
DESC="ivecs without big ids: global row numbers"
check $PY -c "
import numpy as np, sys
a = np.fromfile('$T/out.ivecs', dtype='<i4').reshape(50, 6)
sys.exit(0 if (a[:, 0] == 5).all() and a[0, 1] == 3017 else 1)"
mv "$T/a.ids.keep" "$T/c/a.ids.npy"

# hostile segments: the query stops and names the file, or skips it
$PY -c "import numpy as np; np.save('$T/c/f.npy', np.asfortranarray(np.ones((3, 24), '<f4')))"
"$VV_BIN" query "$T/c" -q "$T/q.npy" > /dev/null 2> "$T/err"; rc=$?
DESC="Fortran-order segment stops the query, naming the file"
check bash -c "test $rc -ne 0 && grep -q 'f.npy' '$T/err' && grep -qi 'fortran' '$T/err'"
"$VV_BIN" query "$T/c" -q "$T/q.npy" -k 10 --skip-bad > "$T/out.skip" 2> "$T/err"; rc=$?
DESC="--skip-bad skips it, says so, same results"
check bash -c "test $rc -eq 0 && grep -q 'skipping.*f.npy' '$T/err' && cmp -s '$T/out.skip' '$T/out.l2.2'"
rm "$T/c/f.npy"
head -c 1010 "$T/c/b.fvecs" > "$T/c/g.fvecs"
"$VV_BIN" query "$T/c" -q "$T/q.npy" > /dev/null 2> "$T/err"; rc=$?
DESC="truncated fvecs stops the query"; check bash -c "test $rc -ne 0 && grep -q 'g.fvecs.*truncated' '$T/err'"
rm "$T/c/g.fvecs"
$PY -c "import numpy as np; np.save('$T/c/h.npy', np.ones((3, 16), '<f4'))"
"$VV_BIN" query "$T/c" -q "$T/q.npy" > /dev/null 2> "$T/err"; rc=$?
DESC="dimension mismatch stops the query"; check bash -c "test $rc -ne 0 && grep -q 'h.npy.*dimension' '$T/err'"
rm "$T/c/h.npy"
$PY -c "import numpy as np; np.save('$T/c/i.npy', np.ones((3, 24), '<f8'))"
"$VV_BIN" query "$T/c" -q "$T/q.npy" > /dev/null 2> "$T/err"; rc=$?
DESC="wrong dtype stops the query"; check bash -c "test $rc -ne 0 && grep -q 'i.npy.*dtype' '$T/err'"
rm "$T/c/i.npy"

"$VV_BIN" stats "$T/c" > "$T/stats"; rc=$?
DESC="stats totals"; check bash -c "test $rc -eq 0 && grep -q 'segments 3  vectors 6500' '$T/stats'"

# EACCES: a segment the caller may not read
if command -v setpriv >/dev/null && [ "$(id -u)" = 0 ]; then
	chmod 755 "$T" "$T/c"; chmod 644 "$T"/c/* "$T/q.npy"; chmod 000 "$T/c/b.fvecs"
	setpriv --reuid=65534 --regid=65534 --clear-groups "$VV_BIN" query "$T/c" -q "$T/q.npy" > /dev/null 2> "$T/err2"; rc=$?
	DESC="uid 65534 without read permission: EACCES naming the file, exit non-zero"
	check bash -c "test $rc -ne 0 && grep -q 'b.fvecs: Permission denied' '$T/err2'"
	chmod 644 "$T/c/b.fvecs"
else
	echo "ok $((n+1)) # SKIP not root or no setpriv"; n=$((n+1))
fi

echo "1..$n"
[ $fail -eq 0 ]
