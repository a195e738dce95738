#!/bin/bash
# t7047-remote-mtls-forgery: client certificates forged to pass as alice's
# on a --client-ca server, each refused at the handshake or right after
# it, audited, and never served (regressions: main refused them all; t7028
# covers no, another CA's, expired and unknown-user certificates):
#   - signed by a CA made to carry the same subject name as the real one
#     (the issuer name matches, the signature does not);
#   - self-signed with CN=alice;
#   - signed by alice's own good certificate acting as a CA (CA:FALSE);
#   - signed by the real CA but for TLS servers only (extendedKeyUsage
#     serverAuth, no clientAuth);
#   - signed by the real CA with two CNs (alice and root).
# Alice's real certificate is still served.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse
command -v openssl >/dev/null || { echo "1..0 # SKIP no openssl"; vv_done=1; exit 77; }

C=$T/pki
mkdir -p "$C"
"$VV_BIN" tls client-ca --out "$C/ca" >/dev/null
"$VV_BIN" tls client alice --ca "$C/ca" --out "$C/alice" >/dev/null
SUBJ=$(openssl x509 -in "$C/ca/cert.pem" -noout -subject -nameopt compat | sed 's/^subject=//')
key() { openssl ecparam -name prime256v1 -genkey -noout -out "$C/$1.key" 2>/dev/null; }
# sign NAME SUBJECT CACERT CAKEY [EXTFILE]: $C/NAME.pem for a new key
sign() {
	key "$1"
	openssl req -new -key "$C/$1.key" -subj "$2" -out "$C/$1.csr" 2>/dev/null &&
	openssl x509 -req -in "$C/$1.csr" -CA "$3" -CAkey "$4" -CAcreateserial -days 30 \
		-out "$C/$1.pem" ${5:+-extfile "$5"} 2>/dev/null
}
key twin
check "a CA with the real CA's subject" openssl req -x509 -key "$C/twin.key" -days 30 \
	-subj "$SUBJ" -out "$C/twin.pem" -addext basicConstraints=critical,CA:TRUE
check "alice signed by the twin" sign twinalice /CN=alice "$C/twin.pem" "$C/twin.key"
key self
check "alice self-signed" openssl req -x509 -key "$C/self.key" -days 30 -subj /CN=alice \
	-out "$C/self.pem"
printf 'basicConstraints=critical,CA:FALSE\nextendedKeyUsage=clientAuth\n' > "$C/leaf.ext"
check "alice signed by alice's certificate" sign subalice /CN=alice "$C/alice/cert.pem" \
	"$C/alice/key.pem" "$C/leaf.ext"
printf 'extendedKeyUsage=serverAuth\n' > "$C/srv.ext"
check "alice for servers only" sign srvalice /CN=alice "$C/ca/cert.pem" "$C/ca/key.pem" \
	"$C/srv.ext"
check "alice with two CNs" sign twoalice "/CN=alice/CN=root" "$C/ca/cert.pem" "$C/ca/key.pem" \
	"$C/leaf.ext"

vv_listen_mount "server with --client-ca" 127.0.0.1:0 --client-ca "$C/ca/cert.pem"
echo data > "$M/f"
"$VV_BIN" user add alice --uid 1000 --no-password "$M" >/dev/null
"$VV_BIN" user add root --uid 1001 --no-password "$M" >/dev/null

# forged NAME: the certificate's session gets nothing served
forged() {
	rpy "
try:
    c = R.Client('127.0.0.1', $P, cert='$C/$1.pem', key='$C/$1.key', timeout=15)
    c.auth_cert()
    c.call('getattr', 1)
except (R.Error, EOFError, OSError) as e:
    print('# refused:', type(e).__name__, e)
    sys.exit(0)
sys.exit('served')"
}
for f in twinalice self subalice srvalice twoalice; do
	check "$f: refused, nothing served" forged "$f"
done
check "audited: the twin CA's signature" vv_audit_has "$AUD" op=connect result=EACCES \
	"detail~client certificate refused: certificate signature failure"
check "audited: self-signed" vv_audit_has "$AUD" op=connect result=EACCES \
	"detail~client certificate refused: self.signed certificate"
check "audited: a certificate as a CA" vv_audit_has "$AUD" op=connect result=EACCES \
	"detail~client certificate refused: (invalid CA certificate|unable to get local issuer)"
check "audited: no clientAuth" vv_audit_has "$AUD" op=connect result=EACCES \
	"detail~client certificate refused: unsuitable certificate purpose"
check "audited: two CNs" vv_audit_has "$AUD" op=unauth result=EACCES \
	"detail~without a single printable CN"
check "alice's real certificate is served" rpy "
c = R.Client('127.0.0.1', $P, cert='$C/alice/cert.pem', key='$C/alice/key.pem')
c.auth_cert()
assert c.read_file('/f') == b'data\n'"

test_done
