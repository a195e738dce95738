#!/bin/bash
# t1004-access-uids: access control on a real mount, as root and as other
# uids (65534 "nobody", 1000/1000, 1001 with supplementary group 2000).  The
# daemon decides everything (no default_permissions): read/list/stat/delete
# refusals, owner checks for chmod/chown/chgrp/utimes, access(2) for each
# user, exec permission (even root cannot exec a 0644 file), supplementary
# groups, sticky directories, O_TRUNC, umask; and the kernel-cache rule: a
# chmod of an ancestor takes effect at once for a path another user has just
# looked up (no stale entry or attribute cache).
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt



# rc_is WHO WANT_OK|WANT_FAIL NAME CMD...: shell command as WHO.
as_ok() { local who=$1 name=$2; shift 2; check "$who: $name" "as_$who" "$@"; }
as_fails() { local who=$1 name=$2; shift 2; expect_fail "$who: $name" "as_$who" "$@"; }

# stderr_has WHO PATTERN NAME CMD...: CMD as WHO fails and its stderr
# contains PATTERN (an errno message such as "Permission denied").
stderr_has() {
	local who=$1 pat=$2 name=$3 err rc=0
	shift 3
	err=$("as_$who" "$@" 2>&1 >/dev/null) || rc=$?
	if [ "$rc" -ne 0 ] && printf '%s' "$err" | grep -q "$pat"; then test_ok "$who: $name"; else
		echo "# rc=$rc stderr: $err"
		test_fail "$who: $name"
	fi
}

# utime PATH [SECONDS]: explicit times, or "now" (times=None) without SECONDS.
UTIME='
import errno, os, sys
try:
    os.utime(sys.argv[1], (int(sys.argv[2]), int(sys.argv[2])) if len(sys.argv) > 2 else None)
    print("OK")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
'

cat > "$T/race.py" <<'EOF'
# race.py MODE N ARGS: N times, a child process running as another uid looks
# FILE up (so the kernel may cache it), then root changes an ancestor so that
# the child loses the right to search it, then (with no delay: the child is
# woken through a pipe) the child looks FILE up again and must get EACCES.
# Prints "STALE BAD": lookups that wrongly succeeded, and unexpected errors.
#   chmod FILE ANC      (uid 65534) ANC 0755 -> 0700 -> back
#   rename /F SRC DST   (uid 65534) SRC/F must be refused as DST/F, DST being
#                       under a 0700 directory; then renamed back
#   chown FILE ANC      (uid 1000)  ANC 0750 1000:1000 -> 1001:1001 -> back
#   acl FILE ANC        (uid 1000)  access ACL user:1000:--- on ANC -> removed
import os, sys, errno
mode, n = sys.argv[1], int(sys.argv[2]); a = sys.argv[3:]
uid = 1000 if mode in ("chown", "acl") else 65534
r1, w1 = os.pipe(); r2, w2 = os.pipe()
pid = os.fork()
if pid == 0:
    os.setgroups([]); os.setresgid(uid, uid, uid); os.setresuid(uid, uid, uid)
    stale = bad = 0
    for i in range(n):
        try: os.stat(a[0] if mode != "rename" else a[1] + a[0])
        except OSError: bad += 1
        os.write(w2, b"s"); os.read(r1, 1)
        try:
            os.stat(a[2] + a[0] if mode == "rename" else a[0]); stale += 1
        except OSError as e:
            if e.errno != errno.EACCES: bad += 1
        os.write(w2, b"d"); os.read(r1, 1)
    os.write(w2, ("%d %d\n" % (stale, bad)).encode().rjust(32))
    os._exit(0)
import struct
def acl(entries):
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", t, p, i) for t, p, i in entries)
X = 0xFFFFFFFF
deny = acl([(1, 7, X), (2, 0, 1000), (4, 5, X), (0x10, 5, X), (0x20, 5, X)])
for i in range(n):
    os.read(r2, 1)
    if mode == "chmod": os.chmod(a[1], 0o700)
    elif mode == "rename": os.rename(a[1], a[2])
    elif mode == "chown": os.chown(a[1], 1001, 1001)
    elif mode == "acl": os.setxattr(a[1], "system.posix_acl_access", deny)
    os.write(w1, b"c"); os.read(r2, 1)
    if mode == "chmod": os.chmod(a[1], 0o755)
    elif mode == "rename": os.rename(a[2], a[1])
    elif mode == "chown": os.chown(a[1], 1000, 1000)
    elif mode == "acl": os.removexattr(a[1], "system.posix_acl_access")
    os.write(w1, b"b")
res = os.read(r2, 32).decode().split()
os.waitpid(pid, 0)
print(res[0], res[1])
EOF

# no_stale NAME MODE ARGS...: race.py must report no stale lookup.
no_stale() {
	local name=$1 out
	shift
	out=$("$PY" "$T/race.py" "$1" 200 "${@:2}" 2>&1) || true
	if [ "$out" = "0 0" ]; then test_ok "$name"; else
		echo "# race.py $*: stale/bad = $out (of 200)"
		test_fail "$name"
	fi
}

vv_init "$S" >/dev/null
check "mount" vv_mount "$S" "$M"
check "mounted with allow_other" sh -c "grep ' $M fuse.vecvault ' /proc/mounts | grep -q allow_other"
chmod 755 "$M"
want nobody OK stat "$M"

# --- a root-only file in a root-only-writable directory ----------------------
mkdir -m 755 "$M/rd"
echo secret > "$M/rd/secret"
chmod 600 "$M/rd/secret"
echo public > "$M/rd/pub"
chmod 644 "$M/rd/pub"
mkdir -m 700 "$M/rd/priv"
echo x > "$M/rd/priv/inner"

want nobody EACCES read "$M/rd/secret"
stderr_has nobody "Permission denied" "cat of a 0600 root file" cat "$M/rd/secret"
want nobody OK read "$M/rd/pub"
want root OK read "$M/rd/secret"
stderr_has nobody "Permission denied" "ls of a 0700 dir" ls "$M/rd/priv"
want nobody EACCES listdir "$M/rd/priv"
want nobody EACCES stat "$M/rd/priv/inner"
want nobody OK stat "$M/rd/priv"
want root OK listdir "$M/rd/priv"
want nobody EACCES unlink "$M/rd/pub"
stderr_has nobody "Permission denied" "rm in a dir only root may write" rm -f "$M/rd/pub"
check "file still there after refused rm" test -f "$M/rd/pub"
want nobody EACCES create "$M/rd/new"
want nobody EACCES mkdir "$M/rd/newdir"
want nobody EACCES rename "$M/rd/pub" "$M/rd/pub2"
want nobody EPERM chmod "$M/rd/pub" 666
stderr_has nobody "Operation not permitted" "chmod of root's file" chmod 666 "$M/rd/pub"
check "mode unchanged after refused chmod" test "$(stat -c %a "$M/rd/pub")" = 644
got=$(as_nobody "$PY" -c "$VV_PYOP" setxattr "$M/rd/pub" user.x v 2>&1) || true
check "nobody: setxattr user.x on root's 0644 file -> EACCES/EPERM (got $got)" \
	sh -c "[ '$got' = EACCES ] || [ '$got' = EPERM ]"
as_fails nobody "setfattr -n user.x on root's file" sh -c "setfattr -n user.x -v 1 '$M/rd/pub' 2>/dev/null"
check "no user.x was set" sh -c "! getfattr -n user.x '$M/rd/pub' 2>/dev/null | grep -q user.x"
# (touch -d itself opens the file for writing first; utime() does not)
check "nobody: utime(explicit times) on root's 0644 file -> EPERM" \
	test "$(as_nobody "$PY" -c "$UTIME" "$M/rd/pub" 978307200)" = EPERM
check "nobody: utime(now) on root's 0644 file -> EACCES" \
	test "$(as_nobody "$PY" -c "$UTIME" "$M/rd/pub")" = EACCES
check "mtime unchanged after refused touch -d" \
	sh -c "[ \$(stat -c %Y '$M/rd/pub') -gt 1000000000 ] && [ \$(stat -c %Y '$M/rd/pub') != \$(date -d '2001-01-01 00:00' +%s) ]"
stderr_has nobody "Permission denied" "touch (now) of a file he cannot write" touch "$M/rd/pub"

# touch (now) on a root-owned file nobody may write: allowed (write permission)
echo w > "$M/rd/ww"
chmod 666 "$M/rd/ww"
touch -d '2001-01-01 00:00' "$M/rd/ww"
as_ok nobody "touch (now) of root's 0666 file" touch "$M/rd/ww"
check "mtime moved to now" sh -c "[ \$(stat -c %Y '$M/rd/ww') -gt \$(date -d '2020-01-01' +%s) ]"
stderr_has nobody "Operation not permitted" "touch -d of root's 0666 file (not owner)" \
	touch -d '2002-02-02 00:00' "$M/rd/ww"
check "nobody: utime(now) on root's 0666 file -> OK" \
	test "$(as_nobody "$PY" -c "$UTIME" "$M/rd/ww")" = OK
check "nobody: utime(explicit) on root's 0666 file -> EPERM" \
	test "$(as_nobody "$PY" -c "$UTIME" "$M/rd/ww" 978307200)" = EPERM
: > "$M/rd/o444"
chown 1000:1000 "$M/rd/o444"
chmod 444 "$M/rd/o444"
check "u1000: utime(explicit) on his own 0444 file -> OK" \
	test "$(as_u1000 "$PY" -c "$UTIME" "$M/rd/o444" 978307200)" = OK
check "mtime set by the owner" test "$(stat -c %Y "$M/rd/o444")" = 978307200
check "u1000: utime(now) on his own 0444 file -> OK" \
	test "$(as_u1000 "$PY" -c "$UTIME" "$M/rd/o444")" = OK
check "root: utime(explicit) on another's file -> OK" \
	test "$("$PY" -c "$UTIME" "$M/rd/o444" 978307200)" = OK
want nobody OK write "$M/rd/ww" data
check "content written by nobody" test "$(cat "$M/rd/ww")" = data
# O_TRUNC by a non-writer
want nobody EACCES write "$M/rd/pub" zz
want nobody EACCES truncate "$M/rd/pub" 0
check "pub not truncated" test "$(cat "$M/rd/pub")" = public

# --- access(2) for each user ------------------------------------------------
mkdir -m 755 "$M/ac"
for m in 600 640 604 660 700 750 705 0; do
	f="$M/ac/f$m"
	echo x > "$f"
	chown 1000:2000 "$f"
	chmod "$m" "$f"
done
mkdir -m 755 "$M/acd"
chown 1000:2000 "$M/acd"
chmod 750 "$M/acd"
# Expectations computed like the kernel: owner 1000, group 2000.
#   u1000 = owner; u1001 in group 2000; nobody = other; root overrides
#   r/w always, x on files only if some x bit is set.
acc() {
	local who=$1 file=$2 mask=$3 exp=$4
	want "$who" "$exp" access "$M/ac/$file" "$mask"
}
acc u1000 f600 r OK;   acc u1000 f600 w OK; acc u1000 f600 x EACCES
acc u1001 f600 r EACCES; acc nobody f600 r EACCES; acc root f600 rw OK
acc root f600 x EACCES
acc u1001 f640 r OK;   acc u1001 f640 w EACCES; acc nobody f640 r EACCES
acc u1001 f604 r EACCES   # group class (0) beats other (r) for a group member
acc nobody f604 r OK;  acc nobody f604 w EACCES
acc u1001 f660 rw OK;  acc u1000 f660 x EACCES
acc u1000 f700 rwx OK; acc u1001 f700 r EACCES; acc root f700 x OK
acc u1001 f750 rx OK;  acc u1001 f750 w EACCES; acc nobody f750 x EACCES
acc nobody f705 rx OK; acc u1001 f705 x EACCES
acc u1000 f0 r EACCES; acc root f0 rw OK; acc root f0 x EACCES
want u1001 OK access "$M/acd" rx
want u1001 EACCES access "$M/acd" w
want nobody EACCES access "$M/acd" x
want root OK access "$M/acd" rwx
want u1000 OK access "$M/acd" rwx
# cross-check against the same files on ext4/tmpfs under $T (the kernel)
O=$T/oracle
mkdir -m 755 "$O"
for m in 600 640 604 660 700 750 705 0; do
	echo x > "$O/f$m"; chown 1000:2000 "$O/f$m"; chmod "$m" "$O/f$m"
done
for who in root nobody u1000 u1001; do
	for m in 600 640 604 660 700 750 705 0; do
		for mask in r w x rw rx rwx; do
			e=$("as_$who" "$PY" -c "$VV_PYOP" access "$O/f$m" "$mask")
			g=$("as_$who" "$PY" -c "$VV_PYOP" access "$M/ac/f$m" "$mask")
			[ "$e" = "$g" ] || echo "# access mismatch: $who f$m $mask: kernel $e vault $g"
			[ "$e" = "$g" ] || echo x >> "$T/acc.mismatch"
		done
	done
done
check "access(2) matches the kernel for 4 users x 8 modes x 6 masks" test ! -e "$T/acc.mismatch"

# --- exec -------------------------------------------------------------------
mkdir -m 755 "$M/x"
for m in 644 755 744; do
	printf '#!/bin/sh\necho ran\n' > "$M/x/s$m"
	chown 1000:1000 "$M/x/s$m"
	chmod "$m" "$M/x/s$m"
done
want root EACCES exec "$M/x/s644"
want u1000 EACCES exec "$M/x/s644"
stderr_has root "Permission denied" "running a 0644 script" "$M/x/s644"
check "root: run a 0755 script" test "$("$M/x/s755")" = ran
check "nobody: run a 0755 script" test "$(as_nobody "$M/x/s755")" = ran
check "u1000 (owner): run a 0744 script" test "$(as_u1000 "$M/x/s744")" = ran
check "root: run a 0744 script" test "$("$M/x/s744")" = ran
want nobody EACCES exec "$M/x/s744"
want u1001 EACCES exec "$M/x/s744"
# a binary, not only a script (execve of the file itself, OPEN with FMODE_EXEC)
cp /bin/true "$M/x/true"
chmod 755 "$M/x/true"
as_ok nobody "exec a 0755 binary" "$M/x/true"
chmod 644 "$M/x/true"
want root EACCES exec "$M/x/true"
want nobody EACCES exec "$M/x/true"
chmod 744 "$M/x/true"
want nobody EACCES exec "$M/x/true"
want root OK access "$M/x/true" x

# --- supplementary groups ---------------------------------------------------
mkdir -m 755 "$M/g"
echo grp > "$M/g/f"
chown 0:2000 "$M/g/f"
chmod 640 "$M/g/f"
want u1001 OK read "$M/g/f"
want u1000 EACCES read "$M/g/f"
want nobody EACCES read "$M/g/f"
want u1001 EACCES write "$M/g/f" x
chmod 660 "$M/g/f"
want u1001 OK append "$M/g/f" y
mkdir -m 770 "$M/g/d"
chown 0:2000 "$M/g/d"
want u1001 OK create "$M/g/d/byu1001"
want u1000 EACCES create "$M/g/d/byu1000"
check "file created by u1001 is owned 1001:1001" test "$(stat -c %u:%g "$M/g/d/byu1001")" = 1001:1001

# --- kernel caches never change a decision -----------------------------------
mkdir -m 755 "$M/k" "$M/k/d"
echo f > "$M/k/d/f"
chmod 644 "$M/k/d/f"
want nobody OK stat "$M/k/d/f"
want nobody OK read "$M/k/d/f"
chmod 700 "$M/k/d"
want nobody EACCES stat "$M/k/d/f"
want nobody EACCES read "$M/k/d/f"
chmod 755 "$M/k/d"
want nobody OK stat "$M/k/d/f"
# deeper path, chmod of the direct parent
mkdir -p -m 755 "$M/k/a/b/c"
echo deep > "$M/k/a/b/c/f"
want nobody OK stat "$M/k/a/b/c/f"
want nobody OK read "$M/k/a/b/c/f"
chmod 700 "$M/k/a/b/c"
want nobody EACCES stat "$M/k/a/b/c/f"
chmod 755 "$M/k/a/b/c"
want nobody OK stat "$M/k/a/b/c/f"
# chmod of an ancestor two levels up
want nobody OK stat "$M/k/a/b/c/f"
chmod 700 "$M/k/a/b"
want nobody EACCES stat "$M/k/a/b/c/f"
want nobody EACCES stat "$M/k/a/b/c"
want nobody EACCES read "$M/k/a/b/c/f"
want nobody OK stat "$M/k/a/b"
chmod 755 "$M/k/a/b"
want nobody OK stat "$M/k/a/b/c/f"
want nobody OK read "$M/k/a/b/c/f"
# the mount root itself
chmod 700 "$M"
want nobody EACCES stat "$M/k/a/b/c/f"
chmod 755 "$M"
want nobody OK stat "$M/k/a/b/c/f"
# an owner change of an ancestor (not a chmod) also takes effect at once
want u1000 OK stat "$M/k/a/b/c/f"
chmod 750 "$M/k/a"
chown 1001:1001 "$M/k/a"
want u1000 EACCES stat "$M/k/a/b/c/f"
want u1001 OK stat "$M/k/a/b/c/f"
chown 0:0 "$M/k/a"
want u1001 EACCES stat "$M/k/a/b/c/f"
chmod 755 "$M/k/a"
want u1000 OK stat "$M/k/a/b/c/f"
# the file's own mode after it was read by nobody
want nobody OK read "$M/k/a/b/c/f"
chmod 600 "$M/k/a/b/c/f"
want nobody EACCES read "$M/k/a/b/c/f"
# stale dentry: rename of an ancestor to a 0700 place
mkdir -m 700 "$M/k/vault"
want nobody OK stat "$M/k/d/f"
mv "$M/k/d" "$M/k/vault/d"
want nobody ENOENT stat "$M/k/d/f"
want nobody EACCES stat "$M/k/vault/d/f"

# The same, with no delay at all between root's change and the other user's
# lookup (a change must be in force when the syscall that made it returns).
mkdir -p -m 755 "$M/kr/a/b/c"
echo r > "$M/kr/a/b/c/f"
no_stale "no stale lookup right after chmod 0700 of the parent" chmod "$M/kr/a/b/c/f" "$M/kr/a/b/c"
no_stale "no stale lookup right after chmod 0700 two levels up" chmod "$M/kr/a/b/c/f" "$M/kr/a/b"
no_stale "no stale lookup right after chmod 0700 of the mount root" chmod "$M/kr/a/b/c/f" "$M"
chmod 755 "$M"
mkdir -m 700 "$M/kr/priv"
no_stale "no stale lookup right after rename into a 0700 dir" rename /c/f "$M/kr/a/b" "$M/kr/priv/b"
chown 1000:1000 "$M/kr/a"
chmod 750 "$M/kr/a"
no_stale "no stale lookup right after chown of an ancestor" chown "$M/kr/a/b/c/f" "$M/kr/a"
chown 0:0 "$M/kr/a"
chmod 755 "$M/kr/a"
want nobody OK stat "$M/kr/a/b/c/f"

# --- sticky world-writable directory ----------------------------------------
mkdir -m 1777 "$M/tmp"
want u1000 OK create "$M/tmp/a1000"
want u1001 OK create "$M/tmp/a1001"
want u1001 EPERM unlink "$M/tmp/a1000"
want u1001 EPERM rename "$M/tmp/a1000" "$M/tmp/stolen"
want u1001 EPERM rename "$M/tmp/a1001" "$M/tmp/a1000"
want nobody EPERM unlink "$M/tmp/a1001"
stderr_has u1001 "Operation not permitted" "rm of another user's file in a sticky dir" rm -f "$M/tmp/a1000"
check "a1000 still there" test -e "$M/tmp/a1000"
want u1000 OK rename "$M/tmp/a1000" "$M/tmp/b1000"
want u1000 OK unlink "$M/tmp/b1000"
want root OK unlink "$M/tmp/a1001"
# the directory owner may delete in his sticky dir
mkdir -m 1777 "$M/tmp/own"
chown 1000:1000 "$M/tmp/own"
want u1001 OK create "$M/tmp/own/x"
want u1000 OK unlink "$M/tmp/own/x"
# non-sticky world-writable: anyone may delete
mkdir -m 777 "$M/open"
want u1000 OK create "$M/open/a1000"
want u1001 OK unlink "$M/open/a1000"

# --- chown / chgrp ----------------------------------------------------------
mkdir -m 777 "$M/own"
as_u1001 touch "$M/own/f"
stderr_has u1001 "Operation not permitted" "chown to another uid" chown 1000 "$M/own/f"
stderr_has nobody "Operation not permitted" "chown of another's file" chown 65534 "$M/own/f"
as_ok u1001 "chgrp to a supplementary group" chgrp 2000 "$M/own/f"
check "group is 2000" test "$(stat -c %g "$M/own/f")" = 2000
as_ok u1001 "chgrp to his primary group" chgrp 1001 "$M/own/f"
stderr_has u1001 "Operation not permitted" "chgrp to a group he is not in" chgrp 3000 "$M/own/f"
stderr_has u1000 "Operation not permitted" "chgrp of another's file" chgrp 1000 "$M/own/f"
check "owner unchanged" test "$(stat -c %u:%g "$M/own/f")" = 1001:1001
check "root: chown to any uid:gid" chown 4242:4343 "$M/own/f"
check "owner after root chown" test "$(stat -c %u:%g "$M/own/f")" = 4242:4343
# setuid/setgid cleared on chown and on write by non-root
as_u1001 sh -c "echo s > '$M/own/suid'"
chgrp 1001 "$M/own/suid"
chmod 6755 "$M/own/suid"   # root may chmod anything
check "mode 6755 set" test "$(stat -c %a "$M/own/suid")" = 6755
want u1001 OK append "$M/own/suid" more
check "setuid/setgid cleared after a write by the owner (g+x set)" \
	test "$(stat -c %a "$M/own/suid")" = 755
chmod 4755 "$M/own/suid"
chown 1001:2000 "$M/own/suid"
check "setuid cleared by chown" test "$(stat -c %a "$M/own/suid")" = 755
want u1001 OK chmod "$M/own/suid" 2755
check "owner chmod g+s in his group keeps it" test "$(stat -c %a "$M/own/suid")" = 2755
chgrp 3000 "$M/own/suid"
chmod 755 "$M/own/suid"
want u1001 OK chmod "$M/own/suid" 2755
check "owner chmod g+s outside his groups drops it" test "$(stat -c %a "$M/own/suid")" = 755

# setuid/setgid clearing, compared with the kernel on $O: write, truncate
# and chown/chgrp by root and by the owner, for several modes and groups.
mkdir -m 777 "$M/kp"
mkdir -m 777 "$O/kp"
kp_case() {  # WHO OP MODE GROUP
	local who=$1 op=$2 mode=$3 grp=$4 r res=""
	for r in "$M/kp" "$O/kp"; do
		rm -f "$r/f"
		echo data > "$r/f"
		chown "1001:$grp" "$r/f"
		chmod "$mode" "$r/f"
		case $op in
		write) "as_$who" "$PY" -c "$VV_PYOP" append "$r/f" more >/dev/null ;;
		trunc) "as_$who" "$PY" -c "$VV_PYOP" truncate "$r/f" 2 >/dev/null ;;
		chown) "as_$who" chown -h 1001 "$r/f" 2>/dev/null || true ;;
		chgrp) "as_$who" chgrp 2000 "$r/f" 2>/dev/null || true ;;
		esac
		res="$res $(stat -c %a:%g "$r/f")"
	done
	set -- $res
	[ "$1" = "$2" ] || { echo "# $who $op $mode g$grp: vault $1, kernel $2"; return 1; }
}
kp_all() {
	local who op mode grp bad=0
	for who in root u1001 nobody; do
		for op in write trunc chown chgrp; do
			for mode in 6777 6767 4777 2777 2767 6757; do
				for grp in 2000 3000; do
					kp_case "$who" "$op" "$mode" "$grp" || bad=1
				done
			done
		done
	done
	return "$bad"
}
check "setuid/setgid clearing matches the kernel (3 users x 4 ops x 6 modes x 2 groups)" kp_all

# --- umask --------------------------------------------------------------------
mkdir -m 777 "$M/um"
check "umask 027 file" sh -c "umask 027; : > '$M/um/f'"
check "file mode is 0640" test "$(stat -c %a "$M/um/f")" = 640
check "umask 027 dir" sh -c "umask 027; mkdir '$M/um/d'"
check "dir mode is 0750" test "$(stat -c %a "$M/um/d")" = 750
check "nobody: umask 077 file" as_nobody sh -c "umask 077; : > '$M/um/n'"
check "nobody's file is 0600 and owned by him" test "$(stat -c %a:%u:%g "$M/um/n")" = 600:65534:65534
check "umask 0 file" sh -c "umask 0; : > '$M/um/z'"
check "file mode is 0666" test "$(stat -c %a "$M/um/z")" = 666

# --- nosuid: a setuid root binary does not gain root ------------------------
cp /usr/bin/id "$M/x/id"
chmod 4755 "$M/x/id"
check "setuid bit stored" test "$(stat -c %a "$M/x/id")" = 4755
check "nosuid: setuid binary runs without euid 0" test "$(as_nobody "$M/x/id" -u)" = 65534

check "umount" vv_umount "$M"
test_done
