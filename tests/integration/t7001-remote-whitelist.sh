#!/bin/bash
# t7001-remote-whitelist: who may even start TLS.  A mount with --listen
# and --allow 127.0.0.2 serves a client whose source is 127.0.0.2 and
# closes one from 127.0.0.3 right after accept(): the handshake counter
# does not move, the refusal is counted and audited (connect, EACCES, the
# address).  `vecvault allow add/remove` changes it at once (owner only).
# A key's own CIDRs narrow further.  Default deny: no --allow = loopback
# only.  The private link: a listener bound to 127.0.0.2 is not reachable
# through 127.0.0.1.  IPv6: [::1] served; on a dual-stack [::] socket a
# mapped IPv4 peer is judged by the IPv4 rules.  `vecvault serve` does
# all this without a mount.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse
vv_need_loopback_alias

FP=$(vv_tls "$T/tls")
check "tls selfsigned: a fingerprint" test ${#FP} = 64
check "tls fingerprint agrees" sh -c "'$VV_BIN' tls fingerprint '$T/tls/cert.pem' | grep -qx 'sha256:$FP'"
check "the key is private" test "$(stat -c %a "$T/tls/key.pem")" = 600
expect_fail "selfsigned never overwrites" "$VV_BIN" tls selfsigned --out "$T/tls" --name x

vv_init "$S" >/dev/null
AUD=$(vv_audit_log "$S")
expect_fail "--listen without a certificate" "$VV_BIN" mount "$S" "$M" --listen 127.0.0.1:0
expect_fail "--allow that is not a CIDR" "$VV_BIN" mount "$S" "$M" --listen 127.0.0.1:0 \
	--tls-cert "$T/tls/cert.pem" --tls-key "$T/tls/key.pem" --allow 10.0.0.1/8
check "mount --listen 0.0.0.0:0 --allow 127.0.0.2" vv_mount "$S" "$M" --listen 0.0.0.0:0 \
	--tls-cert "$T/tls/cert.pem" --tls-key "$T/tls/key.pem" --allow 127.0.0.2
P=$(vv_port "$LOG" 0.0.0.0:0)
check "a port was logged" test -n "$P"
echo hello > "$M/hello.txt"
"$VV_BIN" user add alice --uid 1000 --no-password "$M" >/dev/null
TOKEN=$("$VV_BIN" key create alice "$M" 2>/dev/null)
"$VV_BIN" user add bob --uid 1001 --no-password "$M" >/dev/null
TOKEN_B=$("$VV_BIN" key create bob --allow 127.0.0.2 "$M" 2>/dev/null)

check "from 127.0.0.2: served" rpy "
c = R.Client('127.0.0.1', $P, bind='127.0.0.2', fingerprint='$FP')
c.auth_key('$TOKEN')
assert c.read_file('/hello.txt') == b'hello\n'"
H0=$(vv_allow_stat "$M" handshakes)
R0=$(vv_allow_stat "$M" refused)
check "from 127.0.0.3: closed before TLS" rpy "
try:
    R.Client('127.0.0.1', $P, bind='127.0.0.3')
except Exception as e:
    print('refused:', e); sys.exit(0)
sys.exit('the handshake went through')"
check "no handshake was started for it" test "$(vv_allow_stat "$M" handshakes)" = "$H0"
check "the refusal is counted" test "$(vv_allow_stat "$M" refused)" = $((R0 + 1))
check "audited: connect EACCES from 127.0.0.3" vv_audit_has "$AUD" op=connect result=EACCES "client~^127\.0\.0\.3:"

# runtime changes, owner only
expect_fail "allow add by nobody" as_nobody "$VV_BIN" allow add 127.0.0.3 "$M"
check "allow add 127.0.0.3" "$VV_BIN" allow add 127.0.0.3 "$M"
check "from 127.0.0.3 now: served" rpy "
c = R.Client('127.0.0.1', $P, bind='127.0.0.3'); c.auth_key('$TOKEN'); c.call('getattr', 1)"
check "a key limited to 127.0.0.2 is refused from 127.0.0.3" rpy "
c = R.Client('127.0.0.1', $P, bind='127.0.0.3')
try:
    c.auth_key('$TOKEN_B')
except R.Error as e:
    assert e.status == -5; sys.exit(0)
sys.exit('authenticated')"
check "and accepted from 127.0.0.2" rpy "
c = R.Client('127.0.0.1', $P, bind='127.0.0.2'); c.auth_key('$TOKEN_B')"
check "allow remove 127.0.0.3/32" "$VV_BIN" allow remove 127.0.0.3/32 "$M"
check "from 127.0.0.3 again: closed" rpy "
try:
    R.Client('127.0.0.1', $P, bind='127.0.0.3')
except Exception:
    sys.exit(0)
sys.exit('served')"
expect_fail "remove what is not there" "$VV_BIN" allow remove 127.0.0.3 "$M"
check "allow list --json" sh -c "'$VV_BIN' allow list --json '$M' | '$PY' -c 'import json,sys; d=json.load(sys.stdin); assert d[\"allow\"]==[\"127.0.0.2/32\"], d'"
check "audited: allow.add" vv_audit_has "$AUD" op=admin result=ok "detail~allow.add"

# default deny and the private link, with serve (no mount)
S2=$T/store2
vv_init "$S2" >/dev/null
check "serve --listen 127.0.0.2:0 (default: loopback only)" "$VV_BIN" serve "$S2" \
	--passfile "$PASSFILE" --listen 127.0.0.2:0 --tls-cert "$T/tls/cert.pem" \
	--tls-key "$T/tls/key.pem" --log "$T/serve.log" --pid-file "$T/serve.pid"
P2=$(vv_port "$T/serve.log" 127.0.0.2:0)
check "serve: a port" test -n "$P2"
check "serve: reachable on 127.0.0.2" rpy "R.Client('127.0.0.2', $P2)"
check "the private link: not through 127.0.0.1" rpy "
try:
    R.Client('127.0.0.1', $P2)
except ConnectionRefusedError:
    sys.exit(0)
sys.exit('connected')"
check "serve: allow list --store" sh -c "'$VV_BIN' allow list --store '$S2' | grep -qx '127.0.0.0/8'"
kill -TERM "$(cat "$T/serve.pid")"
vv_wait_daemon "$T/serve.pid"
check "serve: SIGTERM stops it" sh -c "! kill -0 \$(cat '$T/serve.pid' 2>/dev/null) 2>/dev/null"

# IPv6 and mapped IPv4 on a dual-stack socket
if "$PY" -c "import socket; s=socket.socket(socket.AF_INET6); s.bind(('::1',0))" 2>/dev/null; then
	check "serve --listen [::]:0 --allow ::1 --allow 127.0.0.2" "$VV_BIN" serve "$S2" \
		--passfile "$PASSFILE" --listen '[::]:0' --allow ::1 --allow 127.0.0.2 \
		--tls-cert "$T/tls/cert.pem" --tls-key "$T/tls/key.pem" --log "$T/serve6.log" \
		--pid-file "$T/serve6.pid"
	P6=$(vv_port "$T/serve6.log" '[::]:0')
	check "IPv6 ::1: handshake" rpy "R.Client('::1', $P6)"
	check "mapped 127.0.0.2: judged as IPv4, in" rpy "R.Client('127.0.0.2', $P6, bind='127.0.0.2')"
	check "mapped 127.0.0.3: judged as IPv4, out" rpy "
try:
    R.Client('127.0.0.3', $P6, bind='127.0.0.3')
except Exception:
    sys.exit(0)
sys.exit('served')"
	AUD2=$(vv_audit_log "$S2")
	check "audited as 127.0.0.3, not ::ffff:" vv_audit_has "$AUD2" op=connect result=EACCES "client~^127\.0\.0\.3:"
	kill -TERM "$(cat "$T/serve6.pid")"
	vv_wait_daemon "$T/serve6.pid"
else
	echo "# no IPv6 loopback: IPv6 checks skipped"
fi
test_done
