#!/bin/bash
# t5012-grant-attack: grants attacked by unprivileged local users.  uid
# 65534 and u1000 try grant/revoke with every kind of path (root, missing,
# "..", relative, symlinks, too many) and are refused without learning
# whether a path exists, with nothing changed; u1001, in a readonly role,
# tries every way to write, change ACLs or modes, or reach another
# collection through the files she may read; then, in an admin role on /c1,
# she tries to use the privilege outside /c1 (another collection, through
# a symlink or a hard link, on the root, chown, setuid, vault-wide verbs).
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
G=vv5012g
if getent group 2000 >/dev/null; then
	echo "1..0 # SKIP gid 2000 (u1001's group in test-lib) is taken here"
	vv_done=1
	exit 77
fi
trap 'groupdel $G 2>/dev/null; vv_cleanup' EXIT
groupadd -g 2000 $G
is() { local name=$1 exp=$2 got=$3; if [ "$got" = "$exp" ]; then test_ok "$name"; else
	echo "# expected $exp, got $got"; test_fail "$name"; fi; }
pyop() { local who=$1; shift; "as_$who" "$PY" -c "$VV_PYOP" "$@" 2>&1 || true; }
facls() { (cd "$M" && getfacl -Rn . 2>/dev/null); }

vv_init "$S" >/dev/null
LOG=$(vv_audit_log "$S")
check "mount" vv_mount "$S" "$M"
mkdir -m 0750 "$M/c1" "$M/c2" "$M/c1/sub"
echo data > "$M/c1/f"; echo secret > "$M/c2/s"; echo top > "$M/topfile"
chmod 0640 "$M/c1/f" "$M/c2/s"
ln -s ../c2 "$M/c1/toc2"
"$VV_BIN" role create $G "$M" >/dev/null
before=$(facls)

# ---- nobody and u1000: no verb, no information ----------------------------------
for who in nobody u1000; do
	for p in "$M" "$M/c1" "$M/c2/s" "$M/c1/nope" "$M/nocoll/x" "$M/c1/../c2" "$M/c1/toc2" "$M/topfile"; do
		rc=0; err=$("as_$who" "$VV_BIN" grant $G readwrite "$p" 2>&1) || rc=$?
		is "$who: grant on ${p#$T/} refused" 1 "$rc"
		check "$who: ... with the same message, whatever exists" grep -q "no admin role\|only root" <<<"$err"
	done
	rc=0; "as_$who" "$VV_BIN" revoke $G "$M/c1" 2>/dev/null || rc=$?
	is "$who: revoke refused" 1 "$rc"
	rc=0; "as_$who" "$VV_BIN" admin "$M" grant role=$G perms=rwx path=/c1 path=/c2 2>/dev/null || rc=$?
	is "$who: raw request with two paths refused" 1 "$rc"
	rc=0; "as_$who" "$VV_BIN" admin "$M" grant role=$G perms=rwx 2>/dev/null || rc=$?
	is "$who: raw request without a path refused" 1 "$rc"
	rc=0; "as_$who" "$VV_BIN" grants "$M/c1/f" 2>/dev/null || rc=$?
	is "$who: grants below a directory she cannot search refused" 1 "$rc"
done
check "uid 65534's refusals are audited" vv_audit_has "$LOG" op=admin uid=65534 result=EACCES "detail~^grant"
is "nothing changed" "$before" "$(facls)"
rc=0; "$VV_BIN" admin "$M" grant role=$G perms=rwx path=relative 2>/dev/null || rc=$?
is "even root: a relative vault path is refused" 1 "$rc"
rc=0; "$VV_BIN" admin "$M" grant role=$G perms=r path=/c1/toc2 2>/dev/null || rc=$?
is "even root: a symlink is refused by the daemon" 1 "$rc"
rc=0; err=$("$VV_BIN" grant $G readonly "$M/c1/toc2" 2>&1) || rc=$?
check "and from the CLI (which does not follow it), saying why" grep -q "symbolic link" <<<"$err"
rc=0; "$VV_BIN" admin "$M" grant role=$G perms=rwx path=/c1/toc2/s 2>/dev/null || rc=$?
is "even root: no walking through a symlink" 1 "$rc"

# ---- u1001, readonly on /c1 -------------------------------------------------
check "grant $G readonly /c1" "$VV_BIN" grant $G readonly "$M/c1"
is "u1001 reads /c1/f" OK "$(pyop u1001 read "$M/c1/f")"
is "u1000 (not a member) still cannot" EACCES "$(pyop u1000 read "$M/c1/f")"
is "u1001: write" EACCES "$(pyop u1001 write "$M/c1/f")"
is "u1001: append" EACCES "$(pyop u1001 append "$M/c1/f")"
is "u1001: truncate" EACCES "$(pyop u1001 truncate "$M/c1/f" 0)"
is "u1001: create" EACCES "$(pyop u1001 create "$M/c1/new")"
is "u1001: mkdir" EACCES "$(pyop u1001 mkdir "$M/c1/sub/d")"
is "u1001: unlink" EACCES "$(pyop u1001 unlink "$M/c1/f")"
is "u1001: rename" EACCES "$(pyop u1001 rename "$M/c1/f" "$M/c1/g")"
is "u1001: chmod" EPERM "$(pyop u1001 chmod "$M/c1/f" 0666)"
rc=0; err=$(as_u1001 setfacl -m u:1001:rwx "$M/c1/f" 2>&1) || rc=$?
check "u1001: set an access ACL: EPERM" grep -q "not permitted" <<<"$err"
rc=0; err=$(as_u1001 setfacl -d -m u:1001:rwx "$M/c1/sub" 2>&1) || rc=$?
check "u1001: set a default ACL: EPERM" grep -q "not permitted" <<<"$err"
is "u1001: remove the ACL" EPERM "$(pyop u1001 removexattr "$M/c1/f" system.posix_acl_access)"
is "u1001: a user xattr" EACCES "$(pyop u1001 setxattr "$M/c1/f" user.x y)"
is "u1001: hard link of a file she may only read (protected_hardlinks)" EPERM "$(pyop u1001 link "$M/c1/f" "$M/c1/sub/l")"
is "u1001: the symlink to /c2 leads nowhere for her" EACCES "$(pyop u1001 read "$M/c1/toc2/s")"
is "u1001: /c2" EACCES "$(pyop u1001 listdir "$M/c2")"
rc=0; as_u1001 "$VV_BIN" grant $G readwrite "$M/c1" 2>/dev/null || rc=$?
is "u1001: cannot raise her own grant" 1 "$rc"
check "u1001 may list the grants of what she may stat" as_u1001 "$VV_BIN" grants "$M/c1/f"

# ---- u1001, admin on /c1 --------------------------------------------------------
check "grant $G admin /c1" "$VV_BIN" grant $G admin "$M/c1"
is "admin u1001: chmod root's file in /c1" OK "$(pyop u1001 chmod "$M/c1/f" 0660)"
is "admin u1001: chmod /c1 itself" OK "$(pyop u1001 chmod "$M/c1" 0770)"
is "admin u1001: no chmod in /c2" EACCES "$(pyop u1001 chmod "$M/c2/s" 0666)"
is "admin u1001: no chmod of /c2" EPERM "$(pyop u1001 chmod "$M/c2" 0777)"
is "admin u1001: no chmod of the root" EPERM "$(pyop u1001 chmod "$M" 0777)"
is "admin u1001: no chmod of a top-level file" EPERM "$(pyop u1001 chmod "$M/topfile" 0666)"
is "admin u1001: no hard link of /c2's file into /c1" EACCES "$(pyop u1001 link "$M/c2/s" "$M/c1/s")"
"$PY" -c 'import os,sys; os.chmod(sys.argv[1], 0o755)' "$M/c1/f"
pyop u1001 chmod "$M/c1/f" 4755 >/dev/null
check "admin u1001: chmod 4755 of root's file adds no setuid bit" test "$(stat -c %a "$M/c1/f")" = 755
rc=0; as_u1001 chown 1001 "$M/c1/f" 2>/dev/null || rc=$?
check "admin u1001: no chown" test "$rc" -ne 0 -a "$(stat -c %u "$M/c1/f")" = 0
rc=0; as_u1001 chgrp 2000 "$M/c1/f" 2>/dev/null || rc=$?
check "admin u1001: no chgrp" test "$rc" -ne 0 -a "$(stat -c %g "$M/c1/f")" = 0
rc=0; as_u1001 "$VV_BIN" grant $G readwrite "$M/c2" 2>/dev/null || rc=$?
is "admin u1001: no grant on /c2" 1 "$rc"
rc=0; err=$(as_u1001 "$VV_BIN" admin "$M" grant role=$G perms=rwx path=/c1/toc2/s 2>&1) || rc=$?
is "admin u1001: not through the symlink to /c2" 1 "$rc"
rc=0; as_u1001 "$VV_BIN" admin "$M" grant role=$G perms=rwx path=/c1 path=/c2 2>/dev/null || rc=$?
is "admin u1001: not /c2 alongside /c1" 1 "$rc"
check "and /c2 is untouched" sh -c "! getfacl -p '$M/c2' | grep -q 'group:$G'"
rc=0; as_u1001 "$VV_BIN" grant $G readwrite "$M" 2>/dev/null || rc=$?
is "admin u1001: not the root" 1 "$rc"
rc=0; as_u1001 "$VV_BIN" role create nogroup "$M" 2>/dev/null || rc=$?
is "admin u1001: no role.create" 1 "$rc"
rc=0; as_u1001 "$VV_BIN" role delete $G "$M" 2>/dev/null || rc=$?
is "admin u1001: no role.delete" 1 "$rc"
check "admin u1001 grants inside /c1" as_u1001 "$VV_BIN" grant $G rwx "$M/c1/sub"
check "admin u1001 revokes her own role on /c1 (and so her privilege)" \
	as_u1001 "$VV_BIN" revoke $G "$M/c1"
is "then she is a stranger again (cannot even reach /c1)" EACCES "$(pyop u1001 chmod "$M/c1/f" 0600)"
rc=0; as_u1001 "$VV_BIN" grant $G rwx "$M/c1/sub" 2>/dev/null || rc=$?
is "and cannot grant there" 1 "$rc"
test_done
