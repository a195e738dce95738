#!/bin/bash
# t6037-backup-packs: manifests of version 2 keep a backup's rows in
# metadata packs (docs/format.md "Metadata packs").  The golden repository
# v3 (tests/data/make-golden-backup-v3.sh: one manifest of version 1 and
# two with packs, sharing some) lists, verifies and restores; an unchanged
# re-run writes no pack, a small change re-writes only the packs it falls
# in; a flipped, removed or swapped pack is named by verify and refused by
# restore, which leaves no store; forget --prune keeps every pack a
# remaining manifest names; and copies of a repository taken while backups
# are being written (rsync -a) verify as of their last complete backup.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/lib/backup.sh"
vv_need_fuse

sums() { (cd "$1" && find . -path ./.snapshots -prune -o -path ./.trash -prune -o -type f -print0 | sort -z | xargs -0 sha256sum); }
flip() { python3 -c 'import sys; p=sys.argv[1]; o=int(sys.argv[2]); b=bytearray(open(p,"rb").read()); b[o % len(b)] ^= 1; open(p,"wb").write(b)' "$1" "$2"; }
field() { sed -n "s/.* packs, \([0-9]*\) written .*/\1/p"; }
packs() { sed -n "s/.*metadata \([0-9]*\) packs.*/\1/p"; }

# --- the golden repository v3 ---
tar -C "$T" -xzf "$VV_SRC/tests/data/golden-backup-v3.tar.gz"
G=$T/golden-backup-v3
printf 'golden repository v3\n' > "$T/gpass"
printf 'new vault\n' > "$T/npass"
chmod 600 "$T/gpass" "$T/npass"
lst=$("$VV_BIN" backup list "$G" --passfile "$T/gpass")
echo "$lst" | sed 's/^/# /'
check "the golden repository v3 lists three backups" test "$(echo "$lst" | wc -l)" -eq 3
check "it verifies, reading every block" "$VV_BIN" backup verify "$G" --read-data --passfile "$T/gpass"
for tag in first second third; do
	id=$(echo "$lst" | awk -v t="$tag" '$4 == t { print $1 }')
	check "restore the $tag backup" "$VV_BIN" backup restore "$G" "$id" "$T/s-$tag" --repo-passfile "$T/gpass" --passfile "$T/npass" --kdf test
	vv_mount "$T/s-$tag" "$T/m-$tag" --passfile "$T/npass"
	check "its files are the recorded ones" test "$(sums "$T/m-$tag")" = "$(cat "$T/$tag.sha256")"
	vv_umount "$T/m-$tag"
done
check "the restored vault of the third is clean (fsck)" sh -c "'$VV_BIN' fsck '$T/s-third' --passfile '$T/npass' 2>&1 | grep -q clean"
# Forget on a copy: keep the newest; the packs it shares with the second
# stay, and it still restores.
cp -a "$G" "$T/g2"
check "forget --keep-daily 1 --prune on a copy (no vault)" \
	"$VV_BIN" backup forget "$T/g2" --keep-daily 1 --prune --without-vault --passfile "$T/gpass"
check "one backup left" test "$("$VV_BIN" backup list "$T/g2" --passfile "$T/gpass" | wc -l)" -eq 1
check "which verifies, every block read" "$VV_BIN" backup verify "$T/g2" --read-data --passfile "$T/gpass"
id=$(echo "$lst" | awk '$4 == "third" { print $1 }')
check "and restores" "$VV_BIN" backup restore "$T/g2" "$id" "$T/s-g2" --repo-passfile "$T/gpass" --passfile "$T/npass" --kdf test
vv_mount "$T/s-g2" "$T/m-g2" --passfile "$T/npass"
check "to the third's files" test "$(sums "$T/m-g2")" = "$(cat "$T/third.sha256")"
vv_umount "$T/m-g2"

# --- a vault of small files only: every object in DEST is a pack ---
# (~1.5 MB of rows: at least 6 packs whatever the repository key, since a
# pack holds at most 256 KiB; fewer rows made "several" and "not every"
# a matter of where the key put the cuts)
vv_backup_vault
vv_mount "$S" "$M"
mkdir "$M/many"
python3 -c 'import os, sys
for i in range(600):
    open("%s/f%03d" % (sys.argv[1], i), "wb").write(os.urandom(2000 + i))' "$M/many"
vv_sync "$M"
"$VV_BIN" backup init "$D" --passfile "$RP" --kdf test >/dev/null
bk() { "$VV_BIN" backup create "$M" "$D" --passfile "$RP"; }
out=$(bk); echo "# $out"
n=$(echo "$out" | packs)
check "the rows are in several packs" test "$n" -gt 2
check "all written, and nothing else in DEST (the files are inline)" test "$(echo "$out" | field)" -eq "$n" -a "$(vv_bk_objs "$D")" -eq "$n"
out=$(bk); echo "# $out"
check "an unchanged re-run writes no pack" test "$(echo "$out" | field)" -eq 0
check "and adds no object" test "$(vv_bk_objs "$D")" -eq "$n"
printf 'changed' > "$M/many/f300"; vv_sync "$M"
out=$(bk); echo "# $out"
w=$(echo "$out" | field)
check "one file changed: some pack is written" test "$w" -ge 1
check "but not every pack" test "$w" -lt "$(echo "$out" | packs)"
check "the repository verifies" "$VV_BIN" backup verify "$D" --read-data --passfile "$RP"
ID=$("$VV_BIN" backup list "$D" --passfile "$RP" | tail -1 | awk '{ print $1 }')
want=$(sums "$M")
check "the last backup restores" "$VV_BIN" backup restore "$D" "$ID" "$T/r0" --repo-passfile "$RP" --passfile "$NP" --kdf test
vv_mount "$T/r0" "$T/rm0" --passfile "$NP"
check "to the same files" test "$(sums "$T/rm0")" = "$want"
vv_umount "$T/rm0"

# Restore makes the new store while the repository is unlocked: a wrong
# repository passphrase or a bad ID leaves no store; a NEWSTORE that holds
# something is refused and left as it was.
printf 'wrong\n' > "$T/.wrong"; chmod 600 "$T/.wrong"
expect_fail "restore with a wrong repository passphrase fails" \
	"$VV_BIN" backup restore "$D" "$ID" "$T/rw" --repo-passfile "$T/.wrong" --passfile "$NP" --kdf test
check "and leaves no store" test ! -e "$T/rw"
expect_fail "restore of an unknown backup fails" \
	"$VV_BIN" backup restore "$D" ffffffff "$T/rw" --repo-passfile "$RP" --passfile "$NP" --kdf test
check "and leaves no store" test ! -e "$T/rw"
mkdir "$T/rfull"; echo keep > "$T/rfull/mine"
expect_fail "restore into a NEWSTORE that holds a file fails" \
	"$VV_BIN" backup restore "$D" "$ID" "$T/rfull" --repo-passfile "$RP" --passfile "$NP" --kdf test
check "and leaves it as it was" test "$(ls -A "$T/rfull")" = mine -a "$(cat "$T/rfull/mine")" = keep

# forget --prune keeps what the remaining manifest names (and leaves only
# packs the last backup names, for the tampering below).
check "forget --keep-daily 1 --prune" "$VV_BIN" backup forget "$D" --keep-daily 1 --prune --passfile "$RP"
check "the kept backup verifies after the prune" "$VV_BIN" backup verify "$D" --read-data --passfile "$RP"
check "and restores" "$VV_BIN" backup restore "$D" "$ID" "$T/r5" --repo-passfile "$RP" --passfile "$NP" --kdf test
vv_mount "$T/r5" "$T/rm5" --passfile "$NP"
check "to the same files" test "$(sums "$T/rm5")" = "$want"
vv_umount "$T/rm5"

# Tampering with the packs (on copies of the repository).
cp -a "$D" "$T/pristine"
reset() { rm -rf "$D"; cp -a "$T/pristine" "$D"; }
restore_to() { "$VV_BIN" backup restore "$D" "$ID" "$1" --repo-passfile "$RP" --passfile "$NP" --kdf test; }
P1=$(find "$D/objects" -type f | sort | head -1)
P2=$(find "$D/objects" -type f | sort | tail -1)
N1=$(basename "$P1")
flip "$P1" 100
rc=0; err=$("$VV_BIN" backup verify "$D" --passfile "$RP" 2>&1) || rc=$?
check "a flipped pack: verify fails" test "$rc" -ne 0
check "naming the pack as altered" sh -c "printf '%s' '$err' | grep -q 'metadata pack $N1: altered'"
rc=0; err=$(restore_to "$T/r1" 2>&1) || rc=$?
check "restore refuses" test "$rc" -ne 0
check "naming the pack" sh -c "printf '%s' '$err' | grep -q 'metadata pack $N1'"
check "and leaves no store" test ! -e "$T/r1"
reset
flip "$P1" -5
expect_fail "a flipped tag: verify fails" "$VV_BIN" backup verify "$D" --passfile "$RP"
reset
rm "$P1"
rc=0; err=$("$VV_BIN" backup verify "$D" --passfile "$RP" 2>&1) || rc=$?
check "a removed pack: verify fails" test "$rc" -ne 0
check "naming it missing" sh -c "printf '%s' '$err' | grep -q 'metadata pack $N1: missing'"
expect_fail "restore refuses" restore_to "$T/r2"
check "and leaves no store" test ! -e "$T/r2"
reset
mv "$P1" "$T/tmpobj"; cp "$P2" "$P1"; mv "$T/tmpobj" "$P2"
expect_fail "swapped packs: verify fails" "$VV_BIN" backup verify "$D" --passfile "$RP"
expect_fail "swapped packs: restore refuses" restore_to "$T/r3"
check "and leaves no store" test ! -e "$T/r3"
reset
# A pack renamed to its sealed bytes' name is still not the one named.
cp "$P2" "$P1"
expect_fail "a pack replaced by another one: restore refuses" restore_to "$T/r4"
check "and leaves no store" test ! -e "$T/r4"
reset
check "the pristine copy verifies" "$VV_BIN" backup verify "$D" --read-data --passfile "$RP"

# rsync -a of DEST while backups are being written: every copy verifies
# (as of the last backup complete when the copy was taken).
( for i in 1 2 3 4 5 6; do
	printf 'round %s' "$i" > "$M/many/f$((i * 50))"; mkdir -p "$M/r$i"; vv_sync "$M"
	"$VV_BIN" backup create "$M" "$D" --passfile "$RP" >/dev/null 2>&1 || exit 1
  done ) &
wr=$!
k=0
while kill -0 "$wr" 2>/dev/null && [ $k -lt 40 ]; do
	# 24: a tmp file renamed while rsync listed it (vanished): expected.
	k=$((k + 1)); rc=0; rsync -a "$D/" "$T/copy$k/" || rc=$?
	[ "$rc" -eq 0 ] || [ "$rc" -eq 24 ] || test_fail "rsync -a of DEST while written: exit $rc"
done
wait "$wr"; rc=$?
check "the backups written meanwhile succeeded" test "$rc" -eq 0
echo "# $k copies taken while writing"
bad=0
for c in $(seq 1 $k); do
	"$VV_BIN" backup verify "$T/copy$c" --passfile "$RP" >/dev/null 2>&1 || { bad=$((bad + 1)); echo "# copy $c does not verify"; }
done
check "every copy taken while writing verifies" test "$bad" -eq 0
rsync -a "$D/" "$T/copyend/"
check "and a copy at the end holds the kept backup and the six new ones" test "$("$VV_BIN" backup list "$T/copyend" --passfile "$RP" | wc -l)" -ge 7
vv_umount "$M"
test_done
