#!/bin/bash
# t6039-backup-empty-inodes: a backup whose rows are mostly inodes without
# bytes and without entries (a directory of 300 empty files removed to the
# trash: the snapshot keeps their inodes) lists, verifies and restores.
# The manifest reader bounded the inode count by 120 bytes a row where a
# row without bytes is 112, and refused such a backup as altered.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/lib/backup.sh"
vv_need_fuse

vv_backup_vault
vv_mount "$S" "$M"
mkdir "$M/d"
for i in $(seq 1 300); do : > "$M/d/f$i"; done
echo kept > "$M/kept"
rm -r "$M/d"
check "the removed directory is in the trash" test -e "$M/.trash/files/d"
check "backup init" "$VV_BIN" backup init "$D" --passfile "$RP" --kdf test
check "backup create" "$VV_BIN" backup create "$M" "$D" --passfile "$RP" --tag trash
lst=$("$VV_BIN" backup list "$D" --passfile "$RP" 2>&1)
echo "$lst" | sed 's/^/# /'
check "it lists" sh -c "echo '$lst' | grep -q ' trash '"
check "it verifies" "$VV_BIN" backup verify "$D" --passfile "$RP"
id=$(echo "$lst" | awk '$4 == "trash" { print $1 }')
check "it restores" "$VV_BIN" backup restore "$D" "$id" "$T/new" --repo-passfile "$RP" --passfile "$NP" --kdf test
vv_umount "$M"
vv_mount "$T/new" "$T/m2" --passfile "$NP"
check "with its files" test "$(cat "$T/m2/kept")" = kept
vv_umount "$T/m2"
test_done
