#!/bin/bash
# t6023-backup-attack: who may back up and where.  u1000 and nobody cannot
# run backup.create on root's vault; the vault's owner (u1000) backs up
# into a DEST of its own, but not into one of root's or one others may
# write; a symbolic link planted for DEST, objects/, manifests/ or lock is
# never followed (nothing is written where it points); nothing in DEST is
# plaintext: no file or collection name, no known file bytes.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/lib/backup.sh"
vv_need_fuse

vv_backup_vault 644
chmod 755 "$T"
vv_mount "$S" "$M"
mkdir "$M/secretcollection"
python3 -c 'import sys; sys.stdout.buffer.write(b"KNOWNVECTORBYTES" * 40000)' > "$M/secretcollection/plaintextname.bin"
printf 'TOPSECRETLINE\n' > "$M/topsecretfile.txt"
vv_sync "$M"
"$VV_BIN" backup init "$D" --passfile "$RP" --kdf test >/dev/null
chmod 755 "$D"

rc=0; err=$(as_u1000 "$VV_BIN" backup create "$M" "$D" --passfile "$RP" 2>&1) || rc=$?
check "u1000 cannot back up root's vault" test "$rc" -ne 0
echo "# $err"
expect_fail "nobody cannot either" as_nobody "$VV_BIN" backup create "$M" "$D" --passfile "$RP"
check "nothing was written" test -z "$(ls "$D/manifests")"

check "root backs up" "$VV_BIN" backup create "$M" "$D" --passfile "$RP"
for s in secretcollection plaintextname topsecretfile KNOWNVECTORBYTES TOPSECRETLINE; do
	check "no '$s' in any byte of DEST" sh -c "! grep -rqa '$s' '$D'"
done
check "no file size in clear (480000)" sh -c "! grep -rqa 480000 '$D'"

# DEST as a symbolic link, and links planted inside DEST.
mkdir "$T/elsewhere"
ln -s "$D" "$T/destlink"
expect_fail "a symbolic link as DEST is refused" "$VV_BIN" backup create "$M" "$T/destlink" --passfile "$RP"
for what in objects manifests lock; do
	rm -rf "$T/d2"; "$VV_BIN" backup init "$T/d2" --passfile "$RP" --kdf test >/dev/null
	rm -rf "$T/d2/$what"; ln -s "$T/elsewhere" "$T/d2/$what"
	expect_fail "a planted link for $what is refused" "$VV_BIN" backup create "$M" "$T/d2" --passfile "$RP"
	check "and nothing is written where it points" test -z "$(ls -A "$T/elsewhere")"
done
rm -rf "$T/d2"; "$VV_BIN" backup init "$T/d2" --passfile "$RP" --kdf test >/dev/null
"$VV_BIN" backup create "$M" "$T/d2" --passfile "$RP" >/dev/null
# Every objects/XX (a chunk's or a metadata pack's: names do not tell).
for sub in $(ls "$T/d2/objects"); do
	rm -rf "$T/d2/objects/$sub"; ln -s "$T/elsewhere" "$T/d2/objects/$sub"
done
echo more > "$M/secretcollection/more"; vv_sync "$M"
rm -f "$T/d2/manifests/"*
expect_fail "a planted link for objects/XX is refused" "$VV_BIN" backup create "$M" "$T/d2" --passfile "$RP"
check "and nothing is written where it points" test -z "$(ls -A "$T/elsewhere")"

# DEST others may write, or of another user.
rm -rf "$T/d3"; "$VV_BIN" backup init "$T/d3" --passfile "$RP" --kdf test >/dev/null
chmod 777 "$T/d3"
rc=0; err=$("$VV_BIN" backup create "$M" "$T/d3" --passfile "$RP" 2>&1) || rc=$?
check "a DEST others may write is refused" test "$rc" -ne 0
check "saying why" sh -c "printf '%s' '$err' | grep -q 'may be written by others'"
chmod 700 "$T/d3"; chown -R 1000:1000 "$T/d3"
expect_fail "root's request for a DEST of u1000 is refused" "$VV_BIN" backup create "$M" "$T/d3" --passfile "$RP"

# The vault's owner (u1000) into its own DEST, not into root's.
chown 1000:1000 "$M"
check "u1000 (the vault's owner) backs up into its own DEST" as_u1000 "$VV_BIN" backup create "$M" "$T/d3" --passfile "$RP"
check "whose files u1000 owns" test -z "$(find "$T/d3" ! -uid 1000)"
check "and u1000 lists it" as_u1000 "$VV_BIN" backup list "$T/d3" --passfile "$RP"
printf 'root only\n' > "$T/rootfile"; chmod 600 "$T/rootfile"
rm -f "$T/d3/lock"; ln "$T/rootfile" "$T/d3/lock"
expect_fail "a hard link planted as the lock is refused" as_u1000 "$VV_BIN" backup create "$M" "$T/d3" --passfile "$RP"
check "the linked file keeps its bytes" test "$(cat "$T/rootfile")" = "root only"
check "and its owner" test "$(stat -c %u "$T/rootfile")" = 0
rm -f "$T/d3/lock"
expect_fail "u1000 cannot point the daemon at root's DEST" as_u1000 "$VV_BIN" backup create "$M" "$D" --passfile "$RP"
check "root's DEST got no new backup" test "$(ls "$D/manifests" | wc -l)" -eq 1
chown 0:0 "$M"
vv_umount "$M"
test_done
