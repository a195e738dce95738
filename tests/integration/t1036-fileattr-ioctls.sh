#!/bin/bash
# t1036-fileattr-ioctls: the ioctls the kernel answers for a FUSE file by
# asking the daemon on its own, attacked by nobody on every kind of handle.
# FS_IOC_GETFLAGS / FS_IOC_SETFLAGS / FS_IOC_FSGETXATTR (lsattr, chattr)
# reach a FUSE file system through fileattr_get/set, which open the file
# themselves - an OPEN (or OPENDIR) in the caller's name, whatever handle
# the caller holds - and then send the ioctl on that fresh handle.  main
# passes all of this (the checks guard the day the daemon answers one of
# them): the kernel's own open is decided and audited like any other
# (lsattr of a 0600 file and of a 0700 directory refused, recorded under
# nobody's uid and with lsattr's name), the daemon answers no such ioctl
# (ENOTTY; a set by nobody is the kernel's EPERM, not the owner; chattr +i
# by nobody and by root changes nothing: the file stays writable), O_PATH
# handles get EBADF from the kernel, mode-3 and
# write-only handles (nobody's own, on a 0666 file) get the same ENOTTY as a
# read handle, FIEMAP is not supported and FICLONE from nobody's read
# handle refused (no reflink on FUSE), copy_file_range and sendfile from a
# write-only handle EBADF, and the offload's two ioctl numbers on mode-3
# and write-only handles of a segment EBADF or ENOTTY (never rows).
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
vv_init "$S" >/dev/null 2>&1
LOG=$(vv_audit_log "$S")
vv_mount "$S" "$M"
has() { vv_audit_has "$LOG" "$@"; }

C=$M/c
mkdir -m 755 "$C"
mkdir -m 700 "$C/priv"
"$PY" - "$C" <<'PY'
import struct, sys
C = sys.argv[1]
for name in ("open.fvecs", "sec.fvecs", "rw.fvecs"):
    with open(C + "/" + name, "wb") as f:
        for i in range(8): f.write(struct.pack("<i4f", 4, i, 0, 0, 0))
PY
chmod 644 "$C/open.fvecs"
chmod 600 "$C/sec.fvecs"
chmod 666 "$C/rw.fvecs"

# ---- the kernel's own open: decided and audited ------------------------------
expect_fail "lsattr of a 0600 file fails for nobody" as_nobody lsattr "$C/sec.fvecs"
expect_fail "lsattr -d of a 0700 directory fails for nobody" as_nobody lsattr -d "$C/priv"
check "the kernel's open for lsattr audited" \
	has op=open path=/c/sec.fvecs uid=65534 comm=lsattr result=EACCES
check "the kernel's opendir for lsattr audited" \
	has op=opendir path=/c/priv uid=65534 comm=lsattr result=EACCES

# ---- every handle kind: the daemon answers none of them -----------------------
: > "$T/dst"
chmod 666 "$T/dst"
out=$(as_nobody "$PY" - "$C" "$T/dst" <<'PY'
import errno, fcntl, os, sys
C = sys.argv[1]
GETFLAGS, SETFLAGS = 0x80086601, 0x40086602
FSGETXATTR, GETVERSION = 0x801c581f, 0x80087601
FIEMAP, FICLONE = 0xc020660b, 0x40049409
# knn_ioctl.h: _IOWR('v', 0x4b / 0x4c, 16320 bytes)
def IOWR(nr, size): return (3 << 30) | (size << 16) | (ord('v') << 8) | nr
KNN, KNN_DIR = IOWR(0x4b, 16320), IOWR(0x4c, 16320)
def res(f):
    try:
        f()
        return "OK"
    except OSError as e:
        return errno.errorcode[e.errno]
def row(kind, what, r): print("%s %s %s" % (kind, what, r))
for kind, path, flags in (("ro", "open.fvecs", os.O_RDONLY), ("path", "open.fvecs", os.O_PATH),
                          ("mode3", "rw.fvecs", 3), ("wo", "rw.fvecs", os.O_WRONLY)):
    fd = os.open(C + "/" + path, flags)
    for name, cmd, size in (("getflags", GETFLAGS, 8), ("fsgetxattr", FSGETXATTR, 28),
                            ("getversion", GETVERSION, 8)):
        row(kind, name, res(lambda: fcntl.ioctl(fd, cmd, bytearray(size))))
    row(kind, "setflags", res(lambda: fcntl.ioctl(fd, SETFLAGS, bytearray(b"\x10\0\0\0\0\0\0\0"))))
    row(kind, "fiemap", res(lambda: fcntl.ioctl(fd, FIEMAP, bytearray(32 + 56 * 4))))
    row(kind, "knn", res(lambda: fcntl.ioctl(fd, KNN, bytearray(16320))))
    row(kind, "knndir", res(lambda: fcntl.ioctl(fd, KNN_DIR, bytearray(16320))))
    if kind == "wo":
        dst = os.open(sys.argv[2], os.O_WRONLY)
        row(kind, "copy_file_range", res(lambda: os.copy_file_range(fd, dst, 64)))
        row(kind, "sendfile", res(lambda: os.sendfile(dst, fd, 0, 64)))
        os.close(dst)
    if kind == "ro":
        dst = os.open(C + "/rw.fvecs", os.O_WRONLY)
        row(kind, "ficlone", res(lambda: fcntl.ioctl(dst, FICLONE, fd)))
        os.close(dst)
    os.close(fd)
PY
)
echo "$out" | sed 's/^/# /'
for kind in ro mode3 wo; do
	for op in getflags fsgetxattr getversion; do
		check "$kind handle: $op ENOTTY" eval 'echo "$out" | grep -qx "$kind $op ENOTTY"'
	done
	# fileattr_set: the kernel wants the owner before it opens anything
	check "$kind handle: setflags EPERM" eval 'echo "$out" | grep -qx "$kind setflags EPERM"'
done
for op in getflags fsgetxattr getversion setflags fiemap knn knndir; do
	check "O_PATH handle: $op EBADF" eval 'echo "$out" | grep -qx "path $op EBADF"'
done
for kind in ro mode3 wo; do
	check "$kind handle: fiemap not supported" eval 'echo "$out" | grep -qx "$kind fiemap ENOTSUP"'
	check "$kind handle: the directory request ENOTTY" eval 'echo "$out" | grep -qx "$kind knndir ENOTTY"'
done
check "read handle: a zeroed knn request EINVAL" eval 'echo "$out" | grep -qx "ro knn EINVAL"'
check "mode-3 handle: knn EBADF" eval 'echo "$out" | grep -qx "mode3 knn EBADF"'
check "write-only handle: knn EBADF" eval 'echo "$out" | grep -qx "wo knn EBADF"'
check "write-only handle: copy_file_range EBADF" eval 'echo "$out" | grep -qx "wo copy_file_range EBADF"'
check "write-only handle: sendfile EBADF" eval 'echo "$out" | grep -qx "wo sendfile EBADF"'
check "ficlone refused" eval 'echo "$out" | grep -q "^ro ficlone E"'

# ---- chattr +i changes nothing ------------------------------------------------
expect_fail "chattr +i by root is refused" chattr +i "$C/rw.fvecs"
expect_fail "chattr +i by nobody is refused" as_nobody chattr +i "$C/rw.fvecs"
want nobody OK append "$C/rw.fvecs"
want root OK append "$C/rw.fvecs"
check "the segment is intact for root" test "$(stat -c %s "$C/rw.fvecs")" = $((8 * 20 + 2))

test_done
