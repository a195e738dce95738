#!/bin/bash
# t6043-trash-coll-key: a collection removed for good keeps its key while
# its trash still holds files of it.  A file removed into the trash, then
# its collection's directory removed for good, with the trash off
# (--trash-days 0) or on a full disk: the rmdir dropped the collection's
# key when no *cached* node had the collection, and the trashed file's
# blocks no longer decrypted (EIO on read, also after a remount): data
# lost from the trash (main: 6 checks fail).  The test is now meta.db's:
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

# The same on a full disk (the trash on; the rmdir is final because the
# disk is at its reserve, docs/design.md "Full disk"): a small tmpfs.
FS=$T/fs
mkdir "$FS"
if [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=24m tmpfs "$FS"; then
	S2=$FS/store
	vv_init "$S2" >/dev/null 2>&1
	vv_mount "$S2" "$M"
	mkdir "$M/k" "$M/fill"
	cp "$T/big" "$M/k/big"
	rm "$M/k/big"
	i=0
	while [ $i -lt 40 ]; do
		head -c 1048576 /dev/urandom > "$M/fill/f$i" 2>/dev/null && vv_sync "$M" 2>/dev/null || break
		i=$((i + 1))
	done
	check "full disk: the disk filled up" test $i -lt 40
	check "full disk: the collection's rmdir" rmdir "$M/k"
	check "full disk: it was final (not in the trash)" test ! -e "$M/.trash/files/k"
	check "full disk: the trashed file still reads" cmp "$M/.trash/files/big" "$T/big"
	vv_umount "$M"
	umount "$FS"
else
	echo "# full disk part skipped: needs root and a tmpfs"
fi
test_done
