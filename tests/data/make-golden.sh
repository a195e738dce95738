#!/usr/bin/env bash
# make-golden.sh - build tests/data/golden-v1.tar.gz, a store written by
# format version 1, so later builds prove they still read it
# (tests/integration/t1012-golden-store.sh).  Run once per format version,
# as root, with a built vecvault:  tests/data/make-golden.sh build/vecvault
# Never regenerate an existing golden store: add a new version beside it.
set -eu
VV=$(readlink -f "$1")
out=$(cd "$(dirname "$0")" && pwd)/golden-v1.tar.gz
[ -e "$out" ] && { echo "$out exists; golden stores are never regenerated" >&2; exit 1; }
T=$(mktemp -d)
trap 'mountpoint -q "$T/mnt" && fusermount3 -u "$T/mnt"; rm -rf "$T"' EXIT
export VECVAULT_TEST_KDF=1 VECVAULT_STATE_DIR="$T/state" VECVAULT_AUDIT_DIR="$T/audit"
printf "golden passphrase v1\n" > "$T/pass"; chmod 600 "$T/pass"
"$VV" init "$T/golden-v1" --passfile "$T/pass" --kdf test
mkdir "$T/mnt"
"$VV" mount "$T/golden-v1" "$T/mnt" --passfile "$T/pass"
M=$T/mnt
"$VV" collection create "$M/products" --dim 4 --metric l2
printf 'a small inline file\n' > "$M/products/notes.txt"
/usr/bin/python3 - "$M" <<'PY'
import sys, random
m = sys.argv[1]
r = random.Random(1)
open(f"{m}/products/big.bin", "wb").write(bytes(r.getrandbits(8) for _ in range(200000)))
import struct
with open(f"{m}/products/seg.fvecs", "wb") as f:
    for i in range(10):
        f.write(struct.pack("<i4f", 4, i, i + 0.5, -i, 1.0))
PY
ln -s notes.txt "$M/products/link"
ln "$M/products/notes.txt" "$M/products/hardlink"
mkdir "$M/products/shared"
setfacl -m u:1000:rx "$M/products/shared"
setfattr -n user.note -v "golden" "$M/products/notes.txt"
touch -d '2024-01-02 03:04:05.123456789' "$M/products/notes.txt"
chmod 640 "$M/products/big.bin"
fusermount3 -u "$M"
sleep 1
# The reserve is recreated at mount; it is 4 MiB of random bytes.
tar -C "$T" --exclude=golden-v1/reserve -czf "$out" golden-v1
echo "wrote $out"
