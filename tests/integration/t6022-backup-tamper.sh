#!/bin/bash
# t6022-backup-tamper: a flipped, removed or swapped object, and a flipped,
# renamed or foreign manifest, and an altered config are found by verify
# and refused by restore, which names what is wrong and leaves no store.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/lib/backup.sh"
vv_need_fuse

vv_backup_vault
vv_mount "$S" "$M"
mkdir "$M/c"
for i in 1 2 3; do head -c 300000 /dev/urandom > "$M/c/f$i"; done
vv_sync "$M"
"$VV_BIN" backup init "$D" --passfile "$RP" --kdf test >/dev/null
"$VV_BIN" backup create "$M" "$D" --passfile "$RP" >/dev/null
ID=$(ls "$D/manifests")
cp -a "$D" "$T/pristine"
reset() { rm -rf "$D"; cp -a "$T/pristine" "$D"; }
restore_to() { "$VV_BIN" backup restore "$D" "$ID" "$1" --repo-passfile "$RP" --passfile "$NP" --kdf test; }
flip() { python3 -c 'import sys; p=sys.argv[1]; o=int(sys.argv[2]); b=bytearray(open(p,"rb").read()); b[o % len(b)] ^= 1; open(p,"wb").write(b)' "$1" "$2"; }
# The two largest objects: chunks (the metadata packs are small; t6037
# tampers with those).
O1=$(find "$D/objects" -type f -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2-)
O2=$(find "$D/objects" -type f -printf '%s %p\n' | sort -n | tail -2 | head -1 | cut -d' ' -f2-)
N1=$(basename "$O1")

check "the pristine repository verifies" "$VV_BIN" backup verify "$D" --passfile "$RP"

flip "$O1" 5000
rc=0; err=$("$VV_BIN" backup verify "$D" --passfile "$RP" 2>&1) || rc=$?
check "a flipped object: verify fails" test "$rc" -ne 0
check "naming the object as altered" sh -c "printf '%s' '$err' | grep -q 'object $N1: altered'"
rc=0; err=$(restore_to "$T/r1" 2>&1) || rc=$?
check "restore refuses" test "$rc" -ne 0
check "naming the object" sh -c "printf '%s' '$err' | grep -q 'object $N1'"
check "and leaves no store" test ! -e "$T/r1"
reset

rm "$O1"
rc=0; err=$("$VV_BIN" backup verify "$D" --passfile "$RP" 2>&1) || rc=$?
check "a removed object: verify fails" test "$rc" -ne 0
check "naming it missing" sh -c "printf '%s' '$err' | grep -q 'object $N1: missing'"
expect_fail "restore refuses a missing object" restore_to "$T/r2"
check "and leaves no store" test ! -e "$T/r2"
reset

if [ "$O1" != "$O2" ]; then
	mv "$O1" "$T/tmpobj"; cp "$O2" "$O1"; mv "$T/tmpobj" "$O2"
	expect_fail "swapped objects: verify fails" "$VV_BIN" backup verify "$D" --passfile "$RP"
	expect_fail "swapped objects: restore refuses" restore_to "$T/r3"
	check "and leaves no store" test ! -e "$T/r3"
	reset
fi

flip "$D/manifests/$ID" 300
rc=0; err=$("$VV_BIN" backup verify "$D" --passfile "$RP" 2>&1) || rc=$?
check "a flipped manifest: verify fails" test "$rc" -ne 0
check "naming the manifest" sh -c "printf '%s' '$err' | grep -q 'manifest $ID: altered'"
expect_fail "list reports it" "$VV_BIN" backup list "$D" --passfile "$RP"
expect_fail "restore refuses it" restore_to "$T/r4"
check "and leaves no store" test ! -e "$T/r4"
reset

flip "$D/manifests/$ID" 30
expect_fail "a flipped manifest header (its id): verify fails" "$VV_BIN" backup verify "$D" --passfile "$RP"
reset

NEW=00000000000000000000000000000000
mv "$D/manifests/$ID" "$D/manifests/$NEW"
expect_fail "a renamed manifest: verify fails" "$VV_BIN" backup verify "$D" --passfile "$RP"
reset

# A manifest of another repository (same passphrase) is not this one's.
"$VV_BIN" backup init "$T/other" --passfile "$RP" --kdf test >/dev/null
"$VV_BIN" backup create "$M" "$T/other" --passfile "$RP" >/dev/null
cp "$T/other/manifests/"* "$D/manifests/"
expect_fail "a manifest from another repository: verify fails" "$VV_BIN" backup verify "$D" --passfile "$RP"
reset

flip "$D/config" 20
expect_fail "an altered config: list fails" "$VV_BIN" backup list "$D" --passfile "$RP"
reset
truncate -s 50 "$D/config"
expect_fail "a truncated config: list fails" "$VV_BIN" backup list "$D" --passfile "$RP"
reset

check "after all that, the pristine copy restores" restore_to "$T/r5"
vv_umount "$M"
test_done
