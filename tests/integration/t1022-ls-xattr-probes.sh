#!/bin/bash
# t1022-ls-xattr-probes: what `ls -l` asks of every file it lists.
# coreutils asks each file for security.selinux and
# system.posix_acl_access; the kernel caches neither answer, so each is a
# FUSE round trip.  security.selinux is not supported by a vault
# (EOPNOTSUPP, for every caller, constant, not recorded), and ls remembers
# that per device and stops asking; the ACL probe must keep its true
# answer (ENODATA or the ACL), or ls would stop showing "+".
#  - security.selinux: get, set and remove are EOPNOTSUPP for root, nobody,
#    u1000 on files, directories, symlinks, .trash and .snapshots entries;
#    the probe leaves no audit record; other security.* names work as
#    before (root stores them, others get ENODATA, recorded as hidden).
#  - ls -l and ls -lR as root and as u1000 show "+" on files with ACLs that
#    come after files without, and the ACL reads stay exact after a
#    setfacl/setfacl -b/chmod between two listings of the same mount.
#  - with strace: ls -lR asks security.selinux once per device, not per
#    file, and the ACL once per file.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
vv_init "$S" >/dev/null 2>&1
LOG=$(vv_audit_log "$S")
vv_mount "$S" "$M"
has() { vv_audit_has "$LOG" "$@"; }
hasnt() { [ "$(vv_audit_q "$LOG" count "$@")" -eq 0 ]; }

C=$M/c
mkdir -m 755 "$C" "$C/sub"
for i in $(seq 1 40); do printf 'x\n' > "$C/a$i"; printf 'y\n' > "$C/sub/a$i"; done
chmod 644 "$C"/a* "$C"/sub/a*
printf 'z\n' > "$C/zz-acl"; chmod 640 "$C/zz-acl"
setfacl -m u:1000:r "$C/zz-acl"
printf 'z\n' > "$C/sub/zz-acl"; chmod 640 "$C/sub/zz-acl"
setfacl -m u:1000:r "$C/sub/zz-acl"
ln -s a1 "$C/link"

for who in root nobody u1000; do
	want $who ENOTSUP getxattr "$C/a1" security.selinux
	want $who ENOTSUP getxattr "$C/zz-acl" security.selinux
	want $who ENOTSUP getxattr "$C" security.selinux
	want $who ENOTSUP getxattr "$M" security.selinux
done
check "lgetxattr of a symlink: ENOTSUP" "$PY" -c '
import errno, os, sys
try: os.getxattr(sys.argv[1], "security.selinux", follow_symlinks=False)
except OSError as e: sys.exit(e.errno != errno.EOPNOTSUPP)
sys.exit(1)' "$C/link"
want root ENOTSUP setxattr "$C/a1" security.selinux system_u:object_r:etc_t:s0
want root ENOTSUP removexattr "$C/a1" security.selinux
touch "$C/own-n"; chown 65534:65534 "$C/own-n"
want nobody ENOTSUP setxattr "$C/own-n" security.selinux x
want root ENOTSUP getxattr "$C/a1" security.selinux
if [ -d "$M/.snapshots" ]; then
	want root ENOTSUP getxattr "$M/.snapshots" security.selinux
fi
rm "$C/own-n"
if [ -d "$M/.trash" ]; then
	want root ENOTSUP getxattr "$M/.trash" security.selinux
	check "ls -l of the trash works" eval 'ls -l "$M/.trash" >/dev/null'
fi

# Other security.* names: stored for root, hidden from others (recorded).
want root OK setxattr "$C/a2" security.ima v
check "root reads security.ima back" test "$(getfattr --only-values -n security.ima "$C/a2")" = v
want nobody ENODATA getxattr "$C/a2" security.ima
check "... hidden from nobody, recorded" \
	has op=getxattr path=/c/a2 uid=65534 result=ENODATA detail~hidden

# ls -l: the "+" of files with ACLs listed after files without.
for who in root u1000; do
	out=$("as_$who" ls -l "$C")
	check "$who: ls -l shows + on the file with an ACL" \
		eval 'echo "$out" | grep -q "^-rw-r-----+ .* zz-acl$"'
	check "$who: ... and on none without" \
		eval '! echo "$out" | grep -q "^-rw-r--r--+"'
	out=$("as_$who" ls -lR "$C")
	check "$who: ls -lR shows + in the subdirectory too" \
		test "$(echo "$out" | grep -c "^-rw-r-----+ .* zz-acl$")" = 2
done
check "the selinux probes left no audit record" hasnt op=getxattr detail=security.selinux
getfacl "$C/zz-acl" >/dev/null
check "an ACL read is recorded" has op=getxattr path=/c/zz-acl detail=system.posix_acl_access

# Changes between listings on the same mount are seen at once.
setfacl -m u:1001:r "$C/a3"
check "setfacl after a listing: + at once" \
	eval 'ls -l "$C/a3" | grep -q "^-rw-r--r--+"'
want u1001 OK read "$C/a3"
setfacl -b "$C/a3"
check "setfacl -b: + gone at once" eval '! ls -l "$C/a3" | grep -q "+"'
chmod 600 "$C/zz-acl"
want u1000 EACCES read "$C/zz-acl"
check "chmod keeps the ACL listed (mask changed)" eval 'ls -l "$C/zz-acl" | grep -q "^-rw-------+"'
setfacl -m u:1000:r "$C/zz-acl"
want u1000 OK read "$C/zz-acl"

if command -v strace >/dev/null; then
	strace -f -o "$T/st" -e trace=getxattr,lgetxattr ls -lR "$C" >/dev/null
	nsel=$(grep -c '"security.selinux"' "$T/st")
	nacl=$(grep -c '"system.posix_acl_access"' "$T/st")
	check "ls -lR asked security.selinux once, not per file ($nsel)" test "$nsel" = 1
	# every entry but the symlink: c, 40 + zz-acl + sub in it, 41 in sub
	check "... and the ACL of every entry ($nacl for 84)" test "$nacl" -ge 84
else
	test_ok "# SKIP strace not installed"
fi

vv_umount "$M"
test_done
