#!/bin/bash
# t4002-query-mount: vector collections on a real vecvault mount.
# `vecvault collection create` sets the schema xattrs; segments copied in
# show computed user.vecvault.{format,dtype,dim,count}; `vecvault stats`;
# `vecvault query` (l2/ip/cosine, k 1 and 10, text/json/npy/ivecs) against a
# float64 numpy brute force; a wrong-dimension segment is refused naming the
# file (--skip-bad skips it, saying so); rsync temporaries are ignored;
# `cp -a` and `rsync -aX` round trips (computed xattrs written back) and the
# copies query the same; computed xattrs refuse other values; a uid without
# permission gets EACCES from the query and the denial is audited.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

vv_need_numpy

S=$T/store
M=$T/mnt
G=$T/gen
mkdir -p "$G"
vv_init "$S" >/dev/null 2>&1
vv_mount "$S" "$M"

# Data: 2 clustered segments of dim 64 (npy with int32-sized ids, fvecs
# without), queries, a float64 reference matrix, a wrong-dim segment, junk.
"$PY" - "$G" <<'PY'
import numpy as np, sys
G = sys.argv[1]
rng = np.random.default_rng(4002)
d = 64
centers = rng.standard_normal((16, d)) * 3
def clus(n): return (centers[rng.integers(0, 16, n)] + rng.standard_normal((n, d))).astype('<f4')
a, b = clus(3000), clus(2000)
np.save(G + "/s1.npy", a)
ida = (np.arange(3000) * 3 + 100000).astype('<i8')
np.save(G + "/s1.ids.npy", ida)
with open(G + "/s2.fvecs", "wb") as f:
    for r in b: np.int32(d).tofile(f); r.tofile(f)
q = clus(40); q[0] = b[5]
np.save(G + "/q.npy", q)
np.save(G + "/bad.npy", rng.standard_normal((10, 32)).astype('<f4'))
np.save(G + "/X.npy", np.vstack([a, b]).astype(np.float64))
np.save(G + "/ids.npy", np.concatenate([ida, 3000 + np.arange(2000)]))
np.save(G + "/Q.npy", q.astype(np.float64))
PY

# cmp_ref OUT METRIC K: text output OUT equals the float64 brute force
# (lib/knn_ref.py: scores within 1e-5 relative; an id may differ only at a
# distance tie).
cmp_ref() {
	"$PY" "$VV_SRC/tests/integration/lib/knn_ref.py" "$G/X.npy" "$G/ids.npy" "$G/Q.npy" "$1" "$2" "$3"
}

# xattr_is FILE NAME VALUE: getfattr -d on FILE lists NAME="VALUE" exactly once.
xattr_is() {
	local n
	n=$(getfattr -d "$1" 2>/dev/null | grep -c "^$2=\"$3\"\$") || true
	[ "$n" = 1 ] || { echo "# $1: $2 listed $n times with value $3:"; getfattr -d "$1" 2>&1 | sed 's/^/#   /'; return 1; }
}

# quiet_ok NAME CMD...: CMD succeeds and writes nothing to stderr.
quiet_ok() {
	local name=$1 rc=0
	shift
	"$@" 2> "$T/qerr" || rc=$?
	if [ "$rc" -eq 0 ] && [ ! -s "$T/qerr" ]; then test_ok "$name"; else
		echo "# exit $rc, stderr:"; sed 's/^/#   /' "$T/qerr"
		test_fail "$name"
	fi
}

C=$M/products
check "collection create --dim 64 --metric l2" "$VV_BIN" collection create "$C" --dim 64 --metric l2
check "getfattr -d shows dim 64" xattr_is "$C" user.vecvault.dim 64
check "getfattr -d shows metric l2" xattr_is "$C" user.vecvault.metric l2
cp "$G/s1.npy" "$G/s1.ids.npy" "$G/s2.fvecs" "$C/"
check "npy segment: count 3000" xattr_is "$C/s1.npy" user.vecvault.count 3000
check "npy segment: dim 64, format npy, dtype f32" eval \
	'xattr_is "$C/s1.npy" user.vecvault.dim 64 && xattr_is "$C/s1.npy" user.vecvault.format npy && xattr_is "$C/s1.npy" user.vecvault.dtype f32'
check "fvecs segment: count 2000, dim 64" eval \
	'xattr_is "$C/s2.fvecs" user.vecvault.count 2000 && xattr_is "$C/s2.fvecs" user.vecvault.dim 64'
check "id sidecar has no computed xattrs" eval '! getfattr -d "$C/s1.ids.npy" 2>/dev/null | grep -q vecvault'
"$VV_BIN" stats "$C" > "$T/stats" 2>&1 || true
check "vecvault stats: 2 segments, 5000 vectors, dim 64, l2" \
	grep -q 'segments 2  vectors 5000 .* dim 64 .*metric l2  bad 0' "$T/stats"

# an rsync temporary (and another non-segment file) are present throughout
head -c 777 "$G/s2.fvecs" > "$C/.s2.fvecs.AbC123"
echo "notes" > "$C/README"

for m in l2 ip cosine; do
	for k in 1 10; do
		rc=0
		"$VV_BIN" query "$C" -q "$G/q.npy" -k $k --metric $m > "$T/out.$m.$k" 2> "$T/err" || rc=$?
		check "query $m -k $k exits 0 (rsync temp ignored)" test "$rc" -eq 0 -a ! -s "$T/err"
		check "query $m -k $k equals the numpy float64 brute force" cmp_ref "$T/out.$m.$k" $m $k
	done
done
"$VV_BIN" query "$C" -q "$G/q.npy" -k 10 --threads 2 > "$T/out.t2"
check "--threads 2 gives the same results" cmp -s "$T/out.t2" "$T/out.l2.10"
check "the duplicated row is found at distance 0 (s2.fvecs row 5, id 3005)" \
	grep -qP '^0\t1\t3005\t0\ts2.fvecs\t5$' "$T/out.l2.1"

# output formats agree with the text output
"$VV_BIN" query "$C" -q "$G/q.npy" -k 10 --format json -o "$T/out.json"
"$VV_BIN" query "$C" -q "$G/q.npy" -k 10 --format npy -o "$T/out.npy"
"$VV_BIN" query "$C" -q "$G/q.npy" -k 10 --format ivecs -o "$T/out.ivecs"
check "json, npy and ivecs outputs hold the text output's ids and scores" "$PY" - "$T" <<'PY'
import json, numpy as np, sys
T = sys.argv[1]
txt = np.zeros((40, 10), np.int64); sc = np.zeros((40, 10))
for l in open(T + "/out.l2.10"):
    q, r, i, s, seg, row = l.split("\t")
    txt[int(q), int(r) - 1] = int(i); sc[int(q), int(r) - 1] = float(s)
j = json.load(open(T + "/out.json"))
ok = j["metric"] == "l2" and j["k"] == 10 and len(j["results"]) == 40
ok = ok and all(h["id"] == txt[q, r] and abs(h["score"] - sc[q, r]) <= 1e-6 * (1 + sc[q, r])
                for q in range(40) for r, h in enumerate(j["results"][q]))
a = np.load(T + "/out.npy")
ok = ok and a.dtype == np.int64 and a.shape == (40, 10) and (a == txt).all()
iv = np.fromfile(T + "/out.ivecs", dtype="<i4").reshape(40, 11)
ok = ok and (iv[:, 0] == 10).all() and (iv[:, 1:] == txt).all()
sys.exit(0 if ok else 1)
PY

# a segment with the wrong dimension
cp "$G/bad.npy" "$C/bad.npy"
rc=0
"$VV_BIN" query "$C" -q "$G/q.npy" -k 10 > /dev/null 2> "$T/err" || rc=$?
check "wrong-dim segment stops the query, naming the file and the problem" \
	eval 'test $rc -eq 1 && grep -q "bad.npy.*dimension" "$T/err"'
rc=0
"$VV_BIN" query "$C" -q "$G/q.npy" -k 10 --skip-bad > "$T/out.skip" 2> "$T/err" || rc=$?
check "--skip-bad skips it, says so, same results" \
	eval 'test $rc -eq 0 && grep -q "skipping.*bad.npy" "$T/err" && cmp -s "$T/out.skip" "$T/out.l2.10"'
rm "$C/bad.npy"

# computed xattrs: the current value may be written back, nothing else
check "setfattr of a computed xattr to its current value is accepted" \
	setfattr -n user.vecvault.count -v 3000 "$C/s1.npy"
expect_errno EPERM setxattr "$C/s1.npy" user.vecvault.count 7
expect_errno EPERM setxattr "$C/s2.fvecs" user.vecvault.dim 32
expect_errno EINVAL setxattr "$C" user.vecvault.metric manhattan
expect_errno EINVAL setxattr "$C" user.vecvault.dim 0
check "schema unchanged after refused writes" xattr_is "$C" user.vecvault.metric l2

# cp -a of segments to other names, into another collection
mkdir "$M/copy"
quiet_ok "cp -a s1.npy (+ids) and s2.fvecs to other names" eval \
	'cp -a "$C/s1.npy" "$M/copy/a.npy" && cp -a "$C/s1.ids.npy" "$M/copy/a.ids.npy" && cp -a "$C/s2.fvecs" "$M/copy/b.fvecs"'
check "cp -a copy shows computed xattrs once" xattr_is "$M/copy/a.npy" user.vecvault.count 3000
"$VV_BIN" query "$M/copy" -q "$G/q.npy" -k 10 --metric l2 > "$T/out.copy" 2>&1 || true
check "cp -a copies query the same" eval \
	'diff <(cut -f1-4 "$T/out.copy") <(cut -f1-4 "$T/out.l2.10") > /dev/null'

# rsync -aX of the whole collection into a second collection
quiet_ok "rsync -aX of the collection into products2" rsync -aX "$C/" "$M/products2/"
check "products2 has the schema" eval \
	'xattr_is "$M/products2" user.vecvault.dim 64 && xattr_is "$M/products2" user.vecvault.metric l2'
# seg_xattrs FILE FORMAT COUNT: each computed xattr listed once, right value
seg_xattrs() {
	local a
	for a in "format:$2" dtype:f32 dim:64 "count:$3"; do
		xattr_is "$1" "user.vecvault.${a%%:*}" "${a#*:}" || return 1
	done
}
check "rsync'd npy segment lists each computed xattr once" seg_xattrs "$M/products2/s1.npy" npy 3000
check "rsync'd fvecs segment lists each computed xattr once" seg_xattrs "$M/products2/s2.fvecs" fvecs 2000
check "a second rsync -aX (in place, xattrs only) succeeds" rsync -aX "$C/" "$M/products2/"
"$VV_BIN" query "$M/products2" -q "$G/q.npy" -k 10 > "$T/out.r2" 2>&1 || true
check "rsync'd collection queries the same" cmp -s "$T/out.r2" "$T/out.l2.10"
"$VV_BIN" stats "$M/products2" > "$T/stats2" 2>&1 || true
check "stats of the rsync'd collection" grep -q 'segments 2  vectors 5000 ' "$T/stats2"

# a uid without permission: EACCES, a clear message, non-zero exit, audited
chmod 700 "$C"
rc=0
as_nobody "$VV_BIN" query "$C" -q "$G/q.npy" -k 10 > /dev/null 2> "$T/err" || rc=$?
check "uid 65534 on a 0700 collection: non-zero exit" test "$rc" -ne 0 -a "$rc" -lt 128
check "uid 65534: message names the collection and says Permission denied" \
	grep -q "products.*Permission denied" "$T/err"
# the audit log: $VECVAULT_AUDIT_DIR/STORE_ID/audit.log (one directory per store)
check "the denial is in the audit log (uid 65534, EACCES, lookup/open)" "$PY" - "$VECVAULT_AUDIT_DIR" <<'PY'
import glob, json, sys, time
def lines():
    for f in glob.glob(sys.argv[1] + "/*/audit.log") + glob.glob(sys.argv[1] + "/audit.log"):
        yield from open(f)
for attempt in range(50):
    for line in lines():
        e = json.loads(line)
        if e.get("uid") == 65534 and e.get("result") == "EACCES" and \
           e.get("op") in ("lookup", "open", "opendir") and e.get("path", "").startswith("/products"):
            sys.exit(0)
    time.sleep(0.1)
for line in lines():
    if '"uid":65534' in line or '"EACCES"' in line: print("# " + line.strip()[:230])
print("# (no matching entry; uid 65534 / EACCES entries above)")
sys.exit(1)
PY
chmod 755 "$C"
check "after chmod 755, uid 65534 can query" as_nobody "$VV_BIN" query "$C" -q "$G/q.npy" -k 1 -o /dev/null

vv_umount "$M"
test_done
