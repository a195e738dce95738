#!/bin/bash
# t7053-rclient-cert-change-reconnect: a vv:// client verifies the server
# at every connection, not only at mount.  The server is restarted on the
# same port with another certificate (an attacker who took its address
# while it was down, or a key replaced without telling the clients): a
# client with --pin, and one that trusted the first certificate on first
# use (known_hosts), must refuse to reconnect, say why in their logs,
# send no request there (the impostor's audit log shows no login), and
# never serve the impostor's files; with the old certificate back, both
# go on.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse

FP=$(vv_tls "$T/tls")
"$VV_BIN" tls selfsigned --out "$T/tls2" --name 127.0.0.1 >/dev/null
vv_init "$S" >/dev/null
P=$(vv_free_port)
server() {
	vv_mount "$S" "$M" --listen "127.0.0.1:$P" --tls-cert "$T/$1/cert.pem" \
		--tls-key "$T/$1/key.pem"
}
check "server on 127.0.0.1:$P" server tls
vv_alice_coll
echo original > "$M/coll/f"
chown 1000:1000 "$M/coll/f"
R2=$T/r2
check "a client with --pin" vv_rmount "vv://127.0.0.1:$P/coll" "$R" --key-file "$T/key" \
	--pin "$FP" --timeout 5
check "a client trusting on first use" vv_rmount "vv://127.0.0.1:$P/coll" "$R2" \
	--key-file "$T/key" --known-hosts "$T/known_hosts" --timeout 5
check "both read the file" sh -c "[ \"\$(cat '$R/f')\" = original ] && [ \"\$(cat '$R2/f')\" = original ]"

# the same vault (the key still valid) behind another certificate: only
# the certificate tells it from an impostor
vv_umount "$M"
check "server back on the same port with another certificate" server tls2
for r in "$R" "$R2"; do
	# the first request finds the connection dead and tries once
	"$PY" -c "
import os, sys
try:
    print(open('$r/f').read().strip())
except OSError as e:
    print('refused', e.errno)" > "$T/got" 2>&1
	check "$(basename "$r"): not served through the new certificate" sh -c "! grep -q original '$T/got'"
done
check "the pinned client says why" grep -q "not the pinned" "$T/client.log"
check "the first-use client says the certificate changed" grep -q "HAS CHANGED" "$T/client.log"
vv_umount "$M"
check "the old certificate back" server tls
for r in "$R" "$R2"; do
	check "$(basename "$r"): reconnects and reads again" vv_soon sh -c "[ \"\$(cat '$r/f' 2>/dev/null)\" = original ]"
done
fusermount3 -u "$R"
fusermount3 -u "$R2"

test_done
