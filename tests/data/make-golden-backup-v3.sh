#!/usr/bin/env bash
# make-golden-backup-v3.sh - build tests/data/golden-backup-v3.tar.gz, a
# backup repository of the third layout: config version 2 (objects named
# with HMAC-SHA-256) holding a backup with its rows in the manifest
# (manifest version 1, written by a build before metadata packs) and two
# with their rows in metadata packs (manifest version 2; the third after a
# small change, so the two share packs: 300 small files give several).  Later builds prove they still
# read all three (tests/integration/t6037-backup-packs.sh).  It backs up the
# golden store (golden-v1.tar.gz) and records the sha256 of every file of
# each backup beside the repository.  Run once, as root:
#   tests/data/make-golden-backup-v3.sh OLD/vecvault NEW/vecvault
# OLD: a build that writes manifest version 1 into a version 2 repository
# (main at 0592c8c); NEW: one that writes metadata packs.
# Never regenerate an existing golden repository: add a new version beside it.
set -eu
OLD=$(readlink -f "$1")
NEW=$(readlink -f "$2")
here=$(cd "$(dirname "$0")" && pwd)
out=$here/golden-backup-v3.tar.gz
[ -e "$out" ] && { echo "$out exists; golden repositories are never regenerated" >&2; exit 1; }
T=$(mktemp -d)
trap 'mountpoint -q "$T/mnt" && fusermount3 -u "$T/mnt"; rm -rf "$T"' EXIT
export VECVAULT_TEST_KDF=1 VECVAULT_STATE_DIR="$T/state" VECVAULT_AUDIT_DIR="$T/audit"
tar -C "$T" -xzf "$here/golden-v1.tar.gz"
printf "golden passphrase v1\n" > "$T/pass"
printf "golden repository v3\n" > "$T/rpass"
chmod 600 "$T/pass" "$T/rpass"
mkdir "$T/mnt" "$T/out"
R=$T/out/golden-backup-v3
sums() { (cd "$T/mnt" && find . -path ./.snapshots -prune -o -path ./.trash -prune -o -type f -print0 | sort -z | xargs -0 sha256sum); }
mnt() { "$1" mount "$T/golden-v1" "$T/mnt" --passfile "$T/pass" --accept-rollback; }
umnt() { fusermount3 -u "$T/mnt"; sleep 1; }
mnt "$OLD"
"$OLD" backup init "$R" --passfile "$T/rpass" --kdf test
"$OLD" backup create "$T/mnt" "$R" --passfile "$T/rpass" --tag first
sums > "$T/out/first.sha256"
umnt
mnt "$NEW"
printf 'added after the first backup\n' > "$T/mnt/products/added.txt"
# Rows enough for several packs: 300 small files (inline in their rows).
mkdir "$T/mnt/products/many"
python3 -c 'import random, sys
r = random.Random(3)
for i in range(300):
    open("%s/n%03d" % (sys.argv[1], i), "wb").write(bytes(r.getrandbits(8) for _ in range(r.randint(200, 900))))' "$T/mnt/products/many"
"$NEW" backup create "$T/mnt" "$R" --passfile "$T/rpass" --tag second
sums > "$T/out/second.sha256"
printf 'and after the second\n' > "$T/mnt/products/third.txt"
printf 'changed' > "$T/mnt/products/many/n150"
"$NEW" backup create "$T/mnt" "$R" --passfile "$T/rpass" --tag third
sums > "$T/out/third.sha256"
umnt
rm -f "$R/lock"
tar -C "$T/out" -czf "$out" golden-backup-v3 first.sha256 second.sha256 third.sha256
echo "wrote $out"
