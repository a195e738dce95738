#!/bin/bash
# t7009-rclient-hostile-server: the vv:// client against a server that
# lies (a Python TLS 1.3 server speaking the frame format, run by the
# test).  It accepts the login, then answers the first request with:
# garbage bytes, a header past the size limit, an unknown op, a reply with
# another request id, a reply to another op, a body that does not parse
# (an attribute with nanoseconds >= 10^9), trailing bytes, or nothing at
# all; or ('dying') it drops the connection and closes every later one
# before the TLS handshake, as a server on its way down does: the
# reconnect's failure is ENOTCONN, not a refusal (EACCES); or
# ('resetting') it resets every connection before TLS: the mount fails
# naming a closed connection.  Each time the
# request fails with an error (EIO/ENOTCONN), within
# the client's --timeout, and the client daemon neither crashes nor hangs:
# it is still running and answers the next request.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse

vv_evil_init
cat > "$T/evil.py" <<'PY'
import struct, sys
from vvfake import hdr, request, serve_forever
mode, cert, key, portfile = sys.argv[1:5]
def serve(c):
    served = 0
    while True:
        rid, op, body = request(c)
        served += 1
        if mode == 'dying':
            raise EOFError
        if served > 1 or mode == 'silent':
            if mode == 'silent':
                continue
            # later requests: a plain error reply
            c.sendall(hdr(0, rid, op, 1, -5)); continue
        if mode == 'garbage': c.sendall(b'\xff' * 64)
        elif mode == 'oversize': c.sendall(hdr(0x7fffffff, rid, op))
        elif mode == 'badop': c.sendall(hdr(0, rid, 999))
        elif mode == 'wrongid': c.sendall(hdr(0, rid + 1000, op, 1, -2))
        elif mode == 'wrongop': c.sendall(hdr(0, rid, 29 if op != 29 else 4, 1, 0))
        elif mode == 'badattr':
            a = struct.pack('<QQIIIIQQQ', 5, 1, 0o100644, 1, 0, 0, 0, 0, 0) + \
                struct.pack('<qI', 0, 2000000000) * 3 + b'\x00'
            c.sendall(hdr(len(a), rid, op) + a)
        elif mode == 'trailing':
            c.sendall(hdr(4, rid, op, 1, -2) + b'abcd')
serve_forever(cert, key, portfile, serve,
              (lambda n: n == 1) if mode == 'dying' else
              (lambda n: 'reset') if mode == 'resetting' else None)
PY

for mode in garbage oversize badop wrongid wrongop badattr trailing silent dying; do
	vv_evil_start "$mode" 2
	got=$(timeout 60 "$PY" -c "$VV_PYOP" stat "$R/x" 2>&1)
	check "$mode: the request fails with an error (got $got), no hang" \
		sh -c "case '$got' in EIO|ENOTCONN|ENOENT) exit 0;; *) exit 1;; esac"
	vv_evil_alive "$mode"
	vv_evil_stop
done

# A server that resets the connection with the ClientHello unread (what a
# whitelist refusal looks like when the hello arrived first): the mount
# fails naming a closed connection and the whitelist, as for a close; it
# said only "TLS handshake failed" (the socket error seen by poll), which
# made t7006's --bind check flaky.
rm -f "$T/port"
"$PY" "$T/evil.py" resetting "$T/tls/cert.pem" "$T/tls/key.pem" "$T/port" &
EVIL=$!
for i in $(seq 1 100); do [ -s "$T/port" ] && break; sleep 0.1; done
P=$(cat "$T/port")
R=$T/r-resetting
for i in 1 2 3; do
	check "resetting ($i): refused naming the closed connection" refused \
		"closed the connection: is this address on its whitelist" "vv://127.0.0.1:$P" "$R" \
		--key-file "$T/key" --pin "$FP" --timeout 2
done
kill "$EVIL"
wait "$EVIL" 2>/dev/null || true
EVIL=
test_done
