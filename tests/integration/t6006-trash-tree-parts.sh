#!/bin/bash
# t6006-trash-tree-parts: rm -rf's rmdir marks the items removed just
# before as parts of the directory's tree, which get no entries (in
# .trash/files or under it) until someone looks inside, restores, purges, unmounts
# (docs/design.md "Recycle bin").  While they wait they are no items: not
# listed, not found by name, no .trashinfo, not in `trash list`, for root,
# nobody and u1000.  Another user's removal in the same directory in
# between stays that user's own item.  A handle opened before keeps
# reading (nlink 0) and reads EIO once the tree is purged.  A SIGKILL of
# the daemon with parts waiting loses nothing: after the remount the tree
# is whole and restores byte for byte with names, modes, owners, ACLs,
# xattrs and inode numbers.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse
command -v getfacl >/dev/null && command -v getfattr >/dev/null || {
	echo "1..0 # SKIP no getfacl/getfattr (acl, attr)"; vv_done=1; exit 77; }

S=$T/store
M=$T/mnt
vv_init "$S" >/dev/null 2>&1
vv_mount "$S" "$M"
pidf="$T/.pids/$(echo "$M" | tr / _)"
forget_mount() {
	awk -F '\t' -v m="$M" '$1 != m' "$VV_MOUNTS" > "$VV_MOUNTS.new"
	mv "$VV_MOUNTS.new" "$VV_MOUNTS"
}

mkdir -m 755 "$M/c"
"$PY" - "$M/c/t" <<'PY'
import os, sys
top = sys.argv[1]
os.mkdir(top)
for d in range(3):
    sub = os.path.join(top, "d%d" % d)
    os.mkdir(sub)
    for f in range(60):
        p = os.path.join(sub, "f%03d" % f)
        with open(p, "wb") as fh:
            fh.write(os.urandom(100 + f * 13))
        if f % 7 == 0:
            os.setxattr(p, "user.tag", b"t%d" % f)
            os.chmod(p, 0o640)
os.mkdir(os.path.join(top, "shared"), 0o777)
os.chmod(os.path.join(top, "shared"), 0o777)
PY
chown 1000:1000 "$M/c/t/d1/f001"
setfacl -m u:1001:r "$M/c/t/d2/f002"
setfacl -d -m g:2000:rx "$M/c/t/d0"
check "u1000 makes shared/x" as_u1000 "$PY" -c "open('$M/c/t/shared/x', 'w').write('mine')"
snap() {
	(cd "$M/c" && find t -printf '%p %i %m %U %G %s %y\n' | sort) > "$T/$1.stat"
	(cd "$M/c" && getfacl -R -n -p t 2>/dev/null) > "$T/$1.acl"
	(cd "$M/c" && getfattr -R -d -m - t 2>/dev/null | grep -v '^user.vecvault') > "$T/$1.xattr"
}
cp -a "$M/c/t" "$T/copy"
rm "$T/copy/shared/x"

# A handle opened before, and the removals: root's rm -rf with u1000's
# rm of its own file in between (after d0..d2 went, before shared).
"$PY" - "$M/c/t/d0/f000" "$T/fifo" <<'PY' > "$T/handle.out" &
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.mkfifo(sys.argv[2])
open(sys.argv[2]).read()                # wait for the shell
try:
    n = len(os.pread(fd, 4096, 0))
    print("removed read", n, "nlink", os.fstat(fd).st_nlink, flush=True)
except OSError as e:
    print("removed error", os.strerror(e.errno), flush=True)
PY
hpid=$!
for i in $(seq 100); do [ -p "$T/fifo" ] && break; sleep 0.1; done
rm -rf "$M/c/t/d0" "$M/c/t/d1" "$M/c/t/d2"
check "u1000 removes shared/x" as_u1000 rm "$M/c/t/shared/x"
rm -rf "$M/c/t"
check "t is gone" test ! -e "$M/c/t"
echo > "$T/fifo"
wait "$hpid" || true
check "the open handle still reads, nlink 0" grep -q "removed read .* nlink 0" "$T/handle.out"

check "root: two items, t and u1000's x" test "$(ls "$M/.trash/files" | tr '\n' ' ')" = "t x "
want root ENOENT stat "$M/.trash/files/f000"
want root ENOENT stat "$M/.trash/files/d0"
want root ENOENT read "$M/.trash/info/f001.trashinfo"
want nobody ENOENT stat "$M/.trash/files/f000"
want u1000 ENOENT stat "$M/.trash/files/f001"
check "nobody sees t as an item" sh -c "setpriv --reuid=65534 --regid=65534 --clear-groups ls '$M/.trash/files' | grep -qx t"
items() { "$@" "$VV_BIN" trash list "$M" --json | $PY -c 'import json,sys; print(" ".join(sorted(i["path"] for i in json.load(sys.stdin))))'; }
check "trash list (root): /c/t and /c/t/shared/x" test "$(items as_root)" = "/c/t /c/t/shared/x"
check "trash list (u1000): the same" test "$(items as_u1000)" = "/c/t /c/t/shared/x"
expect_fail "trash purge of a part: not in the trash" "$VV_BIN" trash purge "$M" /c/t/d0/f000

# SIGKILL with the parts still waiting (synced first: what fsync made
# durable must survive), then a new mount.
vv_sync "$M"
kill -KILL "$(cat "$pidf")"
fusermount3 -uz "$M" 2>/dev/null || umount -l "$M" 2>/dev/null || true
forget_mount
vv_mount "$S" "$M"
check "after the crash: still t and x" test "$(ls "$M/.trash/files" | tr '\n' ' ')" = "t x "
check "the tree is whole inside the trash" test "$(find "$M/.trash/files/t" -type f | wc -l)" = 180
check "trash restore MNT /c/t" "$VV_BIN" trash restore "$M" /c/t
snap after

check "every byte is the same" diff -r "$T/copy" "$M/c/t"
check "u1000's x is not in the tree" test ! -e "$M/c/t/shared/x"
check "u1000 restores its x" as_u1000 "$VV_BIN" trash restore "$M" /c/t/shared/x
check "x reads" test "$(cat "$M/c/t/shared/x")" = mine
check "d1/f001 kept its owner" test "$(stat -c %u "$M/c/t/d1/f001")" = 1000
check "d2/f002 kept its ACL" sh -c "getfacl -n -p '$M/c/t/d2/f002' 2>/dev/null | grep -q '^user:1001:r--'"
check "d0 kept its default ACL" sh -c "getfacl -n -p '$M/c/t/d0' 2>/dev/null | grep -q '^default:group:2000:r-x'"
check "f007 kept its xattr" test "$(getfattr --only-values -n user.tag "$M/c/t/d0/f007")" = t7

# Inode numbers and the whole listing across rm -rf + restore (no crash).
rm "$M/c/t/shared/x"
"$VV_BIN" trash purge "$M" /c/t/shared/x >/dev/null
snap before2
rm -rf "$M/c/t"
check "restore again" "$VV_BIN" trash restore "$M" /c/t
snap after2
check "names, inode numbers, modes, owners, sizes are the same" cmp "$T/before2.stat" "$T/after2.stat"
check "ACLs (getfacl -R) are the same" cmp "$T/before2.acl" "$T/after2.acl"
check "xattrs (getfattr -R) are the same" cmp "$T/before2.xattr" "$T/after2.xattr"

# A purge of a tree whose parts wait revokes a handle on one of them.
rm -f "$T/fifo"
"$PY" - "$M/c/t/d1/f010" "$T/fifo" <<'PY' > "$T/handle2.out" &
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.mkfifo(sys.argv[2])
open(sys.argv[2]).read()
try:
    print("read", len(os.pread(fd, 4096, 0)), flush=True)
except OSError as e:
    print("error", os.strerror(e.errno), flush=True)
PY
hpid=$!
for i in $(seq 100); do [ -p "$T/fifo" ] && break; sleep 0.1; done
rm -rf "$M/c/t"
check "purge the tree while its parts wait" "$VV_BIN" trash purge "$M" /c/t
echo > "$T/fifo"
wait "$hpid" || true
check "the handle opened before reads EIO" grep -q "^error Input/output error" "$T/handle2.out"
check "the trash is empty" test -z "$(ls "$M/.trash/files")"
vv_umount "$M"
check "fsck is clean" sh -c "'$VV_BIN' fsck '$S' --passfile '$PASSFILE' >/dev/null"
test_done
