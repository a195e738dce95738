#!/bin/bash
# t7029-rclient-hostile-readdir: the vv:// client against a lying server
# in what makes metadata walks fast (protocol version 2): the attribute
# record's flags byte and READDIR's entries and end flag.  A Python TLS
# 1.3 server answers the login, GETATTR of the root (a directory) and
# OPENDIR honestly, then READDIR (or GETATTR) with, per mode: an unknown
# attribute flag bit, a name longer than 255 bytes, an entry whose name
# runs past the blob, a blob length beyond the frame, an end flag of 7, a
# reply without the end flag (a version 1 server), '/' in a name.  Each
# time the listing fails with EIO (or ENOTCONN when the frame itself does
# not parse), the client logs a message naming what was wrong, keeps
# running and answers the next request; no bogus entry is shown.  Last,
# a well-formed reply with the end flag set is listed (the client does not
# ask again for the end) and a root whose flags say "no xattr" answers
# ls -l's ACL probe ENODATA while user.* still goes to the server.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse

vv_evil_init
cat > "$T/evil.py" <<'PY'
import struct, sys
from vvfake import hdr, request, serve_forever
mode, cert, key, portfile, countfile = sys.argv[1:6]
seen = {}
def attr(ino, mode, flags):
    return struct.pack('<QQIIIIQQQ', ino, 1, mode, 2, 0, 0, 0, 0, 0) + \
        struct.pack('<qI', 0, 0) * 3 + bytes([flags])
def ent(ino, nxt, name, a=None):
    return struct.pack('<QIQH', ino, 0o100644, nxt, len(name)) + name + (a or b'')
def blob(b): return struct.pack('<I', len(b)) + b
def readdir_reply(rid, plus):
    a = attr(7, 0o100644, 3 if mode == 'noxattr' else 1) if plus else None
    good = ent(7, 3, b'ok', a)
    if mode == 'badflag': return blob(ent(7, 3, b'f', attr(7, 0o100644, 0x81) if plus else None)) + struct.pack('<I', 1)
    if mode == 'longname': return blob(ent(7, 3, b'n' * 300, a)) + struct.pack('<I', 1)
    if mode == 'pastblob': return blob(struct.pack('<QIQH', 7, 0o100644, 3, 200) + b'short') + struct.pack('<I', 1)
    if mode == 'bloblen': return struct.pack('<I', 1 << 30) + good + struct.pack('<I', 1)
    if mode == 'badeof': return blob(good) + struct.pack('<I', 7)
    if mode == 'noeof': return blob(good)
    if mode == 'slash': return blob(ent(7, 3, b'a/b', a)) + struct.pack('<I', 1)
    return blob(good) + struct.pack('<I', 1)          # 'good' and 'noxattr'
def serve(c):
    while True:
        rid, op, b = request(c)
        seen[op] = seen.get(op, 0) + 1
        open(countfile, 'w').write(' '.join('%d:%d' % kv for kv in sorted(seen.items())))
        if op == 4:                                   # getattr
            fl = 0x80 if mode == 'badgetattr' else (3 if mode == 'noxattr' else 1)
            a = attr(1, 0o40755, fl)
            c.sendall(hdr(len(a), rid, op) + a)
        elif op == 21:                                # opendir
            c.sendall(hdr(8, rid, op) + struct.pack('<Q', 9))
        elif op == 22:                                # readdir
            off, plus = struct.unpack_from('<QI', b, 8)
            r = readdir_reply(rid, plus) if off == 0 else blob(b'') + struct.pack('<I', 1)
            c.sendall(hdr(len(r), rid, op) + r)
        elif op == 25:                                # getxattr
            c.sendall(hdr(0, rid, op, 1, -15))        # VV_ENODATA
        elif op in (23, 3):                           # releasedir, forget
            c.sendall(hdr(0, rid, op))
        else:
            c.sendall(hdr(0, rid, op, 1, -2))
serve_forever(cert, key, portfile, serve)
PY

start_evil() {   # MODE: the fake server also counts requests by type in $T/count
	rm -f "$T/count"
	vv_evil_start "$1" 2 "$T/count"
}

declare -A WHY=(
	[badflag]='does not parse' [longname]='does not parse' [pastblob]='does not parse'
	[slash]='does not parse' [badeof]='bad end flag' [noeof]='readdir reply does not parse'
	[bloblen]='readdir reply does not parse'
)
for mode in badflag longname pastblob bloblen badeof noeof slash; do
	start_evil "$mode"
	got=$(timeout 60 "$PY" -c "$VV_PYOP" listdir "$R" 2>&1)
	check "$mode: listing fails with an error (got $got), no hang" \
		sh -c "case '$got' in EIO|ENOTCONN) exit 0;; *) exit 1;; esac"
	check "$mode: the client log says what was wrong" grep -qE "${WHY[$mode]}" "$T/client.log"
	vv_evil_alive "$mode"
	vv_evil_stop
done
cat "$T/client.log" >> "$T/all-client.log" 2>/dev/null || true

# A GETATTR with an unknown flag bit: the root cannot even be stat'ed.
start_evil badgetattr
got=$(timeout 60 "$PY" -c "$VV_PYOP" stat "$R" 2>&1)
check "badgetattr: stat fails with an error (got $got)" \
	sh -c "case '$got' in EIO|ENOTCONN) exit 0;; *) exit 1;; esac"
check "badgetattr: the client log says what was wrong" grep -q "getattr reply does not parse" "$T/client.log"
vv_evil_stop

# Well formed: the end flag spares the second READDIR.
start_evil good
got=$(timeout 60 "$PY" -c "import os; print(sorted(os.listdir('$R')))" 2>&1)
check "good: listed (got $got)" test "$got" = "['ok']"
check "good: one READDIR for the whole listing ($(cat "$T/count"))" grep -qE '(^| )22:1( |$)' "$T/count"
vv_evil_stop

# A root said to have no xattr: the ACL and security probes are answered
# by the client (as the server would), user.* still asked.
start_evil noxattr
stat "$R" >/dev/null
got=$(timeout 60 "$PY" -c "$VV_PYOP" listdir "$R" 2>&1)
check "noxattr: listed (got $got)" test "$got" = OK
n0=$(sed -n 's/.*25:\([0-9]*\).*/\1/p' "$T/count"); n0=${n0:-0}
want root ENODATA getxattr "$R/ok" system.posix_acl_access
want root ENODATA getxattr "$R/ok" security.selinux
n1=$(sed -n 's/.*25:\([0-9]*\).*/\1/p' "$T/count"); n1=${n1:-0}
check "noxattr: ACL and security probes answered without a request ($n0 -> $n1)" test "$n1" = "$n0"
want root ENODATA getxattr "$R/ok" user.x
n2=$(sed -n 's/.*25:\([0-9]*\).*/\1/p' "$T/count"); n2=${n2:-0}
check "noxattr: user.* is asked of the server ($n1 -> $n2)" test "$n2" -gt "$n1"
vv_evil_stop
test_done
