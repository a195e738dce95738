#!/bin/bash
# t7027-remote-role-change: a vault user's session keeps the identity it
# authenticated with; when an admin takes a role away from the user (or
# deletes the role's grant) while a key session is open, the session must
# not keep the role: the next request after the once-a-second recheck
# fails with EACCES, the session ends (audited), and a new session has the
# user as it is now.  Grants are ACLs, checked at every request anyway.
# A password session ends the same way when the user's password is
# changed or the user is deleted.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse
command -v groupadd >/dev/null ||
	{ echo "1..0 # SKIP needs groupadd"; vv_done=1; exit 77; }

G=vvt7027r$$
trap 'rc=$?; groupdel "$G" 2>/dev/null; (exit $rc); vv_cleanup' EXIT
groupadd "$G"
GID=$(getent group "$G" | cut -d: -f3)
vv_listen_mount
mkdir "$M/prod"
echo "role data" > "$M/prod/a.txt"
chmod 750 "$M/prod"
chmod 640 "$M/prod/a.txt"
chgrp "$GID" "$M/prod" "$M/prod/a.txt"
"$VV_BIN" role create "$G" "$M" >/dev/null
"$VV_BIN" user add bob --uid 3100 --role "$G" --no-password "$M" >/dev/null
TB=$("$VV_BIN" key create bob "$M" 2>/dev/null)

rwatch key "R.Client('127.0.0.1', $P)" "c.auth_key('$TB')" /prod/a.txt
check "the session reads with the role" test -e "$T/key.ready"
check "role removed from bob" "$VV_BIN" user role bob --remove "$G" "$M"
check "the open session loses the role" rwatch_end key
check "the end is audited" vv_audit_has "$AUD" op=unauth "user~^bob/" result=EACCES
check "a new session is bob without the role" rkey "$TB" "
try:
    c.walk('/prod/a.txt'); sys.exit('still in the role')
except R.Error as e:
    assert e.status == -5, e.status
print('ok')"

# A password session is re-checked the same way (without Argon2id): a
# passwd ends it, and so does deleting the user.
PW='a password for dora, long enough'
printf '%s\n' "$PW" > "$T/pw"
printf '%s, the second\n' "$PW" > "$T/pw2"
"$VV_BIN" user add dora --uid 3101 --role "$G" --password-file "$T/pw" "$M" >/dev/null
rwatch passwd "R.Client('127.0.0.1', $P)" "c.auth_password('dora', '$PW')" /prod/a.txt
check "a password session reads" test -e "$T/passwd.ready"
check "dora's password changed" "$VV_BIN" user passwd dora --password-file "$T/pw2" "$M"
check "the password session ends after the passwd" rwatch_end passwd
check "audited with the reason" vv_audit_has "$AUD" op=auth user=dora result=EACCES "detail~password was changed"
PW="$PW, the second"
rwatch delete "R.Client('127.0.0.1', $P)" "c.auth_password('dora', '$PW')" /prod/a.txt
check "a new password session reads" test -e "$T/delete.ready"
check "dora deleted" "$VV_BIN" user delete dora "$M"
check "the password session ends with the user" rwatch_end delete
check "audited with the reason" vv_audit_has "$AUD" op=auth user=dora result=EACCES "detail~user was deleted"
test_done
