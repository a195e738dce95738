#!/bin/bash
# t7031-rclient-knn-exact: the query offload's exact replies (knn_ioctl.h
# version 2) on a real server, through a vv:// mount and the local mount.
# Two segments (an npy with an id sidecar, an fvecs) large enough to be
# offloaded.  For l2, ip and cosine: a single query, a batch too large for
# one reply (split into several requests on vv://, scanned by the tool on
# the local mount) and a k too large for any reply (never offloaded) give
# output identical to a plain-directory query of the same files, which
# equals a float64 numpy brute force.  When the daemon scanned, the tool
# read no candidate row back (--stats), and the server's audit shows the
# tool read nothing of the segment past its header (the close records'
# rbytes less the scans' share, summed over the query's handles, whose
# records may come after the query returned and in any order).  A version 1 request (an old tool) still
# gets version 1 float candidates.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse
vv_need_numpy

G=$T/gen
mkdir -p "$G/plain"
vv_listen_mount
vv_alice_coll
VECVAULT_TEST_RELEASE_GATE="$T/gate" check "mount vv://" vv_rmount "vv://alice@127.0.0.1:$P/coll" "$R" --key-file "$T/key" --pin "$FP"

"$PY" - "$G" <<'PY'
import numpy as np, sys
G = sys.argv[1]
rng = np.random.default_rng(7031)
d = 32
c = rng.standard_normal((8, d)) * 3
def clus(n): return (c[rng.integers(0, 8, n)] + rng.standard_normal((n, d))).astype('<f4')
a, b = clus(60000), clus(20000)
np.save(G + "/plain/a.npy", a)
ida = (np.arange(60000) * 5 + 1000003).astype('<i8')
np.save(G + "/plain/a.ids.npy", ida)
with open(G + "/plain/b.fvecs", "wb") as f:
    for r in b: np.int32(d).tofile(f); r.tofile(f)
q = clus(40); q[1] = b[777]; q[2] = a[4242]
np.save(G + "/q1.npy", q[1:2])
np.save(G + "/q40.npy", q)
np.save(G + "/X.npy", np.vstack([a, b]).astype(np.float64))
np.save(G + "/ids.npy", np.concatenate([ida, 60000 + np.arange(20000)]))
PY
mkdir "$R/vec"
cp "$G"/plain/* "$R/vec/"

# cmp_ref OUT METRIC K QFILE: text output OUT equals the float64 brute
# force (lib/knn_ref.py: scores within 1e-5 relative; an id may differ
# only at a tie)
cmp_ref() {
	"$PY" "$VV_SRC/tests/integration/lib/knn_ref.py" "$G/X.npy" "$G/ids.npy" "$4" "$1" "$2" "$3"
}
# q DIR OUT QFILE K [args]: query with --stats into OUT and OUT.stats
q() {
	local dir=$1 out=$2 qf=$3 k=$4
	shift 4
	"$VV_BIN" query "$dir" -q "$qf" -k "$k" --stats "$@" > "$out" 2> "$out.stats"
}
# wait_offload DIR: until a single query has both segments scanned by the daemon
wait_offload() {
	local i
	for i in $(seq 1 100); do
		q "$1" "$T/w" "$G/q1.npy" 10 && grep -q "offload: 2 of 2 segments" "$T/w.stats" && return 0
		sleep 0.2
	done
	return 1
}
check "vv://: the server's offload cache is filled" wait_offload "$R/vec"
check "local mount: the daemon's offload cache is filled" wait_offload "$M/coll/vec"

for m in l2 ip cosine; do
	q "$G/plain" "$T/p1.$m" "$G/q1.npy" 10 --metric $m
	check "$m single query: plain directory equals the float64 brute force" \
		cmp_ref "$T/p1.$m" $m 10 "$G/q1.npy"
	for t in vv:$R/vec local:$M/coll/vec; do
		n=${t%%:*}
		q "${t#*:}" "$T/$n.1.$m" "$G/q1.npy" 10 --metric $m
		check "$n $m single query: scanned by the daemon, identical to the plain directory" \
			eval 'grep -q "offload: 2 of 2 segments" "$T/$n.1.$m.stats" &&
			      cmp -s "$T/$n.1.$m" "$T/p1.$m"'
		check "$n $m single query: 52 exact candidates in 2 requests, no row read back" \
			grep -q "52 candidates ranked exactly by the daemon in 2 requests, 0 candidate rows read back" \
			"$T/$n.1.$m.stats"
	done

	# 40 queries x (10 + 16) candidates > 1017: two requests per segment on vv://
	q "$G/plain" "$T/p40.$m" "$G/q40.npy" 10 --metric $m
	check "$m batch of 40: plain directory equals the float64 brute force" \
		cmp_ref "$T/p40.$m" $m 10 "$G/q40.npy"
	q "$R/vec" "$T/vv.40.$m" "$G/q40.npy" 10 --metric $m
	check "vv $m batch of 40: split into 4 requests, no row read back, identical" \
		eval 'grep -q "2080 candidates ranked exactly by the daemon in 4 requests, 0 candidate rows read back" \
			"$T/vv.40.$m.stats" && cmp -s "$T/vv.40.$m" "$T/p40.$m"'
	q "$M/coll/vec" "$T/local.40.$m" "$G/q40.npy" 10 --metric $m
	check "local $m batch of 40: scanned by the tool (does not fit one request), identical" \
		eval 'grep -q "offload: 0 of 2 segments" "$T/local.40.$m.stats" &&
		      cmp -s "$T/local.40.$m" "$T/p40.$m"'
done

# k 1100: 1116 candidates per query fit no reply: never offloaded
q "$G/plain" "$T/pk" "$G/q1.npy" 1100
check "k 1100: plain directory equals the float64 brute force" cmp_ref "$T/pk" l2 1100 "$G/q1.npy"
for t in vv:$R/vec local:$M/coll/vec; do
	n=${t%%:*}
	q "${t#*:}" "$T/$n.k" "$G/q1.npy" 1100
	check "$n k 1100: scanned by the tool, identical to the plain directory" \
		eval 'grep -q "offload: 0 of 2 segments" "$T/$n.k.stats" && cmp -s "$T/$n.k" "$T/pk"'
done

# The server's own count: with caches dropped, a vv:// query reads only the
# segments' headers (the close records' rbytes, less a whole segment per
# scan, stay under 1 MiB) where a re-ranking from the rows would have
# faulted in whole read-ahead windows.  A close record reaches the log
# after close() returned (the kernel sends RELEASE in the background, the
# client answers a read-only one before the server has it, the audit
# writer flushes once a second: docs/audit.md "Records after close"), and
# the records of different handles in any order.  So the records of this
# query are told by sequence number, after a point where every earlier
# handle of a.npy had its close record in the log, and summed once every
# open of them has its close.  The client is made to hold the query's
# releases back ($T/gate) to show that the close can come after the
# query returned and after a later request's record.
AUD=$(vv_audit_log "$S")
A="path=/coll/vec/a.npy"
VVC="client~^127\\.0\\.0\\.1:"
# mark NAME: a mkdir through the client, waited for in the log: every
# request that returned before it has its record in the log then
mark() { mkdir "$R/$1" && vv_audit_has "$AUD" op=mkdir "path=/coll/$1"; }
# closed SEQ: every open (or create) of a.npy through the client after SEQ
# has its close
closed() {
	[ "$(vv_audit_q "$AUD" count "op~^(open|create)$" $A "$VVC" "seq>=$1")" = \
	  "$(vv_audit_q "$AUD" count op=close $A "$VVC" "seq>=$1")" ]
}
check "before: the marker is in the log" mark m0
check "before: every earlier handle of a.npy has its close record" vv_soon closed 0
S0=$(( $(vv_audit_q "$AUD" seq | tail -1) + 1 ))
sync; echo 3 > /proc/sys/vm/drop_caches
: > "$T/gate"
q "$R/vec" "$T/cold" "$G/q1.npy" 10
check "cold vv:// query: scanned by the server, no row read back, identical" \
	eval 'grep -q "offload: 2 of 2 segments" "$T/cold.stats" &&
	      grep -q " 0 candidate rows read back" "$T/cold.stats" && cmp -s "$T/cold" "$T/p1.l2"'
check "after the query: a later request's record is in the log" mark m1
NO=$(vv_audit_q "$AUD" count op=open $A "$VVC" "seq>=$S0")
NC=$(vv_audit_q "$AUD" count op=close $A "$VVC" "seq>=$S0")
check "the query opened a.npy ($NO) and the client holds its release back: no close record yet ($NC)" \
	test "$NO" -ge 1 -a "$NC" = 0
rm -f "$T/gate"
check "once let go, every handle of the query has its close record" vv_soon closed "$S0"
SZ=$(stat -c %s "$G/plain/a.npy")
NS=$(vv_audit_q "$AUD" count op=scan $A "$VVC" "seq>=$S0")
RB=$(vv_audit_q "$AUD" rbytes op=close $A "$VVC" "seq>=$S0" | awk '{ s += $1 } END { print s + 0 }')
check "server: the tool read $((RB - NS * SZ)) bytes of a.npy besides $NS scan (< 1 MiB)" \
	test "$NS" -ge 1 -a "$RB" -ge $((NS * SZ)) -a $((RB - NS * SZ)) -lt $((1 << 20))

# an old tool's version 1 request still gets version 1 float candidates
"$PY" - "$R/vec/a.npy" <<'PY' > "$T/v1"
import fcntl, struct, sys
SIZE = 16320
KNN = (3 << 30) | (SIZE << 16) | (ord('v') << 8) | 0x4b
b = bytearray(SIZE)
struct.pack_into("<8I", b, 0, 0x4e4e4b56, 1, 1, 32, 1, 5, 0, 4)
fd = open(sys.argv[1], "rb")
for i in range(100):
    try:
        fcntl.ioctl(fd, KNN, b, True); break
    except BlockingIOError:
        import time; time.sleep(0.1)
magic, ver = struct.unpack_from("<2I", b, 0)
flags = struct.unpack_from("<I", b, 40)[0]
d0, _, r0 = struct.unpack_from("<fIQ", b, 48)
print(hex(magic), ver, flags, r0 < 60000)
PY
check "version 1 request: version 1 reply with float candidates ($(cat "$T/v1"))" \
	test "$(cat "$T/v1")" = "0x524e4b56 1 0 True"
test_done
