#!/bin/bash
# t6016-trash-snap-handles: unprivileged users (nobody, u1000, u1001)
# with handles and ops that t6002/t6014 do not cover: a descriptor passed
# over a unix socket (SCM_RIGHTS) to nobody before a purge reads EIO and
# scans EIO afterwards; the k-NN ioctl and the computed xattrs on a
# snapshot's segment follow that snapshot's access (u1000 who could read
# it then may, nobody behind a 0700 directory gets EACCES, never a row);
# hard links and renames into and out of .snapshots are EROFS for every
# uid; another user's trash item cannot be restored, by mv or the CLI, and
# one restored by the CLI is seen at once where the kernel cached its absence.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse
export -f as_u1000 as_u1001 as_nobody

S=$T/store
M=$T/mnt
IOC=$T/knn_ioc.py
cp "$VV_SRC/tests/integration/lib/knn_ioc.py" "$IOC"
vv_init "$S" >/dev/null 2>&1
LOG=$(vv_audit_log "$S")
check "mount" vv_mount "$S" "$M"
mkdir -m 755 "$M/c"
mkdir -m 700 "$M/c/priv"
for f in open.npy priv/hidden.npy passed.npy; do "$PY" "$IOC" ones "$M/c/$f" 1024; done
chmod 644 "$M/c/open.npy" "$M/c/passed.npy"
chown 1000:1000 "$M/c/open.npy"
"$VV_BIN" snapshot create "$M" s >/dev/null
P=$M/.snapshots/s/c
chmod 600 "$M/c/open.npy"              # u1000 keeps it, others lose it, live

# The ioctl in the snapshot, as each uid (open read-only, then VV_IOC_KNN
# until the offload answers).
cat > "$T/ioc.py" <<'PYEOF'
import errno, fcntl, os, struct, sys, time
KNN = (3 << 30) | (16320 << 16) | (ord('v') << 8) | 0x4b
try:
    fd = os.open(sys.argv[1], os.O_RDONLY)
except OSError as e:
    print("open=" + errno.errorcode[e.errno]); sys.exit(0)
for _ in range(3000):
    b = bytearray(16320)
    struct.pack_into("<8I", b, 0, 0x4e4e4b56, 1, 1, 4, 1, 1, 0, 4)
    struct.pack_into("<4f", b, 48, 1, 1, 1, 1)
    try:
        fcntl.ioctl(fd, KNN, b, True); print("ioctl=OK"); break
    except OSError as e:
        if e.errno not in (errno.EAGAIN, errno.EBUSY):
            print("ioctl=" + errno.errorcode[e.errno]); break
        time.sleep(0.01)
PYEOF
chmod 644 "$T/ioc.py"; chmod 755 "$T"
check "u1000: k-NN ioctl on the snapshot's copy works" bash -c "as_u1000 '$PY' '$T/ioc.py' '$P/open.npy' | grep -qx ioctl=OK"
check "u1001: the snapshot's copy was readable then (0644): ioctl works" \
	bash -c "as_u1001 '$PY' '$T/ioc.py' '$P/open.npy' | grep -qx ioctl=OK"
check "u1001: the live file (0600 now): open EACCES" bash -c "as_u1001 '$PY' '$T/ioc.py' '$M/c/open.npy' | grep -qx open=EACCES"
check "nobody: a segment behind a 0700 directory: EACCES" \
	bash -c "as_nobody '$PY' '$T/ioc.py' '$P/priv/hidden.npy' | grep -qx open=EACCES"
want nobody EACCES getxattr "$P/priv/hidden.npy" user.vecvault.rows
want nobody EACCES stat "$P/priv/hidden.npy"
# Links and renames across .snapshots, for every uid.
for who in nobody u1000 u1001 root; do
	want $who EROFS link "$P/open.npy" "$P/link.npy"
	want $who EROFS rename "$P/open.npy" "$P/moved.npy"
done
want u1000 EROFS rename "$M/c/passed.npy" "$P/passed2.npy"
want u1000 EROFS link "$P/open.npy" "$M/c/back.npy"
want root EROFS rename "$P/open.npy" "$M/c/back.npy"
check "nothing appeared in the snapshot" test ! -e "$P/link.npy" -a ! -e "$P/moved.npy" -a ! -e "$P/passed2.npy"

# A descriptor passed to nobody, then the purge.
rm "$M/c/passed.npy"
cat > "$T/pass.py" <<'PYEOF'
import array, errno, fcntl, os, socket, struct, subprocess, sys, time
path, VV, M, PY = sys.argv[1:5]
a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
child = os.fork()
if child == 0:                       # nobody, receives the fd
    a.close()
    os.setgroups([]); os.setgid(65534); os.setuid(65534)
    msg, anc, _, _ = b.recvmsg(8, socket.CMSG_LEN(4))
    fd = array.array("i", anc[0][2][:4])[0]
    def rd():
        try:
            return "DATA" if os.pread(fd, 16, 128).strip(b"\0") else "ZEROS"
        except OSError as e:
            return errno.errorcode[e.errno]
    def knn():
        bb = bytearray(16320)
        struct.pack_into("<8I", bb, 0, 0x4e4e4b56, 1, 1, 4, 1, 1, 0, 4)
        for _ in range(3000):
            try:
                fcntl.ioctl(fd, (3 << 30) | (16320 << 16) | (ord('v') << 8) | 0x4b, bb, True); return "OK"
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EBUSY): return errno.errorcode[e.errno]
                time.sleep(0.01)
        return "EAGAIN"
    out = "before:%s,%s" % (rd(), knn())
    b.send(b"1"); b.recv(1)          # root purges
    out += " after:%s,%s" % (rd(), knn())
    b.send(out.encode()); os._exit(0)
b.close()
fd = os.open(path, os.O_RDONLY)
a.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
os.close(fd)
a.recv(1)
subprocess.check_call([VV, "trash", "purge", M, "--all"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
a.send(b"1")
print(a.recv(200).decode())
os.waitpid(child, 0)
PYEOF
res=$("$PY" "$T/pass.py" "$M/.trash/files/passed.npy" "$VV_BIN" "$M" "$PY" 2>&1)
echo "# $res"
check "a passed descriptor reads and scans before the purge" grep -q "before:DATA,OK" <<<"$res"
check "... and gets EIO for both after it" grep -q "after:EIO,EIO" <<<"$res"

# Another user's trash item: neither mv nor the CLI restores it.
mkdir -m 1777 "$M/c/tmp"
as_u1000 sh -c "echo mine > '$M/c/tmp/u1000-file'; chmod 600 '$M/c/tmp/u1000-file'; rm '$M/c/tmp/u1000-file'"
want u1001 ENOENT rename "$M/.trash/files/u1000-file" "$M/c/tmp/stolen"
rc=0; as_u1001 "$VV_BIN" trash restore "$M" /c/tmp/u1000-file >/dev/null 2>&1 || rc=$?
check "u1001: trash restore of u1000's item refused" test "$rc" = 1
check "... nothing restored" test ! -e "$M/c/tmp/u1000-file" -a ! -e "$M/c/tmp/stolen"
rc=0; as_u1001 "$VV_BIN" trash purge "$M" /c/tmp/u1000-file >/dev/null 2>&1 || rc=$?
check "u1001: trash purge of u1000's item refused" test "$rc" = 1
check "u1000 restores it" bash -c "as_u1000 '$VV_BIN' trash restore '$M' /c/tmp/u1000-file >/dev/null"
check "... intact, at once (the kernel's negative entry for the name is dropped)" sh -c "grep -qx mine '$M/c/tmp/u1000-file'"
check "unmount" vv_umount "$M"
check "fsck: clean" sh -c "'$VV_BIN' fsck '$S' --passfile '$PASSFILE' >'$T/fsck' 2>&1"
test_done
