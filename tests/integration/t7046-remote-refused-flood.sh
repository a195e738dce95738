#!/bin/bash
# t7046-remote-refused-flood: connections refused before TLS cost the
# audit log a bounded number of records (docs/remote.md "The order of
# checks", 1).  Anyone who reaches the port, off the whitelist and without
# any credential, could be refused thousands of times a second, one
# audit record each (about 0.5 MiB/s from one Python loop here): the log's
# disk filled at the attacker's pace.  Now the first 5 refusals of an
# address in 10 s are audited one by one and the rest summed up in one
# record at the end of the window.  600 refusals from 127.0.0.1 (only
# 127.0.0.2 is allowed): at most 5 + 1 records per 10 s, adding up to 600
# with the sums; the listener's counter counts all 600; the allowed
# address is served throughout.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse
vv_need_loopback_alias

vv_listen_mount "mount --listen, only 127.0.0.2 allowed" 127.0.0.1:0 --allow 127.0.0.2/32
"$VV_BIN" user add alice --uid 1000 --no-password "$M" >/dev/null
TOKEN=$("$VV_BIN" key create alice "$M" 2>/dev/null)

check "600 connections from 127.0.0.1: all refused" rpy "
import socket, struct
n = 0
for i in range(600):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    s.connect(('127.0.0.1', $P))
    s.settimeout(10)
    try:
        if s.recv(1) == b'':
            n += 1
    except OSError:
        n += 1
    s.close()
assert n == 600, n"
check "127.0.0.2 is served meanwhile" rpy "
c = R.Client('127.0.0.1', $P, bind='127.0.0.2'); c.auth_key('$TOKEN'); c.call('getattr', 1)"
check "the listener counted 600 refused" test "$(vv_allow_stat "$M" refused)" = 600

# refused_records: "RECORDS TOTAL": the audit records of 127.0.0.1's
# refusals and the refusals they account for (1 each, or a sum's count)
refused_records() {
	"$PY" -c "
import json, re, sys
recs = tot = 0
for line in open('$AUD'):
    e = json.loads(line)
    if e.get('op') != 'connect' or not (e.get('client') or '').startswith('127.0.0.1:'):
        continue
    recs += 1
    m = re.match(r'(\d+) more connections from this address refused', e.get('detail') or '')
    tot += int(m.group(1)) if m else 1
print(recs, tot)"
}
# the sum comes at the end of the window (10 s), polled with a cap
for i in $(seq 1 300); do
	[ "$(refused_records | cut -d' ' -f2)" = 600 ] && break
	sleep 0.1
done
read -r RECS TOT <<< "$(refused_records)"
echo "# $RECS audit records for $TOT refusals"
check "every refusal is accounted for in the audit log" test "$TOT" = 600
check "in a few records, not one each" test "$RECS" -le 30
check "the first refusals are audited one by one, with the address" vv_audit_has "$AUD" \
	op=connect result=EACCES "client~^127\.0\.0\.1:" "detail~not in the whitelist: closed before TLS"
check "the rest in a sum naming why" vv_audit_has "$AUD" op=connect result=EACCES \
	"client~^127\.0\.0\.1:" \
	"detail~^[0-9]+ more connections from this address refused within 10 s, not audited one by one \(the last: address not in the whitelist"

test_done
