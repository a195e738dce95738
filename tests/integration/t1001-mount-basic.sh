#!/bin/bash
# t1001-mount-basic: init, mount, write/read files (small and multi-block),
# mkdir, ls, rename, rm, symlink, chmod; refusals (wrong passphrase, store in
# use, mount point already mounted, non-empty init target); unmount stops
# the daemon; a remount reads everything back; info and fsck on the result;
# passwd changes the passphrase and the old one stops working.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
mkdir -p "$M"

check "init creates a vault" vv_init "$S"
check "init made vecvault.conf" test -f "$S/vecvault.conf"
mkdir "$T/full" && touch "$T/full/x"
expect_fail "init refuses a non-empty directory" vv_init "$T/full"
expect_fail "init refuses --kdf test without VECVAULT_TEST_KDF=1" \
	env -u VECVAULT_TEST_KDF "$VV_BIN" init "$T/s2" --passfile "$PASSFILE" --kdf test
check "info shows the store id without a passphrase" \
	sh -c "'$VV_BIN' info '$S' | grep -Eq '^store id: +[0-9a-f]{32}$'"

check "mount succeeds" vv_mount "$S" "$M"
check "mount point is a vecvault FUSE mount" grep -q " $M fuse.vecvault " /proc/mounts
check "mounted nosuid,nodev" sh -c "grep ' $M fuse.vecvault ' /proc/mounts | grep -q 'nosuid,nodev'"
check "root directory is empty" test -z "$(ls -A "$M")"

# small file
check "write a small file" sh -c "printf 'hello vault\n' > '$M/hello.txt'"
check "read it back" test "$(cat "$M/hello.txt")" = "hello vault"
check "size is right" test "$(stat -c %s "$M/hello.txt")" = 12

# multi-block file (several 64 KiB AEAD blocks, not block-aligned)
head -c 3000017 /dev/urandom > "$T/big.src"
check "copy a 3 MB file in" cp "$T/big.src" "$M/big.bin"
check "3 MB file reads back identical" cmp "$T/big.src" "$M/big.bin"
check "overwrite in the middle" sh -c "printf XYZ | dd of='$M/big.bin' bs=1 seek=100000 conv=notrunc status=none"
printf XYZ | dd of="$T/big.src" bs=1 seek=100000 conv=notrunc status=none
check "partial overwrite reads back" cmp "$T/big.src" "$M/big.bin"
check "append" sh -c "printf tail >> '$M/hello.txt'"
check "append reads back" test "$(cat "$M/hello.txt")" = "$(printf 'hello vault\ntail')"
check "truncate" truncate -s 5 "$M/hello.txt"
check "truncated content" test "$(cat "$M/hello.txt")" = hello

# directories
check "mkdir a collection" mkdir "$M/products"
check "nested mkdir" mkdir -p "$M/products/a/b"
check "file in a nested dir" sh -c "echo deep > '$M/products/a/b/f'"
check "ls lists entries" test "$(ls "$M" | tr '\n' ' ')" = "big.bin hello.txt products "
check "ls -l works (readdirplus + getattr)" sh -c "ls -laR '$M' > /dev/null"
check "rename within a directory" mv "$M/products/a/b/f" "$M/products/a/b/g"
check "renamed file reads back" test "$(cat "$M/products/a/b/g")" = deep
expect_errno ENOENT stat "$M/products/a/b/f"
check "symlink" ln -s hello.txt "$M/link"
check "readlink" test "$(readlink "$M/link")" = hello.txt
check "read through the symlink" test "$(cat "$M/link")" = hello
check "chmod" chmod 640 "$M/hello.txt"
check "mode after chmod" test "$(stat -c %a "$M/hello.txt")" = 640
check "rm a file" rm "$M/link"
expect_errno ENOENT lstat "$M/link"
expect_errno ENOTEMPTY rmdir "$M/products/a"
expect_errno EEXIST mkdir "$M/products"
check "rm -r a tree" rm -r "$M/products/a"
check "rmdir leaves the collection empty" test -z "$(ls -A "$M/products")"
check "df works (statfs)" df "$M"

# other users (the daemon runs as root with allow_other and decides itself)
check "a private directory" sh -c "mkdir -m 700 '$M/private' && echo s > '$M/private/s'"
check "a public file" sh -c "echo pub > '$M/pub' && chmod 644 '$M/pub'"
expect_errno --as-nobody OK read "$M/pub"
expect_errno --as-nobody EACCES listdir "$M/private"
expect_errno --as-nobody EACCES read "$M/private/s"
expect_errno --as-nobody EACCES write "$M/pub"
expect_errno --as-nobody EACCES create "$M/nobody-file"
expect_errno --as-nobody EACCES access "$M/pub" w
expect_errno OK access "$M/pub" rw

# exec (an OPEN with FMODE_EXEC), xattrs, fsync
printf '#!/bin/sh\necho ran\n' > "$T/script"
check "copy a script in" install -m 755 "$T/script" "$M/script"
check "exec a script from the vault" test "$("$M/script")" = ran
check "chmod -x" chmod 644 "$M/script"
expect_errno EACCES exec "$M/script"
check "set a user xattr" setfattr -n user.note -v hello "$M/pub"
check "get it back" test "$(getfattr --only-values -n user.note "$M/pub")" = hello
check "list xattrs" sh -c "getfattr -d '$M/pub' | grep -q user.note"
check "remove it" setfattr -x user.note "$M/pub"
expect_errno ENODATA getxattr "$M/pub" user.note
check "fsync'd write" dd if=/dev/zero of="$M/synced" bs=64k count=4 conv=fsync status=none
check "fsync'd file has its size" test "$(stat -c %s "$M/synced")" = 262144

# refusals while mounted
mkdir -p "$T/mnt2"
expect_fail "second mount of the same store is refused" \
	"$VV_BIN" mount "$S" "$T/mnt2" --passfile "$PASSFILE"
check "the refusal names the store in use" sh -c \
	"'$VV_BIN' mount '$S' '$T/mnt2' --passfile '$PASSFILE' 2>&1 | grep -q 'in use'"
check "the refusal did not mount anything" sh -c "! grep -q ' $T/mnt2 ' /proc/mounts"
check "mount on a mount point is refused" sh -c \
	"'$VV_BIN' mount '$S' '$M' --passfile '$PASSFILE' 2>&1 | grep -q 'already a mount point'"
check "info works while mounted" sh -c "'$VV_BIN' info '$S' > /dev/null"

sync
check "unmount" vv_umount "$M"
check "mount point is gone from /proc/mounts" sh -c "! grep -q ' $M ' /proc/mounts"

printf 'wrong\n' > "$T/wrong"; chmod 600 "$T/wrong"
check "wrong passphrase is refused with a clear message" sh -c \
	"! '$VV_BIN' mount '$S' '$M' --passfile '$T/wrong' 2> '$T/err' && grep -q 'wrong passphrase' '$T/err'"
check "nothing mounted after the wrong passphrase" sh -c "! grep -q ' $M ' /proc/mounts"

check "remount" vv_mount "$S" "$M"
check "big file survives a remount" cmp "$T/big.src" "$M/big.bin"
check "small file survives a remount" test "$(cat "$M/hello.txt")" = hello
check "mode survives a remount" test "$(stat -c %a "$M/hello.txt")" = 640
check "directory survives a remount" test -d "$M/products"
expect_errno ENOENT lstat "$M/link"
check "unmount again" vv_umount "$M"

check "read-only mount" vv_mount "$S" "$M" -o ro
check "read-only mount reads" cmp "$T/big.src" "$M/big.bin"
expect_errno EROFS write "$M/hello.txt"
expect_errno EROFS mkdir "$M/newdir"
check "unmount the read-only mount" vv_umount "$M"

check "fsck finds a clean vault" "$VV_BIN" fsck "$S" --passfile "$PASSFILE"

printf 'new passphrase\n' > "$T/newpass"; chmod 600 "$T/newpass"
check "passwd changes the passphrase" "$VV_BIN" passwd "$S" --passfile "$PASSFILE" \
	--new-passfile "$T/newpass"
expect_fail "old passphrase no longer mounts" "$VV_BIN" mount "$S" "$M" --passfile "$PASSFILE"
cp "$T/newpass" "$PASSFILE"
check "new passphrase mounts" vv_mount "$S" "$M"
check "data intact after passwd" cmp "$T/big.src" "$M/big.bin"
check "final unmount" vv_umount "$M"

test_done
