#!/usr/bin/env bash
# make-golden-uids.sh - build tests/data/golden-uids-vN.tar.gz: a store from
# before retired_uids whose deleted vault user's files exist only in a
# snapshot, so later builds prove the upgrade retires that uid too
# (tests/integration/t1047-user-uid-snapshot.sh).  alice (the first uid of
# the vault users' range) owns c/alice (0700) and c/alice/notes (0600);
# snapshot s1 keeps them; they are removed for good (--trash-days 0) and
# alice is deleted.
# Run once per version, as root, with a vecvault built from a tree before
# that change:  tests/data/make-golden-uids.sh /path/to/old/vecvault vN
#   v1: 18fa01a, which keeps snapshots as rows of meta.db (snap_inodes)
#   v2: 814c10c, which keeps them as files (STORE/snapshots/ID.db)
# Never regenerate an existing golden store: add a new version beside it.
set -eu
VV=$(readlink -f "$1")
V=$2
G=golden-uids-$V
out=$(cd "$(dirname "$0")" && pwd)/$G.tar.gz
[ -e "$out" ] && { echo "$out exists; golden stores are never regenerated" >&2; exit 1; }
T=$(mktemp -d)
trap 'mountpoint -q "$T/mnt" && fusermount3 -u "$T/mnt"; rm -rf "$T"' EXIT
export VECVAULT_TEST_KDF=1 VECVAULT_STATE_DIR="$T/state" VECVAULT_AUDIT_DIR="$T/audit"
printf "golden uids passphrase %s\n" "$V" > "$T/pass"; chmod 600 "$T/pass"
"$VV" init "$T/$G" --passfile "$T/pass" --kdf test
mkdir "$T/mnt"
"$VV" mount "$T/$G" "$T/mnt" --passfile "$T/pass" --trash-days 0
M=$T/mnt
"$VV" user add alice --no-password "$M"
A=$("$VV" user show alice "$M" --json | /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["uid"])')
mkdir -m 755 "$M/c"
mkdir -m 700 "$M/c/alice"
printf "alice's notes\n" > "$M/c/alice/notes"
chmod 600 "$M/c/alice/notes"
chown -R "$A" "$M/c/alice"
"$VV" snapshot create "$M" s1
rm -r "$M/c/alice"
"$VV" user delete alice "$M"
echo "alice had uid $A"
fusermount3 -u "$M"
sleep 1
tar -C "$T" --exclude="$G/reserve" -czf "$out" "$G"
echo "wrote $out"
