#!/bin/bash
# t1026-cold-read-handles: the cold sequential read path (blocks decrypted
# ahead, dropped once read to their end, and handed to the kernel from the
# block cache's own buffers instead of copied) attacked through every kind
# of handle.  After a remount and drop_caches, so reads reach the daemon:
# another user's sequential read of a file it may read is exactly the file;
# a user who may not read gets EACCES, and no handle without read access
# (O_PATH, open mode 3, both also passed to another user) reads a byte;
# a read handle passed to another user, and a read handle kept across a
# chmod 600 (a revoke), read exactly the file, while new opens are refused;
# two users streaming the same file at once each get the file; and the
# audit still sums every byte served per handle (close, rbytes).
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
vv_init "$S" >/dev/null
SIZE=$((9 * 1048576 + 4321))
head -c "$SIZE" /dev/urandom > "$T/orig"
H=$(sha256sum < "$T/orig" | cut -c1-64)

cold() { vv_cold "$S" "$M"; }   # the next reads reach the daemon

# hash_of PATH: sha256 of a sequential read in 1 MiB pieces, or the errno.
HASHPY='
import errno, hashlib, os, sys
h = hashlib.sha256()
try:
    fd = os.open(sys.argv[1], os.O_RDONLY)
    while True:
        b = os.read(fd, 1 << 20)
        if not b: break
        h.update(b)
    os.close(fd)
    print(h.hexdigest())
except OSError as e:
    print(errno.errorcode[e.errno])
'
# read_via FLAGS PATH [UID]: open with FLAGS (O_PATH, 3, RDONLY) as root,
# then (as UID, after setuid in a child, when given) read through the fd:
# the sha256 of everything read, or the errno of the first failure.
VIAPY='
import errno, hashlib, os, sys
flags = {"O_PATH": os.O_PATH, "3": 3, "RDONLY": os.O_RDONLY}[sys.argv[1]]
try:
    fd = os.open(sys.argv[2], flags)
except OSError as e:
    print("open:" + errno.errorcode[e.errno]); sys.exit(0)
def reader():
    h = hashlib.sha256()
    try:
        while True:
            b = os.read(fd, 1 << 20)
            if not b: break
            h.update(b)
        return h.hexdigest()
    except OSError as e:
        return errno.errorcode[e.errno]
if len(sys.argv) > 3:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.setgroups([]); os.setgid(int(sys.argv[3])); os.setuid(int(sys.argv[3]))
        os.write(w, reader().encode()); os._exit(0)
    os.close(w)
    out = os.read(r, 200).decode()
    os.waitpid(pid, 0)
    print(out)
else:
    print(reader())
'

vv_mount "$S" "$M"
cp "$T/orig" "$M/pub"
cp "$T/orig" "$M/priv"
chmod 644 "$M/pub"
chmod 600 "$M/priv"
sync
cold

check "u1000: cold sequential read of a 0644 file is the file" \
	test "$(as_u1000 "$PY" -c "$HASHPY" "$M/pub")" = "$H"
want nobody EACCES read "$M/priv"
cold
check "nobody: O_PATH handle of a 0600 file reads nothing (EBADF)" \
	test "$(as_nobody "$PY" -c "$VIAPY" O_PATH "$M/priv")" = EBADF
check "root: open mode 3 handle reads nothing (EBADF)" \
	test "$("$PY" -c "$VIAPY" 3 "$M/priv")" = EBADF
check "O_PATH handle passed to uid 65534 reads nothing (EBADF)" \
	test "$("$PY" -c "$VIAPY" O_PATH "$M/priv" 65534)" = EBADF
check "open mode 3 handle passed to uid 65534 reads nothing (EBADF)" \
	test "$("$PY" -c "$VIAPY" 3 "$M/priv" 65534)" = EBADF
check "u1000: open mode 3 of a 0600 file refused (EACCES)" \
	test "$(as_u1000 "$PY" -c "$VIAPY" 3 "$M/priv")" = open:EACCES
check "read handle passed to uid 65534: cold, reads exactly the file" \
	test "$("$PY" -c "$VIAPY" RDONLY "$M/priv" 65534)" = "$H"

# A handle kept across a revoke (chmod 600 with the page cache dropped in
# between): what it was opened for, every byte right; a new open refused.
cold
coproc RD { as_u1000 "$PY" -u -c '
import hashlib, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
h = hashlib.sha256(os.read(fd, 1 << 20))
print("opened")
sys.stdin.readline()
while True:
    b = os.read(fd, 1 << 20)
    if not b: break
    h.update(b)
print(h.hexdigest())
' "$M/pub"; }
read -r line <&"${RD[0]}"
check "revoke: the reader has its handle" test "$line" = opened
chmod 600 "$M/pub"
sync
echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
want u1000 EACCES read "$M/pub"
echo go >&"${RD[1]}"
read -r line <&"${RD[0]}"
wait "$RD_PID" 2>/dev/null || true
check "revoke: the handle opened before reads exactly the file, cold" test "$line" = "$H"
chmod 644 "$M/pub"

# Two users streaming the same file at once, cold.
cold
as_u1000 "$PY" -c "$HASHPY" "$M/pub" > "$T/r1" &
p1=$!
as_nobody "$PY" -c "$HASHPY" "$M/pub" > "$T/r2" &
p2=$!
wait $p1 $p2 || true
check "two users streaming at once: u1000 gets the file" test "$(cat "$T/r1")" = "$H"
check "two users streaming at once: nobody gets the file" test "$(cat "$T/r2")" = "$H"

# Audit: a cold read by u1000 is summed at close (rbytes = the file size).
cold
as_u1000 "$PY" -c "$HASHPY" "$M/pub" >/dev/null
LOG=$(vv_audit_log "$S")
check "audit: the cold read's close has rbytes = file size" \
	vv_audit_has "$LOG" op=close path=/pub uid=1000 result=ok mode=r rbytes=$SIZE
test_done
