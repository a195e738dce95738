#!/bin/bash
# t1030-seal-order: several sealer threads write chunks at once, and a
# file's newer data still lands last.  Through the mount: one handle
# rewrites the same 4 MiB eight times without a sync between (eight jobs
# of the same blocks in flight on the sealers); three handles of one file
# rewrite three regions at once; a file written by dd while two other
# files stream beside it.  Each reads back exactly its last version warm,
# after a remount with the page cache dropped, and fsck is clean.
# Meanwhile uid 65534 and u1000, whom the file's mode refuses, try to write
# through every handle they can get (open for writing, an O_PATH handle,
# mode 3, a read handle passed from root, truncate): refused, and the file
# is unchanged by them.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store M=$T/mnt
vv_init "$S" >/dev/null
vv_mount "$S" "$M" -o allow_other
mkdir -m 755 "$M/c"

# rewrite FILE: round r of region g is bytes (i*7 + g*31 + r*101 + i/65536)
# mod 256; writes 1 MiB at a time.  Expected bytes go to $T/want-FILE.
check "eight rewrites of one 4 MiB region, no sync between" "$PY" - "$M/c/one" "$T/want-one" <<'EOF'
import os, sys
MB = 1 << 20
def region(g, r):
    return bytes(((i * 7 + g * 31 + r * 101 + (i >> 16)) & 255) for i in range(4 * MB))
f = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
for r in range(8):
    d = region(0, r)
    for m in range(4):
        os.pwrite(f, d[m * MB:(m + 1) * MB], m * MB)
os.close(f)       # close, no fsync: the jobs settle at flush
open(sys.argv[2], "wb").write(d)
EOF
check "the last rewrite reads back warm" cmp "$M/c/one" "$T/want-one"

check "three handles rewrite three regions of one file at once" "$PY" - "$M/c/shared" "$T/want-shared" <<'EOF'
import os, sys, threading
MB = 1 << 20
def region(g, r):
    return bytes(((i * 7 + g * 31 + r * 101 + (i >> 16)) & 255) for i in range(4 * MB))
p = sys.argv[1]
open(p, "wb").close()
final = {}
def writer(g):
    f = os.open(p, os.O_WRONLY)
    for r in range(5):
        d = region(g, r)
        for m in range(4):
            os.pwrite(f, d[m * MB:(m + 1) * MB], g * 4 * MB + m * MB)
    final[g] = d
    os.fsync(f)
    os.close(f)
ts = [threading.Thread(target=writer, args=(g,)) for g in range(3)]
for t in ts: t.start()
for t in ts: t.join()
open(sys.argv[2], "wb").write(final[0] + final[1] + final[2])
EOF
check "every region holds its writer's last round" cmp "$M/c/shared" "$T/want-shared"

head -c $((37 * 1048576 + 4321)) /dev/urandom > "$T/big"
head -c $((9 * 1048576 + 1)) /dev/urandom > "$T/s1"
head -c $((13 * 1048576 + 65535)) /dev/urandom > "$T/s2"
dd if="$T/s1" of="$M/c/s1" bs=1M conv=fsync status=none &
p1=$!
dd if="$T/s2" of="$M/c/s2" bs=256k conv=fsync status=none &
p2=$!
check "dd of 37 MiB + odd tail beside two other streams" \
	dd if="$T/big" of="$M/c/big" bs=1M conv=fsync status=none
check "the two other streams finish" wait "$p1" "$p2"

# Attacks while the file is there: it is 0644, root's.
chmod 755 "$M" 2>/dev/null || true
for who in as_nobody as_u1000; do
	out=$($who "$PY" - "$M/c/one" <<'EOF'
import errno, os, sys
p = sys.argv[1]
res = []
def tryop(name, fn):
    try:
        fn(); res.append(name + "=OK")
    except OSError as e:
        res.append(name + "=" + errno.errorcode.get(e.errno, str(e.errno)))
tryop("open-w", lambda: os.open(p, os.O_WRONLY))
tryop("open-rw", lambda: os.open(p, os.O_RDWR))
def opath():
    fd = os.open(p, os.O_PATH)
    try: os.pwrite(fd, b"x", 0)
    finally: os.close(fd)
tryop("opath-write", opath)
def mode3():
    fd = os.open(p, 3)
    try: os.pwrite(fd, b"x", 0)
    finally: os.close(fd)
tryop("mode3-write", mode3)
def rdwrite():
    fd = os.open(p, os.O_RDONLY)
    try: os.pwrite(fd, b"x", 0)
    finally: os.close(fd)
tryop("rdonly-write", rdwrite)
tryop("truncate", lambda: os.truncate(p, 0))
print(" ".join(res))
EOF
)
	check "$who: no write through any handle ($out)" \
		test "$(echo "$out" | grep -o '=OK' | wc -l)" = 0
done
# A read handle root opened, passed to nobody: still no write.
out=$("$PY" - "$M/c/one" <<'EOF'
import errno, os, subprocess, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                    "/usr/bin/python3", "-c",
                    "import os, errno\n"
                    "try:\n os.pwrite(%d, b'x', 0); print('OK')\n"
                    "except OSError as e: print(errno.errorcode[e.errno])" % fd],
                   pass_fds=(fd,), capture_output=True, text=True)
print(r.stdout.strip())
EOF
)
check "a passed read handle does not write ($out)" test "$out" = EBADF

vv_cold "$S" "$M" -o allow_other
check "after remount: the rewritten file is its last version" cmp "$M/c/one" "$T/want-one"
check "after remount: the shared file's regions" cmp "$M/c/shared" "$T/want-shared"
check "after remount: the dd file" cmp "$M/c/big" "$T/big"
check "after remount: stream 1" cmp "$M/c/s1" "$T/s1"
check "after remount: stream 2" cmp "$M/c/s2" "$T/s2"
vv_umount "$M"
check "fsck is clean" "$VV_BIN" fsck "$S" --passfile "$PASSFILE"
check "no temporary chunk file is left" \
	test -z "$(find "$S/chunks" -name '.tmp-*' -print -quit)"
test_done
