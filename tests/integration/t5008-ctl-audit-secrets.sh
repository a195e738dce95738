#!/bin/bash
# t5008-ctl-audit-secrets: no admin request over the control socket puts a
# secret (an API key token's secret, a password) into the audit log or the
# daemon's log, whatever argument it is passed in.  Raw requests
# (`vecvault admin MNT VERB KEY=VALUE`, which send what they are given):
# key.revoke id=<whole token> revokes the key and is audited by its id;
# a token as every verb's audit target (user, role, snapshot, trash, grant,
# allow names and paths), as the verb itself, and as a password; the same
# from uids without rights (refused, audited).  Then grep the audit log,
# the daemon log and every file under STORE for the secrets.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
PW='t5008 a password nobody may log'
printf '%s\n' "$PW" > "$T/pw"
chmod 600 "$T/pw"
vv_init "$S" >/dev/null
LOG=$(vv_audit_log "$S")
check "mount" vv_mount "$S" "$M"
mkdir "$M/c"
check "user alice" "$VV_BIN" user add alice --uid 5000 --password-file "$T/pw" "$M" >/dev/null 2>&1
T1=$("$VV_BIN" key create alice "$M" 2>/dev/null)
T2=$("$VV_BIN" key create alice "$M" 2>/dev/null)
check "two tokens" sh -c "echo '$T1 $T2' | grep -Eq '^vvk_[0-9a-f]{16}_[A-Za-z0-9_-]{43} vvk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$'"
K1=${T1:4:16}
K2=${T2:4:16}

adm() { "$VV_BIN" admin "$M" "$@" > "$T/o" 2>&1; }

check "admin key.revoke id=<whole token>" adm key.revoke "id=$T1"
check "the reply names the id" grep -q "key $K1 of alice revoked" "$T/o"
check "the reply holds no secret" sh -c "! grep -qF -- '${T1:21}' '$T/o'"
check "key list: revoked" sh -c "'$VV_BIN' key list alice '$M' | grep -Eq '^$K1 +alice +revoked '"
check "audited by the key id" vv_audit_has "$LOG" op=admin result=ok "detail=key.revoke $K1"

# The second token everywhere an argument can go (each may be refused),
# as root and as u1000 (refused: audited too).  Replies may echo what the
# caller itself sent; logs must not.
n=0
for req in "user.show name=$T2" "user.delete name=$T2" "user.passwd name=$T2 password=$PW" \
	"user.role name=$T2 add=x" "user.uids first=$T2 last=1" "key.create user=$T2" \
	"key.list user=$T2" "key.revoke id=${T2}x" "key.revoke id=x$T2" \
	"role.create name=$T2" "role.delete name=$T2" "snapshot.create name=$T2" \
	"snapshot.delete name=$T2" "snapshot.restore name=$T2" "trash.restore path=$T2" \
	"trash.purge path=/$T2" "grant path=/c/$T2 role=x rights=r" "revoke path=$T2 role=x" \
	"grants path=/$T2" "allow.add cidr=$T2" "allow.remove cidr=$T2" "$T2" "$T2 name=$T2" \
	"user.add name=bob password=$T2" "user.passwd name=alice password=$T2"; do
	# shellcheck disable=SC2086
	"$VV_BIN" admin "$M" $req > /dev/null 2>&1 || true
	# shellcheck disable=SC2086
	as_u1000 "$VV_BIN" admin "$M" $req > /dev/null 2>&1 || true
	n=$((n + 1))
done
check "$n requests sent twice" test "$n" -eq 25
check "the token as a target is audited with its id, secret withheld" \
	vv_audit_has "$LOG" op=admin "detail=user.show vvk_${K2}_(secret withheld)"
check "a malformed key id is audited as such" \
	vv_audit_has "$LOG" op=admin "detail=key.revoke (not a key id)"
check "bob exists (his password was a token)" sh -c "'$VV_BIN' user list '$M' | grep -q '^bob '"
check "a mangled token revoked nothing: the second key is active" \
	sh -c "'$VV_BIN' key list alice '$M' | grep -Eq '^$K2 +alice +active '"

fusermount3 -u "$M"
vv_wait_daemon "$T/.pids/$(echo "$M" | tr / _)" || true
for needle in "${T1:21}" "${T2:21}" "$PW"; do
	check "not in the audit log: ${needle:0:6}..." sh -c '! grep -qaF -- "$0" "$1"' "$needle" "$LOG"
	check "not in the daemon log: ${needle:0:6}..." sh -c '! grep -qaF -- "$0" "$1"' "$needle" "$T/daemon.log"
	check "not in any file under STORE: ${needle:0:6}..." sh -c '! grep -rqaF -- "$0" "$1"' "$needle" "$S"
done
check "the audit log verifies" "$VV_BIN" audit verify "$S" --passfile "$PASSFILE"
test_done
