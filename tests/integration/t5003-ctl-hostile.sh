#!/bin/bash
# t5003-ctl-hostile: uid 65534 throws hostile traffic at the control
# socket (lib/ctlstorm.py: random bytes, huge lengths, another version,
# malformed bodies, half frames then a stall, disconnects mid-frame, a
# peer that never reads, 100 connections at once, 200 requests on one
# connection): each costs only its own connection, with a clear message
# where one can be framed, and a good request is still answered after each.
# While nobody holds every connection it may, root and u1000 still get in.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
vv_init "$S" >/dev/null
ID=$(vv_store_id "$S")
SOCK=$(vv_ctl_socket "$S")
check "mount" vv_mount "$S" "$M"
echo hello > "$M/f"

mkdir -m 777 "$T/sig"
as_nobody "$PY" "$VV_SRC/tests/integration/lib/ctlstorm.py" "$SOCK" "$ID" "$T/sig/hold" "$T/sig/release" \
	> "$T/storm.out" 2>&1 &
storm=$!
for i in $(seq 1 1200); do
	[ -e "$T/sig/hold" ] && break
	kill -0 "$storm" 2>/dev/null || break
	sleep 0.1
done
check "nobody holds its connections" test -e "$T/sig/hold"
check "root still gets in meanwhile" "$VV_BIN" admin "$M" vault.ping
check "u1000 still gets in meanwhile" as_u1000 "$VV_BIN" admin "$M" vault.ping
touch "$T/sig/release"
rc=0; wait "$storm" || rc=$?
sed 's/^/# /' "$T/storm.out"
check "every hostile kind was survived (ctlstorm.py)" test "$rc" = 0
check "no 'not ok' in the storm" sh -c "! grep -q '^not ok' '$T/storm.out'"
check "the daemon still serves files" test "$(cat "$M/f")" = hello
check "and answers root afterwards" "$VV_BIN" admin "$M" vault.ping
check "the daemon logged the refusals at the cap" grep -q "too many control connections" "$T/daemon.log"
check "but not once per refused connection (a user cannot flood the log)" \
	test "$(grep -c "too many control connections" "$T/daemon.log")" -lt 20

test_done
