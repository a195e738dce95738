#!/bin/bash
# t1040-role-list-paths: `vecvault role list` (verb role.list) is open to
# every local user and shows where each role is granted, as vault paths.
# A path names what is in its directories, so a user other than the
# vault's owner sees only the paths it could reach by a walk (search on
# every directory above): a grant on a file inside another user's 0700
# directory, or on an item now in the trash, must not tell its name.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse
export -f as_u1000 as_u1001 as_nobody

S=$T/store
M=$T/mnt
vv_init "$S" >/dev/null 2>&1
vv_mount "$S" "$M"
G=vvt1040$$
gid=29400
while getent group "$gid" >/dev/null; do gid=$((gid + 1)); done
vv_group "$G" "$gid"

mkdir -m 755 "$M/c"
chown 1000:1000 "$M/c"
as_u1000 sh -c "mkdir -m 755 '$M/c/pub' && mkdir -m 700 '$M/c/alice' &&
	echo plan > '$M/c/alice/merger-plan.npy' && echo old > '$M/c/alice/gone-deal.npy' &&
	echo x > '$M/c/old-offer.npy'"
check "the role" "$VV_BIN" role create "$G" "$M"
check "root grants it on /c/pub, a file in u1000's 0700 directory, and two to be trashed" \
	"$VV_BIN" grant "$G" readonly "$M/c/pub" "$M/c/alice/merger-plan.npy" "$M/c/alice/gone-deal.npy" "$M/c/old-offer.npy"
check "u1000 removes two of them (into the trash, ACLs kept)" \
	as_u1000 rm "$M/c/alice/gone-deal.npy" "$M/c/old-offer.npy"

all=$("$VV_BIN" role list "$M")
check "root sees every path in the tree" sh -c "printf '%s' \"\$1\" | grep -Eq '^$G +$gid +/c/pub /c/alice/merger-plan.npy\$'" _ "$all"
for who in nobody u1001; do
	out=$("as_$who" "$VV_BIN" role list "$M")
	check "$who: the reachable grant is listed" sh -c "printf '%s' \"\$1\" | grep -Eq '^$G +$gid +/c/pub\$'" _ "$out"
	check "$who: no name inside the 0700 directory" sh -c "! printf '%s' \"\$1\" | grep -Eq 'merger|alice|gone-deal'" _ "$out"
	check "$who: no name of a trashed item" sh -c "! printf '%s' \"\$1\" | grep -q 'old-offer'" _ "$out"
	out=$("as_$who" "$VV_BIN" role list "$M" --json)
	check "$who: JSON the same" sh -c "printf '%s' \"\$1\" | grep -q '\"granted\":\[\"/c/pub\"\]'" _ "$out"
done
out=$(as_u1000 "$VV_BIN" role list "$M")
check "u1000, who may search its directory, sees the file there" sh -c "printf '%s' \"\$1\" | grep -q '/c/alice/merger-plan.npy'" _ "$out"
check "but not the trashed items (the trash is listed by trash list)" sh -c "! printf '%s' \"\$1\" | grep -Eq 'old-offer|gone-deal'" _ "$out"

test_done
