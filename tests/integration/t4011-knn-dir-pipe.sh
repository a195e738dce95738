#!/bin/bash
# t4011-knn-dir-pipe: the directory request in two steps (each name
# prepared on the FUSE worker that received the ioctl, the scan on the
# offload's pool: docs/design.md "The directory request") answers as it
# did in one: u1000's requests, 4 in flight from 4 threads for 25 rounds,
# each equal to t4008's float64 numpy reference over the same 40 small
# fvecs (ties within and across files), the per-name errors unchanged
# (missing ENOENT, another format EINVAL, another user's 0600 file
# EACCES); then exactly one "scan" record per name per answered request
# (ok, EINVAL, EACCES; none for the missing name); and `vecvault query`
# over the directory prints with the offload what it prints without.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse
vv_need_numpy

S=$T/store
M=$T/mnt
vv_init "$S" >/dev/null 2>&1
vv_mount "$S" "$M"
C=$M/coll
mkdir -m 755 "$C"
ALOG=$(vv_audit_log "$S")

# t4008's files: 40 fvecs of dim 8, 1..20 rows of small integers (exact
# float32 distances), duplicated rows within and across files; other.npy
# asked as fvecs; and sec.fvecs, 0600 root's
"$PY" "$VV_SRC/tests/integration/lib/knn_dir_files.py" "$C" --secret
chmod 600 "$C/sec.fvecs"
seq0=$(vv_audit_q "$ALOG" count)

setpriv --reuid=1000 --regid=1000 --clear-groups -- "$PY" - "$C" "$VV_SRC/tests/integration/lib" \
	> "$T/out" 2>&1 <<'PY'
import numpy as np, os, sys, threading, time
sys.path.insert(0, sys.argv[2])
import knn_dir as K
C = sys.argv[1]
names = ["s%03d.fvecs" % i for i in range(40)]
names.insert(17, "other.npy")
names.insert(5, "missing.fvecs")
names.insert(30, "sec.fvecs")
want_err = {5: -2, 18: -22, 30: -13}
rng = np.random.default_rng(8)
q = rng.integers(-3, 4, (3, 8)).astype('<f4')
q[1] = 0
kk = 7
def load(n):
    b = np.fromfile(os.path.join(C, n), dtype='<f4').reshape(-1, 9)
    return b[:, 1:].astype(np.float64)
ref = []
for qi in range(len(q)):
    c = []
    qq = q[qi].astype(np.float64)
    for ni, n in enumerate(names):
        if not n.startswith("s0"): continue
        d = ((load(n) - qq) ** 2).sum(1)
        c += [(float(d[r]), ni, r) for r in range(len(d))]
    c.sort()
    ref.append(c[:kk])
bad, answered, busy = 0, 0, 0
mu = threading.Lock()
def run():
    global bad, answered, busy
    fd = os.open(C, os.O_RDONLY | os.O_DIRECTORY)
    for r in range(25):
        e, h, st, c = K.knn_dir(fd, list(q.ravel()), names, 8, kk)
        with mu:
            if e == "EBUSY": busy += 1; continue
            if e != "OK": print("# request", e); bad += 1; continue
            answered += 1
            for i, (err, rows) in enumerate(st):
                if err != want_err.get(i, 0):
                    print("# %s err %d" % (names[i], err)); bad += 1
            for qi in range(len(q)):
                got = [x for x in c[qi] if x[2] != K.NO_ROW]
                if [(n, row) for d, n, row in ref[qi]] != [(n, row) for d, n, row in got] or \
                   any(abs(a[0] - b[0]) > 1e-9 for a, b in zip(ref[qi], got)):
                    print("# q%d ref %s got %s" % (qi, ref[qi][:3], got[:3])); bad += 1
    os.close(fd)
ts = [threading.Thread(target=run) for i in range(4)]
for t in ts: t.start()
for t in ts: t.join()
print("answered", answered, "busy", busy, "bad", bad)
PY
cat "$T/out"
n=$(awk '/^answered/ { print $2 }' "$T/out")
check "4 in flight x 25: every answer equal to the reference, per-name errors unchanged" \
	grep -q ' bad 0$' "$T/out"
check "most requests answered (not EBUSY)" test "${n:-0}" -ge 50

# one record per name per answered request, after the scan
count() { vv_audit_q "$ALOG" count "seq>=$seq0" op=scan uid=1000 "$@"; }
wait_count() {
	local want=$1 i
	shift
	for i in $(seq 100); do
		[ "$(count "$@")" = "$want" ] && return 0
		sleep 0.1
	done
	echo "# $(count "$@") records, want $want: $*"
	return 1
}
check "each of the 40 segments: one ok record per answered request" \
	wait_count $((40 * n)) result=ok 'path~^/coll/s0[0-9][0-9]\.fvecs$'
check "s007.fvecs alone: $n ok records" wait_count "$n" result=ok 'path~^/coll/s007\.fvecs$'
check "other.npy: one EINVAL record per request" wait_count "$n" result=EINVAL 'path~^/coll/other\.npy$'
check "sec.fvecs: one EACCES record per request" wait_count "$n" result=EACCES 'path~^/coll/sec\.fvecs$'
check "missing.fvecs: no record" wait_count 0 'path~^/coll/missing\.fvecs$'

# the tool: the same output with and without the offload (the query run
# in a copy without the files it may not read or parse)
mkdir -m 755 "$M/tool"
cp "$C"/s0*.fvecs "$M/tool/"
"$PY" -c 'import numpy as np, sys; np.save(sys.argv[1], np.random.default_rng(3).integers(-3, 4, (5, 8)).astype("<f4"))' "$T/q.npy"
setpriv --reuid=1000 --regid=1000 --clear-groups -- "$VV_BIN" query "$M/tool" --queries "$T/q.npy" -k 9 \
	> "$T/with" 2>&1 || true
setpriv --reuid=1000 --regid=1000 --clear-groups -- "$VV_BIN" query "$M/tool" --queries "$T/q.npy" -k 9 \
	--no-offload > "$T/without" 2>&1 || true
check "vecvault query: the same output with and without the offload" \
	eval '[ -s "$T/with" ] && cmp "$T/with" "$T/without"'
test_done
