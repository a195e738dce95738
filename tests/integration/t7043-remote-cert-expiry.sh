#!/bin/bash
# t7043-remote-cert-expiry: a client certificate that expires while its
# session is open ends that session, as an expired API key ends a key
# session (docs/remote.md "Mutual TLS").  Alice's certificate is valid
# for 25 s more when she logs in (by certificate, and on a second
# connection with her API key on top of it); once its notAfter passes,
# each session's next request fails (EACCES) or finds the connection
# closed, audited "the client certificate expired: session ended" with
# her name; a session used to run on for as long as it was kept busy.
# Bob's certificate, valid for days, keeps his session; a new handshake
# with alice's expired certificate is refused, as t7028 checks.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse
command -v openssl >/dev/null || { echo "1..0 # SKIP no openssl"; vv_done=1; exit 77; }

C=$T/pki
mkdir -p "$C/db"
"$VV_BIN" tls client-ca --out "$C/ca" >/dev/null
"$VV_BIN" tls client bob --ca "$C/ca" --out "$C/bob" >/dev/null
# alice's: signed by the same CA with an exact end, 25 s from now
: > "$C/db/idx"
echo 01 > "$C/db/ser"
printf '[ca]\ndefault_ca=c\n[c]\ndatabase=%s/idx\nnew_certs_dir=%s\nserial=%s/ser\n'\
'default_md=sha256\npolicy=p\nunique_subject=no\n[p]\ncommonName=supplied\n' \
	"$C/db" "$C/db" "$C/db" > "$C/db/cnf"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$C/alice.key" -out "$C/alice.csr" -subj "/CN=alice" 2>/dev/null
check "alice's certificate, valid 25 s more" openssl ca -batch -notext -config "$C/db/cnf" \
	-cert "$C/ca/cert.pem" -keyfile "$C/ca/key.pem" -in "$C/alice.csr" -out "$C/alice.pem" \
	-startdate "$(date -u -d '-1 hour' +%Y%m%d%H%M%SZ)" \
	-enddate "$(date -u -d '+25 seconds' +%Y%m%d%H%M%SZ)"

vv_listen_mount "server with --client-ca" 127.0.0.1:0 --client-ca "$C/ca/cert.pem"
echo data > "$M/f"
"$VV_BIN" user add alice --uid 1000 --no-password "$M" >/dev/null
"$VV_BIN" user add bob --uid 1001 --no-password "$M" >/dev/null
vv_key_file alice "$T/alicekey"

rwatch alice "R.Client('127.0.0.1', $P, cert='$C/alice.pem', key='$C/alice.key')" \
	"c.auth_cert()" /f
APID=$RP
check "alice's certificate session is served" test -e "$T/alice.ready"
rwatch alicekey "R.Client('127.0.0.1', $P, cert='$C/alice.pem', key='$C/alice.key')" \
	"c.auth_key(open('$T/alicekey').read().strip())" /f
KPID=$RP
check "alice's key session on her certificate is served" test -e "$T/alicekey.ready"
rwatch bob "R.Client('127.0.0.1', $P, cert='$C/bob/cert.pem', key='$C/bob/key.pem')" \
	"c.auth_cert()" /f
BPID=$RP
check "bob's certificate session is served" test -e "$T/bob.ready"

touch "$T/alice.go" "$T/alicekey.go" "$T/bob.go"
RP=$APID
check "alice's certificate session ends once it expired" rwatch_end alice
RP=$KPID
check "so does her key session on that certificate" rwatch_end alicekey
check "audited: the certificate expired, as alice's certificate login" vv_audit_has "$AUD" \
	op=unauth result=EACCES "user~^alice/cert:" "detail~client certificate expired: session ended"
check "audited: the certificate expired, as alice's key login" vv_audit_has "$AUD" \
	op=unauth result=EACCES "user~^alice/[0-9a-f]{16}$" \
	"detail~client certificate expired: session ended"
wait "$BPID" || true
check "bob's session went on (served for 30 s)" grep -qx served "$T/bob.out"
check "alice's certificate is refused at a new handshake" rpy "
try:
    c = R.Client('127.0.0.1', $P, cert='$C/alice.pem', key='$C/alice.key')
    c.auth_cert()
    c.call('getattr', 1)
except (R.Error, EOFError, OSError):
    sys.exit(0)
sys.exit('served')"

test_done
