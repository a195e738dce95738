#!/bin/bash
# t6012-snap-query-restore: `vecvault query` on .snapshots/NAME/COLL answers
# as numpy does on the data of that moment (the daemon's offload serves the
# snapshot's segment too), after the live segment was overwritten; then
# `vecvault snapshot restore` puts back a file, a collection and everything,
# each compared byte for byte with the snapshot, and what was in the way is
# kept beside it (NAME.pre-restore-TIME), never lost.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse
vv_need_numpy

S=$T/store
M=$T/mnt
G=$T/gen
mkdir -p "$G"
vv_init "$S" >/dev/null
check "mount" vv_mount "$S" "$M"
"$PY" - "$G" <<'PY'
import numpy as np, sys
G = sys.argv[1]
rng = np.random.default_rng(6012)
np.save(G + "/a.npy", rng.standard_normal((6000, 64)).astype('<f4'))
np.save(G + "/a2.npy", rng.standard_normal((6000, 64)).astype('<f4'))
np.save(G + "/q.npy", rng.standard_normal((20, 64)).astype('<f4'))
PY
C=$M/products
check "collection create" "$VV_BIN" collection create "$C" --dim 64 --metric l2
cp "$G/a.npy" "$C/a.npy"
mkdir "$M/other" "$C/sub"
echo one > "$M/other/x.txt"
echo two > "$C/sub/y.txt"
ln "$C/sub/y.txt" "$C/sub/y-link.txt"
echo top > "$M/top.txt"
check "snapshot s1" sh -c "'$VV_BIN' snapshot create '$M' s1 >/dev/null"
cp "$G/a2.npy" "$C/a.npy"                    # the live segment changes

# ref OUT: top-10 ids per query equal numpy's on the original a.npy (ties ok)
ref() {
	"$PY" - "$G" "$1" <<'PY'
import numpy as np, sys
G, out = sys.argv[1], sys.argv[2]
X, Q = np.load(G + "/a.npy").astype(np.float64), np.load(G + "/q.npy").astype(np.float64)
D = ((Q[:, None, :] - X[None]) ** 2).sum(2)
got = {}
for line in open(out):
    qi, rank, i, s, seg, row = line.rstrip("\n").split("\t")
    got.setdefault(int(qi), []).append((int(i), float(s)))
bad = 0
for qi in range(len(Q)):
    kth = np.sort(D[qi])[9]
    for i, s in got.get(qi, []):
        if abs(D[qi][i] - s) > 1e-4 * (1 + s) or D[qi][i] > kth * (1 + 1e-5):
            bad += 1
    if len(got.get(qi, [])) != 10:
        bad += 1
sys.exit(1 if bad else 0)
PY
}
SC=$M/.snapshots/s1/products
check "query on the snapshot" sh -c "'$VV_BIN' query '$SC' -q '$G/q.npy' -k 10 > '$T/out' 2>'$T/err'"
check "... equals numpy on the data of that moment" ref "$T/out"
off=0
for i in $(seq 100); do
	"$VV_BIN" query "$SC" -q "$G/q.npy" -k 10 --stats > "$T/out2" 2> "$T/out2.stats" || break
	if grep -q "offload: 1 of 1 segments scanned by the daemon" "$T/out2.stats"; then off=1; break; fi
	sleep 0.2
done
check "the daemon's offload scans the snapshot's segment" test "$off" = 1
check "... with the same answer" ref "$T/out2"
check "nobody may query the snapshot (0755 collection)" sh -c "setpriv --reuid=65534 --regid=65534 --clear-groups '$VV_BIN' query '$SC' -q '$G/q.npy' -k 3 >/dev/null 2>&1"
check "the live collection answers differently now" sh -c "! cmp -s '$C/a.npy' '$SC/a.npy'"

# restore a file
check "restore /products/a.npy" sh -c "'$VV_BIN' snapshot restore '$M' s1 '$C/a.npy' > '$T/r1'"
check "... byte for byte" cmp "$C/a.npy" "$G/a.npy"
aside=$(ls "$C" | grep '^a.npy.pre-restore-' || true)
check "the overwritten live file was kept aside ($aside)" cmp "$C/$aside" "$G/a2.npy"
check "query the restored collection" sh -c "'$VV_BIN' query '$C' -q '$G/q.npy' -k 10 > '$T/out3' 2>&1 || true; true"
# restore a collection: later files go aside with the old directory
echo later > "$C/later.txt"
rm "$C/sub/y.txt"
check "restore the collection (by its snapshot path)" sh -c "'$VV_BIN' snapshot restore '$M' s1 '$M/.snapshots/s1/products' > '$T/r2'"
check "... equal to the snapshot (diff -r)" diff -r "$M/.snapshots/s1/products" "$C"
check "... the hard link is one inode again" test "$(stat -c %i "$C/sub/y.txt")" = "$(stat -c %i "$C/sub/y-link.txt")"
check "the old collection is aside with its later file" sh -c "cat '$M'/products.pre-restore-*/later.txt | grep -qx later"
check "the restored collection keeps its schema xattr" sh -c "getfattr -n user.vecvault.dim --only-values '$C' | grep -qx 64"
# everything
echo changed > "$M/top.txt"
rm -r "$M/other"
check "restore everything" sh -c "'$VV_BIN' snapshot restore '$M' s1 > '$T/r3'"
for e in products other top.txt; do
	check "everything: /$e equals the snapshot" diff -r "$M/.snapshots/s1/$e" "$M/$e"
done
rc=0; err=$("$VV_BIN" snapshot restore "$M" s1 /nope 2>&1) || rc=$?
check "restore of a missing path: exit 1" test "$rc" = 1
check "... names it" grep -q "/nope is not in snapshot s1" <<<"$err"
rc=0; err=$(as_u1000 "$VV_BIN" snapshot restore "$M" s1 2>&1) || rc=$?
check "restore as u1000: refused" test "$rc" = 1
check "unmount" vv_umount "$M"
check "fsck after the restores: clean" sh -c "'$VV_BIN' fsck '$S' --passfile '$PASSFILE' >'$T/fsck' 2>&1"
test_done
