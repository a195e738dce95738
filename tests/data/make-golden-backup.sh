#!/usr/bin/env bash
# make-golden-backup.sh - build tests/data/golden-backup-v1.tar.gz, a backup
# repository written by repository format version 1, so later builds prove
# they still read it (tests/integration/t6024-backup-golden.sh).  It backs
# up the golden store (golden-v1.tar.gz) twice: once as it is, once after
# adding a file (an incremental backup sharing objects), and records the
# sha256 of every file of each backup beside the repository.  Run once per
# repository format version, as root, with a built vecvault:
#   tests/data/make-golden-backup.sh build/vecvault
# Never regenerate an existing golden repository: add a new version beside it.
set -eu
VV=$(readlink -f "$1")
here=$(cd "$(dirname "$0")" && pwd)
out=$here/golden-backup-v1.tar.gz
[ -e "$out" ] && { echo "$out exists; golden repositories are never regenerated" >&2; exit 1; }
T=$(mktemp -d)
trap 'mountpoint -q "$T/mnt" && fusermount3 -u "$T/mnt"; rm -rf "$T"' EXIT
export VECVAULT_TEST_KDF=1 VECVAULT_STATE_DIR="$T/state" VECVAULT_AUDIT_DIR="$T/audit"
tar -C "$T" -xzf "$here/golden-v1.tar.gz"
printf "golden passphrase v1\n" > "$T/pass"
printf "golden repository v1\n" > "$T/rpass"
chmod 600 "$T/pass" "$T/rpass"
mkdir "$T/mnt" "$T/out"
"$VV" mount "$T/golden-v1" "$T/mnt" --passfile "$T/pass" --accept-rollback
"$VV" backup init "$T/out/golden-backup-v1" --passfile "$T/rpass" --kdf test
sums() { (cd "$T/mnt" && find . -path ./.snapshots -prune -o -path ./.trash -prune -o -type f -print0 | sort -z | xargs -0 sha256sum); }
"$VV" backup create "$T/mnt" "$T/out/golden-backup-v1" --passfile "$T/rpass" --tag first
sums > "$T/out/first.sha256"
printf 'added after the first backup\n' > "$T/mnt/products/added.txt"
"$VV" backup create "$T/mnt" "$T/out/golden-backup-v1" --passfile "$T/rpass" --tag second
sums > "$T/out/second.sha256"
fusermount3 -u "$T/mnt"
sleep 1
rm -f "$T/out/golden-backup-v1/lock"
tar -C "$T/out" -czf "$out" golden-backup-v1 first.sha256 second.sha256
echo "wrote $out"
