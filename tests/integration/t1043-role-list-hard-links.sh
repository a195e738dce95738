#!/bin/bash
# t1043-role-list-hard-links: `vecvault role list` shows a user other than
# the vault's owner only the grant paths it could reach by a walk (t1040).
# A file with several names is shown by one of them (its oldest entry),
# which need not be in its primary parent: a file of /c/pub linked into
# /c/drop, whose name there was then swapped (RENAME_EXCHANGE) with a file
# of u1000's 0700 directory, is named by its entry in that directory,
# while its primary parent stays /c/pub.  main checked the walk to the
# primary parent and showed nobody and u1001 the name inside the 0700
# directory (8 checks fail, the exact public lists among them); the walk
# checked is now that of the path shown.  A file whose shown name is
# public stays listed to everyone.  And the walk's search right through
# the role's group (a supplementary group of the peer) and through an ACL
# entry whose x the mask cuts, then widens (main passes those 5).
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse
export -f as_u1000 as_u1001 as_nobody

S=$T/store
M=$T/mnt
vv_init "$S" >/dev/null 2>&1
vv_mount "$S" "$M"
G=vvt1043$$
gid=29430
while getent group "$gid" >/dev/null; do gid=$((gid + 1)); done
vv_group "$G" "$gid"

# xchg A B: renameat2(A, B, RENAME_EXCHANGE) as u1000.
xchg() {
	as_u1000 "$PY" - "$1" "$2" <<'PY'
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.renameat2(-100, sys.argv[1].encode(), -100, sys.argv[2].encode(), 2):
    e = ctypes.get_errno()
    sys.exit("renameat2 %s %s: %s" % (sys.argv[1], sys.argv[2], os.strerror(e)))
PY
}

mkdir -m 755 "$M/c"
chown 1000:1000 "$M/c"
as_u1000 sh -c "mkdir -m 700 '$M/c/alice' && mkdir -m 755 '$M/c/pub' '$M/c/drop' &&
	echo plan > '$M/c/alice/merger-plan.npy' && echo rep > '$M/c/pub/report.npy' &&
	ln '$M/c/pub/report.npy' '$M/c/drop/r.npy' &&
	echo open > '$M/c/pub/open.npy' && ln '$M/c/pub/open.npy' '$M/c/alice/open-link.npy'"
check "u1000 swaps its link in /c/drop with the file in its 0700 directory" \
	xchg "$M/c/drop/r.npy" "$M/c/alice/merger-plan.npy"
check "report.npy is now also /c/alice/merger-plan.npy" \
	test "$(stat -c %i "$M/c/pub/report.npy")" = "$(stat -c %i "$M/c/alice/merger-plan.npy")"
check "the role" "$VV_BIN" role create "$G" "$M"
check "root grants it on /c/pub/report.npy and /c/pub/open.npy" \
	"$VV_BIN" grant "$G" readonly "$M/c/pub/report.npy" "$M/c/pub/open.npy"

all=$("$VV_BIN" role list "$M")
check "root sees both, each by its oldest name" \
	sh -c "printf '%s' \"\$1\" | grep -Eq '^$G +$gid +/c/alice/merger-plan.npy /c/pub/open.npy\$'" _ "$all"
for who in nobody u1001; do
	out=$("as_$who" "$VV_BIN" role list "$M")
	check "$who: no name inside the 0700 directory" sh -c "! printf '%s' \"\$1\" | grep -Eq 'merger|alice'" _ "$out"
	check "$who: the file named in /c/pub is listed" sh -c "printf '%s' \"\$1\" | grep -Eq '^$G +$gid +/c/pub/open.npy\$'" _ "$out"
	out=$("as_$who" "$VV_BIN" role list "$M" --json)
	check "$who: JSON: no name inside the 0700 directory" sh -c "! printf '%s' \"\$1\" | grep -Eq 'merger|alice'" _ "$out"
	check "$who: JSON: the public one" sh -c "printf '%s' \"\$1\" | grep -q '\"granted\":\[\"/c/pub/open.npy\"\]'" _ "$out"
done
out=$(as_u1000 "$VV_BIN" role list "$M")
check "u1000, who may search its directory, sees the name there" \
	sh -c "printf '%s' \"\$1\" | grep -q '/c/alice/merger-plan.npy'" _ "$out"

# the search right through a group (the role's, held as a supplementary
# group of the peer) and through an ACL entry the mask cuts
mkdir -m 0750 "$M/c/team" "$M/c/masked"
chgrp "$gid" "$M/c/team"
echo t > "$M/c/team/t.npy"
echo m > "$M/c/masked/m.npy"
setfacl -m u:1001:rwx,m::r-- "$M/c/masked"
check "root grants the role on c/team/t.npy and c/masked/m.npy" \
	"$VV_BIN" grant "$G" readonly "$M/c/team/t.npy" "$M/c/masked/m.npy"
as_member() { setpriv --reuid=1001 --regid=1001 --groups="$gid" -- "$@"; }
out=$(as_member "$VV_BIN" role list "$M")
check "u1001 in the role's group sees the file in the group's 0750 directory" \
	sh -c "printf '%s' \"\$1\" | grep -q '/c/team/t.npy'" _ "$out"
check "u1001, whose ACL entry the mask leaves without x, not the masked one" \
	sh -c "! printf '%s' \"\$1\" | grep -q 'masked'" _ "$out"
out=$(as_u1001 "$VV_BIN" role list "$M")
check "u1001 without the group sees neither" sh -c "! printf '%s' \"\$1\" | grep -Eq 'team|masked'" _ "$out"
setfacl -m m::r-x "$M/c/masked"
out=$(as_u1001 "$VV_BIN" role list "$M")
check "the mask widened to r-x: u1001 sees the masked one" \
	sh -c "printf '%s' \"\$1\" | grep -q '/c/masked/m.npy'" _ "$out"
test_done
