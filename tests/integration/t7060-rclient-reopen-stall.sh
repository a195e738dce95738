#!/bin/bash
# t7060-rclient-reopen-stall: after a reconnect, the vv:// client opens
# each file handle again on the new connection; that OPEN is a round trip
# and must not hold the client's inode-record lock, or one handle's
# re-open stalls every other thread's lookup and getattr until the server
# answers (up to --timeout).  A fake server (vvfake.py) serves a root
# directory with files a and b, drops the first connection when asked for
# the name "drop", and on the later connections holds its answer to the
# OPEN of a until the test says go.  While it holds it, a stat of b (a
# LOOKUP: --attr-timeout 0) must complete; two reads on the same handle
# meanwhile must open it again only once (the server counts the OPENs of
# a); after go both reads return a's bytes.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse

vv_evil_init
cat > "$T/evil.py" <<'PY'
import os, select, struct, sys, threading, time
from vvfake import attr, blob, reply, request, rest, serve_forever
mode, cert, key, portfile, tdir = sys.argv[1:6]
A = bytes(range(256)) * (4 << 12)                 # a: 4 MiB
files = {b'a': (10, A), b'b': (11, b'bee\n')}
data = {i: d for i, d in files.values()}
lock = threading.Lock()
conns = [0]

def at(i):
    return attr(i, len(data.get(i, b'')))

def serve(c):
    with lock:
        conns[0] += 1
        n = conns[0]
    held = []                                       # (rid, reply) of held OPENs
    while True:
        if held and os.path.exists(tdir + '/go'):
            for rid, r in held:
                reply(c, rid, 14, 0, r)
            held = []
        if not c.pending() and not select.select([c], [], [], 0.05)[0]:
            continue
        rid, op, b = request(c)
        st, r = 0, b''
        if op == 2:                                 # lookup
            m = struct.unpack_from('<H', b, 8)[0]
            name = b[10:10 + m]
            if name == b'drop' and n == 1:
                raise EOFError                      # the connection dies
            if name in files: r = at(files[name][0])
            else: st = -2
        elif op == 4: r = at(struct.unpack_from('<Q', b)[0])
        elif op == 14:                              # open: handle = inode
            i = struct.unpack_from('<Q', b)[0]
            r = struct.pack('<QIQ', i, 1, 1) + at(i)
            if i == 10 and n > 1:
                with open(tdir + '/opens', 'a') as f:
                    f.write('open\n')
                held.append((rid, r))
                continue
        elif op == 16:                              # read
            h, off, size = struct.unpack_from('<QQI', b)
            r = blob(data[h][off:off + size])
        else: st, r = rest(op)
        reply(c, rid, op, st, r)
serve_forever(cert, key, portfile, serve)
PY

rm -f "$T/port"
"$PY" "$T/evil.py" stall "$T/tls/cert.pem" "$T/tls/key.pem" "$T/port" "$T" &
EVIL=$!
for i in $(seq 1 100); do [ -s "$T/port" ] && break; sleep 0.1; done
P=$(cat "$T/port")
R=$T/r-stall
check "mounted (the fake server's login)" vv_rmount "vv://127.0.0.1:$P" "$R" \
	--key-file "$T/key" --pin "$FP" --timeout 40 --attr-timeout 0

"$PY" - "$R" "$T" > "$T/out" 2>&1 <<'PY' || true
import os, sys, threading, time
R, T = sys.argv[1:3]
A = bytes(range(256)) * (4 << 12)
fd = os.open(R + '/a', os.O_RDONLY)
os.stat(R + '/b')
try:
    os.stat(R + '/drop')                        # the first connection dies here
except OSError:
    pass
got = {}
def rd(off):
    got[off] = os.pread(fd, 4096, off)
readers = [threading.Thread(target=rd, args=(off,), daemon=True) for off in (0, 2 << 20)]
readers[0].start()
for i in range(400):                            # the server holds the re-open
    if os.path.exists(T + '/opens'):
        break
    time.sleep(0.05)
print('held:', os.path.exists(T + '/opens'))
readers[1].start()
time.sleep(0.5)
done = []
st = threading.Thread(target=lambda: done.append(os.stat(R + '/b').st_size), daemon=True)
st.start()
st.join(20)                                     # a bound only: it never needs it
print('stat of b while the re-open is held:', done[0] if done else 'blocked')
open(T + '/go', 'w').close()
for t in readers:
    t.join(60)
st.join(60)
print('reads:', all(got.get(o) == A[o:o + 4096] for o in (0, 2 << 20)))
PY
sed 's/^/# /' "$T/out"
check "the server holds the OPEN of a on the new connection" grep -qx 'held: True' "$T/out"
check "a stat of b completes while it is held" \
	grep -qx 'stat of b while the re-open is held: 4' "$T/out"
check "both reads on the handle return its bytes once it is answered" grep -qx 'reads: True' "$T/out"
check "the handle was opened again once, not once per reader" \
	sh -c "[ \$(grep -c open '$T/opens') -eq 1 ]"
vv_evil_stop
test_done
