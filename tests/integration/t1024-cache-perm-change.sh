#!/bin/bash
# t1024-cache-perm-change: what the kernel caches never outlives a change.
# The kernel keeps entries and attributes for an hour when every user may
# search their ancestry (docs/design.md, "Node cache and kernel caches"),
# and `ls -lR` hands them out by readdirplus, negative entries included.
# Each case warms the caches as the users concerned (ls -lR, stat, a
# lookup of a missing name), changes something as root, and checks at once
# (no sleep) that the next lookup or open by u1000, u1001, nobody or a role
# member follows the change:
#  1. chmod 0700 of the parent, and of the grandparent: EACCES below;
#  2. chmod 0600 of a file: a new open for reading is EACCES;
#  3. setfacl u:1000:--- on the parent: u1000 refused, nobody not;
#  4. a 0750 parent whose group changes (chgrp): the old group's member
#     (u1001, group 2000) refused, the new one's let in (entries below a
#     directory not everyone may search are never cached);
#  5. vecvault grant ROLE r on the parent (an entry without search): the
#     role's member refused; revoke: let in again;
#  6. a name renamed or removed is ENOENT, the new name found; a name
#     brought back by `vecvault trash restore` (the control plane, not this
#     mount) is found although its absence was looked up before.
# Every refusal of a lookup is audited.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
R=vv1024r                           # the role's group
groupdel "$R" 2>/dev/null || true    # left by a run killed outright
vv_group "$R"                        # removed at exit (test-lib)
RG=$(getent group "$R" | cut -d: -f3)
# as_member CMD...: uid 1002, whose only group is the role's (for want).
as_member() { setpriv --reuid=1002 --regid=1002 --groups="$RG" -- "$@"; }

vv_init "$S" >/dev/null 2>&1
LOG=$(vv_audit_log "$S")
vv_mount "$S" "$M"
has() { vv_audit_has "$LOG" "$@"; }

C=$M/c
mkdir -m 755 "$C" "$C/d" "$C/n"
echo hello > "$C/d/f"
echo other > "$C/d/g"
echo back > "$C/n/y"
chmod 644 "$C/d/f" "$C/d/g" "$C/n/y"
"$VV_BIN" role create "$R" "$M" >/dev/null

# warm WHO...: each lists the tree (readdirplus), stats the files and looks
# up a missing name, so the kernel holds all of it.
warm() {
	local who
	for who in "$@"; do
		"as_$who" ls -lR "$C" >/dev/null 2>&1 || true
		"as_$who" stat "$C/d/f" "$C/d/g" "$C/n/y" >/dev/null 2>&1 || true
		"as_$who" stat "$C/n/missing" >/dev/null 2>&1 || true
	done
}

# ---- 1. chmod of the parent and of the grandparent ---------------------------
warm u1000 nobody
want u1000 OK stat "$C/d/f"
chmod 700 "$C/d"
want u1000 EACCES stat "$C/d/f"
want u1000 EACCES read "$C/d/f"
want nobody EACCES stat "$C/d/g"
want u1000 EACCES listdir "$C/d"
want root OK read "$C/d/f"
check "the refused lookup is audited" has op=lookup uid=1000 result=EACCES
chmod 755 "$C/d"
want u1000 OK read "$C/d/f"
warm u1000 nobody
chmod 700 "$C"
want u1000 EACCES stat "$C/d/f"
want nobody EACCES stat "$C/n/y"
want u1000 EACCES stat "$C/n/missing"
chmod 755 "$C"
want u1000 OK stat "$C/d/f"
want u1000 ENOENT stat "$C/n/missing"

# ---- 2. chmod of a file: the next open --------------------------------------
warm u1000
want u1000 OK read "$C/d/f"
chmod 600 "$C/d/f"
want u1000 EACCES read "$C/d/f"
want u1000 OK stat "$C/d/f"
chmod 644 "$C/d/f"
want u1000 OK read "$C/d/f"

# ---- 3. setfacl on the parent --------------------------------------------------
if command -v setfacl >/dev/null; then
	warm u1000 nobody
	setfacl -m u:1000:--- "$C/d"
	want u1000 EACCES stat "$C/d/f"
	want u1000 EACCES read "$C/d/g"
	want nobody OK read "$C/d/f"
	setfacl -b "$C/d"
	want u1000 OK read "$C/d/f"
else
	echo "# no setfacl: case 3 skipped"
fi

# ---- 4. chgrp of a 0750 parent -----------------------------------------------
chmod 750 "$C/d"
chgrp 2000 "$C/d"
as_u1001 ls -lR "$C" >/dev/null 2>&1 || true
want u1001 OK read "$C/d/f"
want u1000 EACCES stat "$C/d/f"
chgrp 1000 "$C/d"
want u1001 EACCES stat "$C/d/f"
want u1001 EACCES read "$C/d/g"
want u1000 OK read "$C/d/f"
chgrp 0 "$C/d"
chmod 755 "$C/d"

# ---- 5. a grant without search, then its revoke -------------------------------
as_member ls -lR "$C" >/dev/null 2>&1 || true
want member OK read "$C/d/f"
check "grant $R r on c/d" "$VV_BIN" grant "$R" r "$C/d"
want member EACCES stat "$C/d/f"
want member EACCES read "$C/d/g"
want u1000 OK read "$C/d/f"
check "revoke $R on c/d" "$VV_BIN" revoke "$R" "$C/d"
want member OK read "$C/d/f"

# ---- 6. renamed, removed and restored names ------------------------------------
warm u1000 nobody
mv "$C/d/g" "$C/d/g2"
want u1000 ENOENT stat "$C/d/g"
want nobody ENOENT read "$C/d/g"
want u1000 OK read "$C/d/g2"
rm "$C/d/g2"
want u1000 ENOENT stat "$C/d/g2"
rm "$C/n/y"
want u1000 ENOENT stat "$C/n/y"
want nobody ENOENT stat "$C/n/y"
check "trash restore c/n/y (control plane)" "$VV_BIN" trash restore "$M" /c/n/y
want u1000 OK read "$C/n/y"
want nobody OK stat "$C/n/y"
check "u1000 lists it" sh -c "setpriv --reuid=1000 --regid=1000 --clear-groups -- ls '$C/n' | grep -qx y"

vv_umount "$M"
test_done
