#!/bin/bash
# t1041-idle-node-grants: nodes the daemon keeps idle (vault_node.c: no
# lookup, open or pin left, kept for the next query) answer from the
# current state after a change that reaches them without a FUSE request.
# After a remount the kernel knows none of the segments; a role member's
# directory requests (the offload of `vecvault query`) build their nodes,
# which stay idle: refused while nothing grants the member, served after
# `vecvault grant` (the grant's walk rewrites rows and updates the nodes
# it finds, idle ones among them), refused again after `vecvault revoke`,
# a chmod through the mount refuses one name; and nodes made idle while
# granted refuse after the revoke.  Files purged and
# snapshots deleted with idle nodes: test_knn_dir "idle:".
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
GR=vv1041rd UR=vv1041us          # a role (group) and its member, made here
vv_role_member "$UR" "$GR"
vv_init "$S" >/dev/null 2>&1
vv_mount "$S" "$M"
mkdir -m 0755 "$M/rc"
for i in 0 1 2 3 4 5 6 7; do
	"$PY" -c 'import struct, sys; open(sys.argv[1], "wb").write(struct.pack("<i4f", 4, float(sys.argv[2]), 0, 0, 0) * 3)' \
		"$M/rc/r$i.fvecs" "$i"
	chmod 0640 "$M/rc/r$i.fvecs"
done
"$VV_BIN" role create "$GR" "$M" >/dev/null
vv_umount "$M"
vv_mount "$S" "$M"               # the kernel holds none of the files now

# ask: the member's directory request over r0..r7, one err per name
ask() {
	setpriv --reuid="$UR" --regid=nogroup --init-groups -- /usr/bin/python3 - "$M/rc" \
		"$VV_SRC/tests/integration/lib" <<'PY' 2>&1
import os, sys
sys.path.insert(0, sys.argv[2])
import knn_dir as K
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
e, h, st, c = K.knn_dir(fd, [0.0] * 4, ["r%d.fvecs" % i for i in range(8)], 4)
print(e, " ".join(str(s[0]) for s in st) if st else "")
PY
}
denied="OK -13 -13 -13 -13 -13 -13 -13 -13"
served="OK 0 0 0 0 0 0 0 0"

out=$(ask)
check "before any grant: every name refused (their nodes now idle)" eval '[ "$out" = "$denied" ] || { echo "# $out"; false; }'
out=$(ask)
check "asked again: still refused" eval '[ "$out" = "$denied" ] || { echo "# $out"; false; }'
"$VV_BIN" grant "$GR" readonly "$M/rc" >/dev/null
out=$(ask)
check "after the grant: every name served" eval '[ "$out" = "$served" ] || { echo "# $out"; false; }'
"$VV_BIN" revoke "$GR" "$M/rc" >/dev/null
out=$(ask)
check "after the revoke: every name refused again" eval '[ "$out" = "$denied" ] || { echo "# $out"; false; }'
"$VV_BIN" grant "$GR" readonly "$M/rc" >/dev/null
out=$(ask)
check "granted again: served" eval '[ "$out" = "$served" ] || { echo "# $out"; false; }'
chmod 0600 "$M/rc/r3.fvecs"
out=$(ask)
check "r3 chmod 0600 (its mask drops the role): r3 alone refused" \
	eval '[ "$out" = "OK 0 0 0 -13 0 0 0 0" ] || { echo "# $out"; false; }'
# the other way: nodes made idle while the grant lets the member in
vv_umount "$M"
vv_mount "$S" "$M"
out=$(ask)
check "remounted, granted: served but r3 (nodes idle again)" \
	eval '[ "$out" = "OK 0 0 0 -13 0 0 0 0" ] || { echo "# $out"; false; }'
"$VV_BIN" revoke "$GR" "$M/rc" >/dev/null
out=$(ask)
check "revoked: every name refused, none served from an idle node" \
	eval '[ "$out" = "$denied" ] || { echo "# $out"; false; }'
test_done
