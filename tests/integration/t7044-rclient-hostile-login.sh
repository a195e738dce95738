#!/bin/bash
# t7044-rclient-hostile-login: the name a server's AUTH reply says the
# client is logged in as goes to the mount's messages and its log
# ("logged in as NAME"), so a lying server must not choose it freely: a
# name with a newline and a terminal escape (a forged log line, a cleared
# screen), or 4000 bytes, makes the mount fail as "not a vecvault server",
# naming neither, with no mount left.  It used to mount and log the name
# as sent.  A server naming a proper vault user still mounts.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse

vv_evil_init
cat > "$T/evil.py" <<'PY'
import struct, sys
import vvfake
from vvfake import hdr, request, serve_forever
mode, cert, key, portfile = sys.argv[1:5]
name = {'escape': b'alice\n2026-01-01T00:00:00Z [1] info: all is well\x1b[2J',
        'long': b'a' * 4000, 'honest': b'alice'}[mode]
def login(c):
    rid, op, body = request(c)
    body = struct.pack('<I', 1000) + struct.pack('<H', len(name)) + name
    c.sendall(hdr(len(body), rid, 1) + body)
vvfake.login = login
serve_forever(cert, key, portfile, vvfake.enoent)
PY

start() {
	vv_evil_serve "$1"
	R=$T/r-$1
	rm -f "$T/client.log"
}
stop() {
	kill "$EVIL"
	wait "$EVIL" 2>/dev/null || true
	EVIL=
}

for mode in escape long; do
	start $mode
	check "$mode: refused as not a vecvault server" refused \
		"not a vecvault server \(its AUTH reply names no vault user" \
		"vv://127.0.0.1:$P" "$R" --key-file "$T/key" --pin "$FP" --timeout 5 \
		--log "$T/client.log"
	check "$mode: the name reached neither the message nor the log" sh -c "
		! grep -q 'all is well\|aaaaaaaa' '$T/out' '$T/client.log' &&
		! grep -q \"\$(printf '\\033')\" '$T/out' '$T/client.log'"
	stop
done

start honest
check "honest: a server naming a vault user mounts" vv_rmount "vv://127.0.0.1:$P" "$R" \
	--key-file "$T/key" --pin "$FP" --timeout 5
check "honest: logged in as alice" grep -q "logged in as alice (uid 1000)" "$T/client.log"
fusermount3 -u "$R"
stop

test_done
