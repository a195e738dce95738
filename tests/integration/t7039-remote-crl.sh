#!/bin/bash
# t7039-remote-crl: revoking client certificates (--client-crl).
# 'vecvault tls revoke' lists certificates of its CA in DIR/crl.pem (only
# that CA's; entries accumulate); the server refuses a CRL that does not
# read or is another CA's at start; a listed certificate fails the
# handshake (audited); revoking one while its session is open ends the
# session within a second or so (audited), while another certificate's
# mount goes on; a CRL file later broken leaves the one before in force.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse

C=$T/pki
mkdir -p "$C"
FP=$(vv_tls "$T/tls")
"$VV_BIN" tls client-ca --out "$C/ca" >/dev/null
"$VV_BIN" tls client-ca --out "$C/other" --name other-ca >/dev/null
for u in alice bob; do
	"$VV_BIN" tls client "$u" --ca "$C/ca" --out "$C/$u" >/dev/null
done
"$VV_BIN" tls client alice --ca "$C/other" --out "$C/alice-other" >/dev/null

# --- tls revoke ---
check "tls revoke with no certificate: an empty CRL" sh -c "
	'$VV_BIN' tls revoke --ca '$C/ca' | grep -q '0 certificate(s) newly revoked, 0 listed' &&
	openssl crl -in '$C/ca/crl.pem' -noout -CAfile '$C/ca/cert.pem' 2>&1 | grep -q 'verify OK'"
expect_fail "tls revoke: a certificate of another CA is refused" "$VV_BIN" tls revoke \
	"$C/alice-other/cert.pem" --ca "$C/ca"
check "  naming it" sh -c "'$VV_BIN' tls revoke '$C/alice-other/cert.pem' --ca '$C/ca' 2>&1 |
	grep -q 'was not issued by the CA'"
expect_fail "tls revoke: not a certificate" "$VV_BIN" tls revoke "$C/ca/key.pem" --ca "$C/ca"
check "  and nothing was listed" sh -c "! openssl crl -in '$C/ca/crl.pem' -noout -text |
	grep -q 'Serial Number'"
expect_fail "tls revoke without --ca" "$VV_BIN" tls revoke "$C/alice/cert.pem"
cp "$C/ca/crl.pem" "$C/crl.pem"

# --- the server's refusals at start ---
vv_init "$S" >/dev/null
AUD=$(vv_audit_log "$S")
mkdir -p "$M"
check "--client-crl without --client-ca: refused" sh -c "'$VV_BIN' mount '$S' '$M' \
	--passfile '$PASSFILE' --listen 127.0.0.1:0 --tls-cert '$T/tls/cert.pem' \
	--tls-key '$T/tls/key.pem' --client-crl '$C/crl.pem' 2>&1 | grep -q 'needs --client-ca'"
check "a CRL that is not one: refused naming it" sh -c "'$VV_BIN' mount '$S' '$M' \
	--passfile '$PASSFILE' --log '$LOG' --listen 127.0.0.1:0 --tls-cert '$T/tls/cert.pem' \
	--tls-key '$T/tls/key.pem' --client-ca '$C/ca/cert.pem' --client-crl '$C/ca/cert.pem' \
	2>&1 | grep -q 'not a PEM X.509 CRL'"
"$VV_BIN" tls revoke --ca "$C/other" >/dev/null
check "another CA's CRL: refused naming it" sh -c "'$VV_BIN' mount '$S' '$M' \
	--passfile '$PASSFILE' --log '$LOG' --listen 127.0.0.1:0 --tls-cert '$T/tls/cert.pem' \
	--tls-key '$T/tls/key.pem' --client-ca '$C/ca/cert.pem' --client-crl '$C/other/crl.pem' \
	2>&1 | grep -q 'is not signed by a CA of --client-ca'"
check "nothing was mounted" sh -c "! grep -q ' $M ' /proc/mounts"

check "server with --client-ca and --client-crl" vv_mount "$S" "$M" --listen 127.0.0.1:0 \
	--tls-cert "$T/tls/cert.pem" --tls-key "$T/tls/key.pem" \
	--client-ca "$C/ca/cert.pem" --client-crl "$C/crl.pem"
P=$(vv_port "$LOG" 127.0.0.1:0)
mkdir "$M/coll"
echo data > "$M/coll/f"
chown -R 1000:1000 "$M/coll"
"$VV_BIN" user add alice --uid 1000 --no-password "$M" >/dev/null
"$VV_BIN" user add bob --uid 3001 --no-password "$M" >/dev/null
chmod 755 "$M/coll"
chmod 644 "$M/coll/f"
URL="vv://127.0.0.1:$P/coll"
check "bob's certificate: mounted" vv_rmount "$URL" "$R" --pin "$FP" \
	--cert "$C/bob/cert.pem" --cert-key "$C/bob/key.pem"
check "bob reads" test "$(cat "$R/f")" = data

rwatch alice "R.Client('127.0.0.1', $P, cert='$C/alice/cert.pem', key='$C/alice/key.pem')" \
	"c.auth_cert()" /coll/f
check "alice's certificate session reads" test -e "$T/alice.ready"
check "tls revoke alice" sh -c "'$VV_BIN' tls revoke '$C/alice/cert.pem' --ca '$C/ca' |
	grep -q '1 certificate(s) newly revoked, 1 listed'"
check "  listed by serial" sh -c "openssl crl -in '$C/ca/crl.pem' -noout -text | grep -qi \
	\"\$(openssl x509 -in '$C/alice/cert.pem' -noout -serial | sed 's/serial=//')\""
check "revoking it again adds nothing" sh -c "'$VV_BIN' tls revoke '$C/alice/cert.pem' \
	--ca '$C/ca' | grep -q '0 certificate(s) newly revoked, 1 listed'"
cp "$C/ca/crl.pem" "$C/crl.pem.new"
mv "$C/crl.pem.new" "$C/crl.pem"
check "alice's open session ends" rwatch_end alice
check "audited: revoked, session ended" vv_audit_has "$AUD" op=unauth "user~^alice/cert:" \
	result=EACCES "detail~certificate was revoked"
check "a new handshake with alice's certificate is refused" rpy "
try:
    c = R.Client('127.0.0.1', $P, cert='$C/alice/cert.pem', key='$C/alice/key.pem')
    c.auth_cert(); sys.exit('logged in')
except (EOFError, OSError, R.Error):
    pass"
check "audited: certificate revoked in the handshake" vv_audit_has "$AUD" op=connect \
	result=EACCES "detail~client certificate refused: certificate revoked"
check "bob's mount goes on" test "$(cat "$R/f")" = data

# a broken CRL file leaves the CRL before in force
echo garbage > "$C/crl.pem"
sleep 1.2
check "a broken CRL: alice still refused" rpy "
try:
    c = R.Client('127.0.0.1', $P, cert='$C/alice/cert.pem', key='$C/alice/key.pem')
    c.auth_cert(); sys.exit('logged in')
except (EOFError, OSError, R.Error):
    pass"
check "  and the log says so" sh -c "grep -q 'crl.pem (--client-crl) is not a PEM X.509 CRL.*the CRL read before stays in force' '$LOG'"
check "  bob still served" test "$(cat "$R/f")" = data

# revocations accumulate: bob too, and alice stays listed
check "tls revoke bob" sh -c "'$VV_BIN' tls revoke '$C/bob/cert.pem' --ca '$C/ca' |
	grep -q '1 certificate(s) newly revoked, 2 listed'"
cp "$C/ca/crl.pem" "$C/crl.pem"
ok=
for i in $(seq 1 50); do
	cat "$R/f" >/dev/null 2>&1 || { ok=1; break; }
	sleep 0.2
done
check "bob's mount loses access" test -n "$ok"
fusermount3 -u "$R" 2>/dev/null || fusermount3 -uz "$R"
test_done
