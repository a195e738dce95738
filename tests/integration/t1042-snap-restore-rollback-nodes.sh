#!/bin/bash
# t1042-snap-restore-rollback-nodes: a `vecvault snapshot restore` of
# several paths that fails at a later path rolls all of them back (one
# savepoint), and leaves nothing behind in the daemon's node table either.
# The paths restored before the failure made new inodes, and the restore
# built nodes for some of them (the live directory of a later path, the
# file it moved aside there); idle nodes (vault_node.c) outlived the
# rollback, and the inode counter, rolled back too, handed their numbers
# to the next files created: root's new file came out as u1000's, with
# the snapshot file's size, and u1000 read root's secret through it.  A
# directory the kernel holds (the root) gets back its link count (main:
# 3 checks fail: the root's link count, r/a's owner and u1000's read).
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse
export -f as_u1000

S=$T/store
M=$T/mnt
vv_init "$S" >/dev/null 2>&1
vv_mount "$S" "$M"

mkdir -m 0755 "$M/s" "$M/s/sub"
echo u1000data > "$M/s/sub/file"             # 10 bytes, u1000's, 0644
chown 1000:1000 "$M/s/sub/file"
chmod 0644 "$M/s/sub/file"
"$VV_BIN" snapshot create "$M" snap1 >/dev/null
# the root's attributes asked again of the daemon (a mkdir in it drops
# what the kernel cached), before and after the restore
mkdir "$M/z1"
links0=$(stat -c %h "$M")

rc=0; err=$("$VV_BIN" snapshot restore "$M" snap1 /s /s/sub/file /nope 2>&1) || rc=$?
check "the restore fails at its third path" test "$rc" -eq 1
check "the error names that path" sh -c "printf '%s' \"\$1\" | grep -q '/nope is not in snapshot snap1'" _ "$err"
check "nothing was restored or moved aside" \
	eval '[ "$(ls "$M")" = "$(printf "s\nz1")" ] && [ "$(ls "$M/s/sub")" = file ]'

mkdir "$M/z2"
check "the root's link count is its rows' (one more directory, no more)" \
	test "$(stat -c %h "$M")" -eq $((links0 + 1))

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
	"$VV_BIN" snapshot restore "$M" snap1 /s /s/sub/file
check "the file restored reads back" test "$(cat "$M/s/sub/file")" = u1000data
check "what was there is beside it" sh -c "ls '$M/s/sub' | grep -q '^file.pre-restore-'"
test_done
