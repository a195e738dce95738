#!/bin/bash
# t1023-query-uring: `vecvault query` over many small segments of a plain
# directory opens them in io_uring batches (engine/vector_uring.c), and
# answers exactly as one system call at a time (VV_IO_URING=0) and as a
# float64 brute force: the same output byte for byte, the same errors
# naming the same file (a segment uid 65534 may not read, a directory
# named like a segment, a truncated one), the same refusal of a directory
# nobody may search.  A plain directory whose segments are symlinks into a
# vecvault mount: the query's scan reads them whole through the ring (it
# follows the links as the caller would); the daemon decides and audits
# every open, for root and for nobody.  On the
# mount itself nothing is batched (each open is the daemon's round trip).
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse
vv_need_numpy

P=$T/plain
S=$T/store
M=$T/mnt
mkdir -p "$P"
chmod 755 "$T"
"$PY" - "$T" <<'PY'
import numpy as np, os, sys
T = sys.argv[1]; P = T + "/plain"
rng = np.random.default_rng(1023)
d = 32
rows, s = [], 0
# 300 segments of 0-20 rows (npy and fvecs): more than two batches of 128
for s in range(300):
    k = int(rng.integers(0, 21))
    X = rng.standard_normal((k, d)).astype('<f4')
    rows.append(X)
    if s % 3 == 1 and k:
        with open(P + "/s%04d.fvecs" % s, "wb") as f:
            for r in X: np.int32(d).tofile(f); r.tofile(f)
    else:
        np.save(P + "/s%04d.npy" % s, X)
X = np.concatenate(rows)
np.save(T + "/X.npy", X.astype(np.float64))
q = rng.standard_normal((5, d)).astype('<f4'); q[0] = X[7]
np.save(T + "/q.npy", q)
PY
chmod -R a+rX "$P"
N=$(ls "$P" | wc -l)

# q DIR OUT [env...]: query (as the caller), results OUT, stats OUT.stats
q() {
	local dir=$1 out=$2
	shift 2
	env "$@" "$VV_BIN" query "$dir" -q "$T/q.npy" -k 10 --stats > "$out" 2> "$out.stats"
}
batched() { grep -q "io: $1 of $2 segments opened in io_uring batches" "$3.stats"; }
refcheck() {
	"$PY" - "$T" "$1" <<'PY'
import numpy as np, sys
T, out = sys.argv[1:3]
X = np.load(T + "/X.npy"); Q = np.load(T + "/q.npy").astype(np.float64)
D = ((Q[:, None, :] - X[None]) ** 2).sum(2)
bad = 0
got = {}
for line in open(out):
    qi, rank, i, s = line.split("\t")[:4]
    got.setdefault(int(qi), []).append((int(i), float(s)))
for qi in range(len(Q)):
    order = np.argsort(D[qi], kind="stable")[:10]
    g = got.get(qi, [])
    if [i for i, _ in g] != list(order) or any(abs(D[qi][i] - s) > 1e-6 * (1 + s) for i, s in g):
        bad += 1; print("# q%d: %s, want %s" % (qi, g, list(order)))
sys.exit(1 if bad else 0)
PY
}

check "plain dir of $N segments, io_uring allowed: query runs" q "$P" "$T/u.out"
# a kernel or seccomp profile without io_uring: the same answers, 0 batched
# (the query's deferred open: the first segment is opened one by one, it
# fixes the dimension; the scan threads read every other one whole)
if batched "$((N - 1))" "$N" "$T/u.out"; then
	test_ok "all $N segments but the first read in io_uring batches"
else
	echo "# $(cat "$T/u.out.stats")"
	grep -q "io: 0 of" "$T/u.out.stats" && echo "# (no io_uring on this kernel: the one-by-one path only)"
	check "io_uring refused here, never failing the query" grep -q "io: 0 of $N" "$T/u.out.stats"
fi
check "VV_IO_URING=0: query runs" q "$P" "$T/s.out" VV_IO_URING=0
check "VV_IO_URING=0: nothing batched" batched 0 "$N" "$T/s.out"
check "batched and one-by-one outputs equal byte for byte" cmp -s "$T/u.out" "$T/s.out"
check "results equal the float64 brute force" refcheck "$T/u.out"
qn() { as_nobody "$VV_BIN" query "$P" -q "$T/q.npy" -k 10 > "$T/n.out"; }
check "uid 65534, a readable directory: the same output" qn
check "... equal to root's" cmp -s "$T/n.out" "$T/u.out"

# errors: same message both ways, naming the file
# errsame WHO NAME WHAT: both ways fail, the same message, naming NAME
errsame() {
	local who=$1 name=$2 a b
	a=$("as_$who" env "$VV_BIN" query "$P" -q "$T/q.npy" -k 10 2>&1 >/dev/null) && return 1
	b=$("as_$who" env VV_IO_URING=0 "$VV_BIN" query "$P" -q "$T/q.npy" -k 10 2>&1 >/dev/null) && return 1
	echo "# $a"
	[ "$a" = "$b" ] && [[ "$a" == *"$name"* ]] && [[ "$a" == *"$3"* ]]
}
chmod 600 "$P/s0150.npy"
check "nobody, a segment it may not read: refused both ways, the same message naming it" \
	errsame nobody s0150.npy "Permission denied"
chmod 644 "$P/s0150.npy"
chmod 711 "$P"
check "nobody, a directory it may not list: refused both ways" errsame nobody "$P" "Permission denied"
chmod 755 "$P"
mv "$P/s0200.npy" "$T/s0200.keep"
mkdir "$P/s0200.npy"
check "a directory named like a segment: the same error both ways" errsame root s0200.npy "not a regular file"
rmdir "$P/s0200.npy"
head -c 100 "$T/s0200.keep" > "$P/s0200.npy"
check "a truncated segment: the same error both ways" errsame root s0200.npy "s0200.npy"
mv "$T/s0200.keep" "$P/s0200.npy"
check "restored: the same answer again" q "$P" "$T/u2.out"
check "... byte for byte" cmp -s "$T/u2.out" "$T/u.out"

# the mount: segments copied in; a plain directory of symlinks into it
vv_init "$S" >/dev/null 2>&1
vv_mount "$S" "$M" -o allow_other
mkdir "$M/c"
cp "$P"/* "$M/c/"
chmod 755 "$M/c"
chmod 644 "$M"/c/*
check "mount: query runs" q "$M/c" "$T/m.out" VV_KNN_OFFLOAD=0
check "mount: nothing batched (each open is the daemon's)" batched 0 "$N" "$T/m.out"
check "mount: the same output as the plain directory" cmp -s "$T/m.out" "$T/u.out"
L=$T/links
mkdir "$L"
for f in "$M"/c/*; do ln -s "$f" "$L/${f##*/}"; done
chmod 755 "$L"
check "plain dir of symlinks into the mount: query runs" q "$L" "$T/l.out"
# the scan reads them whole through the ring, which follows the symlinks
# as the caller (the daemon still decides and audits each open, below)
check "... read through the ring like plain files (N - 1 batched)" batched "$((N - 1))" "$N" "$T/l.out"
check "... the same output" cmp -s "$T/l.out" "$T/u.out"
LOG=$(vv_audit_log "$S")
chmod 600 "$M/c/s0150.npy"
out=$(as_nobody "$VV_BIN" query "$L" -q "$T/q.npy" -k 10 2>&1 >/dev/null) || true
echo "# $out"
check "nobody through the symlinks, a segment the daemon refuses: the query fails naming it" \
	test -n "$out" -a -z "${out##*s0150.npy*Permission denied*}"
check "... and the daemon audited the refused open" \
	vv_audit_has "$LOG" op=open path=/c/s0150.npy uid=65534 result=EACCES
check "... and the opens it allowed" vv_audit_has "$LOG" op=open path=/c/s0001.fvecs uid=65534 result=ok

# on the mount itself the segments are opened by several threads at once
# (each open waits for the daemon): with two refused, the error still
# names the first in name order, whichever thread met it first
chmod 600 "$M/c/s0252.npy"
for i in 1 2 3; do
	out=$(as_nobody "$VV_BIN" query "$M/c" -q "$T/q.npy" -k 10 2>&1 >/dev/null) || true
	[ -n "$out" ] && [ -z "${out##*s0150.npy*Permission denied*}" ] && [ "${out#*s0252}" = "$out" ] ||
		break
done
echo "# $out"
check "nobody on the mount, s0150 and s0252 refused: 3 runs name s0150 only" \
	test "$i" = 3 -a -n "$out" -a -z "${out##*s0150.npy*Permission denied*}" -a "${out#*s0252}" = "$out"
check "... and the daemon audited both refused opens" \
	vv_audit_has "$LOG" op=open path=/c/s0252.npy uid=65534 result=EACCES
chmod 644 "$M/c/s0150.npy" "$M/c/s0252.npy"
as_nobody "$VV_BIN" query "$M/c" -q "$T/q.npy" -k 10 > "$T/nb.out" 2>/dev/null
check "... both readable again: nobody's output on the mount is root's, byte for byte" \
	cmp -s "$T/nb.out" "$T/u.out"
check "... at the float64 reference" refcheck "$T/nb.out"

test_done
