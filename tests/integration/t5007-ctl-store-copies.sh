#!/bin/bash
# t5007-ctl-store-copies: two copies of one store (cp -a: the same vault
# id) mounted at once.  The first mounted owns the control socket; the
# second serves files without one (its log says why), and the CLI refuses
# to send the second mount's requests to the first one's daemon, from the
# mount or from --store, instead of administering the wrong copy.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
vv_init "$S" >/dev/null
cp -a "$S" "$T/copy"
ID=$(vv_store_id "$S")
check "the copy has the same id" test "$(vv_store_id "$T/copy")" = "$ID"

check "mount the original" vv_mount "$S" "$T/m1"
check "mount the copy too (its own audit log)" vv_mount "$T/copy" "$T/m2" --accept-rollback \
	--audit-log "$T/.audit/copy.log"
check "the copy's daemon says another daemon has the socket" \
	grep -q "another daemon already serves this vault id" "$T/daemon.log"
i1=$(getfattr --only-values -n user.vecvault.instance "$T/m1" 2>/dev/null || true)
i2=$(getfattr --only-values -n user.vecvault.instance "$T/m2" 2>/dev/null || true)
check "the two mounts name different instances" sh -c "test -n '$i1' && test '$i1' != '$i2'"
check "the original answers from its mount" sh -c "'$VV_BIN' admin '$T/m1' vault.ping >/dev/null"
check "and from --store" sh -c "'$VV_BIN' admin --store '$S' vault.ping >/dev/null"
rc=0; err=$("$VV_BIN" admin "$T/m2" vault.ping 2>&1) || rc=$?
check "the copy's mount is refused: exit 2" test "$rc" = 2
check "and the message says why" grep -q "does not serve the vault at $T/m2 (another copy" <<<"$err"
rc=0; err=$("$VV_BIN" admin --store "$T/copy" vault.ping 2>&1) || rc=$?
check "the copy's --store is refused: exit 2" test "$rc" = 2
check "and the message names the copy" grep -q "does not serve the vault in $T/copy" <<<"$err"
check "unmount the copy" vv_umount "$T/m2"
check "unmount the original" vv_umount "$T/m1"

test_done
