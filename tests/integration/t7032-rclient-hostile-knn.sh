#!/bin/bash
# t7032-rclient-hostile-knn: `vecvault query` on a vv:// mount whose
# server lies in its k-NN reply (knn_ioctl.h version 2: exact distances).
# A Python TLS 1.3 server serves one directory holding seg.npy honestly
# (lookup, open, read, readdir, statfs) and answers the offload request
# per mode: honestly with exact distances (the tool must read no row back
# and print what a plain-directory query prints), as a version 1 server
# (float distances: the tool re-ranks from the rows), or with a row past
# the segment's end, a NaN distance, a negative l2 distance, candidates out
# of order, a row twice, a candidate after an unused slot, a header that
# does not echo the request, a version 2 reply with the flag cleared.  In
# every case the query succeeds with exactly the plain directory's output
# (the tool or the client daemon refuses the reply and the segment is
# scanned locally, with a message naming what was wrong): never garbage.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse
vv_need_numpy

vv_evil_init
mkdir -p "$T/plain"
"$PY" - "$T/plain/seg.npy" "$T/q.npy" <<'PY'
import numpy as np, sys
rng = np.random.default_rng(7032)
x = rng.standard_normal((3000, 16)).astype('<f4')
np.save(sys.argv[1], x)
q = rng.standard_normal((3, 16)).astype('<f4'); q[1] = x[1234]
np.save(sys.argv[2], q)
PY
cat > "$T/evil.py" <<'PY'
import struct, sys
import numpy as np
from vvfake import blob, dir_server, serve_forever
mode, cert, key, portfile, seg = sys.argv[1:6]
data = open(seg, 'rb').read()
X = np.load(seg).astype(np.float64)
N, D = X.shape
HF = '<IIIIIIIIQII'
def knn(req):
    magic, ver, metric, dim, nq, kk, thr, fmt, rows, flags, pad = struct.unpack_from(HF, req)
    q = np.frombuffer(req, '<f4', nq * dim, struct.calcsize(HF)).astype(np.float64).reshape(nq, dim)
    exact = mode != 'v1'
    out = b''
    for i in range(nq):
        # sequential sums in double, as the engine's vv_row_dist
        d = np.cumsum((X - q[i]) ** 2, axis=1)[:, -1]
        best = sorted(range(N), key=lambda r: (d[r], r))[:kk]
        c = [(float(d[r]), r) for r in best]
        if i == 0:
            if mode == 'rowpast': c[3] = (c[3][0], N + 5)
            if mode == 'nan': c[2] = (float('nan'), c[2][1])
            if mode == 'negative': c[0] = (-1.0, c[0][1])
            if mode == 'unsorted': c[1], c[4] = c[4], c[1]
            if mode == 'dup': c[5] = (c[5][0], c[4][1])
            if mode == 'gap': c[6] = (float('inf'), 2**64 - 1)
        for dd, r in c:
            out += struct.pack('<fIQ', dd, 0, r) if not exact else struct.pack('<dQ', dd, r)
    v, fl = (1, 0) if not exact else (2, 1)
    if mode == 'flagless': fl = 0
    if mode == 'badecho': nq += 1
    h = struct.pack(HF, 0x524e4b56, v, metric, dim, nq, kk, 0, fmt, N, fl, 0)
    b = h + out
    return blob(b + bytes(16320 - len(b)))
serve_forever(cert, key, portfile,
              dir_server({b'seg.npy': data}, lambda h, req: (0, knn(req))))
PY

start_evil() {   # MODE: the fake server answers for $T/plain/seg.npy
	vv_evil_start "$1" 5 "$T/plain/seg.npy"
}
# segments this small are offloaded only when asked to
export VV_KNN_OFFLOAD_MIN=0
"$VV_BIN" query "$T/plain" -q "$T/q.npy" -k 10 > "$T/plain.out"
check "plain reference: the planted row is query 1's best" grep -qP '^1\t1\t1234\t0\t' "$T/plain.out"

# mode: the tool's message for it (in its stderr, or the client daemon's log)
declare -A WHY=(
	[rowpast]='row past the segment' [nan]='not a finite number'
	[negative]="out of the metric's range" [unsorted]='not sorted' [dup]='row named twice'
	[gap]='after an unused slot' [badecho]='does not echo the request'
	[flagless]='version or flags the request did not ask for'
)
start_evil good
timeout 120 "$VV_BIN" query "$R" -q "$T/q.npy" -k 10 --stats > "$T/good.out" 2> "$T/good.err"
check "good: the server scanned the segment" grep -q 'offload: 1 of 1 segments scanned' "$T/good.err"
check "good: 30 candidates came exact, no row was read back to re-rank" \
	grep -q 'ranked exactly by the daemon in 1 requests, 0 candidate rows read back' "$T/good.err"
check "good: output identical to the plain directory's" cmp -s "$T/good.out" "$T/plain.out"
vv_evil_stop

start_evil v1
timeout 120 "$VV_BIN" query "$R" -q "$T/q.npy" -k 10 --stats > "$T/v1.out" 2> "$T/v1.err"
check "v1 server: offloaded, the tool re-ranks from the rows" \
	eval 'grep -q "offload: 1 of 1 segments" "$T/v1.err" &&
	      grep -q " 0 candidates ranked exactly" "$T/v1.err" &&
	      ! grep -q " 0 candidate rows read back" "$T/v1.err"'
check "v1 server: output identical to the plain directory's" cmp -s "$T/v1.out" "$T/plain.out"
vv_evil_stop

for mode in rowpast nan negative unsorted dup gap badecho flagless; do
	start_evil $mode
	rc=0
	timeout 120 "$VV_BIN" query "$R" -q "$T/q.npy" -k 10 --stats > "$T/$mode.out" 2> "$T/$mode.err" || rc=$?
	check "$mode: the query succeeds (rc $rc)" test "$rc" = 0
	check "$mode: the reply was refused, the segment scanned locally" \
		grep -q 'offload: 0 of 1 segments' "$T/$mode.err"
	check "$mode: output identical to the plain directory's (no garbage)" cmp -s "$T/$mode.out" "$T/plain.out"
	check "$mode: a message says what was wrong (${WHY[$mode]})" \
		eval 'grep -q "${WHY[$mode]}" "$T/$mode.err" "$T/client.log"'
	vv_evil_stop
done
test_done
