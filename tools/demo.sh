#!/usr/bin/env bash
# demo.sh - install what is missing, build, and show vecvault working on a
# local demo vault: init, mount, store vectors, query them, prove that the
# store directory holds only ciphertext, unmount.
#
#   tools/demo.sh                 # vault in ./demo-vault (or $VV_DEMO_DIR)
#
# Needs /dev/fuse (run as root, or as a user allowed to mount FUSE).
set -eu
cd "$(dirname "$0")/.."
. tools/deps.sh
# shellcheck disable=SC2086
vv_install $VV_PACKAGES

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
VV=$PWD/build/vecvault
PY=/usr/bin/python3

D=${VV_DEMO_DIR:-$PWD/demo-vault}
if mountpoint -q "$D/mnt" 2>/dev/null; then fusermount3 -u "$D/mnt"; fi
rm -rf "$D"
mkdir -p "$D/mnt"
# Keep the demo's rollback anchor and audit log beside it, not in ~/.local.
export VECVAULT_STATE_DIR="$D/state" VECVAULT_AUDIT_DIR="$D/audit"
head -c 24 /dev/urandom | base64 > "$D/passphrase"
chmod 600 "$D/passphrase"
trap 'mountpoint -q "$D/mnt" 2>/dev/null && fusermount3 -u "$D/mnt"' EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "vecvault init $D/store"
"$VV" init "$D/store" --passfile "$D/passphrase"
step "vecvault mount $D/store $D/mnt"
"$VV" mount "$D/store" "$D/mnt" --passfile "$D/passphrase" --pid-file "$D/daemon.pid"

step "a collection of 128-d vectors, stored with cp"
"$VV" collection create "$D/mnt/products" --dim 128 --metric l2
"$PY" - "$D" <<'PYEOF'
import sys, numpy as np
d = sys.argv[1]
rng = np.random.default_rng(7)
centers = rng.normal(size=(32, 128)).astype(np.float32)
for part in range(2):
    x = centers[rng.integers(0, 32, 50000)] + 0.1 * rng.normal(size=(50000, 128)).astype(np.float32)
    np.save(f"{d}/part-{part}.npy", x.astype(np.float32))
np.save(f"{d}/queries.npy", (centers[:3] + 0.05).astype(np.float32))
open(f"{d}/notes.txt", "w").write("SECRET-DEMO-MARKER: launch plan for product 42\n")
PYEOF
cp "$D"/part-*.npy "$D/notes.txt" "$D/mnt/products/"
ls -l "$D/mnt/products"
getfattr -d "$D/mnt/products/part-0.npy"

step "vecvault stats / query (exact k-NN through the mount)"
"$VV" stats "$D/mnt/products"
"$VV" query "$D/mnt/products" -q "$D/queries.npy" -k 3

step "the store holds only ciphertext"
ls "$D/store" "$D/store/chunks" | head -12
if grep -rqa "SECRET-DEMO-MARKER" "$D/store" || grep -rqa "part-0.npy" "$D/store"; then
	echo "FAIL: plaintext found in the store"; exit 1
fi
echo "grep for the file contents and names under $D/store: nothing found"

# The daemon writes its audit records out once a second and at exit:
# unmount and wait for it to finish before reading the log.
fusermount3 -u "$D/mnt"
trap - EXIT
pid=$(cat "$D/daemon.pid")
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done

step "the audit log saw it all: the query's reads and the unmount (last 8 records), and its chain verifies"
"$VV" audit show "$D/store" | tail -8
"$VV" audit verify "$D/store" --passfile "$D/passphrase"

step "unmounted; mount again with:"
echo "  VECVAULT_STATE_DIR=$D/state VECVAULT_AUDIT_DIR=$D/audit $VV mount $D/store $D/mnt --passfile $D/passphrase"
