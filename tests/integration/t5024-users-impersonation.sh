#!/bin/bash
# t5023-users-impersonation: a vault owner who is not root (u1000 owns the
# vault's root) administers vault users, but must not make one act as
# somebody else: a remote session with another local account's uid, or
# with a group she is not in, would reach files her own identity cannot.
#   - user add --uid of another local account: EPERM, named, nothing added;
#     her own uid and an allocated one (no local account) are fine;
#   - --uid of another vault user (that user's files): EPERM;
#   - a role whose group she is not in, at user add and user role --add:
#     EPERM, nothing changed; a group she is in is fine;
#   - credentials of a user root mapped onto another account, or gave a
#     role she is not in (key create, user passwd): EPERM, no key made;
#     keys of users she could have made are fine;
#   - root does all of it.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse
command -v groupadd >/dev/null ||
	{ echo "1..0 # SKIP needs groupadd"; vv_done=1; exit 77; }
OTHER=$(getent passwd daemon | cut -d: -f3)
[ -n "$OTHER" ] && [ "$OTHER" != 1000 ] ||
	{ echo "1..0 # SKIP no 'daemon' account"; vv_done=1; exit 77; }
export XDG_RUNTIME_DIR="$T/run"
mkdir -p -m 700 "$XDG_RUNTIME_DIR"

S=$T/store
M=$T/mnt
G1=vvt5023a$$
G2=vvt5023b$$
trap 'rc=$?; groupdel "$G1" 2>/dev/null; groupdel "$G2" 2>/dev/null; (exit $rc); vv_cleanup' EXIT
groupadd "$G1"
groupadd "$G2"
GID2=$(getent group "$G2" | cut -d: -f3)
vv_init "$S" >/dev/null
AUD=$(vv_audit_log "$S")
check "mount" vv_mount "$S" "$M"
"$VV_BIN" role create "$G1" "$M" >/dev/null
"$VV_BIN" role create "$G2" "$M" >/dev/null
chown 1000:1000 "$M"
u1000g() { setpriv --reuid=1000 --regid=1000 --groups="$GID2" -- "$@"; }

before=$("$VV_BIN" user list --json "$M")
rc=0; as_u1000 "$VV_BIN" user add eve --uid "$OTHER" --no-password "$M" > "$T/out" 2>&1 || rc=$?
check "owner: --uid of another account refused" test "$rc" != 0
check "  the message names why" grep -q "another local account" "$T/out"
rc=0; as_u1000 "$VV_BIN" user add eve --role "$G1" --no-password "$M" > "$T/out" 2>&1 || rc=$?
check "owner: a role of a group she is not in refused" test "$rc" != 0
check "  the message names the role" grep -q "$G1" "$T/out"
check "  no user was added" test "$("$VV_BIN" user list --json "$M")" = "$before"
check "  refusals are audited" vv_audit_has "$AUD" op=admin uid=1000 result=EPERM "detail~^user.add eve"

check "owner: her own uid" as_u1000 "$VV_BIN" user add me --uid 1000 --no-password "$M"
check "owner: an allocated uid" as_u1000 "$VV_BIN" user add fresh --no-password "$M"
FRESH_UID=$("$VV_BIN" user show fresh "$M" | awk '$1 == "uid" { print $2 }')
rc=0; as_u1000 "$VV_BIN" user add twin --uid "$FRESH_UID" --no-password "$M" > "$T/out" 2>&1 || rc=$?
check "owner: another vault user's uid refused" test "$rc" != 0
check "  the message names why" grep -q "another vault user" "$T/out"
check "owner in G2: role G2" u1000g "$VV_BIN" user add g2user --role "$G2" --no-password "$M"
rc=0; as_u1000 "$VV_BIN" user role fresh --add "$G1" "$M" > "$T/out" 2>&1 || rc=$?
check "owner: user role --add of a group she is not in refused" test "$rc" != 0
check "  fresh holds no role" sh -c "'$VV_BIN' user show fresh '$M' | grep -q '^roles *-\$'"
check "root: --uid of another account" "$VV_BIN" user add svc --uid "$OTHER" --no-password "$M"
check "root: any role" "$VV_BIN" user role fresh --add "$G1" "$M"
keys0=$("$VV_BIN" key list --json "$M")
for u in svc fresh; do
	rc=0; as_u1000 "$VV_BIN" key create $u "$M" > "$T/out" 2>&1 || rc=$?
	check "owner: key create for $u refused" test "$rc" != 0
	check "  no token shown" sh -c "! grep -q vvk_ '$T/out'"
	printf 'a long enough password\n' > "$T/pw"; chmod 644 "$T/pw"
	rc=0; as_u1000 "$VV_BIN" user passwd $u --password-file "$T/pw" "$M" > "$T/out" 2>&1 || rc=$?
	check "owner: user passwd of $u refused" test "$rc" != 0
done
check "  no key was made" test "$("$VV_BIN" key list --json "$M")" = "$keys0"
check "owner: key create for her own user" sh -c "setpriv --reuid=1000 --regid=1000 --clear-groups -- \
	'$VV_BIN' key create me '$M' 2>/dev/null | grep -q '^vvk_'"
check "root: key create for svc" sh -c "'$VV_BIN' key create svc '$M' 2>/dev/null | grep -q '^vvk_'"
test_done
