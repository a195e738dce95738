#!/bin/bash
# t6040-trash-restore-candidates: `vecvault trash restore PATH` (and the
# verb trash.restore with name=) choose among the caller's candidates only.
# A path removed by u1000, then twice by u1001 in a sticky directory (once
# readable by all, once 0600): u1000 gets its own item back, not refused
# for u1001's newer ones; u1001 likewise past a newer item of u1000's.  An
# item hidden from the caller changes no answer: refusing its path or its
# name reads as refusing one nothing has, and names nothing of it.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse
export -f as_u1000 as_u1001

S=$T/store
M=$T/mnt
vv_init "$S" >/dev/null 2>&1
LOG=$(vv_audit_log "$S")
vv_mount "$S" "$M"

mkdir -m 1777 "$M/sh"
as_u1000 sh -c "echo mine > '$M/sh/x' && rm '$M/sh/x'"
as_u1001 sh -c "echo open > '$M/sh/x' && chmod 644 '$M/sh/x' && rm '$M/sh/x'"
as_u1001 sh -c "echo hide > '$M/sh/x' && chmod 600 '$M/sh/x' && rm '$M/sh/x'"
as_u1001 sh -c "echo zz > '$M/sh/z' && chmod 600 '$M/sh/z' && rm '$M/sh/z'"
# named_as TEXT: the name in .trash/files of the item that reads TEXT (as root)
named_as() {
	local f
	for f in $(ls "$M/.trash/files"); do
		if [ "$(cat "$M/.trash/files/$f")" = "$1" ]; then echo "$f"; fi
	done
}
hidden=$(named_as hide)
check "root finds the hidden item's name" test -n "$hidden"

check "u1000: trash restore /sh/x (two newer items of u1001's)" as_u1000 "$VV_BIN" trash restore "$M" /sh/x
check "u1000's own is back" test "$(cat "$M/sh/x")" = mine
check "audited as u1000's restore" vv_audit_has "$LOG" op=restore uid=1000 result=ok path=/sh/x
out=$(as_u1000 "$VV_BIN" trash restore "$M" /sh/x 2>&1) && rc=0 || rc=$?
check "u1000: again: refused (only u1001's items are left)" test "$rc" = 1
check "for the one u1000 sees" bash -c "grep -q '/sh/x: you could not have removed it' <<< '$out'"

# a hidden item refused in the words of a missing one
n1=$(as_u1000 "$VV_BIN" trash restore "$M" /sh/z 2>&1 | sed 's|/sh/z|P|g') || true
n2=$(as_u1000 "$VV_BIN" trash restore "$M" /sh/nothing 2>&1 | sed 's|/sh/nothing|P|g') || true
check "u1000: /sh/z (hidden) refused as /sh/nothing (none) is" test "$n1" = "$n2"
check "in words naming no owner or trash name" bash -c "! grep -qE '1001|z\\.|\\.trash/files' <<< '$n1'"
n1=$(as_u1000 "$VV_BIN" admin "$M" trash.restore "name=$hidden" 2>&1 | sed "s|$hidden|N|g") || true
n2=$(as_u1000 "$VV_BIN" admin "$M" trash.restore name=no-such-name 2>&1 | sed 's|no-such-name|N|g') || true
check "u1000: name=$hidden (hidden) refused as a name nothing has" test "$n1" = "$n2"
check "the hidden item is still there" test "$(cat "$M/.trash/files/$hidden")" = hide

as_u1000 rm "$M/sh/x"
check "u1001: trash restore /sh/x (a newer item of u1000's)" as_u1001 "$VV_BIN" trash restore "$M" /sh/x
check "u1001's newest is back" test "$(cat "$M/sh/x")" = hide
as_u1001 rm "$M/sh/x"
check "u1001: name= of its readable item" as_u1001 "$VV_BIN" admin "$M" trash.restore "name=$(named_as open)"
check "restored" test "$(cat "$M/sh/x")" = open
test_done
