#!/bin/bash
# t7037-rclient-hostile-knn-dir: the directory request on a vv:// mount
# whose server lies in its reply, or does not know the request.  A Python
# TLS 1.3 server serves one directory of four small segments honestly
# (lookup, open, read, readdir) and answers a KNN frame on its directory
# handle per mode: honestly (three files served by name, the first one
# opened as ever), as an older server (EBADF: no such file handle; the
# client daemon answers ENOTTY, the tool opens each file), or with a reply
# of the wrong size, the wrong magic, a header that does not echo the
# request (refused by the client daemon), a row past its file's end,
# totals that do not add up, candidates out of order (refused by the
# tool).  In every case the query succeeds with exactly the plain
# directory's output, and a message says what was wrong.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse
vv_need_numpy

vv_evil_init
mkdir -p "$T/plain"
"$PY" - "$T/plain" "$T/q.npy" <<'PY'
import numpy as np, sys
rng = np.random.default_rng(7037)
for s in range(4):
    np.save(sys.argv[1] + "/t%04d.npy" % s, rng.standard_normal((20 + s, 8)).astype('<f4'))
np.save(sys.argv[2], rng.standard_normal((2, 8)).astype('<f4'))
PY
cat > "$T/evil.py" <<'PY'
import os, struct, sys
import numpy as np
from vvfake import blob, dir_server, serve_forever
mode, cert, key, portfile, plain = sys.argv[1:6]
names = sorted(os.listdir(plain))
X = {n.encode(): np.load(plain + "/" + n).astype(np.float64) for n in names}
HF = '<11IIQ'
def knn_dir(req):
    h = list(struct.unpack_from(HF, req))
    magic, ver, metric, dim, dtype, fmt, nq, kk, nn, nl = h[:10]
    off = struct.calcsize(HF)
    q = np.frombuffer(req, '<f4', nq * dim, off).astype(np.float64).reshape(nq, dim)
    nm = req[off + nq * dim * 4:off + nq * dim * 4 + nl].split(b'\0')[:nn]
    stats = b''.join(struct.pack('<iIQ', 0, 0, len(X[n])) for n in nm)
    h[0], h[11], h[12] = 0x524b4456, nn, sum(len(X[n]) for n in nm)
    if mode == 'badmagic': h[0] = 0x524e4b56
    if mode == 'badecho': h[7] += 1
    if mode == 'totals': h[12] += 1
    cands = b''
    for i in range(nq):
        c = []
        for j, n in enumerate(nm):
            d = np.cumsum((X[n] - q[i]) ** 2, axis=1)[:, -1]
            c += [(float(d[r]), j, r) for r in range(len(d))]
        c = sorted(c)[:kk]
        if mode == 'rowpast': c[0] = (c[0][0], c[0][1], 1000)
        if mode == 'unsorted': c[0], c[1] = c[1], c[0]
        c += [(0.0, 0xffffffff, 2**64 - 1)] * (kk - len(c))
        cands += b''.join(struct.pack('<dIIQ', d, j, 0, r) for d, j, r in c)
    b = struct.pack(HF, *h) + stats + cands
    if mode == 'short': return blob(b[:100])
    return blob(b + bytes(16320 - len(b)))
def knn(h, req):
    if h != 9: return -26, b''                   # files: ENOTTY
    if mode == 'old': return -21, b''            # an older server: EBADF
    return 0, knn_dir(req)
serve_forever(cert, key, portfile,
              dir_server({n.encode(): open(plain + "/" + n, 'rb').read() for n in names}, knn))
PY

"$VV_BIN" query "$T/plain" -q "$T/q.npy" -k 5 > "$T/plain.out"
# mode: the message for it (the tool's stderr or the client daemon's log)
declare -A WHY=(
	[old]='has no directory knn request' [short]='' [badmagic]='does not answer the request'
	[badecho]='does not answer the request' [rowpast]="a row past its file's end"
	[totals]='totals that do not add up' [unsorted]='not sorted'
)
vv_evil_start good 5 "$T/plain"
timeout 120 "$VV_BIN" query "$R" -q "$T/q.npy" -k 5 --stats > "$T/good.out" 2> "$T/good.err"
check "good: three files served by name" grep -q 'directory offload: 3 of 4 segments' "$T/good.err"
check "good: output identical to the plain directory's" cmp -s "$T/good.out" "$T/plain.out"
vv_evil_stop
for mode in old short badmagic badecho rowpast totals unsorted; do
	vv_evil_start $mode 5 "$T/plain"
	rc=0
	timeout 120 "$VV_BIN" query "$R" -q "$T/q.npy" -k 5 --stats > "$T/$mode.out" 2> "$T/$mode.err" || rc=$?
	check "$mode: the query succeeds (rc $rc)" test "$rc" = 0
	check "$mode: nothing served by name, each file read by the tool" \
		grep -q 'directory offload: 0 of 4 segments' "$T/$mode.err"
	check "$mode: output identical to the plain directory's" cmp -s "$T/$mode.out" "$T/plain.out"
	[ -n "${WHY[$mode]}" ] && check "$mode: a message says what was wrong (${WHY[$mode]})" \
		eval 'grep -q "${WHY[$mode]}" "$T/$mode.err" "$T/client.log"'
	vv_evil_stop
done
test_done
