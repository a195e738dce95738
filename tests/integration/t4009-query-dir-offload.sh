#!/bin/bash
# t4009-query-dir-offload: on a local mount the small segments of a
# collection are scanned by the daemon by name, in directory requests on
# the collection's directory (VV_IOC_KNN_DIR), never opened by the tool.
# Collections of 1, 60 and 1,000 tiny segments (npy and fvecs mixed, empty
# ones, exact ties across segments) answer byte for byte as the plain
# directory and at the float64 reference, as root and as uid 1000, with
# the directory offload, with --no-offload and VV_KNN_OFFLOAD=0; --stats
# says how many were served.  The audit log has one scan record per served
# file and no open of it, and the usual open and close records when the
# tool reads them itself.  Mixed in: a file that is no segment, one of
# another dimension, one of another dtype, one uid 1000 may not read, each
# refused in the plain directory's words (or left out with --skip-bad,
# the same output); a segment replaced during queries: each answers with
# one of the two files or fails naming it.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse
vv_need_numpy

P=$T/plain
S=$T/store
M=$T/mnt
SWAP=
trap '[ -n "$SWAP" ] && kill "$SWAP" 2>/dev/null; wait 2>/dev/null; vv_cleanup' EXIT
mkdir -p "$P"
"$PY" - "$T" "$VV_SRC/tests/integration/lib" <<'PY'
import numpy as np, sys
sys.path.insert(0, sys.argv[2])
from seg_layout import layout as cut, odd
T = sys.argv[1]; P = T + "/plain"
rng = np.random.default_rng(4009)
d = 16
X = rng.standard_normal((9000, d)).astype('<f4')
dup = [3, 7, 101, 2500, 2501, 5900]     # ties across segments: by (segment, row)
X[dup] = X[3]
q = rng.standard_normal((4, d)).astype('<f4'); q[0] = X[3]
np.save(T + "/q.npy", q)
def layout(name, sizes): cut(P, name, X, sizes, T + "/X.%s.npy" % name)
layout("one", [50])
layout("sixty", [100] * 60)
layout("thousand", [int(k) if s % 10 else 0 for s, k in enumerate(rng.integers(0, 13, 1000))])
# odd: 60 good segments and, mixed in, no segment, another dim, another dtype
layout("odd", [40] * 60)
odd(P, rng, d)
np.save(T + "/other.npy", (rng.standard_normal((40, d)) * 5).astype('<f4'))
PY
# t0044.npy: uid 1000 may not read it
chmod 600 "$P/odd/t0044.npy"

# refcheck OUT LAYOUT: ids and scores at the float64 brute force (l2), ties by row
refcheck() { "$PY" "$VV_SRC/tests/integration/lib/knn_ref.py" --strict "$T/X.$2.npy" - "$T/q.npy" "$1" l2 10; }
# q WHO DIR OUT [args]: query as WHO (root or u1000); results to OUT,
# stats to OUT.stats, the query's pid to OUT.pid (setpriv execs it)
q() {
	local who=$1 dir=$2 out=$3
	shift 3
	(
		echo "$BASHPID" > "$out.pid"
		if [ "$who" = u1000 ]; then
			exec setpriv --reuid=1000 --regid=1000 --clear-groups -- \
				"$VV_BIN" query "$dir" -q "$T/q.npy" -k 10 --stats "$@"
		fi
		exec "$VV_BIN" query "$dir" -q "$T/q.npy" -k 10 --stats "$@"
	) > "$out" 2> "$out.stats"
}
# nserved OUT: how many segments the stats say were scanned by name
nserved() { sed -n 's/.*directory offload: \([0-9]*\) of.*/\1/p' "$1.stats"; }
served() { [ "$(nserved "$2")" = "$1" ]; }
# wait_served WHO DIR OUT N [args]: query until at least N segments are
# served by name and none is still being decrypted (the daemon decrypts
# each first, in the background; <= 30 s)
wait_served() {
	local who=$1 dir=$2 out=$3 n=$4 i
	shift 4
	for i in $(seq 150); do
		q "$who" "$dir" "$out" "$@" || return 1
		[ "$(nserved "$out")" -ge "$n" ] &&
			grep -q "directory offload: .* 0 still being decrypted there" "$out.stats" && return 0
		sleep 0.2
	done
	echo "# not served: $(grep 'directory offload' "$out.stats")"
	return 1
}

for lay in one sixty thousand; do
	q root "$P/$lay" "$T/ref.$lay"
	check "plain, $lay: at the float64 reference" refcheck "$T/ref.$lay" "$lay"
done

vv_init "$S" >/dev/null 2>&1
vv_mount "$S" "$M"
cp -r "$P/one" "$P/sixty" "$P/thousand" "$P/odd" "$M/"
chmod 755 "$M"
NK=$(ls "$P/thousand" | wc -l)
# the thousand's empty segments (every tenth) may be served or not
NE=$(ls "$P/thousand" | awk -F'[t.]' '$2 % 10 == 0' | wc -l)

# served: every segment but the first (the one the open reads to fix the
# dimension); a single segment has none to name
for who in root u1000; do
	q "$who" "$M/one" "$T/m.one.$who"
	check "$who, 1 segment: the plain directory's output, nothing to name" \
		eval 'cmp -s "$T/m.one.$who" "$T/ref.one" && served 0 "$T/m.one.$who"'
	for lay in sixty thousand; do
		n=59
		[ "$lay" = thousand ] && n=$((NK - NE))
		check "$who, $lay: at least $n segments served by name" \
			wait_served "$who" "$M/$lay" "$T/m.$lay.$who" "$n"
		check "$who, $lay served: the plain directory's output byte for byte" \
			cmp -s "$T/m.$lay.$who" "$T/ref.$lay"
		q "$who" "$M/$lay" "$T/m.$lay.$who.no" --no-offload
		check "$who, $lay, --no-offload: nothing named, the same output" \
			eval 'served 0 "$T/m.$lay.$who.no" && cmp -s "$T/m.$lay.$who.no" "$T/ref.$lay"'
		VV_KNN_OFFLOAD=0 q "$who" "$M/$lay" "$T/m.$lay.$who.env"
		check "$who, $lay, VV_KNN_OFFLOAD=0: nothing named, the same output" \
			eval 'served 0 "$T/m.$lay.$who.env" && cmp -s "$T/m.$lay.$who.env" "$T/ref.$lay"'
	done
done

# audit: a served query opens one segment (t0000) and has the daemon scan
# 59 by name; a --no-offload one opens and closes all 60.  Records are
# told apart by marks (a file created on the mount) around each query.
LOG=$(vv_audit_log "$S")
# mark NAME: create NAME on the mount; its record's seq
mark() {
	touch "$M/$1"
	vv_audit_has "$LOG" op=create path="/$1" >/dev/null || return 1
	vv_audit_q "$LOG" seqs op=create path="/$1"
}
# wait_count N SEQ FILTER...: until N records from SEQ on (closes come
# asynchronously); polls, no timing asserted
wait_count() {
	local n=$1 i
	shift
	for i in $(seq 100); do
		[ "$(vv_audit_since "$LOG" "$@")" = "$n" ] && return 0
		sleep 0.1
	done
	echo "# $(vv_audit_since "$LOG" "$@") records, not $n: $*"
	return 1
}
m1=$(mark mark1) || m1=0
q u1000 "$M/sixty" "$T/a.served"
m2=$(mark mark2) || m2=0
# the per-file open (VV_BULK=0: the bulk read, t4014, opens candidates'
# segments a second time for the re-ranking)
VV_BULK=0 q root "$M/sixty" "$T/a.no" --no-offload
echo "# $(grep 'directory offload' "$T/a.served.stats")"
check "audit: uid 1000's query served by name, the output as ever" \
	eval 'served 59 "$T/a.served" && cmp -s "$T/a.served" "$T/ref.sixty"'
check "audit: one scan record per served file, uid 1000's" \
	vv_audit_wait_upto "$LOG" 59 "$m1" "$m2" op=scan uid=1000 result=ok 'path~^/sixty/t00[0-9][0-9][.](npy|fvecs)$'
check "audit: the served query opened only the first segment" \
	vv_audit_wait_upto "$LOG" 1 "$m1" "$m2" op=open 'path~^/sixty/t'
check "audit: --no-offload opened and closed all 60, scanned none by name" \
	eval 'wait_count 60 "$m2" op=close "path~^/sixty/t" &&
	      [ "$(vv_audit_since "$LOG" "$m2" op=open "path~^/sixty/t")" = 60 ] &&
	      [ "$(vv_audit_since "$LOG" "$m2" op=scan "path~^/sixty/t")" = 0 ]'

# odd: bad files among the named ones; the plain directory's words (paths
# aside), for root (who may read t0044) and uid 1000 (who may not)
chmod 600 "$M/odd/t0044.npy"
check "odd: its 60 good segments served by name (root, --skip-bad)" \
	wait_served root "$M/odd" "$T/m.odd.warm" 59 --skip-bad
for who in root u1000; do
	for sb in "" --skip-bad; do
		q "$who" "$P/odd" "$T/p.odd.$who$sb" $sb || true
		q "$who" "$M/odd" "$T/m.odd.$who$sb" $sb || true
		check "$who, odd collection ${sb:-without --skip-bad}: the plain directory's output" \
			cmp -s "$T/m.odd.$who$sb" "$T/p.odd.$who$sb"
		grep -v "stats:" "$T/p.odd.$who$sb.stats" | sed "s|$P/|DIR/|g" > "$T/pe"
		grep -v "stats:" "$T/m.odd.$who$sb.stats" | sed "s|$M/|DIR/|g" > "$T/me"
		check "$who, odd collection ${sb:-without --skip-bad}: the same messages" cmp -s "$T/pe" "$T/me"
		sed 's/^/#   /' "$T/me"
	done
done
check "u1000, odd --skip-bad: the good ones served by name" \
	test "$(nserved "$T/m.odd.u1000--skip-bad")" -ge 58
check "root --skip-bad: three files left out, the unreadable one read" \
	test "$(grep -c 'skipping' "$T/m.odd.root--skip-bad.stats")" = 3
check "u1000 --skip-bad: four files left out, the unreadable one too" \
	grep -q "skipping $M/odd/t0044.npy: Permission denied" "$T/m.odd.u1000--skip-bad.stats"
check "u1000's refused name is audited" \
	vv_audit_has "$LOG" uid=1000 path=/odd/t0044.npy 'result~EACCES|EPERM'

# a segment replaced (rename over it) during queries: each query answers
# with one of the two files, or fails naming it
mkdir "$T/alt"
cp -r "$P/sixty" "$T/alt/sixty"
cp "$T/other.npy" "$T/alt/sixty/t0020.npy"
q root "$T/alt/sixty" "$T/ref.alt"
# (stopped by a file, not a signal: a killed loop leaves its cp or mv
# running in the mount, and the unmount below fails busy; seen under TSan)
swapper() {
	local i=0
	while [ ! -e "$T/swap.stop" ]; do
		if [ $((i % 2)) = 0 ]; then cp "$T/other.npy" "$M/sixty/.t"; else cp "$P/sixty/t0020.npy" "$M/sixty/.t"; fi
		mv -fT "$M/sixty/.t" "$M/sixty/t0020.npy"
		i=$((i + 1))
		sleep 0.0$((RANDOM % 5))
	done
}
swapper &
SWAP=$!
wrong=0 fine=0 refused=0
for i in $(seq 20); do
	rc=0
	timeout 60 "$VV_BIN" query "$M/sixty" -q "$T/q.npy" -k 10 > "$T/sw.out" 2> "$T/sw.err" || rc=$?
	if [ "$rc" = 0 ] && { cmp -s "$T/sw.out" "$T/ref.sixty" || cmp -s "$T/sw.out" "$T/ref.alt"; }; then
		fine=$((fine + 1))
	elif [ "$rc" = 1 ] && grep -q "t0020.npy" "$T/sw.err"; then
		refused=$((refused + 1))
	else
		wrong=$((wrong + 1))
		echo "# rc $rc: $(head -c 300 "$T/sw.err")"
	fi
done
touch "$T/swap.stop"
wait "$SWAP" 2>/dev/null || true
SWAP=
echo "# swapped: $fine answered, $refused refused naming t0020.npy, $wrong other"
check "a segment replaced during 20 queries: each answers with one of the files or names it" \
	test "$wrong" = 0

vv_umount "$M"
test_done
