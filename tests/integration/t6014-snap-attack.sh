#!/bin/bash
# t6014-snap-attack: unprivileged users against snapshots.  Access inside
# a snapshot is the snapshot's: a user who lost a grant since can still
# read that moment's copy (documented), one who gained it since cannot;
# ACL entries of that moment count; names under a directory the user could
# not read are not listed; every admin verb but list is refused to them;
# ioctl-only opens (mode 3) and opens through /proc/self/fd for writing
# are EROFS; a snapshot with a file open cannot be deleted (EBUSY) and
# loses nothing; denials are audited.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
vv_init "$S" >/dev/null
LOG=$(vv_audit_log "$S")
check "mount" vv_mount "$S" "$M"
mkdir -m 755 "$M/c"
echo was-open > "$M/c/open"
echo acl > "$M/c/acl"; chmod 600 "$M/c/acl"; setfacl -m u:1000:r "$M/c/acl"
echo later > "$M/c/later"; chmod 600 "$M/c/later"
mkdir -m 700 "$M/c/hidden"; echo x > "$M/c/hidden/name-not-to-leak"
"$VV_BIN" snapshot create "$M" s >/dev/null
P=$M/.snapshots/s/c
chmod 600 "$M/c/open"                 # u1000 loses access to the live file
setfacl -b "$M/c/acl"                 # and its ACL grant
chmod 644 "$M/c/later"                # and gains this one
want u1000 EACCES read "$M/c/open"
want u1000 OK read "$P/open"
want u1000 OK read "$P/acl"
want u1001 EACCES read "$P/acl"
want u1000 EACCES read "$P/later"
want u1000 OK read "$M/c/later"
want nobody EACCES listdir "$P/hidden"
check "ls -R as nobody does not show the hidden name" sh -c "! setpriv --reuid=65534 --regid=65534 --clear-groups ls -R '$M/.snapshots' 2>/dev/null | grep -q name-not-to-leak"
check "the denial is audited" vv_audit_has "$LOG" uid=65534 result=EACCES 'path~/.snapshots/s/c/hidden'
for verb in create delete restore; do
	rc=0; as_nobody "$VV_BIN" snapshot $verb "$M" s >/dev/null 2>&1 || rc=$?
	check "nobody: snapshot $verb refused" test "$rc" = 1
done
check "nobody may list" sh -c "setpriv --reuid=65534 --regid=65534 --clear-groups '$VV_BIN' snapshot list '$M' | grep -q '^s '"
out=$("$PY" - "$P/open" <<'PYEOF'
import errno, os, sys
res = []
for fl in (3, os.O_RDWR, os.O_WRONLY | os.O_APPEND, os.O_RDONLY | os.O_TRUNC):
    try:
        os.close(os.open(sys.argv[1], fl)); res.append("OK")
    except OSError as e:
        res.append(errno.errorcode[e.errno])
fd = os.open(sys.argv[1], os.O_RDONLY)
try:
    os.close(os.open("/proc/self/fd/%d" % fd, os.O_WRONLY)); res.append("OK")
except OSError as e:
    res.append(errno.errorcode[e.errno])
print(" ".join(res))
PYEOF
)
check "opens for write of every kind: EROFS ($out)" test "$out" = "EROFS EROFS EROFS EROFS EROFS"
exec 9< "$P/open"
rc=0; err=$("$VV_BIN" snapshot delete "$M" s 2>&1) || rc=$?
check "delete while a file is open: refused" test "$rc" = 1
check "... says why" grep -q "are open" <<<"$err"
check "the open file still reads" sh -c "cat <&9 | grep -qx was-open"
exec 9<&-
check "delete once closed" sh -c "'$VV_BIN' snapshot delete '$M' s >/dev/null"
check "unmount" vv_umount "$M"
check "fsck: clean" sh -c "'$VV_BIN' fsck '$S' --passfile '$PASSFILE' >'$T/fsck' 2>&1"
test_done
