#!/bin/bash
# t7033-rclient-mount-init: `vecvault mount vv://...` reports success only
# once the client daemon's FUSE INIT passed.  A daemon made to ask the
# kernel for a capability it lacks (VECVAULT_TEST_INIT_FAIL=1, as a
# daemon built for a newer kernel would) fails INIT: the mount command
# exits 1 naming the refused capability, leaves no mount behind and no
# daemon running.  A normal mount is served as soon as the command returns.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse

vv_listen_mount
vv_alice_coll
echo hello > "$M/coll/f"
chown 1000:1000 "$M/coll/f"
URL="vv://alice@127.0.0.1:$P/coll"

mkdir -p "$R"
rc=0
VECVAULT_TEST_INIT_FAIL=1 timeout 60 "$VV_BIN" mount "$URL" "$R" --key-file "$T/key" --pin "$FP" \
	--log "$T/client.log" > "$T/out" 2>&1 || rc=$?
grep -q " $R " /proc/mounts && printf '%s\t%s\n' "$R" "" >> "$VV_MOUNTS"
check "a failed FUSE INIT fails the mount command (exit $rc)" test "$rc" = 1
check "its message names the refused INIT ($(head -c 200 "$T/out"))" \
	grep -q "the kernel refused the FUSE INIT: the client asked for capabilities 0x" "$T/out"
check "no mount is left behind" sh -c "! grep -q ' $R ' /proc/mounts"
gone() { ! ps -eo args | grep -q "^$VV_BIN mount $URL $R "; }
soon() { local i; for i in $(seq 1 100); do "$@" && return 0; sleep 0.1; done; return 1; }
check "no client daemon is left running" soon gone
check "the client log says it too" grep -q "refused the FUSE INIT" "$T/client.log"

check "a normal mount succeeds" vv_rmount "$URL" "$R" --key-file "$T/key" --pin "$FP"
check "and is served as soon as the command returned" test "$(cat "$R/f")" = hello
check "unmount" fusermount3 -u "$R"
test_done
