#!/bin/bash
# t1032-chown-killcap: a chown or chgrp drops a file's security.capability,
# as on ext4 (chown_common sets ATTR_KILL_PRIV for non-directories).  The
# kernel asks for the capability as the caller before it removes it, and
# security.* is hidden from non-root here, so on main a non-root owner's
# chgrp kept it (root's chown did not: the kernel removed it as root).
# The daemon now drops it itself at every change of owner or group,
# audited as a removexattr "security.capability (dropped by a chown)"
# by the caller.  A chmod keeps it, as on ext4.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse
command -v setcap >/dev/null && command -v getcap >/dev/null ||
	{ echo "1..0 # SKIP no setcap/getcap"; vv_done=1 vv_rc=77; exit 77; }

S=$T/store
M=$T/mnt
C=$M/c
vv_init "$S" >/dev/null 2>&1
LOG=$(vv_audit_log "$S")
check "mount" vv_mount "$S" "$M"
mkdir -m 755 "$C"

# capfile NAME: a 0755 file of u1001's with a capability set by root.
capfile() {
	printf 'x' > "$C/$1"
	chown 1001:1001 "$C/$1"
	chmod 755 "$C/$1"
	setcap cap_net_raw+ep "$C/$1"
}
hascap() { getcap "$C/$1" | grep -q cap_net_raw; }

capfile grp
check "the capability is there" hascap grp
check "u1001 moves it to her group 2000" as_u1001 chgrp 2000 "$C/grp"
check "u1001's chgrp dropped the capability" eval '! hascap grp'
check "... audited as dropped by a chown, by u1001" vv_audit_has "$LOG" op=removexattr \
	path=/c/grp uid=1001 "detail~^security.capability \\(dropped by a chown\\)"

capfile same
check "u1001's chown to herself" as_u1001 chown 1001:1001 "$C/same"
check "... drops it too (ext4 does for any chown of a non-directory)" eval '! hascap same'

capfile root
chown 1000 "$C/root"
check "root's chown drops it" eval '! hascap root'

capfile mode
check "u1001's chmod" as_u1001 chmod 750 "$C/mode"
check "... keeps it, as on ext4" hascap mode

vv_umount "$M"
test_done
