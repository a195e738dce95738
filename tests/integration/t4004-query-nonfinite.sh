#!/bin/bash
# t4004-query-nonfinite: NaN and infinity in queries and in segments
# (docs/query.md "NaN and infinity").
#
# A query file with a NaN or an infinity is refused (exit 1) with a message
# naming the query row and column, on a plain directory and on the mount;
# the daemon's offload ioctl refuses such a query with EINVAL.  A segment
# row holding a NaN or an infinity never appears in results, under l2 and
# ip, even when k exceeds the number of rows: the results are exactly a
# float64 brute force over the finite rows, on a plain directory, on the
# mount scanned locally (--no-offload) and on the mount scanned by the
# daemon.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

vv_need_numpy

S=$T/store
M=$T/mnt
P=$T/plain
mkdir -p "$P"
vv_init "$S" >/dev/null 2>&1
vv_mount "$S" "$M"

"$PY" - "$T" <<'PY'
import numpy as np, sys
T = sys.argv[1]
rng = np.random.default_rng(4004)
x = rng.standard_normal((300, 8)).astype('<f4')
x[3, 1] = np.nan
x[10, 0] = np.inf
x[20, 7] = -np.inf          # under ip this row would beat every real one
x[30, :] = np.nan
np.save(T + "/plain/s.npy", x)
q = rng.standard_normal((4, 8)).astype('<f4')
np.save(T + "/q.npy", q)
np.save(T + "/q1.npy", q[:1])   # one query: k=400 still fits one offload request
qn = q.copy(); qn[2, 5] = np.nan
np.save(T + "/qnan.npy", qn)
qi = q.copy(); qi[1, 3] = -np.inf
np.save(T + "/qinf.npy", qi)
PY
BAD="3 10 20 30"

# ref METRIC K QFILE: float64 brute force over the finite rows, as "query id"
# lines
ref() {
	"$PY" - "$T" "$1" "$2" "$3" <<'PY'
import numpy as np, sys
T, metric, k, qf = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
x = np.load(T + "/plain/s.npy").astype(np.float64)
q = np.load(qf).astype(np.float64)
ok = np.isfinite(x).all(axis=1)
for i, v in enumerate(q):
    with np.errstate(invalid="ignore", over="ignore"):
        d = ((x - v) ** 2).sum(axis=1) if metric == "l2" else -(x @ v)
    d[~ok] = np.inf
    order = sorted(np.nonzero(ok)[0], key=lambda r: (d[r], r))[:k]
    for r in order:
        print(i, r)
PY
}
# ids FILE: the "query id" pairs of a text result
ids() { awk -F '\t' '{ print $1, $3 }' "$1"; }

# same_as_ref NAME DIR METRIC K [query args]; queries from $QF
QF=$T/q.npy
same_as_ref() {
	local name=$1 dir=$2 metric=$3 k=$4 rc=0
	shift 4
	"$VV_BIN" query "$dir" -q "$QF" -k "$k" --metric "$metric" "$@" > "$T/out" 2> "$T/err" ||
		rc=$?
	ref "$metric" "$k" "$QF" > "$T/ref"
	ids "$T/out" > "$T/got"
	if [ "$rc" -eq 0 ] && cmp -s "$T/ref" "$T/got"; then
		test_ok "$name"
	else
		echo "# exit $rc; stderr:"; sed 's/^/#   /' "$T/err"
		diff "$T/ref" "$T/got" | head -10 | sed 's/^/#   /'
		test_fail "$name"
	fi
}

# no_bad_rows NAME: none of the non-finite rows is in $T/out
no_bad_rows() {
	local r hit=""
	for r in $BAD; do
		awk -F '\t' -v r="$r" '$3 == r { found = 1 } END { exit !found }' "$T/out" && hit="$hit $r"
	done
	if [ -z "$hit" ]; then test_ok "$1"; else echo "# rows in results:$hit"; test_fail "$1"; fi
}

# refused NAME DIR QFILE PATTERN: the query fails (exit 1) saying PATTERN
refused() {
	local name=$1 dir=$2 qf=$3 pat=$4 rc=0
	"$VV_BIN" query "$dir" -q "$qf" -k 5 > "$T/out" 2> "$T/err" || rc=$?
	if [ "$rc" -eq 1 ] && grep -q -- "$pat" "$T/err" && [ ! -s "$T/out" ]; then
		test_ok "$name"
	else
		echo "# exit $rc; stderr:"; sed 's/^/#   /' "$T/err"
		test_fail "$name"
	fi
}

# --- plain directory --------------------------------------------------------
refused "plain: a NaN query is refused naming row 2 column 5" "$P" "$T/qnan.npy" \
	"query row 2 column 5 is NaN"
refused "plain: an infinite query is refused naming row 1 column 3" "$P" "$T/qinf.npy" \
	"query row 1 column 3 is infinite"
expect_fail "plain: --vector with nan is refused" \
	"$VV_BIN" query "$P" --vector "1,2,3,nan,5,6,7,8" -k 1
for metric in l2 ip; do
	same_as_ref "plain $metric k=400: exactly the finite rows, in brute-force order" \
		"$P" "$metric" 400
	no_bad_rows "plain $metric: no NaN or infinite row in the results"
	same_as_ref "plain $metric k=5: top 5 as the brute force" "$P" "$metric" 5
done

# --- on the mount -------------------------------------------------------------
C=$M/coll
mkdir "$C"
cp "$P/s.npy" "$C/"
refused "mount: a NaN query is refused naming row 2 column 5" "$C" "$T/qnan.npy" \
	"query row 2 column 5 is NaN"
for metric in l2 ip; do
	same_as_ref "mount, local scan, $metric k=400: the finite rows" "$C" "$metric" 400 --no-offload
	no_bad_rows "mount, local scan, $metric: no NaN or infinite row"
done

# Wait (bounded) until the daemon has the segment decrypted and scans it.
# The segment is small: offload it anyway (by default only segments of
# 1 MiB and more are, docs/query.md).
export VV_KNN_OFFLOAD_MIN=0
off=no
for i in $(seq 100); do
	"$VV_BIN" query "$C" -q "$T/q.npy" -k 5 --stats > /dev/null 2> "$T/stats" || break
	if grep -q "offload: 1 of 1 segments scanned by the daemon" "$T/stats"; then off=yes; break; fi
	sleep 0.2
done
check "the daemon scans the segment (offload)" test "$off" = yes
for metric in l2 ip; do
	QF=$T/q1.npy
	same_as_ref "mount, offload, $metric k=400: the finite rows" "$C" "$metric" 400 --stats
	no_bad_rows "mount, offload, $metric: no NaN or infinite row"
	check "  and it was offloaded" grep -q "offload: 1 of 1 segments scanned by the daemon" \
		"$T/err"
	QF=$T/q.npy
	same_as_ref "mount, offload, $metric k=5: top 5 as the brute force" "$C" "$metric" 5 --stats
	check "  and it was offloaded" grep -q "offload: 1 of 1 segments scanned by the daemon" \
		"$T/err"
done

# The daemon's own check, for callers other than vecvault query.
check "the offload ioctl refuses a NaN or infinite query with EINVAL" \
	"$PY" - "$C/s.npy" <<'PY'
import errno, fcntl, math, os, struct, sys
SIZE = 16320
KNN = (3 << 30) | (SIZE << 16) | (ord('v') << 8) | 0x4b
def req(qv):
    b = bytearray(SIZE)
    struct.pack_into("<8I", b, 0, 0x4e4e4b56, 1, 1, 8, 1, 5, 0, 4)
    struct.pack_into("<8f", b, 48, *qv)
    return b
def err(fd, buf):
    try:
        fcntl.ioctl(fd, KNN, buf, True); return 0
    except OSError as e:
        return e.errno
fd = os.open(sys.argv[1], os.O_RDONLY)
bad = 0
for name, v, want in (("finite", [0.5] * 8, 0),
                      ("nan", [0.5] * 7 + [math.nan], errno.EINVAL),
                      ("inf", [math.inf] + [0.5] * 7, errno.EINVAL)):
    got = err(fd, req(v))
    if got != want:
        bad += 1
        print("# %s query: got %s, want %s" % (name, errno.errorcode.get(got, got),
                                              errno.errorcode.get(want, want)))
sys.exit(1 if bad else 0)
PY

vv_umount "$M"
test_done
