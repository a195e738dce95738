#!/bin/bash
# t6043-trash-coll-key: a collection removed for good keeps its key while
# its trash still holds files of it.  A file removed into the trash, then
# its collection's directory removed with the trash off (--trash-days 0;
# a full disk takes the same path): the rmdir dropped the collection's
# key when no *cached* node had the collection, and the trashed file's
# blocks no longer decrypted (EIO on read, also after a remount): data
# lost from the trash (main: 5 checks fail).  The test is now meta.db's:
# any inode of the collection, trashed ones included, keeps the key.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
vv_init "$S" >/dev/null 2>&1
head -c 300000 /dev/urandom > "$T/big"        # past inline: in chunks
head -c 200000 /dev/urandom > "$T/deep"

vv_mount "$S" "$M"
mkdir -p "$M/k/sub" "$M/other"
cp "$T/big" "$M/k/big"
cp "$T/deep" "$M/k/sub/deep"
rm "$M/k/big"                                 # an item of its own
rm -r "$M/k/sub"                              # a tree, its file a part
check "both are in the trash" test -e "$M/.trash/files/big" -a -e "$M/.trash/files/sub/deep"
vv_umount "$M"

vv_mount "$S" "$M" --trash-days 0
check "the collection's directory removed for good" rmdir "$M/k"
check "the trashed file still reads" cmp "$M/.trash/files/big" "$T/big"
check "the trashed tree's file too" cmp "$M/.trash/files/sub/deep" "$T/deep"
# a file held open keeps the key too (its row stays until the last close)
mkdir "$M/k3"
cp "$T/big" "$M/k3/held"
check "a file open across its unlink and its collection's rmdir reads whole" "$PY" - "$M" "$T/big" <<'PY'
import os, sys
m, want = sys.argv[1], open(sys.argv[2], "rb").read()
fd = os.open(m + "/k3/held", os.O_RDONLY)
os.unlink(m + "/k3/held")
os.rmdir(m + "/k3")
got = b""
while True:
    b = os.pread(fd, 1 << 20, len(got))
    if not b:
        break
    got += b
os.close(fd)
sys.exit(0 if got == want else 1)
PY
vv_umount "$M"

vv_mount "$S" "$M"
check "after a remount, still" cmp "$M/.trash/files/big" "$T/big"
check "copied out into another collection" cp "$M/.trash/files/big" "$M/other/big"
check "  whole" cmp "$M/other/big" "$T/big"
check "purging the items works" "$VV_BIN" trash purge "$M" /k/big
check "  (the tree too)" "$VV_BIN" trash purge "$M" /k/sub
check "the trash is empty" test -z "$(ls "$M/.trash/files")"
vv_umount "$M"
check "fsck is clean" "$VV_BIN" fsck "$S" --passfile "$PASSFILE"
test_done
