#!/bin/bash
# t6005-trash-full-disk: with the trash on, a store whose disk is full can
# still be emptied: at the full-disk reserve (docs/design.md "Full disk")
# rm deletes at once instead of trashing (audited as a purge) and the
# space comes back; then removals go to the trash again.  The store lives
# on a small tmpfs (mount needs root; skipped otherwise).
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse
[ "$(id -u)" = 0 ] || { echo "1..0 # SKIP needs root for a small tmpfs"; vv_done=1; exit 77; }

FS=$T/fs
mkdir "$FS"
mount -t tmpfs -o size=24m tmpfs "$FS" || { echo "1..0 # SKIP cannot mount tmpfs"; vv_done=1; exit 77; }
S=$FS/store
M=$T/mnt
vv_init "$S" >/dev/null 2>&1
LOG=$(vv_audit_log "$S")
vv_mount "$S" "$M"
free_kb() { df -k --output=avail "$FS" | tail -1 | tr -d ' '; }

mkdir "$M/c"
i=0
while [ $i -lt 40 ]; do
	head -c 1048576 /dev/urandom > "$M/c/f$i" 2>/dev/null && sync -f "$M" 2>/dev/null || break
	i=$((i + 1))
done
echo "# filled with $i MiB, $(free_kb) KiB free"
check "the disk filled up (ENOSPC before 40 MiB)" test $i -lt 40
before=$(free_kb)
check "rm still works on a full disk" rm "$M/c/f1"
check "it did not go to the trash" test ! -e "$M/.trash/files/f1"
check "audited as a purge" vv_audit_has "$LOG" op=purge path=/c/f1 result=ok
for k in $(seq 1 300); do [ "$(free_kb)" -gt "$before" ] && break; sleep 0.2; done
check "the space came back" test "$(free_kb)" -gt "$before"
for j in $(seq 2 15); do rm "$M/c/f$j"; done
# Each of these removals is a purge while the disk is tight, and goes to
# the trash once the chunks of the earlier ones are unlinked (after the
# ticker's next commit): how many of each depends on the machine's speed.
# Purge what went to the trash, as a user would, to get all of it back.
[ -z "$(ls -A "$M/.trash/files")" ] || "$VV_BIN" trash purge "$M" --all >/dev/null
# Chunks go after the next commit (the daemon's ticker): poll for the
# space, generous cap, no timing asserted.
for k in $(seq 1 300); do [ "$(free_kb)" -gt 9000 ] && break; sleep 0.2; done
echo "# $(free_kb) KiB free after removing 15 files"
check "with space again, writes work" sh -c "echo ok > '$M/c/small'"
rm "$M/c/small"
check "and removals go to the trash again" test -e "$M/.trash/files/small"
vv_umount "$M"
check "fsck is clean" sh -c "'$VV_BIN' fsck '$S' --passfile '$PASSFILE' >/dev/null"
umount "$FS"
test_done
