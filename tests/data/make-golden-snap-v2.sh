#!/usr/bin/env bash
# make-golden-snap-v2.sh - build tests/data/golden-snap-v2.tar.gz: a store
# whose snapshot files were bound by a keyed hash of the whole file
# (snap_files.mac; before each page was bound by its tag in snap_tags), so
# later builds prove they still read, check, flag when tampered and delete
# them (tests/integration/t6036-snap-golden-hash.sh).
# Run once, as root, with a vecvault built from a tree before that change
# (main at 7a8b49e):  tests/data/make-golden-snap-v2.sh /path/to/old/vecvault
# Never regenerate an existing golden store: add a new version beside it.
set -eu
VV=$(readlink -f "$1")
out=$(cd "$(dirname "$0")" && pwd)/golden-snap-v2.tar.gz
[ -e "$out" ] && { echo "$out exists; golden stores are never regenerated" >&2; exit 1; }
T=$(mktemp -d)
trap 'mountpoint -q "$T/mnt" && fusermount3 -u "$T/mnt"; rm -rf "$T"' EXIT
export VECVAULT_TEST_KDF=1 VECVAULT_STATE_DIR="$T/state" VECVAULT_AUDIT_DIR="$T/audit"
printf "golden snap passphrase v2\n" > "$T/pass"; chmod 600 "$T/pass"
"$VV" init "$T/golden-snap-v2" --passfile "$T/pass" --kdf test
mkdir "$T/mnt"
"$VV" mount "$T/golden-snap-v2" "$T/mnt" --passfile "$T/pass"
M=$T/mnt
mkdir -m 755 "$M/c"
printf 'version one\n' > "$M/c/notes.txt"
/usr/bin/python3 - "$M/c" <<'PY'
import sys
for i in range(50):
    open("%s/f%03d" % (sys.argv[1], i), "wb").write((b"%03d" % i) * 300)
PY
"$VV" snapshot create "$M" h1
printf 'version two\n' > "$M/c/notes.txt"
"$VV" snapshot create "$M" h2
fusermount3 -u "$M"
sleep 1
tar -C "$T" --exclude=golden-snap-v2/reserve -czf "$out" golden-snap-v2
echo "wrote $out"
