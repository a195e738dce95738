#!/bin/bash
# t6015-purge-revokes: what is purged or deleted is gone for every handle.
# A file purged from the trash reads EIO through a handle opened before
# (on its live name before the rm, or on .trash/files), and the query
# offload (VV_IOC_KNN) on that handle answers EIO, never the cached copy,
# nor the kernel's page cache once the purge command returned;
# an O_PATH handle kept across a snapshot's delete cannot be reopened
# (/proc/self/fd) into its data, and ioctl on O_PATH is EBADF.  Space:
# statfs counts trashed bytes as used until the purge (the store on its
# own tmpfs, so nobody else's files move the numbers), and `vecvault info`
# / `vecvault stats` show the trash's and the snapshots' sizes.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse
[ "$(id -u)" = 0 ] || { echo "1..0 # SKIP needs root for a small tmpfs"; vv_done=1; exit 77; }

FS=$T/fs
mkdir "$FS"
mount -t tmpfs -o size=64m tmpfs "$FS" || { echo "1..0 # SKIP cannot mount tmpfs"; vv_done=1; exit 77; }
S=$FS/store
M=$T/mnt
IOC=$T/knn_ioc.py
cp "$VV_SRC/tests/integration/lib/knn_ioc.py" "$IOC"
vv_init "$S" >/dev/null 2>&1
LOG=$(vv_audit_log "$S")
check "mount" vv_mount "$S" "$M"
mkdir -m 755 "$M/c"
# Two segments of real rows (rows of 1.0 show whether data came back).
"$PY" "$IOC" ones "$M/c/live.npy" 4096
"$PY" "$IOC" ones "$M/c/trashed.npy" 4096
vv_sync "$M"

# The Python side: open handles, fill the offload's cache, remove and
# purge through the CLI, then use the old handles.
cat > "$T/revoke.py" <<'PYEOF'
import errno, os, subprocess, sys, time
M, VV = sys.argv[1], sys.argv[2]
SIZE, KNN = 16320, (3 << 30) | (16320 << 16) | (ord('v') << 8) | 0x4b
import fcntl, struct
def knn(fd):
    b = bytearray(SIZE)
    struct.pack_into("<8I", b, 0, 0x4e4e4b56, 1, 1, 4, 1, 1, 0, 4)
    struct.pack_into("<4f", b, 48, 1, 1, 1, 1)
    try:
        fcntl.ioctl(fd, KNN, b, True)
        return "OK"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
def warm(fd):
    for _ in range(3000):
        e = knn(fd)
        if e == "OK":
            return e
        time.sleep(0.01)
    return e
def rd(fd):
    try:
        b = os.pread(fd, 64, 128)
        return "DATA" if b.strip(b"\0") else "ZEROS"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
out = []
live = os.open(M + "/c/live.npy", os.O_RDONLY)        # opened on the live name
out.append("warm=" + warm(live))
subprocess.check_call(["rm", M + "/c/live.npy"])
out.append("after-rm:ioctl=%s,read=%s" % (knn(live), rd(live)))   # in the trash: still there
subprocess.check_call(["rm", M + "/c/trashed.npy"])
tr = os.open(M + "/.trash/files/trashed.npy", os.O_RDONLY)   # opened inside the trash
out.append("trash-warm=" + warm(tr))
subprocess.check_call([VV, "trash", "purge", M, "--all"], stdout=subprocess.DEVNULL)
out.append("purged:ioctl=%s,read=%s" % (knn(live), rd(live)))
out.append("purged-trash:ioctl=%s,read=%s" % (knn(tr), rd(tr)))
# A handle reopened from the purged one (/proc/self/fd) gets nothing either.
try:
    fd2 = os.open("/proc/self/fd/%d" % live, os.O_RDONLY)
    out.append("reopen=" + rd(fd2))
except OSError as e:
    out.append("reopen=" + errno.errorcode.get(e.errno, str(e.errno)))
os.close(live); os.close(tr)
print(" ".join(out))
PYEOF
res=$("$PY" "$T/revoke.py" "$M" "$VV_BIN" "$IOC" 2>"$T/revoke.err")
echo "# $res"
check "the offload serves the live file" grep -q "warm=OK" <<<"$res"
check "trashed, the old handle still reads (like unlink)" grep -q "after-rm:ioctl=OK,read=DATA" <<<"$res"
check "the offload serves the trashed file" grep -q "trash-warm=OK" <<<"$res"
check "purged: the handle from the live name gets EIO for ioctl and read" \
	grep -q "purged:ioctl=EIO,read=EIO" <<<"$res"
check "purged: the handle from .trash gets EIO for ioctl and read" \
	grep -q "purged-trash:ioctl=EIO,read=EIO" <<<"$res"
check "purged: reopening through /proc/self/fd gives no data" grep -Eq "reopen=(ENOENT|EIO|ESTALE)" <<<"$res"

# Snapshots: an O_PATH handle across the delete.
echo kept > "$M/c/small"
"$VV_BIN" snapshot create "$M" s1 >/dev/null
res=$("$PY" - "$M/.snapshots/s1/c/small" "$VV_BIN" "$M" <<'PYEOF'
import errno, fcntl, os, subprocess, sys
p, VV, M = sys.argv[1:4]
out = []
fd = os.open(p, os.O_PATH)
try:
    fcntl.ioctl(fd, (3 << 30) | (16320 << 16) | (ord('v') << 8) | 0x4b, bytearray(16320), True)
    out.append("opath-ioctl=OK")
except OSError as e:
    out.append("opath-ioctl=" + errno.errorcode[e.errno])
r = subprocess.run([VV, "snapshot", "delete", M, "s1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
out.append("delete=%d" % r.returncode)
try:
    fd2 = os.open("/proc/self/fd/%d" % fd, os.O_RDONLY)
    try:
        out.append("reopen=" + ("DATA" if os.read(fd2, 16) else "EMPTY"))
    except OSError as e:
        out.append("reopen-read=" + errno.errorcode[e.errno])
except OSError as e:
    out.append("reopen=" + errno.errorcode[e.errno])
print(" ".join(out))
PYEOF
)
echo "# $res"
check "ioctl on an O_PATH handle: EBADF" grep -q "opath-ioctl=EBADF" <<<"$res"
check "an O_PATH handle does not block the delete" grep -q "delete=0" <<<"$res"
check "... nor reopens into the deleted snapshot's data" grep -Eq "reopen(-read)?=(ENOENT|EIO|ESTALE)" <<<"$res"

# Space: trashed bytes stay used until the purge.
used_kb() { df -k --output=used "$FS" | tail -1 | tr -d ' '; }
head -c $((8 << 20)) /dev/urandom > "$M/c/big"
vv_sync "$M"
u0=$(used_kb)
rm "$M/c/big"
vv_sync "$M"; sleep 1
u1=$(used_kb)
echo "# used: $u0 KiB with the file, $u1 KiB with it in the trash"
check "statfs: trashed bytes still count as used" test "$u1" -ge $((u0 - 1024))
df_m() { stat -f -c '%b %f' "$M"; }
read -r b f <<<"$(df_m)"
read -r bb ff <<<"$(stat -f -c '%b %f' "$FS")"
check "the mount's statfs is the store's disk" test "$b" = "$bb"
info=$("$VV_BIN" info "$S" 2>&1)
echo "$info" | sed 's/^/# /'
check "info shows the trash (1 item, 8 MiB)" grep -q "^trash: *1 items, 8388608 bytes" <<<"$info"
"$VV_BIN" snapshot create "$M" s2 >/dev/null
stats=$("$VV_BIN" stats "$M" 2>&1)
echo "$stats" | sed 's/^/# /'
check "stats shows the trash" grep -q "^.trash  *items 1  bytes 8388608" <<<"$stats"
check "stats shows the snapshots" grep -q "^.snapshots  *count 1 " <<<"$stats"
info=$("$VV_BIN" info "$S" 2>&1)
check "info shows the snapshots" grep -q "^snapshots: *1, naming" <<<"$info"
as_nobody "$VV_BIN" info "$S" > "$T/info.nobody" 2>&1 || true
check "info as nobody: the totals are the owner's" sh -c "! grep -q '^trash: *1 items' '$T/info.nobody'"
# s2 was taken with the file in the trash: it holds the chunks too.
"$VV_BIN" snapshot delete "$M" s2 >/dev/null
"$VV_BIN" trash purge "$M" --all >/dev/null
for k in $(seq 1 100); do [ "$(used_kb)" -lt $((u0 - 4096)) ] && break; sleep 0.2; done
echo "# used after the purge: $(used_kb) KiB"
check "statfs: the purge gives the bytes back" test "$(used_kb)" -lt $((u0 - 4096))
check "purges are audited" vv_audit_has "$LOG" op=purge result=ok

# The page cache goes before `trash purge` returns: 60 times, a small file
# read through a handle (its pages cached), removed, purged, read again
# through that handle: EIO every time, never the pages.  The daemon sends
# invalidations from its notifier thread; before the control reply waited
# for them, 1-3% of such reads were served from the kernel's cache.
mkdir "$M/race"
for i in $(seq 0 59); do head -c 2000 /dev/urandom > "$M/race/f$i"; done
vv_sync "$M"
cat > "$T/race.py" <<'PYEOF'
import os, subprocess, sys
D, M, VV = sys.argv[1], sys.argv[2], sys.argv[3]
served = 0
for i in range(60):
    fd = os.open("%s/f%d" % (D, i), os.O_RDONLY)
    os.pread(fd, 64, 0)
    os.unlink("%s/f%d" % (D, i))
    subprocess.check_call([VV, "trash", "purge", M, "--all"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    try:
        os.pread(fd, 64, 0)
        served += 1
    except OSError:
        pass
    os.close(fd)
print(served)
PYEOF
got=$("$PY" "$T/race.py" "$M/race" "$M" "$VV_BIN" 2>"$T/race.err")
check "60 purges: no old handle read its cached pages after the purge returned (got $got)" \
	test "$got" = 0
check "unmount" vv_umount "$M"
check "fsck: clean" sh -c "'$VV_BIN' fsck '$S' --passfile '$PASSFILE' >'$T/fsck' 2>&1"
umount "$FS"
test_done
