#!/bin/bash
# t7002-remote-auth: TLS and authentication before anything.  TLS 1.2 is
# refused (openssl s_client -tls1_2, and Python's TLS 1.2); a wrong pin is
# caught by the client; a raw READ frame before AUTH closes the connection
# (audited unauth, nothing served); a wrong key and a wrong password are
# refused and audited as unauth with the address and the user or key id
# tried, never the secret; failures back off per address (the delays are
# lower bounds the server sleeps, never upper bounds); a key revoked
# while its session is open fails that session's next request with
# EACCES (polled, generous cap); a password login works.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse
vv_need_loopback_alias

vv_listen_mount "mount --listen 127.0.0.1:0 (loopback default)"
echo secret-data > "$M/f"
printf 'a password for carol, long enough\n' > "$T/pw"
chmod 600 "$T/pw"
"$VV_BIN" user add alice --uid 1000 --no-password "$M" >/dev/null
"$VV_BIN" user add carol --uid 1001 --password-file "$T/pw" "$M" >/dev/null
TOKEN=$("$VV_BIN" key create alice "$M" 2>/dev/null)
KID=${TOKEN:4:16}
SECRET=${TOKEN:21}

if command -v openssl >/dev/null; then
	check "openssl s_client -tls1_2: refused" sh -c "! openssl s_client -tls1_2 -connect 127.0.0.1:$P < /dev/null > '$T/s12' 2>&1"
	check "openssl s_client -tls1_3: handshake" sh -c "openssl s_client -tls1_3 -connect 127.0.0.1:$P < /dev/null 2>&1 | grep -q 'TLSv1.3'"
fi
check "TLS 1.2 from Python: refused" rpy "
import ssl
try:
    R.tls(R.tcp('127.0.0.1', $P), version=ssl.TLSVersion.TLSv1_2)
except ssl.SSLError as e:
    print(e); sys.exit(0)
sys.exit('TLS 1.2 accepted')"
check "audited: the failed handshake" vv_audit_has "$AUD" op=connect result=EACCES "detail~TLS handshake failed"
check "a wrong pin is refused by the client" rpy "
try:
    R.Client('127.0.0.1', $P, fingerprint='00' * 32)
except Exception as e:
    assert 'fingerprint' in str(e); sys.exit(0)
sys.exit('accepted')"

check "a READ frame before AUTH: closed, nothing served" rpy "
c = R.Client('127.0.0.1', $P)
c.send('read', 1, 0, 4096)
try:
    print(c.recv()); sys.exit('answered')
except (EOFError, ConnectionError, OSError):
    pass"
check "audited: unauth, read frame" vv_audit_has "$AUD" op=unauth result=EACCES "detail~read frame before authentication"
check "a LOOKUP before AUTH: closed" rpy "
c = R.Client('127.0.0.1', $P)
c.send('lookup', 1, 'f')
try:
    print(c.recv()); sys.exit('answered')
except (EOFError, ConnectionError, OSError):
    pass"

check "wrong secret: EACCES" rpy "
c = R.Client('127.0.0.1', $P, bind='127.0.0.2')
try:
    c.auth_key('vvk_${KID}_' + 'A' * 43)
except R.Error as e:
    assert e.status == -5; sys.exit(0)
sys.exit('authenticated')"
check "audited: unauth with the address and the key id" vv_audit_has "$AUD" op=unauth result=EACCES "client~^127\.0\.0\.2:" "user=$KID"
check "wrong password: EACCES" rpy "
c = R.Client('127.0.0.1', $P, bind='127.0.0.3')
try:
    c.auth_password('carol', 'not it')
except R.Error as e:
    assert e.status == -5; sys.exit(0)
sys.exit('authenticated')"
check "audited: unauth with the user tried" vv_audit_has "$AUD" op=unauth result=EACCES "client~^127\.0\.0\.3:" user=carol
check "password login as carol" rpy "
c = R.Client('127.0.0.1', $P, bind='127.0.0.3')
assert c.auth_password('carol', 'a password for carol, long enough') == [1001, 'carol']
assert c.read_file('/f') == b'secret-data\n'"
check "the request is audited as carol from 127.0.0.3" vv_audit_has "$AUD" op=open user=carol "client~^127\.0\.0\.3:" uid=1001

# backoff: 4 failures in a row from 127.0.0.4 wait 0 + 250 + 500 + 1000 ms at
# least (server-side sleeps: a lower bound, whatever the machine's speed)
check "backoff: failures from one address are delayed" rpy "
t0 = time.monotonic()
for i in range(4):
    c = R.Client('127.0.0.1', $P, bind='127.0.0.4', timeout=60)
    try:
        c.auth_key('vvk_${KID}_' + 'B' * 43)
    except R.Error:
        pass
    c.close()
took = time.monotonic() - t0
print('4 failures took %.2f s' % took)
assert took >= 1.75, took"
check "the right key still works from elsewhere at once" rpy "
c = R.Client('127.0.0.1', $P, bind='127.0.0.5'); c.auth_key('$TOKEN')"

# revoked mid-session
rpy "
c = R.Client('127.0.0.1', $P)
c.auth_key('$TOKEN')
c.call('getattr', 1)
open('$T/ready', 'w').close()
while not os.path.exists('$T/revoked'):
    time.sleep(0.05)
for i in range(200):
    try:
        c.call('getattr', 1)
    except R.Error as e:
        print('refused with', e); open('$T/refused', 'w').write(str(e.status)); break
    except (EOFError, OSError) as e:
        print('closed', e); open('$T/refused', 'w').write('closed'); break
    time.sleep(0.05)
" > "$T/rev.out" 2>&1 &
RPID=$!
for i in $(seq 1 200); do [ -e "$T/ready" ] && break; sleep 0.05; done
check "key revoke while a session is open" "$VV_BIN" key revoke "$KID" "$M"
touch "$T/revoked"
wait $RPID || true
check "the open session's next requests fail with EACCES" sh -c "grep -qx -- -5 '$T/refused'"
check "audited: session ended" vv_audit_has "$AUD" op=unauth "detail~no longer valid"
check "a new session with the revoked key: refused" rpy "
c = R.Client('127.0.0.1', $P, bind='127.0.0.6')
try:
    c.auth_key('$TOKEN')
except R.Error:
    sys.exit(0)
sys.exit('authenticated')"

# a certificate login (mTLS, AUTH method 3) on a server without --client-ca
check "certificate login without --client-ca: refused, nothing served" rpy "
c = R.Client('127.0.0.1', $P)
try:
    c.auth_cert(); sys.exit('logged in')
except R.Error as e:
    print('# refused:', e)
try:
    c.call('getattr', 1); sys.exit('served')
except (EOFError, OSError, R.Error):
    pass"
check "audited: certificate login without a certificate" vv_audit_has "$AUD" op=unauth \
	result=EACCES "detail~certificate login without a client certificate"

check "the secret is in no audit record" sh -c "! grep -qF -- '$SECRET' '$AUD'"
check "the password is in no audit record" sh -c "! grep -qF 'not it' '$AUD' && ! grep -qF 'long enough' '$AUD'"
check "the secret is not in the daemon log" sh -c "! grep -qF -- '$SECRET' '$LOG'"
test_done
