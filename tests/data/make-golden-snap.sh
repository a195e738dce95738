#!/usr/bin/env bash
# make-golden-snap.sh - build tests/data/golden-snap-v1.tar.gz: a store whose
# snapshots were made by the row-copy snapshot code (rows in snap_inodes,
# snap_dirents, snap_xattrs, snap_extents; before snapshots became files
# under STORE/snapshots/), so later builds prove they still read, restore,
# back up, check and delete them (tests/integration/t6007-snap-golden.sh).
# Run once, as root, with a vecvault built from a tree before that change
# (main at abbac29):  tests/data/make-golden-snap.sh /path/to/old/vecvault
# Never regenerate an existing golden store: add a new version beside it.
set -eu
VV=$(readlink -f "$1")
out=$(cd "$(dirname "$0")" && pwd)/golden-snap-v1.tar.gz
[ -e "$out" ] && { echo "$out exists; golden stores are never regenerated" >&2; exit 1; }
T=$(mktemp -d)
trap 'mountpoint -q "$T/mnt" && fusermount3 -u "$T/mnt"; rm -rf "$T"' EXIT
export VECVAULT_TEST_KDF=1 VECVAULT_STATE_DIR="$T/state" VECVAULT_AUDIT_DIR="$T/audit"
printf "golden snap passphrase v1\n" > "$T/pass"; chmod 600 "$T/pass"
"$VV" init "$T/golden-snap-v1" --passfile "$T/pass" --kdf test
mkdir "$T/mnt"
"$VV" mount "$T/golden-snap-v1" "$T/mnt" --passfile "$T/pass"
M=$T/mnt
"$VV" collection create "$M/products" --dim 4 --metric l2
printf 'version one\n' > "$M/products/notes.txt"
/usr/bin/python3 - "$M" <<'PY'
import sys, random
m = sys.argv[1]
r = random.Random(7)
open(f"{m}/products/big.bin", "wb").write(bytes(r.getrandbits(8) for _ in range(300000)))
PY
ln "$M/products/notes.txt" "$M/products/hardlink"
mkdir "$M/products/shared"
printf 'secret\n' > "$M/products/shared/secret.txt"
chmod 600 "$M/products/shared/secret.txt"
setfacl -m u:1000:rx "$M/products/shared"
setfattr -n user.note -v "golden" "$M/products/notes.txt"
sync "$M/products/big.bin"
"$VV" snapshot create "$M" old1
# changes after old1: old1 must still show the state above
printf 'version two\n' > "$M/products/notes.txt"
rm "$M/products/big.bin"
printf 'after\n' > "$M/products/after.txt"
"$VV" snapshot create "$M" old2
fusermount3 -u "$M"
sleep 1
tar -C "$T" --exclude=golden-snap-v1/reserve -czf "$out" golden-snap-v1
echo "wrote $out"
