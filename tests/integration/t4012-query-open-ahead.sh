#!/bin/bash
# t4012-query-open-ahead: on a mount, when the daemon may scan none of a
# collection's small segments (--no-offload, VV_KNN_OFFLOAD=0, or a batch
# too large for any offload request), `vecvault query` opens them through
# the mount while its scan runs and scans each as it opens, instead of
# opening them all first (docs/query.md, "Opened ahead of the scan").
# --stats says how many; the output is the plain directory's byte for byte
# and at the float64 reference, as root and as uid 1000; every segment is
# opened (and audited) exactly once per query; bad segments mixed in (no
# segment, another dimension, another dtype, one uid 1000 may not read)
# are refused or left out (--skip-bad) in the plain directory's words.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse
vv_need_numpy
# the open ahead is what the tool does without the bulk read (t4014): an
# older daemon, a vv:// mount, VV_BULK=0
export VV_BULK=0

P=$T/plain
S=$T/store
M=$T/mnt
mkdir -p "$P"
"$PY" - "$T" "$VV_SRC/tests/integration/lib" <<'PY'
import numpy as np, sys
sys.path.insert(0, sys.argv[2])
from seg_layout import layout as cut, odd
T = sys.argv[1]; P = T + "/plain"
rng = np.random.default_rng(4012)
d = 16
X = rng.standard_normal((6000, d)).astype('<f4')
X[[5, 950, 951, 4200]] = X[5]            # ties across segments: by (segment, row)
q = rng.standard_normal((4, d)).astype('<f4'); q[0] = X[5]
np.save(T + "/q.npy", q)
# 300 queries of 16 floats: more than one request of either offload carries
np.save(T + "/q300.npy", rng.standard_normal((300, d)).astype('<f4'))
def layout(name, sizes): cut(P, name, X, sizes, T + "/X.%s.npy" % name)
layout("sixty", [100] * 60)
layout("odd", [40] * 60)
odd(P, rng, d)
PY
chmod 600 "$P/odd/t0044.npy"

refcheck() { "$PY" "$VV_SRC/tests/integration/lib/knn_ref.py" --strict "$T/X.$2.npy" - "$3" "$1" l2 10; }
# q WHO DIR QFILE OUT [args]: query as WHO (root or u1000); results to
# OUT, messages and stats to OUT.err
q() {
	local who=$1 dir=$2 qf=$3 out=$4
	shift 4
	if [ "$who" = u1000 ]; then
		setpriv --reuid=1000 --regid=1000 --clear-groups -- \
			"$VV_BIN" query "$dir" -q "$qf" -k 10 --stats "$@" > "$out" 2> "$out.err"
	else
		"$VV_BIN" query "$dir" -q "$qf" -k 10 --stats "$@" > "$out" 2> "$out.err"
	fi
}
# ahead N OUT: N segments opened while the scan ran, all scanned as they opened
ahead() { grep -q "open ahead: $1 segments opened while the scan ran, $1 of them" "$2.err"; }

q root "$P/sixty" "$T/q.npy" "$T/ref"
check "plain: at the float64 reference" refcheck "$T/ref" sixty "$T/q.npy"
q root "$P/sixty" "$T/q300.npy" "$T/ref300"
check "plain, 300 queries: at the float64 reference" refcheck "$T/ref300" sixty "$T/q300.npy"

vv_init "$S" >/dev/null 2>&1
vv_mount "$S" "$M"
cp -r "$P/sixty" "$P/odd" "$M/"
chmod 755 "$M"
chmod 600 "$M/odd/t0044.npy"

for who in root u1000; do
	q "$who" "$M/sixty" "$T/q.npy" "$T/m.$who.no" --no-offload
	check "$who, --no-offload: 59 segments opened ahead of the scan, the plain output" \
		eval 'ahead 59 "$T/m.$who.no" && cmp -s "$T/m.$who.no" "$T/ref"'
	VV_KNN_OFFLOAD=0 q "$who" "$M/sixty" "$T/q.npy" "$T/m.$who.env"
	check "$who, VV_KNN_OFFLOAD=0: opened ahead, the plain output" \
		eval 'ahead 59 "$T/m.$who.env" && cmp -s "$T/m.$who.env" "$T/ref"'
	q "$who" "$M/sixty" "$T/q300.npy" "$T/m.$who.300"
	check "$who, 300 queries with the offload on: opened ahead, the plain output" \
		eval 'ahead 59 "$T/m.$who.300" && cmp -s "$T/m.$who.300" "$T/ref300"'
done
# with the offload the daemon may scan them by name: nothing opened ahead
q root "$M/sixty" "$T/q.npy" "$T/m.off"
check "4 queries with the offload: nothing opened ahead, the plain output" \
	eval 'grep -q "open ahead: 0 segments" "$T/m.off.err" && cmp -s "$T/m.off" "$T/ref"'

# audit: each segment opened and closed once by a --no-offload query and by
# a 300-query batch (marks, files created on the mount, bound each query)
LOG=$(vv_audit_log "$S")
mark() {
	touch "$M/$1"
	vv_audit_has "$LOG" op=create path="/$1" >/dev/null || return 1
	vv_audit_q "$LOG" seqs op=create path="/$1"
}
m1=$(mark mark1) || m1=0
q u1000 "$M/sixty" "$T/q.npy" "$T/a.no" --no-offload
m2=$(mark mark2) || m2=0
q u1000 "$M/sixty" "$T/q300.npy" "$T/a.300"
m3=$(mark mark3) || m3=0
# opened A B: the paths uid 1000 opened in /sixty from seq A until before B
opened() {
	paste <(vv_audit_q "$LOG" seq "seq>=$1" op=open uid=1000 'path~^/sixty/t') \
	      <(vv_audit_q "$LOG" path "seq>=$1" op=open uid=1000 'path~^/sixty/t') |
		awk -v b="$2" '$1 < b { print $2 }'
}
for r in "1 $m1 $m2" "2 $m2 $m3"; do
	read -r n a b <<< "$r"
	check "audit, query $n: 60 closes by uid 1000" \
		vv_audit_wait_upto "$LOG" 60 "$a" "$b" op=close uid=1000 "path~^/sixty/t"
	check "audit, query $n: 60 opens, each segment once" \
		eval '[ "$(opened "$a" "$b" | wc -l)" = 60 ] && [ "$(opened "$a" "$b" | sort -u | wc -l)" = 60 ]'
done

# bad segments among the ones opened ahead: the plain directory's output
# and words, with and without --skip-bad, as root and as uid 1000
for who in root u1000; do
	for sb in "" --skip-bad; do
		q "$who" "$P/odd" "$T/q.npy" "$T/p.odd.$who$sb" $sb || true
		q "$who" "$M/odd" "$T/q.npy" "$T/m.odd.$who$sb" --no-offload $sb || true
		check "$who, odd ${sb:-without --skip-bad}, --no-offload: the plain output" \
			cmp -s "$T/m.odd.$who$sb" "$T/p.odd.$who$sb"
		check "$who, odd ${sb:-without --skip-bad}, --no-offload: the same messages" \
			vv_same_errors "$T/p.odd.$who$sb" "$T/m.odd.$who$sb" "$P" "$M"
		q "$who" "$P/odd" "$T/q300.npy" "$T/p.odd3.$who$sb" $sb || true
		q "$who" "$M/odd" "$T/q300.npy" "$T/m.odd3.$who$sb" $sb || true
		check "$who, odd ${sb:-without --skip-bad}, 300 queries: the plain output" \
			cmp -s "$T/m.odd3.$who$sb" "$T/p.odd3.$who$sb"
		check "$who, odd ${sb:-without --skip-bad}, 300 queries: the same messages" \
			vv_same_errors "$T/p.odd3.$who$sb" "$T/m.odd3.$who$sb" "$P" "$M"
	done
done
check "root --skip-bad: three files left out, the others scanned as they opened" \
	eval '[ "$(grep -c skipping "$T/m.odd.root--skip-bad.err")" = 3 ] &&
	      grep -q "open ahead: 62 segments opened while the scan ran, 59 of them" \
		"$T/m.odd.root--skip-bad.err"'
check "u1000 --skip-bad: the unreadable one left out too, its refusal audited" \
	eval 'grep -q "skipping $M/odd/t0044.npy: Permission denied" "$T/m.odd.u1000--skip-bad.err" &&
	      vv_audit_has "$LOG" uid=1000 path=/odd/t0044.npy "result~EACCES|EPERM"'

vv_umount "$M"
test_done
