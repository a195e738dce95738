#!/bin/bash
# t5021-users-refusals: users and keys are the vault owner's business only.
# Every `vecvault user ...` and `vecvault key ...` subcommand run as uid
# 65534, as u1000 and as u1001 (a member of a registered role, and with
# the grant feature present an admin of a collection) exits 1 with a
# message that says who may, is audited as a refusal with the peer's uid,
# and changes nothing; raw requests that try to smuggle an identity
# (uid=0, client=...) or ask for another user's keys change nothing either.
# The vault's owner (not root) may manage users.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
G=vvt5021$$
vv_group "$G" 29121
printf 'a long enough password\n' > "$T/pw"
chmod 644 "$T/pw"          # other uids must read it to get as far as asking

vv_init "$S" >/dev/null
LOG=$(vv_audit_log "$S")
check "mount" vv_mount "$S" "$M"
mkdir "$M/products"
check "register the role" "$VV_BIN" role create "$G" "$M" >/dev/null
check "alice" "$VV_BIN" user add alice --uid 5000 --role "$G" --password-file "$T/pw" "$M" \
	>/dev/null 2>&1
TOKEN=$("$VV_BIN" key create alice "$M" 2>/dev/null)
KID=${TOKEN:4:16}
# u1001 in the role's group; a collection admin too when grants exist.
as_u1001g() { setpriv --reuid=1001 --regid=1001 --groups=2000,29121 -- "$@"; }
if "$VV_BIN" help 2>&1 | grep -q '^ *grant '; then
	check "grant admin on /products to $G" "$VV_BIN" grant "$G" admin "$M/products" >/dev/null
	COLL_ADMIN=1
else
	echo "# the grant feature is not in this build: u1001 is a role member, not an admin"
	COLL_ADMIN=0
fi
before_users=$("$VV_BIN" user list --json "$M")
before_keys=$("$VV_BIN" key list --json "$M")

cmds=(
	"user add mallory --no-password"
	"user add mallory --uid 0 --password-file $T/pw"
	"user list"
	"user list --json"
	"user show alice"
	"user delete alice"
	"user passwd alice --password-file $T/pw"
	"user role alice --add $G"
	"user role alice --remove $G"
	"user uids 1000-2000"
	"user uids"
	"key create alice"
	"key create alice --expires 1d --allow 0.0.0.0/0"
	"key list"
	"key list alice"
	"key revoke $KID"
	"key revoke $TOKEN"
)
for who in nobody u1000 u1001g; do
	for c in "${cmds[@]}"; do
		# shellcheck disable=SC2086
		rc=0; out=$("as_$who" "$VV_BIN" $c "$M" 2>"$T/err") || rc=$?
		check "$who: $c: exit 1" test "$rc" = 1
		check "$who: $c: says who may" grep -q "only root or the vault's owner may do this" "$T/err"
		check "$who: $c: nothing on stdout" test -z "$out"
	done
done
check "audited: nobody refused user.add" \
	vv_audit_has "$LOG" op=admin uid=65534 result=EACCES "detail=user.add mallory"
check "audited: u1000 refused key.create" \
	vv_audit_has "$LOG" op=admin uid=1000 result=EACCES "detail=key.create alice"
check "audited: u1001 refused key.revoke, by id only" \
	vv_audit_has "$LOG" op=admin uid=1001 result=EACCES "detail=key.revoke $KID"
check "the refused passwords never reached the log" sh -c "! grep -qF 'a long enough password' '$LOG'"

# Raw requests through the generic client: the peer is the kernel's.
for who in nobody u1000 u1001g; do
	rc=0; "as_$who" "$VV_BIN" admin "$M" user.add name=mallory uid=0 client=local \
		password=whatever-long >/dev/null 2>&1 || rc=$?
	check "$who: raw user.add uid=0: refused" test "$rc" = 1
	rc=0; "as_$who" "$VV_BIN" admin "$M" key.list user=alice json=1 >/dev/null 2>&1 || rc=$?
	check "$who: raw key.list: refused" test "$rc" = 1
done
check "users unchanged" test "$("$VV_BIN" user list --json "$M")" = "$before_users"
check "keys unchanged" test "$("$VV_BIN" key list --json "$M")" = "$before_keys"

# The vault's owner (the uid owning its root), not only root, administers
# users.
chown 1000:1000 "$M"
check "u1000 owns the root now: user add" \
	as_u1000 "$VV_BIN" user add bob --no-password "$M" >/dev/null
check "u1000: key create" sh -c "setpriv --reuid=1000 --regid=1000 --clear-groups -- \
	'$VV_BIN' key create bob '$M' 2>/dev/null | grep -q '^vvk_'"
rc=0; as_u1001g "$VV_BIN" user list "$M" >/dev/null 2>&1 || rc=$?
check "u1001 still refused" test "$rc" = 1

[ "$COLL_ADMIN" = 1 ] && echo "# u1001g was an admin of /products"
test_done
