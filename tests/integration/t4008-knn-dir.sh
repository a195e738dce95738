#!/bin/bash
# t4008-knn-dir: the query offload's directory request (VV_IOC_KNN_DIR,
# knn_ioctl.h "the directory request") answers, for many small segments of
# one directory in one ioctl, what the per-file request (VV_IOC_KNN,
# version 2) answers for each file, merged by (exact distance, name index,
# row), and what a float64 numpy reference over all rows gives.  Ties
# (duplicate rows within and across files, k cutting through a tie) check
# the merge order; a name of another format is refused for itself only;
# the daemon's cache of small segments takes no mapping per entry.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse
vv_need_numpy

S=$T/store
M=$T/mnt
vv_init "$S" >/dev/null 2>&1
vv_mount "$S" "$M"
C=$M/coll
mkdir "$C"

# 40 fvecs of dim 8 with 1..20 rows of small integers (float32 distances are
# exact, so the float32 choice and the double order agree), rows copied
# within and across files for ties; one npy among them, asked as fvecs
"$PY" "$VV_SRC/tests/integration/lib/knn_dir_files.py" "$C"

"$PY" - "$C" "$VV_SRC/tests/integration/lib" > "$T/out" 2>&1 <<'PY'
import numpy as np, os, sys, time, math
sys.path.insert(0, sys.argv[2])
import knn_dir as K
C = sys.argv[1]
names = ["s%03d.fvecs" % i for i in range(40)]
names.insert(17, "other.npy")
names.insert(5, "missing.fvecs")
rng = np.random.default_rng(8)
q = rng.integers(-3, 4, (3, 8)).astype('<f4')
q[1] = 0
bad = 0
def load(n):
    b = np.fromfile(os.path.join(C, n), dtype='<f4').reshape(-1, 9)
    return b[:, 1:].astype(np.float64)
def ref(metric, kk):
    """every row of every fvecs name, (double distance, name index, row)"""
    out = []
    for qi in range(len(q)):
        c = []
        qq = q[qi].astype(np.float64)
        for ni, n in enumerate(names):
            if not n.startswith("s"): continue
            x = load(n)
            if metric == K.L2: d = ((x - qq) ** 2).sum(1)
            elif metric == K.IP: d = -(x @ qq)
            else:
                nx, nq = np.sqrt((x * x).sum(1)), math.sqrt((qq * qq).sum())
                d = np.where((nx > 0) & (nq > 0), 1 - (x @ qq) / np.maximum(nx * nq, 1e-300), 1.0)
            c += [(float(d[r]), ni, r) for r in range(len(x))]
        c.sort()
        out.append(c[:kk])
    return out
def ask(metric, kk):
    fd = os.open(C, os.O_RDONLY | os.O_DIRECTORY)
    for t in range(200):
        e, h, st, c = K.knn_dir(fd, list(q.ravel()), names, 8, kk, metric=metric)
        if e != "OK" or all(s[0] != -11 for s in st): break    # -EAGAIN
        time.sleep(0.05)
    os.close(fd)
    return e, h, st, c
def per_file(metric, kk):
    """VV_IOC_KNN version 2 on each file, merged by (d, name index, row)"""
    out = [[] for _ in q]
    for ni, n in enumerate(names):
        if not n.startswith("s"): continue
        fd = os.open(os.path.join(C, n), os.O_RDONLY)
        for t in range(200):
            e, r = K.knn(fd, list(q.ravel()), 8, kk, metric=metric)
            if e != "EAGAIN": break
            time.sleep(0.05)
        os.close(fd)
        if e != "OK": print("# per-file %s: %s" % (n, e)); return None
        for qi in range(len(q)):
            out[qi] += [(d, ni, row) for d, row in r[qi] if row != K.NO_ROW]
    return [sorted(o)[:kk] for o in out]
Q3 = q
for metric, kk, nq in ((K.L2, 7, 3), (K.L2, 1, 3), (K.IP, 5, 3), (K.COS, 9, 3), (K.L2, 600, 1)):
    q = Q3[:nq]
    e, h, st, c = ask(metric, kk)
    tag = "metric %d k %d" % (metric, kk)
    if e != "OK": print("# %s: %s" % (tag, e)); bad += 1; continue
    want_err = {5: -2, 18: -22}          # missing.fvecs ENOENT, other.npy EINVAL
    for i, (err, rows) in enumerate(st):
        w = want_err.get(i, 0)
        if err != w: print("# %s: name %s err %d, want %d" % (tag, names[i], err, w)); bad += 1
    total = sum(len(load(n)) for n in names if n.startswith("s"))
    if h["served"] != 40 or h["rows"] != total or h["magic"] != 0x524b4456:
        print("# %s: header %s (rows want %d)" % (tag, h, total)); bad += 1
    if any(st[i][1] != len(load(n)) for i, n in enumerate(names) if n.startswith("s")):
        print("# %s: per-name rows differ" % tag); bad += 1
    got = [[x for x in row if x[2] != K.NO_ROW] for row in c]
    if any(len(row) != kk for row in c) or \
       any(x[1] != K.NO_NAME for row in c for x in row if x[2] == K.NO_ROW):
        print("# %s: unused slots wrong" % tag); bad += 1
    pf = per_file(metric, kk)
    if pf != got: print("# %s: differs from the per-file requests merged" % tag); bad += 1
    r = ref(metric, kk)
    for qi in range(len(q)):
        if [(n, row) for d, n, row in r[qi]] != [(n, row) for d, n, row in got[qi]] or \
           any(abs(a[0] - b[0]) > 1e-9 for a, b in zip(r[qi], got[qi])):
            print("# %s q%d: ref %s got %s" % (tag, qi, r[qi][:4], got[qi][:4])); bad += 1
            break
print("bad", bad)
PY
check "the dir request equals the per-file requests and the numpy reference" \
	eval 'cat "$T/out"; grep -qx "bad 0" "$T/out"'

# the daemon's small entries: no mapping of their own (40 tiny segments
# cached, the daemon's map count grows by far fewer)
pid=$(cat "$T/.pids/$(echo "$M" | tr / _)")
maps() { wc -l < /proc/$pid/maps; }
"$PY" - "$C" <<'PY'
import numpy as np, sys
C = sys.argv[1]
for i in range(300):
    with open("%s/t%03d.fvecs" % (C, i), "wb") as f:
        np.int32(8).tofile(f); np.ones(8, '<f4').tofile(f)
PY
m0=$(maps)
"$PY" - "$C" "$VV_SRC/tests/integration/lib" > "$T/out2" <<'PY'
import os, sys
sys.path.insert(0, sys.argv[2])
import knn_dir as K
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
for base in (0, 150):
    e, h, st, c = K.knn_dir(fd, [0.0] * 8, ["t%03d.fvecs" % i for i in range(base, base + 150)], 8)
    print(e, h and h["served"])
PY
m1=$(maps)
check "300 tiny segments served in 2 requests" eval '[ "$(cat "$T/out2")" = "$(printf "OK 150\nOK 150")" ]'
check "their cache entries take no mapping each ($m0 -> $m1 maps)" test "$m1" -lt $((m0 + 50))

# the names served are scanned together: a row with a wrong dim word in
# one file fails the scan of all, so none is served and none is recorded
# as a failed scan (the tool reads them itself and names the bad one);
# without it the good file is served and recorded
B=$M/badrow
mkdir "$B"
"$PY" - "$B" <<'PY'
import numpy as np, sys
B = sys.argv[1]
for n, bad in (("good.fvecs", False), ("bad.fvecs", True)):
    with open("%s/%s" % (B, n), "wb") as f:
        for r in range(4):
            np.int32(9 if bad and r == 2 else 8).tofile(f); np.full(8, r, '<f4').tofile(f)
PY
"$PY" - "$B" "$VV_SRC/tests/integration/lib" > "$T/out3" <<'PY'
import os, sys
sys.path.insert(0, sys.argv[2])
import knn_dir as K
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
for names in (["good.fvecs", "bad.fvecs"], ["good.fvecs"]):
    e, h, st, c = K.knn_dir(fd, [0.0] * 8, names, 8)
    print(e, h and h["served"], [s[0] != 0 for s in st])
PY
check "a bad row in one file: neither name served; the good one alone is" \
	eval '[ "$(cat "$T/out3")" = "$(printf "OK 0 [True, True]\nOK 1 [False]")" ]'
ALOG=$(vv_audit_log "$S")
vv_audit_has "$ALOG" op=scan result=ok 'path~^/badrow/good.fvecs$' >/dev/null
check "no scan record accuses either file of the failed scan" \
	eval '[ "$(vv_audit_q "$ALOG" count op=scan '"'"'path~^/badrow/'"'"' result!=ok)" = 0 ]'

test_done
