#!/bin/bash
# t6021-backup-incremental: a second backup copies only new objects
# (counted); a daemon SIGKILLed in the middle of a create leaves a valid
# repository and the next run sends only what had not arrived; a full
# DEST (a small tmpfs) fails with a clear message, loses nothing and
# resumes once there is room; a held lock refuses a concurrent writer with
# a clear message, a stale lock of a dead writer is taken over; rsync -a of
# DEST (also while a backup is being written) verifies.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/lib/backup.sh"
vv_need_fuse

vv_backup_vault
vv_mount "$S" "$M"

mkdir "$M/c"
for i in $(seq 1 8); do head -c 600000 /dev/urandom > "$M/c/f$i"; done
vv_sync "$M"
"$VV_BIN" backup init "$D" --passfile "$RP" --kdf test >/dev/null
out=$(vv_bk "$D")
n1=$(vv_bk_objs "$D")
check "first backup sends every object" test "$(echo "$out" | vv_bk_sent)" -eq "$n1"
out=$(vv_bk "$D")
check "an unchanged re-run sends nothing" test "$(echo "$out" | vv_bk_sent)" -eq 0
check "and adds no object" test "$(vv_bk_objs "$D")" -eq "$n1"
head -c 500000 /dev/urandom > "$M/c/new"
vv_sync "$M"
out=$(vv_bk "$D")
n2=$(vv_bk_objs "$D")
check "after one new file, only its objects are sent" test "$(echo "$out" | vv_bk_sent)" -eq $((n2 - n1))
check "which is at least one" test "$n2" -gt "$n1"
check "three backups listed" test "$("$VV_BIN" backup list "$D" --passfile "$RP" | wc -l)" -eq 3
check "verify --read-data" "$VV_BIN" backup verify "$D" --read-data --passfile "$RP"

# The lock: held by someone else -> refused, named; stale -> taken over.
flock "$D/lock" sleep 3 &
fl=$!
sleep 0.5
rc=0; err=$(vv_bk "$D" 2>&1) || rc=$?
check "a held lock refuses a concurrent create" test "$rc" -ne 0
check "with a clear message" sh -c "printf '%s' '$err' | grep -q 'locked by another backup'"
wait "$fl"
echo 999999 > "$D/lock"
check "a stale lock (dead pid, no flock) is taken over" vv_bk "$D"

# SIGKILL the daemon in the middle of a create, then resume.
mkdir "$M/big"
for i in $(seq 1 40); do head -c 1000000 /dev/urandom > "$M/big/b$i"; done
vv_sync "$M"
pid=$(cat "$T/.pids/$(echo "$M" | tr / _)")
before=$(vv_bk_objs "$D")
vv_bk "$D" >/dev/null 2>&1 &
for i in $(seq 1 400); do
	[ "$(vv_bk_objs "$D")" -gt $((before + 2)) ] && break
	sleep 0.01
done
kill -KILL "$pid"
wait
fusermount3 -uz "$M" 2>/dev/null
arrived=$(vv_bk_objs "$D")
echo "# killed with $((arrived - before)) of the new objects there"
check "the repository verifies after the kill" "$VV_BIN" backup verify "$D" --passfile "$RP"
awk -F '\t' -v m="$M" '$1 != m' "$VV_MOUNTS" > "$VV_MOUNTS.new"; mv "$VV_MOUNTS.new" "$VV_MOUNTS"
vv_mount "$S" "$M"
out=$(vv_bk "$D")
total=$(vv_bk_objs "$D")
echo "# $out"
check "the resumed run sends only what had not arrived" test "$(echo "$out" | vv_bk_sent)" -eq $((total - arrived))
check "verify --read-data after the resume" "$VV_BIN" backup verify "$D" --read-data --passfile "$RP"

# A full DEST: a 3 MiB tmpfs, then room.
F=$T/full
mkdir "$F"
if mount -t tmpfs -o size=3m,mode=0700 tmpfs "$F" 2>/dev/null; then
	"$VV_BIN" backup init "$F/r" --passfile "$RP" --kdf test >/dev/null
	rc=0; err=$(vv_bk "$F/r" 2>&1) || rc=$?
	check "a full DEST fails" test "$rc" -ne 0
	echo "# $err"
	check "naming the full destination" sh -c "printf '%s' '$err' | grep -q 'destination is full'"
	check "leaving no temporary file" test -z "$(find "$F/r" -name '.tmp-*')"
	check "and a repository that verifies" "$VV_BIN" backup verify "$F/r" --passfile "$RP"
	a=$(vv_bk_objs "$F/r")
	mount -o remount,size=80m "$F"
	out=$(vv_bk "$F/r")
	check "with room, the rerun sends only the rest" test "$(echo "$out" | vv_bk_sent)" -eq $(($(vv_bk_objs "$F/r") - a))
	check "and the backup reads" "$VV_BIN" backup verify "$F/r" --read-data --passfile "$RP"
	umount "$F"
else
	echo "# no tmpfs mount here: full-disk case skipped"
fi

# rsync -a DEST, also while a backup is being written.
rsync -a "$D/" "$T/copy/"
check "rsync -a of DEST verifies" "$VV_BIN" backup verify "$T/copy" --read-data --passfile "$RP"
check "and lists the same backups" test "$("$VV_BIN" backup list "$T/copy" --passfile "$RP")" = "$("$VV_BIN" backup list "$D" --passfile "$RP")"
for i in $(seq 1 20); do head -c 1000000 /dev/urandom > "$M/big/n$i"; done
vv_sync "$M"
vv_bk "$D" >/dev/null 2>&1 &
bp=$!
# rsync exits 24 when a temp file of the running create vanished under it:
# expected, and the copy is still valid.
rc=0; rsync -a "$D/" "$T/copy2/" || rc=$?
check "rsync during a create succeeds (or only lost vanished temp files)" sh -c "[ $rc -eq 0 ] || [ $rc -eq 24 ]"
wait "$bp"
check "rsync taken during a create verifies (as of its last complete backup)" "$VV_BIN" backup verify "$T/copy2" --passfile "$RP"
vv_umount "$M"
test_done
