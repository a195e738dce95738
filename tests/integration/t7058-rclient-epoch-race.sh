#!/bin/bash
# t7058-rclient-epoch-race: a request the vv:// client prepared for one
# connection (its inodes looked up again, its handle re-opened there) is
# never sent on the next.  A new session numbers its handles from 1 again,
# so a handle id of the old one names another file there: a READ of b
# prepared on connection 1 and sent, after another thread reconnected, on
# connection 2 read a's bytes as b's (a WRITE would write into a).  Now
# it is prepared again for connection 2.  VECVAULT_TEST_SEND_GATE holds
# the READ between its preparation and its sending while the test cuts
# connection 1 and re-opens a on connection 2.  A fake server (vvfake.py)
# serves a (4 KiB of 'A') and b ('B'), numbers each connection's handles
# from 1, and closes a connection at the first LOOKUP of cut1 and of cut2.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse

vv_evil_init
cat > "$T/evil.py" <<'PY'
import struct, sys, threading
from vvfake import attr, blob, lookup_name, reply, request, rest, serve_forever
mode, cert, key, portfile, tdir = sys.argv[1:6]
lock = threading.Lock()
files = {b'a': (10, b'A' * 4096), b'b': (11, b'B' * 4096)}
data = {i: d for i, d in files.values()}
cut, conns = set(), [0]

def serve(c):
    with lock:
        n = conns[0]
        conns[0] += 1
    handles = []                                # this session's: id i + 1
    while True:
        rid, op, b = request(c)
        st, r = 0, b''
        if op == 2:                             # lookup
            nm = lookup_name(b)
            with lock:
                if nm in (b'cut1', b'cut2') and nm not in cut:
                    cut.add(nm)
                    return                      # the connection ends
            if nm in files: r = attr(files[nm][0], 4096)
            else: st = -2
        elif op == 4:                           # getattr
            i = struct.unpack_from('<Q', b)[0]
            r = attr(i, len(data.get(i, b'')))
        elif op == 14:                          # open
            i = struct.unpack_from('<Q', b)[0]
            handles.append(i)
            with lock:
                open(tdir + '/opens', 'a').write('%d %d %d\n' % (n, i, len(handles)))
            r = struct.pack('<QIQ', len(handles), 0, n + 1) + attr(i, 4096)
        elif op == 16:                          # read: the handle's file
            h, off, size = struct.unpack_from('<QQI', b)
            if 1 <= h <= len(handles): r = blob(data[handles[h - 1]][off:off + size])
            else: st = -9
        else: st, r = rest(op)
        reply(c, rid, op, st, r)
serve_forever(cert, key, portfile, serve)
PY
vv_evil_serve race "$T"
R=$T/r-race
VECVAULT_TEST_SEND_GATE="$T/gate" check "mounted (the fake server's login)" \
	vv_rmount "vv://127.0.0.1:$P" "$R" --key-file "$T/key" --pin "$FP" --timeout 5 \
	--attr-timeout 0

cat > "$T/race.py" <<PY
import os, threading, time
R, T = '$R', '$T'
def opened(conn, ino):
    for _ in range(300):
        if os.path.exists(T + '/opens') and \
           any(l.split()[:2] == [str(conn), str(ino)] for l in open(T + '/opens')):
            return True
        time.sleep(0.1)
    return False
def stat(p):
    try: os.stat(p)
    except OSError: pass
fa = os.open(R + '/a', os.O_RDONLY)             # connection 0: a 1, b 2
fb = os.open(R + '/b', os.O_RDONLY)
stat(R + '/cut1')                               # connection 1 from here
open(T + '/gate', 'w').close()
got = []
x = threading.Thread(target=lambda: got.append(os.pread(fb, 100, 0)))
x.start()                                       # b re-opened on 1, as 1; held
print('b reopened on connection 1:', opened(1, 11), flush=True)
stat(R + '/cut2')                               # connection 2 from here
try: os.fsync(fa)                               # a re-opened on 2, as 1
except OSError: pass
print('a reopened on connection 2:', opened(2, 10), flush=True)
os.unlink(T + '/gate')
x.join(60)
print('read of b:', got[0][:8] if got else None, flush=True)
PY
out=$(timeout 120 "$PY" "$T/race.py" 2>&1) || true
printf '%s\n' "$out" | sed 's/^/# /'
check "b's READ was prepared on connection 1" grep -q "b reopened on connection 1: True" <<<"$out"
check "a was re-opened on connection 2 meanwhile" grep -q "a reopened on connection 2: True" <<<"$out"
check "the READ of b read b's bytes, not a's" grep -q "read of b: b'BBBBBBBB'" <<<"$out"
check "b was opened again on connection 2" grep -q "^2 11 " "$T/opens"
vv_evil_stop
test_done
