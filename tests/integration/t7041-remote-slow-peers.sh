#!/bin/bash
# t7041-remote-slow-peers: peers that hold connections without logging in
# (docs/remote.md "The order of checks", 2 and 3).
#   - The handshake and the AUTH frame share one deadline (10 s from
#     accept()): a peer that sends its ClientHello after 6 s and its AUTH
#     6 s after that is closed at 10 s and audited ("no authentication in
#     time"); it used to get 10 s more after the handshake, so each slow
#     peer held one of the 64 connections twice as long as documented.
#   - An AUTH frame sent one byte a second is cut at the same
#     deadline.
#   - 8 connections per address: a 9th from the same address is closed
#     before TLS and audited EBUSY, another address is still served, and
#     once the idle ones are cut the address is served again.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse
vv_need_loopback_alias

vv_listen_mount
"$VV_BIN" user add alice --uid 1000 --no-password "$M" >/dev/null
TOKEN=$("$VV_BIN" key create alice "$M" 2>/dev/null)

# the slow handshake and the slow frame, side by side (about 12 s)
rpy "
def closed(t):
    try:
        h = t.recv(16)
        return h == b''
    except (OSError, EOFError):
        return True
s = R.tcp('127.0.0.1', $P, bind='127.0.0.11', timeout=30)
time.sleep(6)
t = R.tls(s)
time.sleep(6)
try:
    t.sendall(R.frame(R.OPS['auth'], [R.VERSION, 1, '', '$TOKEN']))
    t.sendall(R.frame(R.OPS['getattr'], [1], 2))
except OSError:
    print('closed'); sys.exit(0)
print('closed' if closed(t) else 'served')
" > "$T/slowhs.out" 2>&1 &
SLOWHS=$!
rpy "
t = R.tls(R.tcp('127.0.0.1', $P, bind='127.0.0.12', timeout=30))
f = R.frame(R.OPS['auth'], [R.VERSION, 1, '', '$TOKEN'])
t0 = time.monotonic()
try:
    for b in f:
        t.sendall(bytes([b]))
        time.sleep(1)
    h = t.recv(16)
    print('closed' if h == b'' else 'served')
except OSError:
    print('closed')
" > "$T/slowframe.out" 2>&1 &
SLOWFR=$!

# 8 peers of 127.0.0.9 that log in never (TLS done, nothing sent)
rpy "
ts = [R.tls(R.tcp('127.0.0.1', $P, bind='127.0.0.9', timeout=30)) for i in range(8)]
open('$T/held', 'w').close()
for t in ts:
    try:
        t.recv(16)            # until the server cuts it
    except OSError:
        pass
" > "$T/held.out" 2>&1 &
HELD=$!
for i in $(seq 1 100); do [ -e "$T/held" ] && break; sleep 0.1; done
check "a 9th connection of 127.0.0.9 is closed before TLS" rpy "
try:
    R.Client('127.0.0.1', $P, bind='127.0.0.9', timeout=10).auth_key('$TOKEN')
except (OSError, EOFError, R.Error) as e:
    sys.exit(0)
sys.exit('served')"
check "audited: connect EBUSY, too many connections from this address" \
	vv_audit_has "$AUD" op=connect result=EBUSY "client~^127\.0\.0\.9:" \
	"detail~too many connections from this address"
check "another address is served meanwhile" rkey "$TOKEN" "c.call('getattr', 1)"

wait $SLOWHS $SLOWFR $HELD
check "a handshake at 6 s and AUTH at 12 s: closed at the 10 s deadline" \
	grep -qx closed "$T/slowhs.out"
check "an AUTH frame a byte a second: closed" grep -qx closed "$T/slowframe.out"
check "audited: no authentication in time (slow handshake)" \
	vv_audit_has "$AUD" op=unauth "client~^127\.0\.0\.11:" "detail~no authentication in time"
check "audited: no authentication in time (slow frame)" \
	vv_audit_has "$AUD" op=unauth "client~^127\.0\.0\.12:" "detail~no authentication in time"
check "127.0.0.9 is served again once its idle peers were cut" rpy "
c = R.Client('127.0.0.1', $P, bind='127.0.0.9', timeout=30)
c.auth_key('$TOKEN')
c.call('getattr', 1)"

test_done
