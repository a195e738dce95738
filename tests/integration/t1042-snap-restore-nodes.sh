#!/bin/bash
# t1042-snap-restore-nodes: the nodes a `vecvault snapshot restore` builds
# for the inodes it makes follow their rows.  A restore of several paths
# that fails at a later path rolls all of them back (one savepoint), and
# leaves nothing behind in the daemon's node table either.
# The paths restored before the failure made new inodes, and the restore
# built nodes for some of them (the live directory of a later path, the
# file it moved aside there); idle nodes (vault_node.c) outlived the
# rollback, and the inode counter, rolled back too, handed their numbers
# to the next files created: root's new file came out as u1000's, with
# the snapshot file's size, and u1000 read root's secret through it.  A
# directory the kernel holds (/p) gets back its link count (main: 3
# checks fail: /p's link count, r/a's owner and u1000's read).
# And a restore of a directory holding a file with two names, then of one
# of those names (moved aside, so its node built before the link counts
# are set): the node had the count 1, kept idle, and the removal of the
# name moved aside sent the file to the trash under its other two names
# (main: 3 checks fail; a purge then left two entries to nothing).
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse
export -f as_u1000

S=$T/store
M=$T/mnt
vv_init "$S" >/dev/null 2>&1
vv_mount "$S" "$M"

mkdir -m 0755 "$M/p" "$M/p/s" "$M/p/s/sub"
echo u1000data > "$M/p/s/sub/file"           # 10 bytes, u1000's, 0644
chown 1000:1000 "$M/p/s/sub/file"
chmod 0644 "$M/p/s/sub/file"
"$VV_BIN" snapshot create "$M" snap1 >/dev/null
# /p's attributes asked again of the daemon (a mkdir in it drops what the
# kernel cached), before and after the restore; the kernel holds /p
mkdir "$M/p/z1"
links0=$(stat -c %h "$M/p")

rc=0; err=$("$VV_BIN" snapshot restore "$M" snap1 /p/s /p/s/sub/file /nope 2>&1) || rc=$?
check "the restore fails at its third path" test "$rc" -eq 1
check "the error names that path" sh -c "printf '%s' \"\$1\" | grep -q '/nope is not in snapshot snap1'" _ "$err"
check "nothing was restored or moved aside" \
	eval '[ "$(ls "$M/p")" = "$(printf "s\nz1")" ] && [ "$(ls "$M/p/s/sub")" = file ]'

mkdir "$M/p/z2"
check "/p's link count is its rows' (one more directory, no more)" \
	eval '[ "$(stat -c %h "$M/p")" -eq $((links0 + 1)) ] || { stat -c "# %h links, not $((links0 + 1))" "$M/p"; false; }'

# root's next files take the numbers the rolled-back inodes had
mkdir -m 0777 "$M/r"
check "r: root's 0777 directory" \
	eval '[ "$(stat -c "%F %u %a" "$M/r")" = "directory 0 777" ] || { stat -c "# %F %u %a" "$M/r"; false; }'
for f in a b c d e f; do
	check "root writes its secret $f" sh -c "echo 'root secret $f' > '$M/r/$f'"
	chmod 0600 "$M/r/$f"
done
for f in a b c d e f; do
	check "r/$f: root's regular 0600 file of 14 bytes" \
		eval '[ "$(stat -c "%F %u %a %s" "$M/r/$f")" = "regular file 0 600 14" ] || { stat -c "# %F %u %a %s" "$M/r/$f"; false; }'
	check "r/$f: its bytes are what root wrote" test "$(cat "$M/r/$f")" = "root secret $f"
	want u1000 EACCES read "$M/r/$f"
done

check "the same restore without the bad path goes through" \
	"$VV_BIN" snapshot restore "$M" snap1 /p/s /p/s/sub/file
check "the file restored reads back" test "$(cat "$M/p/s/sub/file")" = u1000data
check "what was there is beside it" sh -c "ls '$M/p/s/sub' | grep -q '^file.pre-restore-'"

mkdir "$M/h"
echo linked > "$M/h/x"
ln "$M/h/x" "$M/h/y"
"$VV_BIN" snapshot create "$M" snap2 >/dev/null
check "restore /h, then /h/x of the same snapshot" "$VV_BIN" snapshot restore "$M" snap2 /h /h/x
check "the restored file has its three names" \
	eval '[ "$(stat -c %h "$M/h/x")" = 3 ] || { stat -c "# %h links" "$M/h/x"; false; }'
check "rm of the name moved aside" sh -c "rm '$M'/h/x.pre-restore-*"
check "x and y remain, two names" \
	eval '[ "$(stat -c %h "$M/h/x") $(stat -c %h "$M/h/y")" = "2 2" ] || { stat -c "# %h links" "$M/h/x"; false; }'
check "nothing went to the trash" eval '! "$VV_BIN" trash list "$M" | grep -q pre-restore'
echo 2 > /proc/sys/vm/drop_caches
check "both read back after the kernel forgot them" \
	test "$(cat "$M/h/x" "$M/h/y")" = "$(printf 'linked\nlinked')"
test_done
