#!/bin/bash
# t7056-rclient-silent-server: a vv:// server that stops answering with its
# TCP connection up (hung, stopped for good: its kernel still acknowledges)
# is left, and the client reconnects.  Each request used to time out alone
# and the connection was kept for ever: every later request failed after
# --timeout, and only `fusermount3 -uz` helped.  Now, once a reply is owed
# for a whole --timeout and nothing arrived meanwhile, the client pings
# (a GETATTR of the root); unanswered too, the connection is closed and the
# next request reconnects.  A server that holds one request for long but
# answers the ping keeps its connection (a long request is not a dead
# peer).  A fake server (vvfake.py) serves a root directory with a file b;
# a lookup of "slow" is answered 7 s late; after a lookup of "silent" its
# first connection reads every request and answers none; later
# connections serve as before.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse

vv_evil_init
cat > "$T/evil.py" <<'PY'
import os, select, struct, sys, threading, time
from vvfake import attr, reply, request, rest, serve_forever
mode, cert, key, portfile, tdir = sys.argv[1:6]
lock = threading.Lock()
conns = [0]

def serve(c):
    with lock:
        conns[0] += 1
        n = conns[0]
        open(tdir + '/conns', 'w').write('%d\n' % n)
    held, mute = [], False
    while True:
        now = time.time()
        for due, rid, r in [h for h in held if h[0] <= now]:
            reply(c, rid, 2, 0, r)
        held = [h for h in held if h[0] > now]
        if not c.pending() and not select.select([c], [], [], 0.05)[0]:
            continue
        rid, op, b = request(c)
        if mute:
            continue                                # read, never answered
        st, r = 0, b''
        if op == 2:                                 # lookup
            m = struct.unpack_from('<H', b, 8)[0]
            name = b[10:10 + m]
            if name == b'b': r = attr(11, 4)
            elif name == b'slow':
                held.append((now + 7, rid, attr(12, 4)))
                continue
            elif name == b'silent' and n == 1:
                mute = True
                continue
            else: st = -2
        elif op == 4: r = attr(struct.unpack_from('<Q', b)[0], 4)   # getattr
        else: st, r = rest(op)
        reply(c, rid, op, st, r)
serve_forever(cert, key, portfile, serve)
PY
vv_evil_serve silent "$T"
R=$T/r-silent
check "mounted (the fake server's login)" vv_rmount "vv://127.0.0.1:$P" "$R" \
	--key-file "$T/key" --pin "$FP" --timeout 2 --attr-timeout 0
pyop() { timeout 60 "$PY" -c "$VV_PYOP" "$@" 2>&1; }
check "b is served" sh -c "[ \"\$1\" = OK ]" sh "$(pyop stat "$R/b")"

# A request held 7 s (3.5 timeouts) while the server answers the rest.
got=$(pyop stat "$R/slow")
check "a request held past --timeout fails alone (got $got)" \
	sh -c "case '$got' in ENOTCONN|EIO) exit 0;; *) exit 1;; esac"
sleep 6                                         # its late reply has arrived
check "b is still served" sh -c "[ \"\$1\" = OK ]" sh "$(pyop stat "$R/b")"
check "on the same connection: a slow server answering pings is not left" \
	grep -qx 1 "$T/conns"

# The server goes silent with the connection up.
got=$(pyop stat "$R/silent")
check "the request that met the silence fails (got $got)" \
	sh -c "case '$got' in ENOTCONN|EIO) exit 0;; *) exit 1;; esac"
served() {
	local i
	for i in $(seq 1 20); do          # a bound only: ~5 s are needed
		[ "$(pyop stat "$R/b")" = OK ] && return 0
		sleep 1
	done
	return 1
}
check "b is served again (a new connection)" served
check "the client connected again" grep -qx 2 "$T/conns"
check "the client log says why" grep -q "the server answered nothing for .* a ping included: connection closed" \
	"$T/client.log"
check "and that it reconnected" grep -q "remote: reconnected" "$T/client.log"
vv_evil_stop
test_done
