#!/bin/bash
# t1046-user-uid-retired: a vault user's uid outlives the user.  Files a
# vault user made (remotely, as its uid) keep that uid after `vecvault
# user delete`; the allocator handed the lowest free uid of the range to
# the next user added, who then owned them: bob, added after alice was
# deleted, read alice's 0600 file in her 0700 directory (main: 8 checks
# fail).  A deleted user's uid is now retired (meta.db retired_uids):
# never allocated again, also after a remount, and a vault owner who is
# not root cannot give it with --uid either; root still may (several
# vault users may share a uid on purpose).  A store restored from a
# backup (files, no users) retires the uids its files have (main: zed,
# the first user added there, got alice's uid and read her notes).
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse
export XDG_RUNTIME_DIR="$T/run"
mkdir -p -m 700 "$XDG_RUNTIME_DIR"

S=$T/store
M=$T/mnt
vv_init "$S" >/dev/null 2>&1
vv_mount "$S" "$M"

uid_of() { "$VV_BIN" user show "$1" "$M" --json | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["uid"])'; }
# as_uid UID OP ARGS...: one file operation as uid UID (group 65534)
as_uid() { local u=$1; shift; setpriv --reuid="$u" --regid=65534 --clear-groups -- "$PY" -c "$VV_PYOP" "$@" 2>&1; }

check "alice added" "$VV_BIN" user add alice --no-password "$M"
A=$(uid_of alice)
mkdir -m 0755 "$M/c"
mkdir -m 0700 "$M/c/alice"
echo "alice's notes" > "$M/c/alice/notes"
chmod 0600 "$M/c/alice/notes"
chown -R "$A" "$M/c/alice"                   # what alice made, as her uid
check "alice reads her notes" test "$(as_uid "$A" read "$M/c/alice/notes")" = OK
check "alice deleted" "$VV_BIN" user delete alice "$M"

check "bob added" "$VV_BIN" user add bob --no-password "$M"
B=$(uid_of bob)
check "bob's uid is not alice's" eval '[ "$B" != "$A" ] || { echo "# bob: uid $B, alice had $A"; false; }'
check "bob cannot read alice's notes" test "$(as_uid "$B" read "$M/c/alice/notes")" = EACCES
check "nor list her directory" test "$(as_uid "$B" listdir "$M/c/alice")" = EACCES

vv_umount "$M"
vv_mount "$S" "$M"
check "carol added after a remount" "$VV_BIN" user add carol --no-password "$M"
C=$(uid_of carol)
check "carol's uid is neither alice's nor bob's" \
	eval '[ "$C" != "$A" ] && [ "$C" != "$B" ] || { echo "# carol: uid $C"; false; }'

# a vault owner who is not root: not onto a deleted user's uid either
check "carol deleted" "$VV_BIN" user delete carol "$M"
chown 1000:1000 "$M"
rc=0
setpriv --reuid=1000 --regid=1000 --clear-groups -- "$VV_BIN" user add eve --no-password \
	--uid "$C" "$M" > "$T/out" 2>&1 || rc=$?
check "u1000, the vault's owner, cannot give carol's uid to eve" test "$rc" -ne 0
check "  the message names why" grep -q "another vault user" "$T/out"
check "  eve was not added" eval '! "$VV_BIN" user show eve "$M" > /dev/null 2>&1'
check "root may (a uid shared on purpose)" "$VV_BIN" user add frank --no-password --uid "$C" "$M"
check "frank acts as carol's uid" test "$(uid_of frank)" = "$C"

# a backup carries the files, not the users who made them: a store
# restored from it retires their uids too
D=$T/repo
"$VV_BIN" backup init "$D" --passfile "$PASSFILE" --kdf test >/dev/null
ID=$("$VV_BIN" backup create "$M" "$D" --passfile "$PASSFILE" 2>&1 | awk '/^backup /{print $2}' | tr -d :)
check "backup restore into a new store" "$VV_BIN" backup restore "$D" "$ID" "$T/s2" \
	--repo-passfile "$PASSFILE" --passfile "$PASSFILE" --kdf test
vv_umount "$M"
vv_mount "$T/s2" "$M"
check "zed added to the restored vault" "$VV_BIN" user add zed --no-password "$M"
Z=$(uid_of zed)
check "zed's uid is not alice's, whose files are there" \
	eval '[ "$Z" != "$A" ] || { echo "# zed: uid $Z"; false; }'
check "zed cannot read alice's notes there" test "$(as_uid "$Z" read "$M/c/alice/notes")" = EACCES
test_done
