#!/bin/bash
# t1005-acl: POSIX ACLs on a real mount, driven with setfacl/getfacl as root
# and as other uids (1000/1000; 1001 with supplementary group 2000).  Every
# change is made twice, on the mount and on an oracle directory on a kernel
# file system with ACLs (ext4 or tmpfs), and the results are compared:
# getfacl text, the stored xattr bytes, modes, and access(2) for each user.
# Covers named user and group entries, the mask, chmod updating the mask,
# setfacl -b, default-ACL inheritance (umask ignored), setfacl by a
# non-owner, cp -a / rsync -A preserving ACLs, and a directory ACL denying
# search to one user (with no stale kernel cache).
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt

USERS="root nobody u1000 u1001"

# The oracle: a kernel file system that supports ACLs ($T is on /tmp).
O=""
for base in "$T" /var/tmp /dev/shm; do
	d=$(mktemp -d "$base/vv-oracle.XXXXXX") || continue
	chmod 755 "$d"
	if touch "$d/probe" && setfacl -m u:1000:r "$d/probe" 2>/dev/null; then
		rm -f "$d/probe"
		O=$d
		break
	fi
	rm -rf "$d"
done
if [ -z "$O" ]; then
	echo "1..0 # SKIP no local file system with POSIX ACLs for the oracle"
	vv_done=1
	exit 77
fi
case $O in "$T"/*) ;; *) trap 'rm -rf "$O"; vv_cleanup' EXIT ;; esac
echo "# oracle: $O ($(stat -f -c %T "$O"))"


# both SCRIPT: run the shell SCRIPT twice, with $R set to the mount and to
# the oracle; umask 022 unless the script sets another.
both() {
	local script=$1 r
	for r in "$M/w" "$O"; do
		R=$r sh -c "umask 022; $script" || return 1
	done
}
# as_both WHO SCRIPT: the same as WHO.
as_both() {
	local who=$1 script=$2 r
	for r in "$M/w" "$O"; do
		"as_$who" env R="$r" sh -c "umask 022; $script" || return 1
	done
}

# same_acl REL...: getfacl (numeric, no header), mode, owner and the raw
# ACL xattrs are identical on the mount and on the oracle.
acl_state() {
	local p=$1
	getfacl -cnp "$p" 2>&1
	stat -c 'mode=%a owner=%u:%g' "$p"
	getfattr -e hex -n system.posix_acl_access "$p" 2>/dev/null | grep = || echo "no access acl"
	if [ -d "$p" ]; then
		getfattr -e hex -n system.posix_acl_default "$p" 2>/dev/null | grep = || echo "no default acl"
	fi
}
same_acl() {
	local rel a b ok=0
	for rel in "$@"; do
		a=$(acl_state "$M/w/$rel")
		b=$(acl_state "$O/$rel")
		if [ "$a" != "$b" ]; then
			ok=1
			echo "# $rel differs: vault vs oracle:"
			diff <(echo "$b") <(echo "$a") | sed 's/^/#   /'
		fi
	done
	return "$ok"
}
check_same() { check "getfacl/mode/xattr of $* match the oracle" same_acl "$@"; }

# same_access REL...: access(2) for every user and mask agrees.
same_access() {
	local rel who mask a b ok=0
	for rel in "$@"; do
		for who in $USERS; do
			for mask in r w x rw rx rwx; do
				a=$("as_$who" "$PY" -c "$VV_PYOP" access "$M/w/$rel" "$mask")
				b=$("as_$who" "$PY" -c "$VV_PYOP" access "$O/$rel" "$mask")
				if [ "$a" != "$b" ]; then
					ok=1
					echo "# access $rel $who $mask: vault $a, kernel $b"
				fi
			done
		done
	done
	return "$ok"
}
check_access() { check "access(2) on $* matches the kernel (4 users x 6 masks)" same_access "$@"; }

cat > "$T/race.py" <<'EOF'
import errno, os, struct, sys
# race.py FILE ANC N: N times, uid 1000 looks FILE up, then root sets an
# access ACL user:1000:--- (other r-x) on the directory ANC, and at once
# (pipe handshake, no delay) uid 1000 looks FILE up again: it must get
# EACCES.  Then root removes the ACL.  Prints "STALE BAD".
f, anc, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
r1, w1 = os.pipe(); r2, w2 = os.pipe()
pid = os.fork()
if pid == 0:
    os.setgroups([]); os.setresgid(1000, 1000, 1000); os.setresuid(1000, 1000, 1000)
    stale = bad = 0
    for i in range(n):
        try: os.stat(f)
        except OSError: bad += 1
        os.write(w2, b"s"); os.read(r1, 1)
        try:
            os.stat(f); stale += 1
        except OSError as e:
            if e.errno != errno.EACCES: bad += 1
        os.write(w2, b"d"); os.read(r1, 1)
    os.write(w2, ("%d %d" % (stale, bad)).encode().rjust(32))
    os._exit(0)
X = 0xFFFFFFFF
deny = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", t, p, i) for t, p, i in
        [(1, 7, X), (2, 0, 1000), (4, 5, X), (0x10, 5, X), (0x20, 5, X)])
for i in range(n):
    os.read(r2, 1)
    os.setxattr(anc, "system.posix_acl_access", deny)
    os.write(w1, b"c"); os.read(r2, 1)
    os.removexattr(anc, "system.posix_acl_access")
    os.write(w1, b"b")
res = os.read(r2, 32).decode().split()
os.waitpid(pid, 0)
print(res[0], res[1])
EOF

vv_init "$S" >/dev/null
check "mount" vv_mount "$S" "$M"
chmod 755 "$M"
mkdir -m 755 "$M/w"

# --- a named user entry on a root-only file ---------------------------------
check "0600 root file" both 'echo secret > $R/f1; chmod 600 $R/f1'
want u1000 EACCES read "$M/w/f1"
check "setfacl -m u:1000:r" both 'setfacl -m u:1000:r $R/f1'
want u1000 OK read "$M/w/f1"
want u1001 EACCES read "$M/w/f1"
want nobody EACCES read "$M/w/f1"
want u1000 EACCES write "$M/w/f1" x
check_same f1
check_access f1
check "getfacl shows user:1000:r--" sh -c "getfacl -cnp '$M/w/f1' 2>/dev/null | grep -qx 'user:1000:r--'"

# --- the mask limits named entries --------------------------------------------
check "setfacl -m m::---" both 'setfacl -m m::--- $R/f1'
want u1000 EACCES read "$M/w/f1"
check_same f1
check_access f1
check "setfacl -m m::r" both 'setfacl -m m::r $R/f1'
want u1000 OK read "$M/w/f1"
# kernel quirk: mask ::--- makes the kernel skip the ACL, other decides
check "user:1000:rwx, mask ---, other r--" both 'echo q > $R/fq; setfacl --set u::rw-,u:1000:rwx,g::---,m::---,o::r-- $R/fq'
check_same fq
check_access fq

# --- a named group entry, through a supplementary group --------------------
check "setfacl -m g:2000:r on a 0600 file" both 'echo g > $R/f2; chmod 600 $R/f2; setfacl -m g:2000:r $R/f2'
want u1001 OK read "$M/w/f2"
want u1000 EACCES read "$M/w/f2"
want u1001 EACCES write "$M/w/f2" x
check_same f2
check_access f2
check "g:2000:rw + u:1001:r: the user entry wins" both 'setfacl -m g:2000:rw,u:1001:r $R/f2'
want u1001 EACCES write "$M/w/f2" x
check_access f2
check "owning group entry plus named group" both 'chgrp 2000 $R/f2; setfacl -m g::r,g:3000:rw,u:1001:- $R/f2'
check_same f2
check_access f2

# --- chmod updates the mask ---------------------------------------------------
check "chmod g-r on a file with an ACL" both 'echo c > $R/f3; chmod 640 $R/f3; setfacl -m u:1000:rw,g:2000:r $R/f3; chmod g-r $R/f3'
check_same f3
check_access f3
check "chmod 750" both 'chmod 750 $R/f3'
check_same f3
check_access f3
check "chmod 604 (mask ---)" both 'chmod 604 $R/f3'
check_same f3
check_access f3
check "setfacl -m g::rwx after chmod" both 'setfacl -m g::rwx $R/f3'
check_same f3

# --- setfacl -b ---------------------------------------------------------------
check "setfacl -b" both 'setfacl -b $R/f3'
check_same f3
check "no system.posix_acl_access left" sh -c "! getfattr -n system.posix_acl_access '$M/w/f3' 2>/dev/null | grep -q ="
check "ls -l shows no + after setfacl -b" sh -c "ls -l '$M/w/f3' | cut -c1-11 | grep -qv '+'"
check "ls -l shows + with an ACL" sh -c "ls -l '$M/w/f1' | cut -c1-11 | grep -q '+'"
check "an ACL equal to the mode is not stored" both 'echo e > $R/f4; setfacl --set u::rw,g::r,o::r $R/f4'
check_same f4

# --- exec through an ACL --------------------------------------------------------
check "0700 script with u:1000:rx" both 'printf "#!/bin/sh\necho ran\n" > $R/s; chmod 700 $R/s; setfacl -m u:1000:rx $R/s'
check "u1000 runs it" test "$(as_u1000 "$M/w/s")" = ran
want u1001 EACCES exec "$M/w/s"
check_access s

# --- default ACLs and inheritance ---------------------------------------------
check "default ACL on a dir" both 'mkdir -m 755 $R/dd; setfacl -d -m u:1000:rwx,g:2000:r-x,o::--- $R/dd'
check_same dd
check "create under umask 077 with a default ACL" both 'umask 077; echo n > $R/dd/file; mkdir $R/dd/sub; mkdir -m 700 $R/dd/sub700; touch $R/dd/sub/deeper; mkfifo -m 640 $R/dd/fifo'
check_same dd/file dd/sub dd/sub700 dd/sub/deeper dd/fifo
check "umask ignored: new file is not 0600" test "$(stat -c %a "$M/w/dd/file")" != 600
check "new file mode as the oracle (umask ignored)" test "$(stat -c %a "$M/w/dd/file")" = "$(stat -c %a "$O/dd/file")"
want u1000 OK write "$M/w/dd/file" by1000
want nobody EACCES read "$M/w/dd/file"
check_access dd/file dd/sub
check "create by uid 1000 (umask 022) inherits" as_both u1000 'echo m > $R/dd/sub/by1000; mkdir $R/dd/sub/d1000'
check_same dd/sub/by1000 dd/sub/d1000
check "python open(0640) under a default ACL" both "umask 0; $PY -c 'import os,sys; os.close(os.open(sys.argv[1], os.O_CREAT|os.O_WRONLY, 0o640))' \$R/dd/p640"
check_same dd/p640
check "setgid dir with default ACL" both 'mkdir $R/dd/sg; chgrp 2000 $R/dd/sg; chmod 2775 $R/dd/sg; mkdir $R/dd/sg/x; touch $R/dd/sg/y'
check_same dd/sg dd/sg/x dd/sg/y
check "setfacl -k removes the default ACL" both 'setfacl -k $R/dd; umask 077; touch $R/dd/after'
check_same dd dd/after
check "umask applies again after setfacl -k" test "$(stat -c %a "$M/w/dd/after")" = 600
check "setfacl -d on a file fails" sh -c "! setfacl -d -m u:1000:r '$M/w/f1' 2>/dev/null"

# --- setfacl by a non-owner / by the owner ------------------------------------
stderr_eperm() { as_u1000 setfacl -m u:1000:rw "$M/w/f1" 2>&1 | grep -q "Operation not permitted"; }
check "u1000: setfacl on root's file -> EPERM" stderr_eperm
want u1000 EPERM removexattr "$M/w/f1" system.posix_acl_access
check "ACL unchanged after refused setfacl" same_acl f1
mkdir -m 777 "$M/w/pub" "$O/pub"
check "owner u1000 sets an ACL on his own file" as_both u1000 'echo o > $R/pub/mine; chmod 600 $R/pub/mine; setfacl -m u:1001:r $R/pub/mine'
check_same pub/mine
want u1001 OK read "$M/w/pub/mine"
check "u1001 cannot change u1000's ACL" sh -c "! as_u1001 setfacl -b '$M/w/pub/mine' 2>/dev/null"
check "owner removes it again (setfacl -x)" as_both u1000 'setfacl -x u:1001 $R/pub/mine'
check_same pub/mine
want u1001 EACCES read "$M/w/pub/mine"

# --- cp -a / rsync -A preserve ACLs -----------------------------------------------
check "cp -a of files with ACLs inside the mount" both 'cp -a $R/f1 $R/cp_f1; cp -a $R/dd $R/cp_dd'
check_same cp_f1 cp_dd cp_dd/file cp_dd/sub cp_dd/sub/deeper
check "rsync -aA inside the mount" both 'rsync -aA $R/dd/ $R/rs_dd/; rsync -aA $R/f2 $R/rs_f2'
check_same rs_dd rs_dd/file rs_dd/sub rs_dd/sub700 rs_f2
mkdir "$M/w/in"
check "cp -a from the oracle into the mount" cp -a "$O/dd" "$O/f3" "$O/f1" "$M/w/in/"
ok=0
for rel in dd dd/file dd/sub dd/sub/deeper f1 f3; do
	[ "$(acl_state "$M/w/in/$rel")" = "$(acl_state "$O/$rel")" ] || { ok=1; echo "# in/$rel differs"; }
done
check "ACLs copied in are identical" test "$ok" = 0

# --- a directory ACL denying search to one user -------------------------------
check "dir with u:1000:--- and other r-x" both 'mkdir -m 755 $R/ds; echo f > $R/ds/f; setfacl -m u:1000:--- $R/ds'
check_same ds
want u1000 EACCES stat "$M/w/ds/f"
want u1001 OK stat "$M/w/ds/f"
want u1001 OK read "$M/w/ds/f"
want u1000 EACCES stat "$M/w/ds/f"
want u1000 EACCES listdir "$M/w/ds"
want nobody OK stat "$M/w/ds/f"
want u1000 EACCES stat "$M/w/ds/f"
check_access ds
# deeper: the denial is two levels up, after everyone else looked things up
mkdir -p "$M/w/ds2/a/b"
echo d > "$M/w/ds2/a/b/f"
want u1000 OK stat "$M/w/ds2/a/b/f"
want u1001 OK stat "$M/w/ds2/a/b/f"
setfacl -m u:1000:--- "$M/w/ds2"
want u1000 EACCES stat "$M/w/ds2/a/b/f"
want u1001 OK stat "$M/w/ds2/a/b/f"
want u1000 EACCES stat "$M/w/ds2/a/b/f"
setfacl -b "$M/w/ds2"
want u1000 OK stat "$M/w/ds2/a/b/f"
# a deny through the mask on a directory
setfacl -m u:1000:rwx,m::r-- "$M/w/ds2"
want u1000 EACCES stat "$M/w/ds2/a/b/f"
setfacl -m m::r-x "$M/w/ds2"
want u1000 OK stat "$M/w/ds2/a/b/f"
setfacl -b "$M/w/ds2"
# with no delay between setfacl and the lookup
out=$("$PY" "$T/race.py" "$M/w/ds2/a/b/f" "$M/w/ds2/a" 200 2>&1) || true
[ "$out" = "0 0" ] || echo "# race.py: stale/bad = $out (of 200)"
check "no stale lookup right after setfacl u:1000:--- on an ancestor" test "$out" = "0 0"

check "umount" vv_umount "$M"
# ACLs survive a remount
check "remount" vv_mount "$S" "$M"
check_same f1 f2 dd dd/file ds
check "umount again" vv_umount "$M"
test_done
