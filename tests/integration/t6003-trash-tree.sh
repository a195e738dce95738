#!/bin/bash
# t6003-trash-tree: rm -rf of a whole collection of 5000 files (with
# subdirectories, ACLs, default ACLs, xattrs, a symlink, modes and owners)
# is one item of the trash; `vecvault trash restore MNT /coll` after a
# remount puts back every byte, name, mode, owner, ACL, xattr and inode
# number (compared with the originals: cmp, getfacl -R, getfattr -R, stat).
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse
command -v getfacl >/dev/null && command -v getfattr >/dev/null || {
	echo "1..0 # SKIP no getfacl/getfattr (acl, attr)"; vv_done=1; exit 77; }

S=$T/store
M=$T/mnt
vv_init "$S" >/dev/null 2>&1
vv_mount "$S" "$M"

C=$M/products
mkdir "$C"
"$PY" - "$C" <<'PY'
import os, sys
top = sys.argv[1]
for d in range(50):
    sub = os.path.join(top, "d%02d" % d)
    os.mkdir(sub)
    for f in range(100):
        p = os.path.join(sub, "f%03d.npy" % f)
        with open(p, "wb") as fh:
            fh.write(os.urandom(64 + (d * 100 + f) % 700))
        if f % 10 == 0:
            os.setxattr(p, "user.tag", b"t%d" % f)
            os.chmod(p, 0o640)
big = os.path.join(top, "big.npy")
with open(big, "wb") as fh:
    fh.write(os.urandom(3 << 20))
os.symlink("d00/f000.npy", os.path.join(top, "link"))
PY
chown -R 1000:1000 "$C/d01"
setfacl -m u:1001:r "$C/d02/f005.npy"
setfacl -d -m g:2000:rx "$C/d03"
setfattr -n user.coll -v yes "$C"
snap() {
	(cd "$M" && find products -printf '%p %i %m %u %g %s %y %l\n' | sort) > "$T/$1.stat"
	(cd "$M" && getfacl -R -p -n products 2>"$T/$1.acl.err") > "$T/$1.acl"
	(cd "$M" && getfattr -R -d -m - products 2>"$T/$1.xattr.err" | grep -v '^user.vecvault') > "$T/$1.xattr"
}
snap before
cp -a "$C" "$T/copy"
check "5000+ files made" test "$(find "$C" -type f | wc -l)" -ge 5000
check "rm -rf the collection" rm -rf "$C"
check "it is gone" test ! -e "$C"
check "one item in .trash/files" test "$(ls "$M/.trash/files")" = products
check "which holds the tree" test "$(find "$M/.trash/files/products" -type f | wc -l)" -ge 5000
check "trash list shows one item" test "$("$VV_BIN" trash list "$M" --json | $PY -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 1
vv_umount "$M"
vv_mount "$S" "$M"
check "still there after a remount" test -d "$M/.trash/files/products/d49"
check "trash restore MNT /products" "$VV_BIN" trash restore "$M" /products
snap after
check "names, inode numbers, modes, owners, sizes, types are the same" cmp "$T/before.stat" "$T/after.stat"
# same FILE: the before and after listings match (else the difference and
# what getfacl/getfattr said on stderr, to tell a real loss from a failed read)
same() {
	cmp -s "$T/before.$1" "$T/after.$1" && return 0
	diff "$T/before.$1" "$T/after.$1" | head -20 | sed 's/^/# /'
	cat "$T/before.$1.err" "$T/after.$1.err" 2>/dev/null | head -10 | sed 's/^/# stderr: /'
	return 1
}
check "ACLs (getfacl -R) are the same" same acl
check "xattrs (getfattr -R -d -m -) are the same" same xattr
check "every byte is the same" diff -r "$T/copy" "$C"
check "the trash is empty" test -z "$(ls "$M/.trash/files")"
vv_umount "$M"
check "fsck is clean" sh -c "'$VV_BIN' fsck '$S' --passfile '$PASSFILE' >/dev/null"
test_done
