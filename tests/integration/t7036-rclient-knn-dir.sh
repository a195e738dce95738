#!/bin/bash
# t7036-rclient-knn-dir: the directory request (VV_IOC_KNN_DIR) through a
# vv:// mount: the client daemon forwards it as a KNN frame on the
# server's directory handle, the server scans the named files as the
# remote user.  Collections of 1, 60 and 300 tiny segments answer byte for
# byte as the local mount and the plain directory; --stats says the files
# were served by name; the server's audit has one scan record per served
# file under the remote user (uid 1000) and no open of it.  A file the
# remote user may not read is refused by name and then by the tool's own
# open (Permission denied), as on the local mount.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse
vv_need_numpy

G=$T/gen
mkdir -p "$G"
vv_listen_mount
vv_alice_coll
check "mount vv://" vv_rmount "vv://alice@127.0.0.1:$P/coll" "$R" --key-file "$T/key" --pin "$FP"

"$PY" - "$G" "$VV_SRC/tests/integration/lib" <<'PY'
import numpy as np, sys
sys.path.insert(0, sys.argv[2])
from seg_layout import layout as cut
G = sys.argv[1]
rng = np.random.default_rng(7036)
d = 16
X = rng.standard_normal((40000, d)).astype('<f4')
X[[5, 77, 3001]] = X[5]                     # ties across segments
q = rng.standard_normal((3, d)).astype('<f4'); q[0] = X[5]
np.save(G + "/q.npy", q)
def layout(name, sizes): cut(G, name, X, sizes)
layout("one", [50])
layout("sixty", [100] * 60)
layout("three", [int(k) for k in rng.integers(1, 40, 300)])
layout("deny", [30] * 10)
PY
cp -r "$G/one" "$G/sixty" "$G/three" "$G/deny" "$M/coll/"
chown -R 1000:1000 "$M/coll"
# deny/t0004.npy: root's, mode 600: alice (uid 1000) may not read it
chown 0:0 "$M/coll/deny/t0004.npy"
chmod 600 "$M/coll/deny/t0004.npy"

# q DIR OUT [args]: query (root; on vv:// the server sees alice) into OUT, OUT.stats
q() {
	local dir=$1 out=$2
	shift 2
	"$VV_BIN" query "$dir" -q "$G/q.npy" -k 10 --stats "$@" > "$out" 2> "$out.stats"
}
nserved() { sed -n 's/.*directory offload: \([0-9]*\) of.*/\1/p' "$1.stats"; }
# wait_served DIR OUT N [args]: until N files are served by name and none
# is still being decrypted by the daemon (it decrypts each in the background)
wait_served() {
	local dir=$1 out=$2 n=$3 i
	shift 3
	for i in $(seq 150); do
		q "$dir" "$out" "$@" || return 1
		[ "$(nserved "$out")" -ge "$n" ] &&
			grep -q "directory offload: .* 0 still being decrypted there" "$out.stats" && return 0
		sleep 0.2
	done
	echo "# not served: $(grep 'directory offload' "$out.stats")"
	return 1
}

for lay in one:0 sixty:59 three:299; do
	n=${lay#*:} lay=${lay%%:*}
	q "$G/$lay" "$T/p.$lay"
	check "vv://, $lay: $n files served by name" wait_served "$R/$lay" "$T/w.$lay" "$n"
	q "$R/$lay" "$T/r.$lay"
	q "$M/coll/$lay" "$T/m.$lay"
	echo "# vv://: $(grep 'directory offload' "$T/r.$lay.stats")"
	check "vv://, $lay: identical to the plain directory and the local mount" \
		eval 'cmp -s "$T/r.$lay" "$T/p.$lay" && cmp -s "$T/m.$lay" "$T/p.$lay" &&
		      [ "$(nserved "$T/r.$lay")" = "$n" ]'
	VV_KNN_OFFLOAD=0 q "$R/$lay" "$T/r0.$lay"
	check "vv://, $lay, VV_KNN_OFFLOAD=0: nothing named, the same output" \
		eval '[ "$(nserved "$T/r0.$lay")" = 0 ] && cmp -s "$T/r0.$lay" "$T/p.$lay"'
done

# audit: the served query of sixty opened only t0000 and had the server
# scan 59 by name, as alice (uid 1000), from the client
VVC="client~^127\\.0\\.0\\.1:"
mark() {
	mkdir "$R/$1" && vv_audit_has "$AUD" op=mkdir "path=/coll/$1" >/dev/null || return 1
	vv_audit_q "$AUD" seqs op=mkdir "path=/coll/$1"
}
m1=$(mark mark1) || m1=0
q "$R/sixty" "$T/a.served"
m2=$(mark mark2) || m2=0
check "audit: the served query answered as before" \
	eval '[ "$(nserved "$T/a.served")" = 59 ] && cmp -s "$T/a.served" "$T/p.sixty"'
check "audit: one scan record per served file, alice's (uid 1000), from the client" \
	vv_audit_wait_upto "$AUD" 59 "$m1" "$m2" op=scan uid=1000 result=ok "$VVC" \
		'path~^/coll/sixty/t00[0-9][0-9][.](npy|fvecs)$'
check "audit: the served query opened only the first segment" \
	vv_audit_wait_upto "$AUD" 1 "$m1" "$m2" op=open 'path~^/coll/sixty/t'

# a name alice may not read: refused by name (audited), then the tool's
# own open of it fails as it does on the local mount as uid 1000
q "$R/deny" "$T/r.deny" || true
check "deny: the query fails on the unreadable file" \
	grep -q "deny/t0004.npy: Permission denied" "$T/r.deny.stats"
check "deny --skip-bad: it is left out, the other 8 (not the first) served by name" \
	wait_served "$R/deny" "$T/r.deny.sb" 8 --skip-bad
setpriv --reuid=1000 --regid=1000 --clear-groups -- \
	"$VV_BIN" query "$M/coll/deny" -q "$G/q.npy" -k 10 --skip-bad > "$T/m.deny.sb" 2>/dev/null
check "deny --skip-bad: the local mount's output as uid 1000" \
	eval 'grep -q "skipping $R/deny/t0004.npy: Permission denied" "$T/r.deny.sb.stats" &&
	      cmp -s "$T/r.deny.sb" "$T/m.deny.sb"'
check "deny: the refused name is audited, alice's" \
	vv_audit_has "$AUD" op=scan uid=1000 path=/coll/deny/t0004.npy 'result~EACCES|EPERM'

# a hostile client: RELEASEDIR sent right behind a directory request on
# the same handle (the server runs a session's requests on several
# workers) waits until the scan is done, rather than freeing the handle
# under it: both answer, the scan with every name served, and the session
# goes on.  (The replies may come in either order: the release's is sent
# by another worker once the scan let go of the handle.  This catches the
# use after free only as a crash or a garbled reply, or under VV_SANITIZE.)
rkey "$(cat "$T/key")" "
sys.path.insert(0, '$VV_SRC/tests/integration/lib')
import knn_dir as K, struct
names = ['t%04d.npy' % s for s in range(300) if s % 4 != 1][:200]
ino = c.walk('/coll/three')
order = []
for i in range(10):
    dh = c.call('opendir', ino)[0]
    a = c.send('knn', dh, bytes(K.req(16, 40, 10, [0.5] * 640, names, fmt=K.NPY)))
    b = c.send('releasedir', dh)
    got = [c.recv() for _ in range(2)]
    st = {rid: s for rid, op, s, body in got}
    order.append(('knn first' if got[0][0] == a else 'release first') + ' %d %d' % (st[a], st[b]))
    if st[a] == 0:
        body = [x for x in got if x[0] == a][0][3]
        h = K.parse(bytearray(body[4:]))[0]
        order[-1] += ' served %d' % h['served']
print('\\n'.join(order))
print('after', c.err('getattr', ino))
" > "$T/race" 2>&1 || true
sed 's/^/# /' "$T/race"
check "releasedir behind a directory request: both answered, all 200 names served, 10 times" \
	eval '[ "$(grep -Ec "^(knn|release) first 0 0 served 200$" "$T/race")" = 10 ] &&
	      grep -q "^after 0$" "$T/race"'
test_done
