#!/bin/bash
# t5005-role-cli: `vecvault role create|list|delete` end to end through the
# control socket: --create makes the system group (groupadd) and registers
# it, --gid is checked, list shows it (text and JSON) to anyone, delete
# unregisters it; other uids are refused (exit 1) and --create as them
# leaves no group behind; a vault that is not mounted is said to be so
# (exit 2); --help works.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse
command -v groupadd >/dev/null || { echo "1..0 # SKIP no groupadd"; vv_done=1; exit 77; }

S=$T/store
M=$T/mnt
G=vvt5005a$$
G2=vvt5005b$$
cleanup_groups() {
	local rc=$?
	groupdel "$G" 2>/dev/null
	groupdel "$G2" 2>/dev/null
	( exit $rc )
	vv_cleanup
}
trap cleanup_groups EXIT

vv_init "$S" >/dev/null
check "role --help" sh -c "'$VV_BIN' role --help | grep -q 'vecvault role create NAME'"
check "help role" sh -c "'$VV_BIN' help role | grep -q 'vecvault role list'"

rc=0; err=$("$VV_BIN" role list "$M" 2>&1) || rc=$?
check "not mounted: exit 2" test "$rc" = 2
check "not mounted: says so" grep -q "is not in a mounted vault.*is the vault mounted" <<<"$err"
rc=0; err=$("$VV_BIN" role list --store "$S" 2>&1) || rc=$?
check "not mounted, --store: exit 2" test "$rc" = 2
check "not mounted, --store: says so" grep -q "no daemon serves the vault in $S (is it mounted" <<<"$err"

check "mount" vv_mount "$S" "$M"
rc=0; err=$("$VV_BIN" role create "$G" "$M" 2>&1) || rc=$?
check "create without a system group: exit 1" test "$rc" = 1
check "create without a system group: says to use --create" grep -q "no system group '$G'" <<<"$err"

rc=0; err=$(as_nobody "$VV_BIN" role create "$G" --create "$M" 2>&1) || rc=$?
check "nobody: create --create refused, exit 1" test "$rc" = 1
check "nobody: the message says who may" grep -q "only root or the vault's owner" <<<"$err"
check "nobody: no group was made" sh -c "! getent group '$G' >/dev/null"

# Two gids no group holds (other tests on this machine make groups too).
free_gid() {
	local g=$1
	while getent group "$g" >/dev/null; do g=$((g + 1)); done
	echo "$g"
}
GID1=$(free_gid 29051)
GID2=$(free_gid $((GID1 + 1)))
check "root: create --create --gid" "$VV_BIN" role create "$G" --create --gid "$GID1" "$M"
check "the system group exists with that gid" test "$(getent group "$G" | cut -d: -f3)" = "$GID1"
out=$("$VV_BIN" role list "$M")
check "list shows it" grep -Eq "^$G +$GID1 +-$" <<<"$out"
out=$(as_nobody "$VV_BIN" role list "$M" --json)
check "nobody may list roles (JSON)" grep -q "{\"role\":\"$G\",\"gid\":$GID1,\"granted\":\[\]}" <<<"$out"
check "from a path inside the mount" sh -c "mkdir -p '$M/c' && '$VV_BIN' role list '$M/c' | grep -q '^$G '"
check "from the working directory" sh -c "cd '$M/c' && '$VV_BIN' role list | grep -q '^$G '"

groupadd -g "$GID2" "$G2"
rc=0; err=$("$VV_BIN" role create "$G2" --gid 29999 "$M" 2>&1) || rc=$?
check "a wrong --gid: exit 1" test "$rc" = 1
check "a wrong --gid: names both" grep -q "has gid $GID2, not 29999" <<<"$err"
check "an existing group without --create" "$VV_BIN" role create "$G2" --store "$S"
rc=0; err=$("$VV_BIN" role create "$G2" "$M" 2>&1) || rc=$?
check "twice: exit 1, exists" sh -c "test $rc = 1 && echo '$err' | grep -q 'exists already'"

rc=0; err=$(as_u1000 "$VV_BIN" role delete "$G" "$M" 2>&1) || rc=$?
check "u1000: delete refused, exit 1" test "$rc" = 1
check "delete" "$VV_BIN" role delete "$G" "$M"
check "gone from the list" sh -c "! '$VV_BIN' role list '$M' | grep -q '^$G '"
rc=0; err=$("$VV_BIN" role delete "$G" "$M" 2>&1) || rc=$?
check "delete again: exit 1, no such role" sh -c "test $rc = 1 && echo \"\$0\" | grep -q \"no role '$G'\"" "$err"

rc=0; "$VV_BIN" role frobnicate "$M" 2>/dev/null || rc=$?
check "an unknown subcommand: exit 2" test "$rc" = 2
rc=0; "$VV_BIN" role create 2>/dev/null || rc=$?
check "create without a name: exit 2" test "$rc" = 2

test_done
