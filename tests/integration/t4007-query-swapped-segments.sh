#!/bin/bash
# t4007-query-swapped-segments: `vecvault query` over a collection whose
# files are not what they seem, on a plain directory and on a mount.  The
# same 48 segments answer byte for byte alike and at the float64 reference
# in every way: plain and mount, io_uring on and off, the offload off, on
# and on for every segment (VV_KNN_OFFLOAD_MIN=0).  A FIFO named like a
# segment is refused naming it, without waiting for a writer (the query
# used to hang there: anyone who may create a file in a shared collection
# could stop everyone's queries), and --skip-bad leaves it out with the
# same output.  A segment swapped back and forth with a FIFO, a symlink to
# /dev/zero and a file of other rows while queries run: each query ends,
# either with the output of the collection as it was, or an error naming
# that segment.  On the mount, a segment nobody may read, mixed in: the
# query as nobody fails naming it, with io_uring on and off; the daemon
# audits the refused open.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse
vv_need_numpy

P=$T/plain
S=$T/store
M=$T/mnt
SWAP=
trap '[ -n "$SWAP" ] && touch "$T/stop.swap"; wait 2>/dev/null; vv_cleanup' EXIT
mkdir -p "$P/c"
"$PY" - "$T" <<'PY'
import numpy as np, sys
T = sys.argv[1]
rng = np.random.default_rng(4007)
d, per, n = 16, 50, 48
X = rng.standard_normal((per * n, d)).astype('<f4')
X[777] = X[3]                   # a tie across segments: (segment, row) order
q = rng.standard_normal((5, d)).astype('<f4')
q[0] = X[3]
for s in range(n):
    np.save(T + "/plain/c/s%03d.npy" % s, X[s * per:(s + 1) * per])
np.save(T + "/q.npy", q)
np.save(T + "/X.npy", X.astype(np.float64))
# what swaps in for s020.npy: other rows, more of them (a file of the
# same size and header is refused as well: test_vector_tiny.c)
np.save(T + "/other.npy", (rng.standard_normal((per + 10, d)) * 9).astype('<f4'))
PY
cp "$P/c/s020.npy" "$T/s020.keep"

# refcheck OUT: ids and scores at the float64 brute force (l2), ties by row
refcheck() { "$PY" "$VV_SRC/tests/integration/lib/knn_ref.py" --strict "$T/X.npy" - "$T/q.npy" "$1" l2 10; }
# q DIR OUT [args]: query; results to OUT, stats to OUT.stats
q() {
	local dir=$1 out=$2
	shift 2
	"$VV_BIN" query "$dir" -q "$T/q.npy" -k 10 --stats "$@" > "$out" 2> "$out.stats"
}
# offloaded N OUT: the stats say N segments were scanned by the daemon
offloaded() { grep -q "offload: $1 of" "$2.stats"; }

q "$P/c" "$T/ref"
check "plain: at the float64 reference" refcheck "$T/ref"
VV_IO_URING=0 q "$P/c" "$T/p.nou"
check "plain without io_uring: the same output" cmp -s "$T/p.nou" "$T/ref"

vv_init "$S" >/dev/null 2>&1
vv_mount "$S" "$M"
cp -r "$P/c" "$M/c"
for u in 1 0; do
	VV_IO_URING=$u q "$M/c" "$T/m.$u"
	check "mount, io_uring $u, offload default: the plain directory's output" cmp -s "$T/m.$u" "$T/ref"
	VV_IO_URING=$u q "$M/c" "$T/m.$u.no" --no-offload
	check "mount, io_uring $u, --no-offload: the same output" cmp -s "$T/m.$u.no" "$T/ref"
done
# every segment offloaded (the daemon decrypts each first, in the background)
for i in $(seq 150); do
	VV_KNN_OFFLOAD_MIN=0 q "$M/c" "$T/m.all"
	offloaded 48 "$T/m.all" && break
	sleep 0.2
done
check "mount, all 48 segments offloaded: the same output" \
	eval 'offloaded 48 "$T/m.all" && cmp -s "$T/m.all" "$T/ref"'

# a FIFO named like a segment: refused at once, naming it; --skip-bad
# leaves it out
for loc in "$P/c" "$M/c"; do
	mkfifo "$loc/s020x.npy"
	for u in 1 0; do
		rc=0
		out=$(VV_IO_URING=$u timeout 60 "$VV_BIN" query "$loc" -q "$T/q.npy" -k 10 2>&1 >/dev/null) ||
			rc=$?
		echo "# rc $rc: $out"
		check "${loc#$T/}, io_uring $u: a FIFO named like a segment is refused naming it, no hang" \
			test "$rc" = 1 -a -z "${out##*s020x.npy: not a regular file*}"
	done
	timeout 60 "$VV_BIN" query "$loc" -q "$T/q.npy" -k 10 --skip-bad > "$T/fifo.out" 2>/dev/null || true
	check "${loc#$T/}: --skip-bad leaves the FIFO out, the same output" cmp -s "$T/fifo.out" "$T/ref"
	rm -f "$loc/s020x.npy"
done

# s020.npy swapped back and forth (rename(2) over it: a FIFO, a symlink
# to /dev/zero, a file of other rows, the real one) while queries run:
# each ends with the collection's output with one of the two files, or an
# error naming s020.npy
# It stops at the top of its loop once $T/stop.swap exists, so no mkfifo,
# ln or mv of its is left running when the segment is restored: killing
# the subshell left its last mv running, which could rename a FIFO over
# the restored name after the rm, and the restoring cp then waited for a
# FIFO reader forever (the hang seen once in a full-suite run, and once
# in 34 runs of this test beside the suite: cp in fifo_open).
swapper() {
	local dir=$1 i=0
	while [ ! -e "$T/stop.swap" ]; do
		case $((i % 4)) in
		0) mkfifo "$dir/.t" ;;
		1) ln -s /dev/zero "$dir/.t" ;;
		2) cp "$T/other.npy" "$dir/.t" ;;
		3) cp "$T/s020.keep" "$dir/.t" ;;
		esac
		mv -fT "$dir/.t" "$dir/s020.npy"
		i=$((i + 1))
		sleep 0.0$((RANDOM % 5))
	done
}
for loc in "$P/c" "$M/c"; do
	cp -r "$P/c" "$T/other"
	cp "$T/other.npy" "$T/other/s020.npy"
	q "$T/other" "$T/ref.other"
	rm -f "$T/stop.swap"
	swapper "$loc" &
	SWAP=$!
	hang=0 wrong=0 fine=0 refused=0
	for i in $(seq 20); do
		rc=0
		timeout 60 "$VV_BIN" query "$loc" -q "$T/q.npy" -k 10 > "$T/sw.out" 2> "$T/sw.err" || rc=$?
		if [ "$rc" = 124 ]; then
			hang=$((hang + 1))
		elif [ "$rc" = 0 ] && { cmp -s "$T/sw.out" "$T/ref" || cmp -s "$T/sw.out" "$T/ref.other"; }; then
			fine=$((fine + 1))
		elif [ "$rc" = 1 ] && grep -q "s020.npy" "$T/sw.err"; then
			refused=$((refused + 1))
		else
			wrong=$((wrong + 1))
			echo "# rc $rc: $(cat "$T/sw.err")"
		fi
	done
	touch "$T/stop.swap"
	wait "$SWAP" 2>/dev/null || true
	SWAP=
	rm -f "$loc/s020.npy" "$loc/.t"
	cp "$T/s020.keep" "$loc/s020.npy"
	rm -rf "$T/other"
	echo "# ${loc#$T/}: $fine answered, $refused refused naming s020.npy, $wrong other, $hang hung"
	check "${loc#$T/}, s020.npy swapped during 20 queries: none hangs, none answers anything else" \
		test "$hang" = 0 -a "$wrong" = 0
	q "$loc" "$T/after"
	check "${loc#$T/}: restored, the same output again" cmp -s "$T/after" "$T/ref"
done

# on the mount, a segment nobody may read, mixed in
LOG=$(vv_audit_log "$S")
chmod 600 "$M/c/s031.npy"
for u in 1 0; do
	out=$(VV_IO_URING=$u as_nobody "$VV_BIN" query "$M/c" -q "$T/q.npy" -k 10 2>&1 >/dev/null) || true
	echo "# $out"
	check "mount, nobody, io_uring $u: a segment it may not read fails the query, naming it" \
		test -n "$out" -a -z "${out##*s031.npy*Permission denied*}"
done
check "... the daemon audited the refused open" \
	vv_audit_has "$LOG" op=open path=/c/s031.npy uid=65534 result=EACCES
chmod 644 "$M/c/s031.npy"
as_nobody "$VV_BIN" query "$M/c" -q "$T/q.npy" -k 10 > "$T/nb.out" 2>/dev/null
check "... readable again: nobody's output is root's, byte for byte" cmp -s "$T/nb.out" "$T/ref"

vv_umount "$M"
test_done
