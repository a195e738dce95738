#!/bin/bash
# t6032-backup-restore-full: restore writes the new store's chunks without
# an fsync each and syncs them in one pass before its one commit
# (docs/design.md "Backups").  A NEWSTORE on a file system that fills up
# in the middle fails with a message naming the cause and leaves nothing
# behind; with room, the same restore gives a store that fsck finds clean
# and whose every file reads back as in the vault.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/lib/backup.sh"
vv_need_fuse

vv_backup_vault
vv_mount "$S" "$M"
mkdir "$M/c"
for i in $(seq 1 12); do head -c 1000000 /dev/urandom > "$M/c/f$i"; done
printf 'inline\n' > "$M/c/small"
vv_sync "$M"
sums=$(cd "$M" && find . -path ./.snapshots -prune -o -type f -print0 | sort -z | xargs -0 sha256sum)
"$VV_BIN" backup init "$D" --passfile "$RP" --kdf test >/dev/null
"$VV_BIN" backup create "$M" "$D" --passfile "$RP" >/dev/null
ID=$("$VV_BIN" backup list "$D" --passfile "$RP" | awk '{ print $1 }')
vv_umount "$M"

F=$T/small
mkdir "$F"
if mount -t tmpfs -o size=6m,mode=0700 tmpfs "$F" 2>/dev/null; then
	rc=0; err=$("$VV_BIN" backup restore "$D" "$ID" "$F/new" --repo-passfile "$RP" --passfile "$NP" --kdf test 2>&1) || rc=$?
	echo "# $err"
	check "a restore onto a file system that fills up fails" test "$rc" -ne 0
	check "naming the cause" sh -c "printf '%s' '$err' | grep -qi 'no space\|full'"
	check "and leaves no half-made store" test ! -e "$F/new"
	mount -o remount,size=80m "$F"
	check "with room, the same restore works" "$VV_BIN" backup restore "$D" "$ID" "$F/new" --repo-passfile "$RP" --passfile "$NP" --kdf test
	check "every chunk it wrote is complete: fsck is clean" sh -c "'$VV_BIN' fsck '$F/new' --passfile '$NP' 2>&1 | grep -q clean"
	mkdir "$T/m2"
	"$VV_BIN" mount "$F/new" "$T/m2" --passfile "$NP" --pid-file "$T/.pids/m2" --log "$T/daemon2.log"
	printf '%s\t%s\n' "$T/m2" "$T/.pids/m2" >> "$VV_MOUNTS"
	check "and its files read back as in the vault" test "$sums" = "$(cd "$T/m2" && find . -path ./.snapshots -prune -o -type f -print0 | sort -z | xargs -0 sha256sum)"
	vv_umount "$T/m2"
	umount "$F"
else
	echo "# no tmpfs mount here: the full-disk restore is skipped"
fi
test_done
