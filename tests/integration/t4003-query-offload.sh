#!/bin/bash
# t4003-query-offload: `vecvault query` on a mount has the daemon scan the
# segments it holds decrypted (knn_ioctl.h, docs/query.md "Offload").
# The first query starts the background decryption and scans locally; later
# ones are offloaded; every answer equals the same query on a plain copy.
# A write drops the daemon's copy (the next answer reflects the new bytes);
# scans are audited; another uid with read permission gets the offload too;
# the ioctl refuses write-only handles, bad requests and unknown commands;
# --knn-cache 0 and a cache smaller than the segments fall back cleanly;
# unmounting during a fill is clean.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

vv_need_numpy

S=$T/store
M=$T/mnt
P=$T/plain
mkdir -p "$P"
vv_init "$S" >/dev/null 2>&1
vv_mount "$S" "$M"

# three segments of dim 32: npy with ids, npy without, fvecs; 3 queries
"$PY" - "$P" <<'PY'
import numpy as np, sys
P = sys.argv[1]
rng = np.random.default_rng(4003)
d = 32
c = rng.standard_normal((8, d)) * 4
def clus(n): return (c[rng.integers(0, 8, n)] + rng.standard_normal((n, d))).astype('<f4')
a, b, e = clus(40000), clus(30000), clus(20000)
np.save(P + "/a.npy", a)
np.save(P + "/a.ids.npy", (np.arange(40000) * 7 + 11).astype('<i8'))
np.save(P + "/b.npy", b)
with open(P + "/e.fvecs", "wb") as f:
    for r in e: np.int32(d).tofile(f); r.tofile(f)
q = clus(3); q[1] = b[1234]
np.save(P + "/../q.npy", q)
PY
C=$M/coll
mkdir "$C"
cp "$P"/a.npy "$P"/a.ids.npy "$P"/b.npy "$P"/e.fvecs "$C/"
Q=$T/q.npy

# q DIR OUT [args]: query, results to OUT, stats to OUT.stats
q() {
	local dir=$1 out=$2
	shift 2
	"$VV_BIN" query "$dir" -q "$Q" -k 10 --stats "$@" > "$out" 2> "$out.stats"
}
# offloaded OUT N: the stats line says N of 3 segments were scanned by the daemon
offloaded() { grep -q "offload: $2 of 3 segments scanned by the daemon" "$1.stats"; }
# wait_offload DIR OUT [args]: query until all 3 segments are offloaded (<= 20 s)
wait_offload() {
	local i
	for i in $(seq 100); do
		q "$@" || return 1
		offloaded "$2" 3 && return 0
		sleep 0.2
	done
	return 1
}

q "$P" "$T/plain.l2"
check "first query on the mount succeeds" q "$C" "$T/m1"
check "first query: no segment offloaded yet, the daemon is decrypting" \
	eval 'offloaded "$T/m1" 0 && grep -q "[1-3] still being decrypted" "$T/m1.stats"'
check "first query equals the plain directory's" cmp -s "$T/m1" "$T/plain.l2"
check "later queries are offloaded (all 3 segments)" wait_offload "$C" "$T/m2"
check "offloaded l2 equals the plain directory's" cmp -s "$T/m2" "$T/plain.l2"
check "the planted duplicate is found at distance 0 (b.npy row 1234)" \
	grep -qP '^1\t1\t41234\t0\tb.npy\t1234$' "$T/m2"
for m in ip cosine; do
	q "$P" "$T/plain.$m" --metric $m
	q "$C" "$T/m.$m" --metric $m
	check "offloaded $m equals the plain directory's" \
		eval 'offloaded "$T/m.$m" 3 && cmp -s "$T/m.$m" "$T/plain.$m"'
done
q "$C" "$T/m.t1" --threads 1
check "--threads 1 offloaded, same results" eval 'offloaded "$T/m.t1" 3 && cmp -s "$T/m.t1" "$T/plain.l2"'
q "$C" "$T/m.no" --no-offload
check "--no-offload scans locally, same results" eval 'offloaded "$T/m.no" 0 && cmp -s "$T/m.no" "$T/plain.l2"'
VV_KNN_OFFLOAD=0 q "$C" "$T/m.env"
check "VV_KNN_OFFLOAD=0 scans locally" offloaded "$T/m.env" 0

# a write through the mount drops the daemon's copy of that segment
"$PY" - "$P/b.npy" "$C/b.npy" "$Q" <<'PY'
import numpy as np, sys
q = np.load(sys.argv[3])
for path in sys.argv[1:3]:          # row 777 becomes q0 (distance 0), in place
    with open(path, "r+b") as f:
        np.lib.format.read_magic(f)
        np.lib.format.read_array_header_1_0(f)
        f.seek(f.tell() + 777 * 32 * 4)
        f.write(q[0].astype("<f4").tobytes())
PY
q "$P" "$T/plain2"
check "plain reference sees the new row" grep -qP '^0\t1\t40777\t0\tb.npy\t777$' "$T/plain2"
q "$C" "$T/m3"
check "after the write, b.npy is not answered from the stale copy" \
	eval '! offloaded "$T/m3" 3 && cmp -s "$T/m3" "$T/plain2"'
check "then offloaded again, with the new data" wait_offload "$C" "$T/m4"
check "offloaded results after the write equal the plain directory's" cmp -s "$T/m4" "$T/plain2"

# truncating and rewriting a segment (cp over it) also drops the copy
cp "$P/e.fvecs" "$T/e.orig"
"$PY" - "$P/e.fvecs" <<'PY'
import numpy as np, sys
x = np.fromfile(sys.argv[1], "<f4").reshape(-1, 33)
x[:, 1:] *= -1
x.tofile(sys.argv[1])
PY
cp "$P/e.fvecs" "$C/e.fvecs"
q "$P" "$T/plain3"
check "after cp over e.fvecs, offloaded results follow the new file" \
	eval 'wait_offload "$C" "$T/m5" && cmp -s "$T/m5" "$T/plain3"'

# audit: each offloaded segment scan is a "scan" record, and the close
# record counts the segment's bytes as read
LOG=$(vv_audit_log "$S")
# scan_rec PATTERN: a scan record matching PATTERN (polls: the audit writer
# flushes every second; generous cap, no timing asserted)
scan_rec() {
	local i
	for i in $(seq 100); do
		grep '"op":"scan"' "$LOG" 2>/dev/null | grep -q "$1" && return 0
		sleep 0.1
	done
	echo "# no scan record matching $1"
	return 1
}
check "audit log has scan records for the segments" scan_rec '"path":"/coll/a.npy"'
check "scan records carry the uid and result ok" scan_rec '"uid":0,.*"result":"ok"'

# another uid with read permission gets the offload too; one without gets EACCES
chmod 755 "$C"
chmod 644 "$C"/*
check "uid 1000 (read permission): offloaded, same results" \
	eval 'as_u1000 "$VV_BIN" query "$C" -q "$Q" -k 10 --stats > "$T/u1" 2> "$T/u1.stats" &&
	      offloaded "$T/u1" 3 && cmp -s "$T/u1" "$T/plain3"'
check "uid 1000's scans are audited under uid 1000" scan_rec '"uid":1000,'
chmod 600 "$C/b.npy"
rc=0
as_u1000 "$VV_BIN" query "$C" -q "$Q" -k 10 > /dev/null 2> "$T/u2.err" || rc=$?
check "uid 1000 without read permission on b.npy: EACCES, no offload around it" \
	eval 'test $rc -ne 0 && grep -qi "permission denied" "$T/u2.err"'
chmod 644 "$C/b.npy"

# the ioctl itself: write-only handles, bad requests, unknown commands
check "ioctl refusals (EBADF, EINVAL, E2BIG, ENOTTY) and a good reply" \
	"$PY" - "$C/a.npy" <<'PY'
import errno, fcntl, os, struct, sys
path = sys.argv[1]
SIZE = 16320
def ioc(nr, size=SIZE): return (3 << 30) | (size << 16) | (ord('v') << 8) | nr
KNN = ioc(0x4b)
def req(magic=0x4e4e4b56, version=1, metric=1, dim=32, nq=1, kk=5, fmt=4):
    b = bytearray(SIZE)
    struct.pack_into("<8I", b, 0, magic, version, metric, dim, nq, kk, 0, fmt)
    return b
def err(fd, cmd, buf):
    try:
        fcntl.ioctl(fd, cmd, buf, True); return 0
    except OSError as e:
        return e.errno
bad = 0
def want(name, got, exp):
    global bad
    if got != exp:
        bad += 1; print("# %s: got %s, want %s" % (name, errno.errorcode.get(got, got), errno.errorcode.get(exp, exp)))
w = os.open(path, os.O_WRONLY)
want("write-only handle", err(w, KNN, req()), errno.EBADF)
os.close(w)
r = os.open(path, os.O_RDONLY)
want("bad magic", err(r, KNN, req(magic=1)), errno.EINVAL)
want("bad version", err(r, KNN, req(version=9)), errno.EINVAL)
want("bad metric", err(r, KNN, req(metric=7)), errno.EINVAL)
want("wrong dim", err(r, KNN, req(dim=31)), errno.EINVAL)
want("nq 0", err(r, KNN, req(nq=0)), errno.EINVAL)
want("too many floats", err(r, KNN, req(nq=200)), errno.E2BIG)
want("unknown command", err(r, ioc(0x4c), bytearray(SIZE)), errno.ENOTTY)
b = req()
want("good request", err(r, KNN, b), 0)
magic, = struct.unpack_from("<I", b, 0)
rows, = struct.unpack_from("<Q", b, 32)
if magic != 0x524e4b56 or rows != 40000:
    bad += 1; print("# reply magic %x rows %d" % (magic, rows))
d0, _, row0 = struct.unpack_from("<fIQ", b, 48)
if not (0 <= row0 < 40000):
    bad += 1; print("# first candidate row %d" % row0)
sys.exit(1 if bad else 0)
PY
check "the write-only ioctl attempt is in the audit log as EBADF" scan_rec '"result":"EBADF"'

vv_umount "$M"

# --knn-cache 0: no offload at all; a cache smaller than each segment: none
# offloaded, never "decrypting"; results unchanged
vv_mount "$S" "$M" --knn-cache 0
q "$C" "$T/k0"; q "$C" "$T/k0"
check "--knn-cache 0: never offloaded, same results" \
	eval 'offloaded "$T/k0" 0 && grep -q " 0 still being decrypted" "$T/k0.stats" && cmp -s "$T/k0" "$T/plain3"'
vv_umount "$M"
vv_mount "$S" "$M" --knn-cache 1M
q "$C" "$T/k1"; q "$C" "$T/k1"
check "--knn-cache 1M (segments are larger): local scans, same results" \
	eval 'offloaded "$T/k1" 0 && grep -q " 0 still being decrypted" "$T/k1.stats" && cmp -s "$T/k1" "$T/plain3"'
vv_umount "$M"
rc=0
"$VV_BIN" mount "$S" "$M" --passfile "$PASSFILE" --knn-cache 12Q 2> "$T/kerr" || rc=$?
check "--knn-cache with a bad size is refused, naming it" \
	eval 'test $rc -eq 2 && grep -q "bad --knn-cache .12Q." "$T/kerr"'

# unmount while the daemon is decrypting: clean exit
vv_mount "$S" "$M"
q "$C" "$T/u"
check "unmount during a background fill completes and the daemon exits" vv_umount "$M"
check "the store is consistent afterwards (fsck)" \
	"$VV_BIN" fsck "$S" --passfile "$PASSFILE"

test_done
