#!/usr/bin/env bash
# t6033-trash-golden: a trash made by an older build, in the layout where
# every item (and every pending part of a removed tree) was an entry under
# .trash/files (tests/data/golden-trash-v1.tar.gz, made by main at 7a8b49e
# with tests/data/make-golden-trash.sh): a read-only open reads it as it is
# (fsck clean, the items listed, nothing written), the next read-write open
# migrates it, and then everything works as with a trash of this build:
# FreeDesktop names and .trashinfo, visibility per uid, restore of whole
# trees (also one a killed daemon left unsettled) with their inode
# numbers, xattrs and ACLs, mv out, purge, fsck.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

vv_golden golden-trash-v1 'golden trash passphrase v1'
S=$T/golden-trash-v1
M=$T/mnt
gmount() { vv_mount "$S" "$M" --passfile "$S.pass" "$@"; }
F=$M/.trash/files
names() { ls -A "$F" | tr '\n' ' '; }
big_ok() {
	"$PY" - "$1" <<'PY'
import sys, random
r = random.Random(12)
want = bytes(r.getrandbits(8) for _ in range(200000))
sys.exit(0 if open(sys.argv[1], "rb").read() == want else 1)
PY
}
sees() {        # WHO NAME: does WHO see NAME in .trash/files?
	"as_$1" ls -A "$F" > "$T/seen" 2>/dev/null || true
	grep -qx "$2" "$T/seen"
}
not_sees() { ! sees "$@"; }
inodes_of() {   # TREE: "PATH INODE" lines as the manifest has them
	(cd "$M" && find "products/$1" -printf '%p %i\n' | sort)
}

# --- read-only: as it is ------------------------------------------------------
sum0=$(find "$S" -type f ! -name reserve -exec sha256sum {} + | sort)
check "fsck of the old layout (read-only) is clean" "$VV_BIN" fsck "$S" --passfile "$S.pass" --dry-run
check "mount it read-only" gmount -o ro
check "root lists the five items" test "$(names)" = "crash mine.txt part-3.2.npy part-3.npy tree "
check "the .trashinfo of the second part-3" sh -c "grep -qx 'Path=/products/part-3.npy' '$M/.trash/info/part-3.2.npy.trashinfo'"
check "nobody does not see u1000's item from a 0700 directory" not_sees nobody mine.txt
check "but sees part-3.npy" sees nobody part-3.npy
check "crash's parts are pending (a read-only mount cannot settle them)" test -z "$(ls -A "$F/crash")"
check "unmount" vv_umount "$M"
sum1=$(find "$S" -type f ! -name reserve -exec sha256sum {} + | sort)
check "the read-only opens wrote nothing" test "$sum0" = "$sum1"

# --- read-write: migrated ----------------------------------------------------
check "mount read-write (migrates)" gmount
check "the five items are still there" test "$(names)" = "crash mine.txt part-3.2.npy part-3.npy tree "
check "the first part-3 reads" test "$(cat "$F/part-3.npy")" = "first part-3"
check "the second one, suffixed, reads" test "$(cat "$F/part-3.2.npy")" = "second part-3"
check "the .trashinfo" sh -c "grep -qx 'Path=/products/part-3.npy' '$M/.trash/info/part-3.npy.trashinfo'"
check "u1000 sees its item" sees u1000 mine.txt
check "nobody does not" not_sees nobody mine.txt
expect_fail "nobody cannot restore it" as_nobody "$VV_BIN" trash restore "$M" /products/priv/mine.txt
check "a new removal of part-3.npy gets the next suffix" sh -c "echo third > '$M/products/part-3.npy' && rm '$M/products/part-3.npy' && test \"\$(cat '$F/part-3.3.npy')\" = third"

check "restore the tree" sh -c "'$VV_BIN' trash restore '$M' /products/tree >/dev/null"
check "with its inode numbers" test "$(inodes_of tree)" = "$(grep '^products/tree' "$VV_SRC/tests/data/golden-trash-v1.inodes")"
check "its xattr" test "$(getfattr --only-values -n user.tag "$M/products/tree/a.txt")" = golden
check "its ACL" sh -c "getfacl -cn '$M/products/tree/sub' 2>/dev/null | grep -qx 'user:1000:r-x'"
check "its big file byte for byte" big_ok "$M/products/tree/sub/big.bin"
check "the tree a killed daemon left unsettled restores whole" sh -c "'$VV_BIN' trash restore '$M' /products/crash >/dev/null"
check "with its inode numbers" test "$(inodes_of crash)" = "$(grep '^products/crash' "$VV_SRC/tests/data/golden-trash-v1.inodes")"
check "and its files" test "$(cat "$M/products/crash/d1/f2")$(cat "$M/products/crash/d2/g3")" = "c2e3"
check "mv out of .trash/files restores" sh -c "mv '$F/part-3.2.npy' '$M/products/p32' && test \"\$(cat '$M/products/p32')\" = 'second part-3'"
check "rm in .trash/files purges" rm "$F/part-3.npy"
check "what is left" test "$(names)" = "mine.txt part-3.3.npy "
check "rm -rf of the restored tree" rm -rf "$M/products/tree"
check "is one item again" test "$(names)" = "mine.txt part-3.3.npy tree "
check "unmount" vv_umount "$M"
check "fsck after the migration is clean" "$VV_BIN" fsck "$S" --passfile "$S.pass" --dry-run
check "remount" gmount
check "the tree restores again" sh -c "'$VV_BIN' trash restore '$M' /products/tree >/dev/null"
check "whole" big_ok "$M/products/tree/sub/big.bin"
check "unmount" vv_umount "$M"
test_done
