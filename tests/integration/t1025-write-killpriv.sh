#!/bin/bash
# t1025-write-killpriv: the daemon asks the kernel for
# FUSE_HANDLE_KILLPRIV_V2 (fs/killpriv.c), so a write no longer costs a
# security.capability GETXATTR each (one per file instead: counted in the
# daemon's request trace), and nothing of what killpriv protects changes:
# setuid/setgid go at every write by a non-root user, also for writes
# through a handle opened before a chmod u+s (as owner, as another user
# with write access, through fchmod on a second handle), at truncate and
# at chown; a security.capability set while a handle is open goes at that
# handle's next write, and at the first write of a new one.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
vv_init "$S" >/dev/null
# A traced mount (-d implies -f: run it in the background, cleaned up by
# test-lib like any vv_mount).
mkdir -p "$M" "$T/.pids"
pidf="$T/.pids/trace"
"$VV_BIN" mount "$S" "$M" --passfile "$PASSFILE" --pid-file "$pidf" -d \
	--log "$T/trace.log" >/dev/null 2>&1 &
printf '%s\t%s\n' "$M" "$pidf" >> "$VV_MOUNTS"
for i in $(seq 1 100); do mountpoint -q "$M" && [ -s "$pidf" ] && break; sleep 0.1; done
check "traced mount is up" mountpoint -q "$M"
mkdir "$M/c"
chmod 1777 "$M/c"

getxattrs() { grep -c 'opcode: GETXATTR' "$T/trace.log" || true; }

# --- round trips: eight writes through one handle ---------------------------
if grep -q 'handle_killpriv_v2' "$T/trace.log"; then
	before=$(getxattrs)
	as_u1000 "$PY" -c '
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
for i in range(8):
    os.write(fd, b"x" * 1000)
os.close(fd)' "$M/c/eight"
	n=$(( $(getxattrs) - before ))
	echo "# GETXATTR requests for a create and eight writes: $n"
	check "one capability check per file, not per write" test "$n" -le 2
else
	echo "# the kernel offers no FUSE_HANDLE_KILLPRIV_V2 (older than 5.11?)"
	test_ok "one capability check per file # SKIP kernel without killpriv_v2"
fi

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

fusermount3 -u "$M"
vv_wait_daemon "$pidf"
check "fsck is clean" sh -c "'$VV_BIN' fsck '$S' --passfile '$PASSFILE' >/dev/null"
test_done
