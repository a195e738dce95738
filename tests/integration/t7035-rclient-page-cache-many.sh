#!/bin/bash
# t7035-rclient-page-cache-many: the vv:// client keeps the page cache of
# every unchanged file of a 400-file directory across opens (the data
# generation is kept per inode the kernel holds, not in a small table
# where files pushed each other out and were re-read at every pass), and a
# file changed on the server among them is still read anew at its next
# open.  A second pass over all of them reads nothing from the server:
# 400 more close records with rbytes=0.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
R=$T/r
LOG=$T/daemon.log
N=400
vv_listen_mount
FP=$("$VV_BIN" tls fingerprint "$T/tls/cert.pem" | sed -n 's/^sha256://p')
mkdir "$M/coll"
chown 1000:1000 "$M/coll"
"$VV_BIN" user add alice --uid 1000 --no-password "$M" >/dev/null
"$VV_BIN" key create alice "$M" > "$T/key" 2>/dev/null
chmod 600 "$T/key"
"$PY" - "$M/coll" "$N" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with open(os.path.join(d, "s%05d" % i), "wb") as f:
        f.write(b"%05d " % i + os.urandom(3000))
    os.chown(os.path.join(d, "s%05d" % i), 1000, 1000)
PY
check "mounted" vv_rmount "vv://127.0.0.1:$P/coll" "$R" --key-file "$T/key" --pin "$FP"

cached() { vv_audit_q "$AUD" count op=close "path~^/coll/s" rbytes=0; }
allclosed() { vv_audit_q "$AUD" count op=close "path~^/coll/s"; }
waitfor() {     # waitfor N FUNC: until FUNC counts N or more (bounded)
	local i
	for i in $(seq 1 300); do [ "$($2)" -ge "$1" ] && return 0; sleep 0.1; done
	return 1
}
check "first pass reads every file" sh -c "cat '$R'/s* | wc -c | grep -qx $((N * 3006))"
check "its closes are audited" waitfor "$N" allclosed
C0=$(cached)
check "second pass: the same bytes" sh -c "cat '$R'/s* | wc -c | grep -qx $((N * 3006))"
check "and every one of the $N files came from the page cache (rbytes=0)" waitfor $((C0 + N)) cached
echo "changed" > "$M/coll/s01234"
check "a file changed on the server is read anew at its next open" grep -qx changed "$R/s01234"
test_done
