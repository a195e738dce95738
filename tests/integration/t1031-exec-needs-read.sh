#!/bin/bash
# t1031-exec-needs-read: running a binary on the mount needs read as well
# as execute permission (docs/access.md "Handles, open modes and exec").
# On ext4 a user may run a 0711 binary it cannot read, and the kernel
# keeps the bytes from it by making the process non-dumpable (would_dump
# asks MAY_READ).  Without default_permissions FUSE grants MAY_READ
# without asking the daemon, so the process stayed dumpable and its
# /proc/PID/mem showed every mapped byte of the binary: nobody read a
# root 0711 binary it could not cat.  Now the exec open is refused
# (EACCES, audited with mode x) by every route: a path, execveat of an
# O_PATH handle, a mode or an ACL entry that grants execute alone; a
# binary the user may read and execute still runs, and root runs any
# binary with an x bit.  access(X_OK) answers the same on a file (main
# said yes to nobody on the 0711 binary exec refused); on a directory it
# asks search alone.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse
command -v setfacl >/dev/null || { echo "1..0 # SKIP no setfacl"; vv_done=1 vv_rc=77; exit 77; }

S=$T/store
M=$T/mnt
C=$M/c
vv_init "$S" >/dev/null 2>&1
LOG=$(vv_audit_log "$S")
check "mount" vv_mount "$S" "$M"
mkdir -m 755 "$C"
for f in x711 x755 xacl xown; do cp /bin/sleep "$C/$f"; done
chmod 711 "$C/x711"
chmod 755 "$C/x755"
chmod 750 "$C/xacl"
setfacl -m u:1000:--x,u:65534:r-x "$C/xacl"
chown 1000:1000 "$C/xown"
chmod 100 "$C/xown"
size=$(stat -c %s /bin/sleep)

# memread BIN: run BIN 5 as a child, then read every mapping of BIN in the
# child's /proc/PID/mem; print "refused ERRNO" if the exec failed, else
# the number of bytes read (0 when the kernel kept them from us).
MEMREAD='
import errno, os, subprocess, sys, time
try:
    p = subprocess.Popen([sys.argv[1], "5"])
except OSError as e:
    print("refused", errno.errorcode[e.errno]); sys.exit(0)
time.sleep(0.5)
got = 0
try:
    with open("/proc/%d/maps" % p.pid) as f:
        maps = [l.split() for l in f]
    with open("/proc/%d/mem" % p.pid, "rb") as mem:
        for m in maps:
            if len(m) >= 6 and m[5] == sys.argv[1]:
                a, b = (int(x, 16) for x in m[0].split("-"))
                mem.seek(a)
                got += len(mem.read(b - a))
except OSError:
    pass
p.kill()
p.wait()
print(got)'

want nobody EACCES read "$C/x711"
out=$(as_nobody "$PY" -c "$MEMREAD" "$C/x711")
echo "# nobody, 0711 binary of $size bytes: $out"
check "nobody cannot run a 0711 binary, so cannot read it through /proc/PID/mem" \
	test "$out" = "refused EACCES"
check "the refused exec open is audited with mode x" \
	vv_audit_has "$LOG" op=open path=/c/x711 uid=65534 mode=x result=EACCES

# execveat(AT_EMPTY_PATH) of an O_PATH handle: the same exec open.
out=$(as_nobody "$PY" -c '
import errno, os, sys
fd = os.open(sys.argv[1], os.O_PATH)
try:
    os.execve(fd, [sys.argv[1], "0"], {})
except OSError as e:
    print(errno.errorcode[e.errno])' "$C/x711")
check "nor through execveat of an O_PATH handle" test "$out" = EACCES

check "nobody runs a 0755 binary" as_nobody "$C/x755" 0
out=$(as_nobody "$PY" -c "$MEMREAD" "$C/x755")
check "... whose bytes it may read anyway" test "$out" -gt 0
check "root runs a 0711 binary" "$C/x711" 0

# ACL entries: u:1000 execute alone, u:65534 read and execute.
want u1000 EACCES exec "$C/xacl"
want u1000 EACCES read "$C/xacl"
check "an ACL entry with r-x runs it" as_nobody "$C/xacl" 0

# The owner, with --x alone, is held to the same rule (she may chmod).
want u1000 EACCES exec "$C/xown"
# access(X_OK) answers what exec does: read and execute on a file,
# search alone on a directory.
want nobody EACCES access "$C/x711" x
want nobody OK access "$C/x755" x
want u1000 EACCES access "$C/xacl" x
want nobody OK access "$C/xacl" rx
check "root: access X_OK on the 0711 binary" test -x "$C/x711"
mkdir -m 711 "$C/d711"
want nobody OK access "$C/d711" x
chmod 500 "$C/xown"
check "... and runs it once her bits give read" as_u1000 "$C/xown" 0

vv_umount "$M"
test_done
