#!/bin/bash
# t7061-remote-key-cidr-admit: DESIGN.md's whitelist is the --allow CIDRs
# "and the key's own CIDRs".  A listener allowing only 127.0.0.2 admits
# 127.0.0.3 before TLS because an active API key of alice lists it, and
# there only such a key logs in: that key is served; a password (right
# for 127.0.0.2), a key of alice without CIDRs, bob's key for another
# address, an expired and a revoked key listing 127.0.0.3 are refused,
# each audited twice (auth and unauth, "address admitted for a key
# only" where that is why).  Keys made, revoked and expired while the
# listener runs change who is admitted at the next connection; a key
# session from such an address ends when its key is revoked; the caps and
# the handshake+AUTH deadline apply there; an address in no key's CIDRs
# is still closed before TLS and audited.  With mutual TLS a certificate
# login is refused there as a password is.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse
vv_need_loopback_alias

vv_listen_mount "mount --listen, only 127.0.0.2 allowed" 127.0.0.1:0 --allow 127.0.0.2/32
echo hello > "$M/hello.txt"
printf 'alice pw' > "$T/pw"
"$VV_BIN" user add alice --uid 1000 --password-file "$T/pw" "$M" >/dev/null
"$VV_BIN" user add bob --uid 1001 --no-password "$M" >/dev/null
K3=$("$VV_BIN" key create alice --allow 127.0.0.3 "$M" 2>/dev/null)
K_ANY=$("$VV_BIN" key create alice "$M" 2>/dev/null)
K_BOB=$("$VV_BIN" key create bob --allow 127.0.0.5 "$M" 2>/dev/null)
K_EXP=$("$VV_BIN" key create alice --allow 127.0.0.3 --expires 1s "$M" 2>/dev/null)
K_REV=$("$VV_BIN" key create alice --allow 127.0.0.3 "$M" 2>/dev/null)
"$VV_BIN" key revoke "$K_REV" "$M" >/dev/null

# closed FROM: a connection from FROM is closed before the TLS handshake
closed() {
	local h0
	h0=$(vv_allow_stat "$M" handshakes)
	rpy "
try:
    R.Client('127.0.0.1', $P, bind='$1')
except Exception:
    sys.exit(0)
sys.exit('the handshake went through')" || return 1
	[ "$(vv_allow_stat "$M" handshakes)" = "$h0" ] || { echo "# a handshake was started"; return 1; }
}
# login FROM METHOD: a login from FROM; prints ok, the refusal's status or
# closed (before or during TLS)
login() {
	rpy "
try:
    c = R.Client('127.0.0.1', $P, bind='$1', fingerprint='$FP')
    c.$2
    c.call('getattr', 1)
    print('ok')
except R.Error as e:
    print(e.status)
except Exception as e:
    print('closed:', type(e).__name__)"
}
# served FROM METHOD: that login from FROM is served
served() {
	local got
	got=$(login "$1" "$2")
	[ "$got" = ok ] || { echo "# got: $got"; return 1; }
}

check "127.0.0.4 (in no key's CIDRs): closed before TLS" closed 127.0.0.4
check "and audited as before" vv_audit_has "$AUD" op=connect result=EACCES \
	"client~^127\.0\.0\.4:" "detail~not in the whitelist: closed before TLS"
check "127.0.0.3 (alice's key lists it): that key is served" \
	served 127.0.0.3 "auth_key('$K3')"
check "and reads a file" rpy "
c = R.Client('127.0.0.1', $P, bind='127.0.0.3'); c.auth_key('$K3')
assert c.read_file('/hello.txt') == b'hello\n'"
check "alice's password from 127.0.0.2 (whitelisted): served" \
	served 127.0.0.2 "auth_password('alice', 'alice pw')"

# the caps and the handshake+AUTH deadline hold there as anywhere: 8
# peers of 127.0.0.3 that never log in (TLS done, nothing sent) ...
rpy "
ts = [R.tls(R.tcp('127.0.0.1', $P, bind='127.0.0.3', timeout=30)) for i in range(8)]
open('$T/held', 'w').close()
for t in ts:
    try:
        t.recv(16)            # until the server cuts it
    except OSError:
        pass
print('cut')" > "$T/held.out" 2>&1 &
HELD=$!
for i in $(seq 1 100); do [ -e "$T/held" ] && break; sleep 0.1; done
check "... a 9th connection of 127.0.0.3 is closed before TLS" closed 127.0.0.3
check "audited: connect EBUSY, too many connections from this address" \
	vv_audit_has "$AUD" op=connect result=EBUSY "client~^127\.0\.0\.3:" \
	"detail~too many connections from this address"
wait $HELD || true
check "the 8 are cut at the deadline" grep -qx cut "$T/held.out"
check "audited: no authentication in time" vv_audit_has "$AUD" op=unauth \
	"client~^127\.0\.0\.3:" "detail~no authentication in time"

S0=$(vv_audit_q "$AUD" count)
got=$(login 127.0.0.3 "auth_password('alice', 'alice pw')")
check "the same password from 127.0.0.3: refused (EACCES, got $got)" test "$got" = -5
check "audited auth: password, address admitted for a key only" vv_audit_has "$AUD" \
	"seq>=$S0" op=auth result=EACCES "client~^127\.0\.0\.3:" \
	"detail~^password: address admitted for a key only$"
check "audited unauth: password refused, address admitted for a key only" vv_audit_has "$AUD" \
	"seq>=$S0" op=unauth result=EACCES "client~^127\.0\.0\.3:" user=alice \
	"detail~^password refused: address admitted for a key only$"
got=$(login 127.0.0.3 "auth_key('$K_ANY')")
check "alice's key without CIDRs from 127.0.0.3: refused (got $got)" test "$got" = -5
check "audited auth: the key lists no CIDRs" vv_audit_has "$AUD" "seq>=$S0" op=auth \
	result=EACCES "client~^127\.0\.0\.3:" \
	"detail~^key ${K_ANY:4:16}: address admitted for a key only: this key lists no CIDRs$"
check "audited unauth: the key id, admitted for a key only" vv_audit_has "$AUD" "seq>=$S0" \
	op=unauth result=EACCES "client~^127\.0\.0\.3:" \
	"detail~^API key refused: key ${K_ANY:4:16} \(address admitted for a key only\)$"
got=$(login 127.0.0.3 "auth_key('$K_BOB')")
check "bob's key (for 127.0.0.5) from 127.0.0.3: refused (got $got)" test "$got" = -5
check "audited auth: not allowed for bob's key" vv_audit_has "$AUD" "seq>=$S0" op=auth \
	result=EACCES user=bob "detail~^key ${K_BOB:4:16}: address not allowed for this key$"
sleep 1.1                                  # K_EXP was made for 1 s
got=$(login 127.0.0.3 "auth_key('$K_EXP')")
check "an expired key listing 127.0.0.3: refused (got $got)" test "$got" = -5
check "audited auth: expired" vv_audit_has "$AUD" "seq>=$S0" op=auth result=EACCES \
	"detail~^key ${K_EXP:4:16}: expired$"
got=$(login 127.0.0.3 "auth_key('$K_REV')")
check "a revoked key listing 127.0.0.3: refused (got $got)" test "$got" = -5
check "audited auth: revoked" vv_audit_has "$AUD" "seq>=$S0" op=auth result=EACCES \
	"detail~^key ${K_REV:4:16}: revoked$"

# keys made, revoked and expiring while the listener runs
K4=$("$VV_BIN" key create alice --allow 127.0.0.4/32 "$M" 2>/dev/null)
check "a key made for 127.0.0.4 while listening: admitted and served" \
	served 127.0.0.4 "auth_key('$K4')"
"$VV_BIN" key revoke "${K4:4:16}" "$M" >/dev/null
check "revoked: 127.0.0.4 is closed before TLS again" closed 127.0.0.4
K6=$("$VV_BIN" key create alice --allow 127.0.0.6 --expires 20s "$M" 2>/dev/null)
check "a key for 127.0.0.6 expiring in 20 s: admitted and served" \
	served 127.0.0.6 "auth_key('$K6')"
check "once it expired: 127.0.0.6 is closed before TLS" vv_soon closed 127.0.0.6

# a session admitted by a key's CIDR ends when the key is revoked
rwatch k3 "R.Client('127.0.0.1', $P, bind='127.0.0.3')" "c.auth_key('$K3')" /hello.txt
"$VV_BIN" key revoke "${K3:4:16}" "$M" >/dev/null
check "revoking the key ends its session from 127.0.0.3" rwatch_end k3
check "audited: API key no longer valid" vv_audit_has "$AUD" op=unauth result=EACCES \
	"client~^127\.0\.0\.3:" "detail~^API key no longer valid"
check "and 127.0.0.3 is closed before TLS" closed 127.0.0.3

# mutual TLS (a second vault, --client-ca): a certificate carries no
# CIDRs, so a certificate login from an address only a key admits is
# refused too; alice's key for it, on top of her certificate, is served
C=$T/ca
mkdir -p "$C"
"$VV_BIN" tls client-ca --out "$C/vca" >/dev/null
"$VV_BIN" tls client alice --ca "$C/vca" --out "$C/valice" >/dev/null
S2=$T/store2
M2=$T/mnt2
vv_init "$S2" >/dev/null
AUD2=$(vv_audit_log "$S2")
check "a vault with --client-ca, only 127.0.0.2 allowed" vv_mount "$S2" "$M2" \
	--listen 127.0.0.7:0 --tls-cert "$T/tls/cert.pem" --tls-key "$T/tls/key.pem" \
	--client-ca "$C/vca/cert.pem" --allow 127.0.0.2/32
P2=$(vv_port "$LOG" 127.0.0.7:0)
"$VV_BIN" user add alice --uid 1000 --no-password "$M2" >/dev/null
KC=$("$VV_BIN" key create alice --allow 127.0.0.3 "$M2" 2>/dev/null)
# mlogin FROM METHOD: login() with alice's certificate on the second vault
mlogin() {
	rpy "
try:
    c = R.Client('127.0.0.7', $P2, bind='$1', cert='$C/valice/cert.pem', key='$C/valice/key.pem')
    c.$2
    c.call('getattr', 1)
    print('ok')
except R.Error as e:
    print(e.status)
except Exception as e:
    print('closed:', type(e).__name__)"
}
got=$(mlogin 127.0.0.2 "auth_cert()")
check "alice's certificate login from 127.0.0.2 (whitelisted): served (got $got)" test "$got" = ok
got=$(mlogin 127.0.0.3 "auth_cert()")
check "the same from 127.0.0.3: refused (got $got)" test "$got" = -5
check "audited auth: certificate, address admitted for a key only" vv_audit_has "$AUD2" \
	op=auth result=EACCES user=alice "client~^127\.0\.0\.3:" \
	"detail~^certificate sha256:[0-9a-f]{16}: address admitted for a key only$"
check "audited unauth: client certificate refused, admitted for a key only" \
	vv_audit_has "$AUD2" op=unauth result=EACCES user=alice "client~^127\.0\.0\.3:" \
	"detail~^client certificate refused: address admitted for a key only$"
got=$(mlogin 127.0.0.3 "auth_key('$KC')")
check "alice's key for 127.0.0.3 with her certificate: served (got $got)" test "$got" = ok
test_done
