#!/bin/bash
# t1027-write-only-direct: write-only handles bypass the page cache
# (FOPEN_DIRECT_IO, docs/design.md "Small files: requests per file"), which
# spares the kernel's security.capability GETXATTR before every write(2).
# What must not change: readers holding cached pages (read handle, shared
# mapping) see a write-only handle's bytes at once; O_APPEND from several
# writers loses nothing; odd sizes across the inline limit and 64 KiB
# blocks read back exactly, warm and cold; writev, pwritev, sendfile and
# copy_file_range write the same bytes; setuid/setgid and a capability
# still go at a write by another user through such a handle (the daemon's
# job, the kernel no longer asks); an O_WRONLY handle cannot be mapped or
# read, also when passed to nobody; and the FUSE requests of a tar -x are
# counted: no GETXATTR per write, one WRITE per write(2).
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
vv_init "$S" >/dev/null
vv_mount "$S" "$M"
mkdir "$M/c"
chmod 1777 "$M/c"

# --- coherency with cached readers --------------------------------------------
COH='
import mmap, os, sys
p = sys.argv[1]
with open(p, "wb") as f: f.write(b"a" * 200000)
r = os.open(p, os.O_RDONLY)
assert os.pread(r, 200000, 0) == b"a" * 200000        # pages now cached
m = mmap.mmap(r, 200000, mmap.MAP_SHARED, mmap.PROT_READ)
assert m[150000:150004] == b"aaaa"
w = os.open(p, os.O_WRONLY)
os.pwrite(w, b"B" * 70000, 100000)                     # across a 64 KiB block
os.pwrite(w, b"C", 3)
got = os.pread(r, 200000, 0)
if got != b"aaaC" + b"a" * 99996 + b"B" * 70000 + b"a" * 30000:
    sys.exit("read handle still sees old bytes")
if m[3:4] != b"C" or m[100000:170000] != b"B" * 70000:
    sys.exit("shared mapping still sees old bytes")
os.close(w)
r2 = os.open(p, os.O_RDONLY)
if os.pread(r2, 200000, 0) != got: sys.exit("a new read handle differs")
print("ok")'
check "a read handle and a shared mapping see a write-only handle's bytes at once" \
	"$PY" -c "$COH" "$M/c/coh"

# --- appends from several write-only handles -----------------------------------
APP='
import os, sys
p = sys.argv[1]
fds = [os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) for _ in range(3)]
for i in range(300):
    os.write(fds[i % 3], b"%05d\n" % i)
for fd in fds: os.close(fd)
lines = open(p, "rb").read().split(b"\n")[:-1]
if sorted(int(x) for x in lines) != list(range(300)): sys.exit("appends lost or torn")
print("ok")'
check "O_APPEND through three write-only handles loses nothing" "$PY" -c "$APP" "$M/c/app"

# --- other ways into a write-only handle: writev, pwritev, sendfile,
# copy_file_range ------------------------------------------------------------
WAYS='
import os, sys
d, src = sys.argv[1], sys.argv[2]
data = open(src, "rb").read()
def wo(n): return os.open(os.path.join(d, n), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
fd = wo("writev"); os.writev(fd, [data[:5000], data[5000:70000], data[70000:]]); os.close(fd)
fd = wo("pwritev"); os.pwritev(fd, [data[:100], data[100:]], 0); os.close(fd)
s = os.open(src, os.O_RDONLY)
fd = wo("sendfile"); off = 0
while off < len(data): off += os.sendfile(fd, s, off, len(data) - off)
os.close(fd)
with open(os.path.join(d, "src"), "wb") as f: f.write(data)
s2 = os.open(os.path.join(d, "src"), os.O_RDONLY)     # same mount: no EXDEV
fd = wo("cfr"); off = 0
while off < len(data):
    n = os.copy_file_range(s2, fd, len(data) - off, off, off)
    if n == 0: break
    off += n
os.close(fd)
bad = [n for n in ("writev", "pwritev", "sendfile", "cfr") if open(os.path.join(d, n), "rb").read() != data]
sys.exit("differ: " + " ".join(bad) if bad else 0)'
head -c 300001 /dev/urandom > "$T/ways.src"
mkdir "$M/c/ways"
check "writev, pwritev, sendfile and copy_file_range into write-only handles" \
	"$PY" -c "$WAYS" "$M/c/ways" "$T/ways.src"

# --- odd sizes, read back warm and cold --------------------------------------
SIZES="0 1 4095 4097 65535 65536 65537 200001 1048577 4194305"
MK='
import os, sys, random
d, sizes = sys.argv[1], [int(x) for x in sys.argv[2:]]
rng = random.Random(7)
for n in sizes:
    data = rng.randbytes(n)
    fd = os.open(os.path.join(d, "s%d" % n), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    off = 0
    while off < n:                       # tar-like: 10 KiB records, odd first piece
        step = min(n - off, 1024 if off == 0 else 10240)
        off += os.write(fd, data[off:off + step])
    os.fsync(fd); os.close(fd)
    with open(os.path.join(sys.argv[1] + ".ref", "s%d" % n), "wb") as f: f.write(data)
'
mkdir "$M/c/sz" "$M/c/sz.ref"
"$PY" -c "$MK" "$M/c/sz" $SIZES
check "sizes across the inline limit and block edges read back warm" diff -r "$M/c/sz.ref" "$M/c/sz"
cp -a "$M/c/sz.ref" "$T/ref"
vv_umount "$M"
check "fsck finds the store clean" "$VV_BIN" fsck "$S" --passfile "$PASSFILE" --dry-run
sync
echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
vv_mount "$S" "$M"
check "... and they read back cold" diff -r "$T/ref" "$M/c/sz"

# --- killpriv through a write-only handle by another user ----------------------
as_u1000 "$PY" -c 'import os,sys; os.close(os.open(sys.argv[1], os.O_WRONLY|os.O_CREAT, 0o777))' "$M/c/sx"
as_u1000 chmod 6777 "$M/c/sx"
check "u1001 writes u1000's setuid file through O_WRONLY: bits cleared" sh -c "
	setpriv --reuid=1001 --regid=1001 --groups=2000 -- '$PY' -c '
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
os.write(fd, b\"x\" * 5000)' '$M/c/sx' && test \"\$(stat -c %a '$M/c/sx')\" = 777"
CAPW='
import os, struct, sys
p = sys.argv[1]
os.setxattr(p, "security.capability", struct.pack("<IIIII", 0x02000001, 1 << 10, 0, 0, 0))
fd = os.open(p, os.O_WRONLY)
os.write(fd, b"y")
sys.exit("capability kept after a write-only write" if "security.capability" in os.listxattr(p) else 0)'
check "root writes through O_WRONLY: the capability goes" "$PY" -c "$CAPW" "$M/c/sx"
chmod 666 "$M/c/sx"
"$PY" -c 'import os, struct, sys; os.setxattr(sys.argv[1], "security.capability", struct.pack("<IIIII", 0x02000001, 1 << 10, 0, 0, 0))' "$M/c/sx"
check "u1001 writes through O_WRONLY: the capability goes (the daemon drops it)" sh -c "
	setpriv --reuid=1001 --regid=1001 --groups=2000 -- '$PY' -c '
import os, sys
os.write(os.open(sys.argv[1], os.O_WRONLY), b\"z\")' '$M/c/sx' &&
	! getfattr -n security.capability '$M/c/sx' >/dev/null 2>&1"

# --- what a write-only handle cannot do ---------------------------------------
echo secret > "$M/c/wo"
chmod 622 "$M/c/wo"
WO='
import errno, mmap, os, sys
fd = int(sys.argv[1]) if len(sys.argv) > 1 else os.open("'"$M"'/c/wo", os.O_WRONLY)
out = []
for what, fn in (("read", lambda: os.read(fd, 10)),
                 ("pread", lambda: os.pread(fd, 10, 0)),
                 ("mmap shared", lambda: mmap.mmap(fd, 6, mmap.MAP_SHARED, mmap.PROT_READ)),
                 ("mmap private", lambda: mmap.mmap(fd, 6, mmap.MAP_PRIVATE, mmap.PROT_READ))):
    try:
        fn(); out.append(what + "=ok")
    except OSError as e:
        out.append(what + "=" + errno.errorcode[e.errno])
print(" ".join(out))'
got=$(as_u1000 "$PY" -c "$WO")
check "u1000's O_WRONLY handle: no read, no mapping ($got)" \
	test "$got" = "read=EBADF pread=EBADF mmap shared=EACCES mmap private=EACCES"
PASS='
import os, subprocess, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
print(subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
    sys.argv[2], "-c", sys.argv[3], str(fd)], pass_fds=[fd], capture_output=True, text=True).stdout.strip())'
got=$("$PY" -c "$PASS" "$M/c/wo" "$PY" "$WO")
check "the same handle passed to nobody: no read, no mapping ($got)" \
	test "$got" = "read=EBADF pread=EBADF mmap shared=EACCES mmap private=EACCES"
check "the file is unchanged" test "$(cat "$M/c/wo")" = secret

# --- requests per file of a tar -x ---------------------------------------------
# A second daemon traces its FUSE requests (-d, in the foreground).
vv_umount "$M"
SRC=$T/src
mkdir -p "$SRC/a/b"
"$PY" -c '
import os, random, sys
rng = random.Random(3)
for i in range(60):
    with open(os.path.join(sys.argv[1], "a/b/f%02d" % i), "wb") as f:
        f.write(rng.randbytes(rng.choice((100, 3000, 25000, 70000))))' "$SRC"
tar -cf "$T/t.tar" -C "$SRC" .
D=$T/dmnt
mkdir -p "$D"
pidf=$T/.pids/dbg
"$VV_BIN" mount "$S" "$D" --passfile "$PASSFILE" --pid-file "$pidf" --log "$T/dbg.log" -d &
printf '%s\t%s\n' "$D" "$pidf" >> "$VV_MOUNTS"
for i in $(seq 300); do mountpoint -q "$D" && break; sleep 0.1; done
mkdir "$D/x"
before=$(grep -c 'opcode:' "$T/dbg.log")
strace -f -e trace=write -o "$T/tar.st" tar -xf "$T/t.tar" -C "$D/x" 2>/dev/null ||
	tar -xf "$T/t.tar" -C "$D/x"
vv_umount "$D"
tail -n +"$((before + 1))" "$T/dbg.log" | grep -o 'opcode: [A-Z_]*' | sort | uniq -c > "$T/ops"
sed 's/^/# /' "$T/ops"
nget=$(awk '$3 == "GETXATTR" { print $1 }' "$T/ops")
nwr=$(awk '$3 == "WRITE" { print $1 }' "$T/ops")
check "tar -x of 60 files: at most one GETXATTR per file (its fchown), got ${nget:-0}" \
	test "${nget:-0}" -le 60
if [ -s "$T/tar.st" ]; then
	nsys=$(grep -c '^[0-9]* *write([4-9],' "$T/tar.st" || true)
	check "tar -x: one WRITE request per write(2) ($nwr requests, $nsys calls)" \
		test "${nwr:-0}" -le "$nsys"
fi
vv_mount "$S" "$M"
check "the extracted tree is the source" diff -r "$SRC" "$M/x"
test_done
