#!/bin/bash
# t7057-rclient-no-resend: a request the vv:// client sent and the server
# may have done before the connection died is sent again on the new
# connection only when doing it twice gives the same outcome.  The client
# used to send every such request once more: a MKDIR done on the first
# connection failed EEXIST on the second (or, against this fake server,
# was done twice), a RENAME was done twice, and an append to an O_APPEND
# file (the server appends at the end, whatever the offset) landed twice.
# Those now fail ENOTCONN and the log says why; a lookup or a write at an
# offset is still sent again and succeeds.  A fake server (vvfake.py)
# logs every request it reads, and closes its connection without an
# answer the first time it reads each of MKDIR, RENAME, a WRITE to an
# O_APPEND handle, one to another handle, and a LOOKUP of "again".
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse

vv_evil_init
cat > "$T/evil.py" <<'PY'
import struct, sys, threading
from vvfake import attr, lookup_name, reply, request, rest, serve_forever
mode, cert, key, portfile, tdir = sys.argv[1:6]
lock = threading.Lock()
cut = set()                  # (op, name) whose first reading closed a connection
flags = {}                   # handle -> open flags

def serve(c):
    while True:
        rid, op, b = request(c)
        with lock:
            arg = lookup_name(b) if op == 2 else b''
            if op == 17:
                h = struct.unpack_from('<Q', b)[0]
                arg = b'append' if flags.get(h, 0) & 0o2000 else b'at'
            open(tdir + '/ops', 'a').write('%d %s\n' % (op, arg.decode()))
            key = (op, arg)
            if key in ((8, b''), (13, b''), (17, b'append'), (17, b'at'), (2, b'again')) and \
               key not in cut:
                cut.add(key)
                c.close()                       # read, done or not, unanswered
                return
        st, r = 0, b''
        if op == 2:                             # lookup
            nm = lookup_name(b)
            if nm in (b'b', b'again', b'c'): r = attr({b'b': 11, b'again': 12, b'c': 13}[nm], 4)
            else: st = -2
        elif op == 4:                           # getattr
            i = struct.unpack_from('<Q', b)[0]
            r = attr(i, 4, dir=i == 20)
        elif op == 8: r = attr(20, 0, dir=True)  # mkdir
        elif op == 13: r = b''                  # rename
        elif op == 14:                          # open: handle = inode
            i, fl = struct.unpack_from('<QI', b)
            with lock: flags[i] = fl
            r = struct.pack('<QIQ', i, 0, 1) + attr(i, 4)
        elif op == 17:                          # write
            r = struct.pack('<I', struct.unpack_from('<I', b, 16)[0])
        else: st, r = rest(op)
        reply(c, rid, op, st, r)
serve_forever(cert, key, portfile, serve)
PY
vv_evil_serve cut "$T"
R=$T/r-cut
check "mounted (the fake server's login)" vv_rmount "vv://127.0.0.1:$P" "$R" \
	--key-file "$T/key" --pin "$FP" --timeout 5 --attr-timeout 0
pyop() { timeout 60 "$PY" -c "$VV_PYOP" "$@" 2>&1; }
# sent OP [NAME]: how many times the fake server read request OP (of NAME)
sent() { grep -c "^$1 ${2-}" "$T/ops" || true; }

got=$(pyop stat "$R/again")
check "a lookup cut off is sent again and answered (got $got)" [ "$got" = OK ]
check "... read twice by the server" [ "$(sent 2 again)" = 2 ]

got=$(pyop mkdir "$R/d")
check "a mkdir cut off fails (got $got)" [ "$got" = ENOTCONN ]
check "... and was not sent again (read $(sent 8) times)" [ "$(sent 8)" = 1 ]
check "the client log says why" grep -q "a mkdir sent and unanswered: not sent again" \
	"$T/client.log"
check "the next mkdir is served" [ "$(pyop mkdir "$R/d")" = OK ]

got=$(pyop rename "$R/b" "$R/c")
check "a rename cut off fails (got $got)" [ "$got" = ENOTCONN ]
check "... and was not sent again (read $(sent 13) times)" [ "$(sent 13)" = 1 ]
# (a rename after any reconnect used to fail ESTALE unsent: its flags were
# taken for the new parent's inode)
got=$(pyop rename "$R/b" "$R/c")
check "the next rename is served (got $got)" [ "$got" = OK ]

got=$(pyop append "$R/b" line)
check "an append cut off fails (got $got)" [ "$got" = ENOTCONN ]
check "... and was not sent again (read $(sent 17 append) times)" [ "$(sent 17 append)" = 1 ]
got=$(pyop write "$R/b" line)
check "a write at an offset cut off is sent again and served (got $got)" [ "$got" = OK ]
check "... read twice by the server" [ "$(sent 17 at)" = 2 ]
vv_evil_stop
test_done
