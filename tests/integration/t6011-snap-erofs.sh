#!/bin/bash
# t6011-snap-erofs: inside .snapshots/NAME every change is EROFS, for every
# op and every kind of handle, as root and as other uids (EROFS comes
# before the access check, as on a read-only mount): open for writing,
# O_TRUNC, O_APPEND, truncate, chmod/chown/utime, xattrs and ACLs, mknod,
# mkdir, symlink, link and rename into or out of it, unlink, rmdir; a
# read-only handle cannot write or ftruncate; the live files are untouched.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
vv_init "$S" >/dev/null
check "mount" vv_mount "$S" "$M"
mkdir "$M/c"
echo data > "$M/c/f"
chmod 666 "$M/c/f"
chmod 777 "$M/c"
mkdir "$M/c/d"
ln -s f "$M/c/l"
"$VV_BIN" snapshot create "$M" s >/dev/null
P=$M/.snapshots/s/c

for who in root u1000 nobody; do
	want $who EROFS write "$P/f"
	want $who EROFS append "$P/f"
	want $who EROFS truncate "$P/f" 0
	want $who EROFS create "$P/new"
	want $who EROFS mkdir "$P/newdir"
	want $who EROFS rmdir "$P/d"
	want $who EROFS unlink "$P/f"
	want $who EROFS symlink f "$P/l2"
	want $who EROFS rename "$P/f" "$P/g"
	want $who EROFS link "$P/f" "$P/g"
	want $who EROFS setxattr "$P/f" user.x 1
	want $who EROFS removexattr "$P/f" user.x
	want $who OK read "$P/f"
	want $who OK readlink "$P/l"
done
want root EROFS chmod "$P/f" 600
want root EROFS rename "$P/f" "$M/c/moved"
want root EROFS rename "$M/c/f" "$P/in"
want root EROFS link "$P/f" "$M/c/hl"
want root EROFS link "$M/c/f" "$P/hl"
want root EROFS mkdir "$M/.snapshots/x"
want root EROFS rmdir "$M/.snapshots/s"
want root EROFS rename "$M/.snapshots/s" "$M/.snapshots/t"
check "access(W_OK): EROFS" sh -c "'$PY' -c 'import ctypes,errno,sys; c=ctypes.CDLL(None, use_errno=True); r=c.access(sys.argv[1].encode(), 2); print(errno.errorcode.get(ctypes.get_errno()) if r else \"OK\")' '$P/f' | grep -qx EROFS"
check "chown: EROFS" sh -c "chown 1000 '$P/f' 2>&1 | grep -q 'Read-only file system'"
check "touch: EROFS" sh -c "touch '$P/f' 2>&1 | grep -q 'Read-only file system'"
check "setfacl: EROFS" sh -c "setfacl -m u:1000:r '$P/f' 2>&1 | grep -q 'Read-only file system'"
check "mknod (fifo): EROFS" sh -c "mkfifo '$P/p' 2>&1 | grep -q 'Read-only file system'"
# a read-only handle: no write, no ftruncate
out=$("$PY" - "$P/f" <<'PYEOF'
import errno, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
res = []
for f in (lambda: os.write(fd, b"x"), lambda: os.ftruncate(fd, 0),
          lambda: os.posix_fallocate(fd, 0, 4096)):
    try:
        f(); res.append("OK")
    except OSError as e:
        res.append(errno.errorcode[e.errno])
print(" ".join(res))
PYEOF
)
check "read-only handle: write EBADF, ftruncate EINVAL/EBADF, fallocate EBADF ($out)" \
	grep -Eq '^EBADF (EINVAL|EBADF|EROFS) (EBADF|EROFS)$' <<<"$out"
check "the live file is untouched" test "$(cat "$M/c/f")" = data
check "the snapshot's file is untouched" test "$(cat "$P/f")" = data
check "unmount" vv_umount "$M"
test_done
