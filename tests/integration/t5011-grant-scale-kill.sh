#!/bin/bash
# t5011-grant-scale-kill: a grant over 100k entries completes (the time is
# printed, not asserted) and is one transaction: a second grant on the same
# tree, its daemon SIGKILLed while it runs, leaves after a remount either
# every node with the new entry or none (never a part), and the vault is
# consistent (fsck).
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
NDIR=${VV_GRANT_DIRS:-100}
NFILE=${VV_GRANT_FILES:-1000}
vv_init "$S" >/dev/null
check "mount" vv_mount "$S" "$M"
mkdir "$M/c"
# The tree: NDIR directories of NFILE empty files, two writers.
mk() {
	"$PY" - "$M/c" "$1" "$2" "$NFILE" <<'PY'
import os, sys
b, lo, hi, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
for d in range(lo, hi):
    os.mkdir(f"{b}/d{d}")
    for i in range(n):
        os.close(os.open(f"{b}/d{d}/f{i}", os.O_CREAT | os.O_WRONLY, 0o644))
PY
}
mk 0 $((NDIR / 2)) & p1=$!
mk $((NDIR / 2)) "$NDIR" & p2=$!
wait $p1 && wait $p2
total=$((NDIR * NFILE + NDIR + 1))
check "role daemon" "$VV_BIN" role create daemon "$M"

t0=$(date +%s.%N)
check "grant daemon readonly over $total entries" "$VV_BIN" grant daemon readonly "$M/c"
t1=$(date +%s.%N)
echo "# grant over $total entries: $(echo "$t1 - $t0" | bc) s"

# counts GID: "RO RW", how many nodes below $M/c carry a group:GID entry in
# their access ACL without and with the write bit (one pass).
counts() {
	"$PY" - "$M/c" "$1" <<'PY'
import os, struct, sys
root, gid = sys.argv[1], int(sys.argv[2])
n = [0, 0]
for dp, dns, fns in os.walk(root):
    for p in [dp] + [os.path.join(dp, f) for f in fns]:
        try: b = os.getxattr(p, "system.posix_acl_access", follow_symlinks=False)
        except OSError: continue
        for off in range(4, len(b), 8):
            tag, pm, i = struct.unpack_from("<HHI", b, off)
            if tag == 8 and i == gid: n[1 if pm & 2 else 0] += 1
print(n[0], n[1])
PY
}
# The readonly grant's entries are checked below, together with the next
# grant's (one pass over the tree: a pass costs more than the grant).

# A second grant (readwrite: rwx on dirs, rw- on files), killed mid-way.
pid=$(cat "$T/.pids/$(echo "$M" | tr / _)")
"$VV_BIN" grant daemon readwrite "$M/c" > "$T/grant.out" 2>&1 &
gp=$!
sleep 0.3
kill -KILL "$pid"
wait $gp || true
vv_wait_daemon "$T/.pids/$(echo "$M" | tr / _)" || true
fusermount3 -u "$M" 2>/dev/null || fusermount3 -uz "$M"
awk -F '\t' -v m="$M" '$1 != m' "$VV_MOUNTS" > "$VV_MOUNTS.new"; mv "$VV_MOUNTS.new" "$VV_MOUNTS"
check "remount after SIGKILL" vv_mount "$S" "$M"
read -r ro rw <<<"$(counts 1)"
echo "# after the kill: $rw nodes with the readwrite entry, $ro with the readonly one"
check "all or none: every node has one entry, all from the same grant" \
	test "$rw" -eq "$total" -a "$ro" -eq 0 -o "$rw" -eq 0 -a "$ro" -eq "$total"
check "unmount" vv_umount "$M"
check "fsck is clean" sh -c "'$VV_BIN' fsck '$S' --passfile '$PASSFILE' >/dev/null 2>&1"
test_done
