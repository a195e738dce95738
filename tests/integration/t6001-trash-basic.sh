#!/bin/bash
# t6001-trash-basic: rm goes to MNT/.trash (FreeDesktop shape), mv restores,
# names that collide get a suffix, .trash is found but never listed, its
# name is reserved, it is read-only, renames over files and truncations are
# not trashed, and every trash, restore and purge is an audit record; the
# CLI lists, restores and purges; purge frees the chunks.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
vv_init "$S" >/dev/null 2>&1
LOG=$(vv_audit_log "$S")
vv_mount "$S" "$M"
chunks() { find "$S/chunks" -type f ! -name '.tmp-*' | wc -l; }

mkdir "$M/products"
head -c 300000 /dev/urandom > "$T/p3"
cp "$T/p3" "$M/products/part-3.npy"
vv_sync "$M"
c0=$(chunks)
check "rm works" rm "$M/products/part-3.npy"
check "the file is gone from its directory" test ! -e "$M/products/part-3.npy"
check "it is in .trash/files" cmp "$T/p3" "$M/.trash/files/part-3.npy"
check "ls -l .trash/files shows it" sh -c "ls -l '$M/.trash/files/' | grep -q part-3.npy"
info=$(cat "$M/.trash/info/part-3.npy.trashinfo")
check ".trashinfo: [Trash Info]" sh -c "printf '%s' '$info' | head -1 | grep -qx '\[Trash Info\]'"
check ".trashinfo: Path=" sh -c "printf '%s\n' '$info' | grep -qx 'Path=/products/part-3.npy'"
check ".trashinfo: DeletionDate=" sh -c "printf '%s\n' '$info' | grep -Eq '^DeletionDate=[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}$'"
vv_sync "$M"
check "trashing frees no chunk" test "$(chunks)" -eq "$c0"
check "ls -a of the root does not list .trash" sh -c "! ls -a '$M' | grep -q '^\.trash$'"
check "find does not walk into .trash" sh -c "! find '$M' | grep -q '\.trash'"
check "ls .trash works" sh -c "ls '$M/.trash' | tr '\n' ' ' | grep -q 'files info'"
expect_errno EEXIST mkdir "$M/.trash"
expect_errno EEXIST mkdir "$M/.snapshots"
expect_errno EPERM rmdir "$M/.trash"
expect_errno EROFS write "$M/.trash/files/new"
expect_errno EROFS mkdir "$M/.trash/files/d"
expect_errno EROFS chmod "$M/.trash/files/part-3.npy" 600
expect_errno EROFS setxattr "$M/.trash/files/part-3.npy" user.x 1
expect_errno EROFS write "$M/.trash/files/part-3.npy"
expect_errno EROFS truncate "$M/.trash/files/part-3.npy" 0
expect_errno EROFS write "$M/.trash/info/part-3.npy.trashinfo"
echo x > "$M/products/live"
expect_errno EROFS rename "$M/products/live" "$M/.trash/files/live"
expect_errno EROFS link "$M/products/live" "$M/.trash/files/live"
mkdir "$M/products/dir"
expect_errno EPERM rename "$M/products/dir" "$M/.trash"

# restore by mv; into another collection is EXDEV (mv then copies: use rename)
mkdir "$M/other"
expect_errno EXDEV rename "$M/.trash/files/part-3.npy" "$M/other/part-3.npy"
check "mv restores" mv "$M/.trash/files/part-3.npy" "$M/products/"
check "the bytes are back" cmp "$T/p3" "$M/products/part-3.npy"
check "the trash is empty" test -z "$(ls "$M/.trash/files")"
check "the audit log has the trash" vv_audit_has "$LOG" op=trash path=/products/part-3.npy result=ok
check "and the restore" vv_audit_has "$LOG" op=restore path=/products/part-3.npy result=ok

# collisions get FreeDesktop suffixes
rm "$M/products/part-3.npy"
echo two > "$M/products/part-3.npy"
rm "$M/products/part-3.npy"
check "a second part-3.npy is part-3.2.npy" test "$(cat "$M/.trash/files/part-3.2.npy")" = two
check "with its own .trashinfo" grep -qx 'Path=/products/part-3.npy' "$M/.trash/info/part-3.2.npy.trashinfo"

# what is not trashed: rename over a file, truncation
echo a > "$M/products/a"; echo b > "$M/products/b"
mv "$M/products/a" "$M/products/b"
: > "$M/products/b"
check "a replaced or truncated file is not in the trash" sh -c "! ls '$M/.trash/files' | grep -qx b"

# the CLI
check "trash list names the original paths" sh -c "'$VV_BIN' trash list '$M' | grep -q '/products/part-3.npy'"
check "trash list --json" sh -c "'$VV_BIN' trash list '$M' --json | $PY -c 'import json,sys; d=json.load(sys.stdin); assert len(d)==2 and d[0][\"path\"]==\"/products/part-3.npy\" and d[0][\"expires\"]'"
check "vecvault stats shows the trash's size" sh -c "'$VV_BIN' stats '$M' | grep -Eq '^\.trash +items 2  bytes 300004'"
check "trash restore MNT PATH (the newest)" "$VV_BIN" trash restore "$M" /products/part-3.npy
check "restored where it came from" test "$(cat "$M/products/part-3.npy")" = two
expect_fail "restore onto an existing name is refused" "$VV_BIN" trash restore "$M" /products/part-3.npy
check "the refusal lost nothing" cmp "$T/p3" "$M/.trash/files/part-3.npy"
vv_sync "$M"
c1=$(chunks)
check "trash purge MNT PATH" "$VV_BIN" trash purge "$M" "$M/products/part-3.npy"
check "purged" test ! -e "$M/.trash/files/part-3.npy"
vv_sync "$M"; sleep 0.5; vv_sync "$M"
check "purge frees its chunks" test "$(chunks)" -lt "$c1"
check "the audit log has the purge" vv_audit_has "$LOG" op=purge result=ok
echo z > "$M/products/z"; rm "$M/products/z"
check "rm in .trash/files purges" rm "$M/.trash/files/z"
check "gone" test ! -e "$M/.trash/files/z"
expect_fail "trash purge needs something to purge" "$VV_BIN" trash purge "$M"
check "trash purge --all" "$VV_BIN" trash purge "$M" --all
check "empty" test -z "$(ls "$M/.trash/files")"
check "statfs works on the trash" stat -f "$M/.trash/files"
vv_umount "$M"
check "fsck is clean" sh -c "'$VV_BIN' fsck '$S' --passfile '$PASSFILE' >/dev/null"
test_done
