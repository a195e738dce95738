#!/bin/bash
# t1037-trash-restore-reach: `vecvault trash restore` (the trash.restore
# verb) puts an item back only where its caller could put it through the
# mount: search permission on every directory above the destination, as
# they are now, not only write on the last one.  The kernel walks the path
# of an `mv` out of .trash; the control socket walks nothing, so the verb
# must.  Else a user whose path was closed after the removal (chmod 700 of
# a parent) writes into a directory it can no longer reach, and learns
# from "that name exists again" which names are there.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse
export -f as_u1000 as_u1001

S=$T/store
M=$T/mnt
vv_init "$S" >/dev/null 2>&1
LOG=$(vv_audit_log "$S")
vv_mount "$S" "$M"

mkdir -m 755 "$M/c"
chown 1000:1000 "$M/c"
as_u1000 sh -c "mkdir -m 755 '$M/c/proj' && mkdir -m 1777 '$M/c/proj/drop'"
as_u1001 sh -c "echo note > '$M/c/proj/drop/note' && echo probe > '$M/c/proj/drop/probe'"
check "u1001 removes its two files" as_u1001 rm "$M/c/proj/drop/note" "$M/c/proj/drop/probe"
check "u1000 closes /c/proj (0700)" as_u1000 chmod 700 "$M/c/proj"
as_u1000 sh -c "echo theirs > '$M/c/proj/drop/probe'"

# the mount's way is refused by the kernel's walk ...
want u1001 EACCES rename "$M/.trash/files/note" "$M/c/proj/drop/note"
# ... and the control plane's the same way
rc=0; err=$(as_u1001 "$VV_BIN" trash restore "$M" /c/proj/drop/note 2>&1) || rc=$?
check "u1001 cannot restore into a directory it cannot reach" test "$rc" -ne 0
check "the error names the directory it cannot search" sh -c "printf '%s' \"\$1\" | grep -q 'cannot search'" _ "$err"
check "nothing was written there" test ! -e "$M/c/proj/drop/note"
check "the item is still in the trash" sh -c "'$VV_BIN' trash list '$M' | grep -q '/c/proj/drop/note'"
check "the refusal is audited" vv_audit_has "$LOG" op=restore uid=1001 result=EACCES path=/c/proj/drop/note
rc=0; err2=$(as_u1001 "$VV_BIN" trash restore "$M" /c/proj/drop/probe 2>&1) || rc=$?
check "an existing name there is not told apart (no EEXIST oracle)" sh -c "[ $rc -ne 0 ] && ! printf '%s' \"\$1\" | grep -q 'exists' && printf '%s' \"\$1\" | grep -q 'cannot search'" _ "$err2"
check "the other user's file is untouched" test "$(cat "$M/c/proj/drop/probe")" = theirs

# who may reach it may restore it
check "root restores (it may search everything)" "$VV_BIN" trash restore "$M" /c/proj/drop/note
check "it is back" test "$(cat "$M/c/proj/drop/note")" = note
check "u1000 reopens /c/proj" as_u1000 chmod 755 "$M/c/proj"
check "u1001 restores once it can reach the directory again" bash -c "rm '$M/c/proj/drop/probe' && as_u1001 '$VV_BIN' trash restore '$M' /c/proj/drop/probe"
check "its file is back" test "$(cat "$M/c/proj/drop/probe")" = probe

test_done
