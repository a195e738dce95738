#!/bin/bash
# t1044-idle-node-oracle: what the daemon answers from nodes it keeps idle
# (vault_node.c: the kernel forgot them) equals what it answers from rows
# read afresh after a remount, after changes made while the nodes were
# idle by every route that reaches them without a FUSE request of theirs:
# the control plane's grant, revoke and `role delete --revoke-all`, trash
# restore (the verb and `mv` out of .trash) and purge, snapshot restore
# of a directory and then of names inside it (a file with three names among
# them), and through the mount with the kernel holding nothing: chmod,
# chown, setfacl, link and unlink, rm -rf.  Compared: each name's answer to
# the directory request (VV_IOC_KNN_DIR, the route that builds idle nodes
# without lookups) for nobody, u1000 and a role member, their `ls` of
# .trash/files, and root's stat and getfacl of every name.  main's
# vault_snap.c fails 1 check (the file restored by the directory and then
# by its name: its idle node's link count 1, its rows' 2); a grant walk
# that skips idle nodes fails 3.  Each route added later belongs here.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
GR=vv1044rd UR=vv1044us          # a role (group) and its member, made here
vv_role_member "$UR" "$GR"
vv_init "$S" >/dev/null 2>&1
vv_mount "$S" "$M"

seg() {   # seg PATH VALUE: a 4-dimensional fvecs file of 3 rows
	"$PY" -c 'import struct, sys; open(sys.argv[1], "wb").write(struct.pack("<i4f", 4, float(sys.argv[2]), 0, 0, 0) * 3)' "$1" "$2"
}
DIRS="c/pub c/priv c/pub/t c/shared"
mkdir -m 0755 "$M/c" "$M/c/pub" "$M/c/pub/t"
mkdir -m 0750 "$M/c/shared"
mkdir -m 0700 "$M/c/priv"
for d in $DIRS; do
	for i in 0 1 2 3; do seg "$M/$d/r$i.fvecs" "$i"; done
done
chmod 0640 "$M/c/pub/r1.fvecs" "$M/c/shared/r1.fvecs"
chmod 0600 "$M/c/pub/r2.fvecs"
chown -R 1000:1000 "$M/c/priv"
ln "$M/c/pub/r3.fvecs" "$M/c/priv/l3.fvecs"
ln "$M/c/pub/r3.fvecs" "$M/c/pub/t/l3.fvecs"
"$VV_BIN" role create "$GR" "$M" >/dev/null

# answers: every name's directory request answer per user, their view of
# .trash/files, root's stat and getfacl of every name, from what the
# daemon holds now
NAMES="r0.fvecs r1.fvecs r2.fvecs r3.fvecs l3.fvecs"
ask() {   # ask SETPRIV-ARGS...: the directory request over every dir
	setpriv "$@" -- /usr/bin/python3 - "$M" "$VV_SRC/tests/integration/lib" $DIRS <<PY 2>&1
import os, sys
sys.path.insert(0, sys.argv[2])
import knn_dir as K
for d in sys.argv[3:]:
    try:
        fd = os.open(os.path.join(sys.argv[1], d), os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        print(d, "open", e.errno); continue
    names = "$NAMES".split()
    e, h, st, c = K.knn_dir(fd, [0.0] * 4, names, 4)
    print(d, e, " ".join("%s=%d" % (n, s[0]) for n, s in zip(names, st)) if st else "")
    os.close(fd)
try:
    print("trash", sorted(os.listdir(os.path.join(sys.argv[1], ".trash/files"))))
except OSError as e:
    print("trash", e.errno)
PY
}
answers() {
	echo 2 > /proc/sys/vm/drop_caches
	echo "== nobody"; ask --reuid=65534 --regid=65534 --clear-groups
	echo "== u1000"; ask --reuid=1000 --regid=1000 --clear-groups
	echo "== member"; ask --reuid="$UR" --regid=nogroup --init-groups
	echo "== root"
	(cd "$M" && find c -print | sort | while read -r f; do
		stat -c '%n %i %F %u %g %a %h %s %Y %Z' "$f"
	done && getfacl -R -p -n c 2>/dev/null | grep -v '^$')
}
# compare NAME: answers now (idle nodes) and after a remount (rows)
compare() {
	answers > "$T/idle.$1"
	vv_umount "$M"
	vv_mount "$S" "$M"
	answers > "$T/rows.$1"
	if diff "$T/idle.$1" "$T/rows.$1" > "$T/diff.$1"; then
		test_ok "$1: idle nodes answer as the rows"
	else
		sed 's/^/# /' "$T/diff.$1" | head -20
		test_fail "$1: idle nodes answer as the rows"
	fi
}
idle() {  # nodes built for every name, then the kernel forgets them
	answers > /dev/null
	echo 2 > /proc/sys/vm/drop_caches
}

vv_umount "$M"
vv_mount "$S" "$M"
idle
"$VV_BIN" grant "$GR" readonly "$M/c/pub" "$M/c/shared" >/dev/null
"$VV_BIN" grant "$GR" r "$M/c/priv/r1.fvecs" >/dev/null
"$VV_BIN" revoke "$GR" "$M/c/pub/t" >/dev/null
out=$(answers)
check "granted: the member is served the 0640 and 0600 files of /c/pub" \
	sh -c "printf '%s\n' \"\$1\" | sed -n '/== member/,/== root/p' | grep -q '^c/pub OK r0.fvecs=0 r1.fvecs=0 r2.fvecs=0'" _ "$out"
compare grants

idle
chmod 0600 "$M/c/pub/r0.fvecs"
chown 1000 "$M/c/pub/r1.fvecs"
setfacl -m u:65534:r "$M/c/pub/r2.fvecs"
setfacl -m u:1000:--- "$M/c/shared"
ln "$M/c/pub/r0.fvecs" "$M/c/shared/l3.fvecs"
rm "$M/c/pub/t/l3.fvecs"
rm -rf "$M/c/pub/t"
"$VV_BIN" trash restore "$M" /c/pub/t >/dev/null
rm "$M/c/shared/r2.fvecs" "$M/c/shared/r3.fvecs"
mv "$M/.trash/files/r2.fvecs" "$M/c/shared/r2.fvecs"
"$VV_BIN" trash purge "$M" /c/shared/r3.fvecs >/dev/null
compare "mount and trash"

idle
"$VV_BIN" snapshot create "$M" s1 >/dev/null
chmod 0644 "$M/c/pub/r0.fvecs"
rm "$M/c/priv/l3.fvecs"
idle
check "snapshot restore of /c/pub, then of names inside it" \
	"$VV_BIN" snapshot restore "$M" s1 /c/pub /c/pub/r3.fvecs /c/pub/t/r0.fvecs
compare "snapshot restore"

idle
rm -f "$M"/c/pub/*.pre-restore-* "$M"/c/pub/t/*.pre-restore-*
check "role delete --revoke-all" "$VV_BIN" role delete "$GR" --revoke-all "$M"
compare "revoke-all and removals"
test_done
