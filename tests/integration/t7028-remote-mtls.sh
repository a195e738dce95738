#!/bin/bash
# t7028-remote-mtls: mutual TLS (--client-ca).  'vecvault tls client-ca'
# and 'tls client' make a CA and a clientAuth certificate.  A client certificate
# signed by the CA whose CN names a vault user logs in as that user on a
# real vv:// mount (--cert/--cert-key, no key or password), audited as
# user "NAME/cert:FP16"; no certificate, a certificate of another CA, an
# expired one and one whose CN names no vault user are refused and
# audited with the address; a valid certificate cannot act as another user
# (another user's key or password on it, USER@ of another user); a
# readonly role holds; deleting the user ends the session, and so does
# taking a role away; hostile clients: garbage instead of a ClientHello,
# a handshake abandoned half-way, TLS 1.2 with a valid certificate, AUTH
# by certificate twice or a request before it: refused while a
# well-behaved certificate client keeps being served.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse

C=$T/pki
mkdir -p "$C"

# --- a small PKI: the client CA, another CA, and client certificates ---
ca() {          # ca NAME: self-signed CA in $C/NAME.pem/.key
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
		-keyout "$C/$1.key" -out "$C/$1.pem" -subj "/CN=$1" 2>/dev/null
}
leaf() {        # leaf CA CN FILE [openssl ca dates...]: a client certificate
	local ca=$1 cn=$2 f=$3
	shift 3
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$C/$f.key" -out "$C/$f.csr" -subj "/CN=$cn" 2>/dev/null || return 1
	mkdir -p "$C/db-$ca"
	[ -f "$C/db-$ca/idx" ] || { : > "$C/db-$ca/idx"; echo 01 > "$C/db-$ca/ser"; }
	printf '[ca]\ndefault_ca=c\n[c]\ndatabase=%s/idx\nnew_certs_dir=%s\nserial=%s/ser\n'\
'default_md=sha256\npolicy=p\nunique_subject=no\ndefault_days=30\n[p]\ncommonName=supplied\n' \
		"$C/db-$ca" "$C/db-$ca" "$C/db-$ca" > "$C/db-$ca/cnf"
	openssl ca -batch -notext -config "$C/db-$ca/cnf" -cert "$C/$ca.pem" -keyfile "$C/$ca.key" \
		-in "$C/$f.csr" -out "$C/$f.pem" "$@" >/dev/null 2>&1
}
# the client CA and alice's certificate by 'vecvault tls client-ca|client'
check "tls client-ca" sh -c "'$VV_BIN' tls client-ca --out '$C/vca' | grep -q '^sha256:'"
check "tls client" sh -c "'$VV_BIN' tls client alice --ca '$C/vca' --out '$C/valice' \
	--days 30 | grep -q '^sha256:'"
check "tls client: a clientAuth certificate for CN=alice under the CA" sh -c "
	openssl verify -CAfile '$C/vca/cert.pem' -purpose sslclient '$C/valice/cert.pem' &&
	openssl x509 -in '$C/valice/cert.pem' -noout -subject | grep -q 'CN *= *alice\$'"
check "tls client: the key is 0600" test "$(stat -c %a "$C/valice/key.pem")" = 600
expect_fail "tls client: a non-CA as --ca is refused" "$VV_BIN" tls client bob \
	--ca "$C/valice" --out "$C/x"
expect_fail "tls client: never overwrites" "$VV_BIN" tls client alice --ca "$C/vca" \
	--out "$C/valice"
expect_fail "tls client: a bad user name is refused" "$VV_BIN" tls client "a/b" \
	--ca "$C/vca" --out "$C/y"
cp "$C/vca/cert.pem" "$C/clientca.pem"
cp "$C/vca/key.pem" "$C/clientca.key"
cp "$C/valice/cert.pem" "$C/alice.pem"
cp "$C/valice/key.pem" "$C/alice.key"
ca otherca
leaf clientca reader reader
leaf clientca bob bob
leaf clientca dave dave
leaf clientca ghost ghost
leaf otherca alice alice-other
leaf clientca alice alice-old -startdate 20200101000000Z -enddate 20200102000000Z
chmod 644 "$C"/*.key
check "test PKI made" test -s "$C/alice-old.pem" -a -s "$C/alice-other.pem"

vv_listen_mount "server with --client-ca" 127.0.0.1:0 --client-ca "$C/clientca.pem"
mkdir "$M/coll"
chown 1000:1000 "$M/coll"
echo data > "$M/coll/f"
chown 1000:1000 "$M/coll/f"
G=vvt7028ro$$
vv_group "$G"
GID=$(getent group "$G" | cut -d: -f3)
setfacl -m "g:$GID:r-x" "$M/coll"
setfacl -m "g:$GID:r--" "$M/coll/f"
G2=vvt7028rw$$
vv_group "$G2"
GID2=$(getent group "$G2" | cut -d: -f3)
mkdir "$M/shared"
setfacl -m "g:$GID2:rwx" "$M/shared"
"$VV_BIN" role create "$G" "$M" >/dev/null
"$VV_BIN" role create "$G2" "$M" >/dev/null
printf 'a password for bob, long enough\n' > "$T/bobpw"
chmod 600 "$T/bobpw"
"$VV_BIN" user add alice --uid 1000 --no-password "$M" >/dev/null
"$VV_BIN" user add reader --uid 3000 --role "$G" --no-password "$M" >/dev/null
"$VV_BIN" user add bob --uid 3001 --password-file "$T/bobpw" "$M" >/dev/null
"$VV_BIN" user add dave --uid 3002 --role "$G2" --no-password "$M" >/dev/null
vv_key_file bob "$T/bobkey"
vv_key_file alice "$T/alicekey"
URL="vv://127.0.0.1:$P/coll"
same() { [ "$("${@:2}")" = "$1" ]; }    # same EXPECTED CMD...: CMD prints EXPECTED
cert() { echo --cert "$C/$1.pem" --cert-key "$C/$1.key"; }


# --- a good certificate on a real vv:// mount ---
# shellcheck disable=SC2046
check "alice's certificate alone: mounted" vv_rmount "$URL" "$R" --pin "$FP" $(cert alice)
check "read through the mount" same data cat "$R/f"
check "write through the mount" sh -c "echo more >> '$R/f'"
check "written on the server" same "data
more" cat "$M/coll/f"
check "runs as alice's uid" test "$(stat -c %u "$R/f")" = 1000
check "audited: auth by certificate" vv_audit_has "$AUD" op=auth "user=alice" "detail~^certificate sha256:[0-9a-f]{16}: ok"
check "audited: requests as alice/cert:FP with the address" vv_audit_has "$AUD" op=open \
	"user~^alice/cert:[0-9a-f]{16}$" "client~^127\.0\.0\.1:" uid=1000
fusermount3 -u "$R"
# shellcheck disable=SC2046
check "certificate and its user's own key: mounted" vv_rmount "$URL" "$R" --pin "$FP" \
	$(cert alice) --key-file "$T/alicekey"
fusermount3 -u "$R"

# --- refused, and audited with the address ---
check "no certificate: refused" refused "client certificate" "$URL" "$R" --pin "$FP" \
	--key-file "$T/alicekey"
check "audited: no certificate" vv_audit_has "$AUD" op=connect result=EACCES \
	"client~^127\.0\.0\.1:" "detail~TLS handshake failed.*(certificate|CERTIFICATE)"
# shellcheck disable=SC2046
check "certificate of another CA: refused" refused "client certificate" "$URL" "$R" \
	--pin "$FP" $(cert alice-other)
check "audited: another CA" vv_audit_has "$AUD" op=connect result=EACCES \
	"detail~client certificate refused: unable to get local issuer certificate"
# shellcheck disable=SC2046
check "expired certificate: refused" refused "client certificate" "$URL" "$R" \
	--pin "$FP" $(cert alice-old)
check "audited: expired" vv_audit_has "$AUD" op=connect result=EACCES \
	"detail~client certificate refused: certificate has expired"
# shellcheck disable=SC2046
check "certificate of no vault user: refused" refused "client certificate" "$URL" "$R" \
	--pin "$FP" $(cert ghost)
check "audited: no such user, with the name and address" vv_audit_has "$AUD" op=unauth \
	result=EACCES user=ghost "client~^127\.0\.0\.1:" "detail~names no vault user"
check "bad --cert: refused naming it" refused "cannot load the client certificate" "$URL" \
	"$R" --pin "$FP" --cert "$T/bobkey"
check "--cert-key of another certificate: refused" refused "does not match --cert" "$URL" \
	"$R" --pin "$FP" --cert "$C/alice.pem" --cert-key "$C/bob.key"
check "--cert-key without --cert: refused" refused "needs --cert" "$URL" "$R" --pin "$FP" \
	--cert-key "$C/bob.key" --key-file "$T/alicekey"

# --- a valid certificate cannot act as another user ---
# shellcheck disable=SC2046
check "alice's certificate with bob's key: refused" refused "authentication refused" "$URL" \
	"$R" --pin "$FP" $(cert alice) --key-file "$T/bobkey"
check "audited: the key is not the certificate's user" vv_audit_has "$AUD" op=unauth \
	result=EACCES user=bob "detail~the client certificate is alice's"
# shellcheck disable=SC2046
check "alice's certificate with bob's password: refused" refused "authentication refused" \
	"vv://bob@127.0.0.1:$P/coll" "$R" --pin "$FP" $(cert alice) --password-file "$T/bobpw"
# shellcheck disable=SC2046
check "alice's certificate as vv://bob@: refused by the client" refused \
	"client certificate .*alice.pem belongs to the vault user alice, not bob" \
	"vv://bob@127.0.0.1:$P/coll" "$R" --pin "$FP" $(cert alice)
check "protocol: bob's key on alice's certificate is EACCES, and nothing after it" rpy "
c = R.Client('127.0.0.1', $P, cert='$C/alice.pem', key='$C/alice.key')
try:
    c.auth_key(open('$T/bobkey').read().strip()); sys.exit('logged in')
except R.Error as e:
    assert e.status == -5, e.status   # VV_EACCES
try:
    c.call('getattr', 1); sys.exit('served')
except (EOFError, OSError, R.Error):
    pass
"

# --- a readonly role holds ---
# shellcheck disable=SC2046
check "reader's certificate: mounted" vv_rmount "$URL" "$R" --pin "$FP" $(cert reader)
check "reader reads" same "data
more" cat "$R/f"
expect_fail "reader cannot write" sh -c "echo x >> '$R/f'"
expect_fail "reader cannot create" touch "$R/new"
check "nothing written by reader" test ! -e "$M/coll/new"
fusermount3 -u "$R"

# --- deleting the user ends its sessions; so does a role taken away ---
check "bob and dave log in by certificate" rpy "
c = R.Client('127.0.0.1', $P, cert='$C/bob.pem', key='$C/bob.key')
d = R.Client('127.0.0.1', $P, cert='$C/dave.pem', key='$C/dave.key')
assert c.auth_cert()[0] == 3001
assert d.auth_cert()[0] == 3002
assert c.err('getattr', 1) == 0 and d.err('getattr', 1) == 0
open('$T/go', 'w').close()
t = time.time()
while os.path.exists('$T/go') and time.time() - t < 60:
    time.sleep(0.1)
def dead(x):
    for i in range(100):
        try:
            if x.err('getattr', 1) != 0:
                return True
        except (EOFError, OSError):
            return True
        time.sleep(0.1)
    return False
assert dead(c), 'bob deleted, still served'
assert dead(d), 'dave lost his role, still served'
" &
RPID=$!
for i in $(seq 1 200); do [ -e "$T/go" ] && break; sleep 0.1; done
"$VV_BIN" user delete bob "$M" >/dev/null
"$VV_BIN" user role dave --remove "$G2" "$M" >/dev/null
rm -f "$T/go"
check "sessions of a deleted user and a changed one end" wait $RPID
check "audited: the certificate's user is gone" vv_audit_has "$AUD" op=unauth \
	"user~^bob/cert:" "detail~certificate's user no longer exists"
check "audited: the certificate's user changed" vv_audit_has "$AUD" op=unauth \
	"user~^dave/cert:" "detail~certificate's user changed"
# shellcheck disable=SC2046
check "bob's certificate no longer logs in" refused "client certificate" "$URL" "$R" \
	--pin "$FP" $(cert bob)

# --- hostile clients, while alice is served ---
# shellcheck disable=SC2046
check "alice mounted again" vv_rmount "$URL" "$R" --pin "$FP" $(cert alice)
check "garbage instead of a ClientHello, an abandoned handshake, a request before AUTH" rpy "
import socket, ssl, os
for i in range(50):
    s = socket.create_connection(('127.0.0.1', $P))
    s.sendall(os.urandom(200 + i))
    s.settimeout(20)
    try:
        while s.recv(4096): pass
    except OSError: pass
    s.close()
for i in range(20):
    s = socket.create_connection(('127.0.0.1', $P))
    s.sendall(b'\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03' + os.urandom(40))
    s.close()
def connect():
    # the per-address cap (8) may still count the junk connections above
    # for a moment, until the server has seen them close
    for i in range(100):
        try:
            return R.Client('127.0.0.1', $P, cert='$C/alice.pem', key='$C/alice.key')
        except (OSError, EOFError):
            time.sleep(0.2)
    sys.exit('the server stopped accepting alice')
c = connect()
c.send('read', 1, 0, 0, 4096)
try:
    c.recv(); sys.exit('answered a read before AUTH')
except (EOFError, OSError):
    pass
c = connect()
c.auth_cert()
try:
    c.auth_cert(); sys.exit('a second AUTH was accepted')
except (EOFError, OSError, R.Error):
    pass
"
# KeyUpdate flood (each asks the server to update its keys too) on a
# certificate connection that has not sent AUTH; TLS 1.3 has no
# renegotiation, and the server never asks for post-handshake auth.
# More than 32 KeyUpdates in a minute end the connection (audited).
# (s_client acts on one command per read of stdin, hence the pauses.)
check "a KeyUpdate flood before AUTH: the connection ends" sh -c "
	for i in \$(seq 1 300); do echo K; sleep 0.01; done |
	timeout 120 openssl s_client -tls1_3 -connect 127.0.0.1:$P -cert '$C/alice.pem' \
		-key '$C/alice.key' > '$T/ku.out' 2>&1
	n=\$(grep -c KEYUPDATE '$T/ku.out'); echo \"# \$n KeyUpdates sent\"
	test \$n -gt 32 && test \$n -lt 300"
check "the flood is cut short and audited" vv_audit_has "$AUD" op=unauth \
	"detail=a TLS KeyUpdate flood before authenticating"
check "a few KeyUpdates are answered, not cut" sh -c "
	{ sleep 1; for i in \$(seq 1 5); do echo K; sleep 0.1; done; sleep 1; } |
	timeout 60 openssl s_client -tls1_3 -connect 127.0.0.1:$P -cert '$C/alice.pem' \
		-key '$C/alice.key' > '$T/ku5.out' 2>&1; grep -q KEYUPDATE '$T/ku5.out' &&
	grep -qx DONE '$T/ku5.out' && ! grep -qx closed '$T/ku5.out'"
check "and the connection ends by its own end, not as a flood" test \
	"$(vv_audit_q "$AUD" count op=unauth "detail=a TLS KeyUpdate flood before authenticating")" = 1
check "post-handshake auth offered by the client: still no AUTH, no service" rpy "
import ssl, socket
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
ctx.post_handshake_auth = True
try:
    t = ctx.wrap_socket(socket.create_connection(('127.0.0.1', $P)))
    t.settimeout(30)
    t.sendall(R.frame(R.OPS['auth'], (1, 3, '', ''), 1))
    assert not t.recv(16), 'answered without a certificate'
except OSError as e:
    print('# refused:', e)
"
check "TLS 1.2 with a valid certificate: refused" sh -c "! openssl s_client -tls1_2 \
	-connect 127.0.0.1:$P -cert '$C/alice.pem' -key '$C/alice.key' </dev/null 2>&1 |
	grep -q 'Cipher is [A-Z]'"
check "alice still served" same "data
more" cat "$R/f"
fusermount3 -u "$R"

# --- the CLI ---
check "mount --help names --cert" sh -c "'$VV_BIN' mount vv://x:1 /x --help | grep -q -- --cert-key"

test_done
