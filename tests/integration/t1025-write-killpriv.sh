#!/bin/bash
# t1025-write-killpriv: what killpriv protects, through handles that stay
# open across the change (the kernel caches nothing for writes here, but
# FUSE_HANDLE_KILLPRIV_V2, tried for tar -x and reverted, would have let it
# skip checks: docs/design.md "Small files"): setuid/setgid go at every
# write by a non-root user, also through a handle opened before a chmod
# u+s (as owner, as another user with write access, after an fchmod on a
# second handle), at truncate, fallocate and chown; a security.capability
# set while a handle is open goes at that handle's next write, and at the
# first write of a new one; and at a write (through a handle opened before
# it was set), truncate or fallocate by a user who is not root, which the
# kernel cannot see (security.* is hidden from non-root): the daemon drops
# it and audits that.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
vv_init "$S" >/dev/null
vv_mount "$S" "$M"
mkdir "$M/c"
chmod 1777 "$M/c"

# --- setuid/setgid: cleared at every non-root write --------------------------
# KP FILE: as the file's owner, keep one handle open across chmods and
# check the mode after each write (exit status 1 names the failing step).
KP='
import os, sys
p = sys.argv[1]
def mode(): return os.stat(p).st_mode & 0o7777
fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o755)
os.write(fd, b"a")
steps = []
for setmode in (0o4755, 0o2755, 0o6755):
    os.chmod(p, setmode)
    if mode() != setmode: sys.exit("chmod %o did not take: %o" % (setmode, mode()))
    os.write(fd, b"b"); steps.append(mode())
os.chmod(p, 0o4755)
for i in range(3): os.write(fd, b"c")
steps.append(mode())
fd2 = os.open(p, os.O_WRONLY)
os.fchmod(fd2, 0o4755)
os.write(fd, b"d"); steps.append(mode())
print(" ".join("%o" % m for m in steps))
sys.exit(0 if all(m == 0o755 for m in steps) else 1)'
check "owner: setuid/setgid cleared by each write through an open handle" \
	as_u1000 "$PY" -c "$KP" "$M/c/own"
as_u1000 "$PY" -c 'import os,sys; fd=os.open(sys.argv[1], os.O_WRONLY|os.O_CREAT, 0o777); os.close(fd)' "$M/c/shared"
as_u1000 chmod 6777 "$M/c/shared"
check "u1001 writes a setuid file of u1000 it may write: bits cleared" sh -c "
	setpriv --reuid=1001 --regid=1001 --groups=2000 -- '$PY' -c '
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
os.write(fd, b\"1\"); os.write(fd, b\"2\")' '$M/c/shared' &&
	test \"\$(stat -c %a '$M/c/shared')\" = 777"
as_u1000 chmod 6777 "$M/c/shared"
check "u1001 truncates it: bits cleared" sh -c "
	setpriv --reuid=1001 --regid=1001 --groups=2000 -- truncate -s 0 '$M/c/shared' &&
	test \"\$(stat -c %a '$M/c/shared')\" = 777"
as_u1000 chmod 6777 "$M/c/shared"
check "u1001 fallocates it: bits cleared" sh -c "
	setpriv --reuid=1001 --regid=1001 --groups=2000 -- '$PY' -c '
import os, sys
os.posix_fallocate(os.open(sys.argv[1], os.O_WRONLY), 0, 100)' '$M/c/shared' &&
	test \"\$(stat -c %a '$M/c/shared')\" = 777"
chmod 4755 "$M/c/own"
chown 1001 "$M/c/own"
check "chown clears setuid" test "$(stat -c %a "$M/c/own")" = 755

# --- security.capability: removed at the next write --------------------------
CAP='
import os, struct, sys
p = sys.argv[1]
cap = struct.pack("<IIIII", 0x02000001, 1 << 10, 0, 0, 0)   # cap_net_bind_service
fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o755)
os.write(fd, b"a"); os.write(fd, b"b")           # the inode is marked checked
os.setxattr(p, "security.capability", cap)
if "security.capability" not in os.listxattr(p): sys.exit("setxattr did not take")
os.write(fd, b"c")
if "security.capability" in os.listxattr(p): sys.exit("kept after a write on an open handle")
os.setxattr(p, "security.capability", cap)
fd2 = os.open(p, os.O_WRONLY)
os.write(fd2, b"d")
if "security.capability" in os.listxattr(p): sys.exit("kept after a write on a new handle")'
check "a capability goes at the next write (open handle and new one)" "$PY" -c "$CAP" "$M/c/cap"

# The same for a writer who is not root: the kernel cannot see the
# capability then (security.* is hidden from non-root), so the daemon
# drops it itself, at a write, a truncate and a fallocate, also through a
# handle opened before root set it.
SETCAP='
import os, struct, sys
os.setxattr(sys.argv[1], "security.capability", struct.pack("<IIIII", 0x02000001, 1 << 10, 0, 0, 0))'
hascap='import os, sys
sys.exit(0 if "security.capability" in os.listxattr(sys.argv[1]) else 1)'
nocap='import os, sys
sys.exit(1 if "security.capability" in os.listxattr(sys.argv[1]) else 0)'
LOG=$(vv_audit_log "$S")
for how in write truncate fallocate; do
	f=$M/c/cap-$how
	echo x > "$f"
	chmod 666 "$f"
	"$PY" -c "$SETCAP" "$f"
	check "root set a capability on cap-$how" "$PY" -c "$hascap" "$f"
	case $how in
	write)
		# u1001 opens first; root sets the capability again while
		# that handle is open; then u1001 writes through it
		as_u1001 /usr/bin/python3 -c 'import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY)
open(sys.argv[2], "w").close()
while os.path.exists(sys.argv[2]):
    time.sleep(0.05)
os.write(fd, b"y")' "$f" "$M/c/go" &
		wp=$!
		for i in $(seq 1 100); do [ -e "$M/c/go" ] && break; sleep 0.05; done
		"$PY" -c "$SETCAP" "$f"
		rm -f "$M/c/go"
		wait $wp || true ;;
	truncate) as_u1001 truncate -s 100 "$f" || true ;;
	fallocate) as_u1001 /usr/bin/python3 -c 'import os, sys
os.posix_fallocate(os.open(sys.argv[1], os.O_WRONLY), 0, 200)' "$f" || true ;;
	esac
	check "u1001's $how drops it" "$PY" -c "$nocap" "$f"
	check "  audited as a removexattr by u1001" vv_audit_has "$LOG" op=removexattr uid=1001 \
		"path=/c/cap-$how" "detail~^security.capability \\(dropped by a write\\)"
done
echo z > "$M/c/plain"
chmod 666 "$M/c/plain"
as_u1001 sh -c "echo w >> '$M/c/plain'"
vv_audit_has "$LOG" op=write path=/c/plain >/dev/null || vv_audit_has "$LOG" path=/c/plain uid=1001 >/dev/null || true
check "a write to a file without xattrs records no such removal" \
	test "$(vv_audit_q "$LOG" count op=removexattr path=/c/plain)" = 0

vv_umount "$M"
check "fsck is clean" sh -c "'$VV_BIN' fsck '$S' --passfile '$PASSFILE' >/dev/null"
test_done
