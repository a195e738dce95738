#!/bin/bash
# t6038-backup-kill-batches: the copy's objects are synced in batches of
# 32 while the other workers go on writing the next (docs/design.md
# "Backups", Durability): a daemon SIGKILLed at three points of a create
# spanning several batches (a batch in flight and one filling) leaves a
# repository that verifies, with nothing under an object's name that is
# not whole (verify hashes every object), and each resumed run sends only
# what had not arrived; at the end verify --read-data, and a restore into
# a new store whose files read back byte for byte.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/lib/backup.sh"
vv_need_fuse

vv_backup_vault
vv_mount "$S" "$M"

# 160 chunks of 600 KB (one file each): five batches.
mkdir "$M/c"
for i in $(seq 1 160); do head -c 600000 /dev/urandom > "$M/c/f$i"; done
vv_sync "$M"
"$VV_BIN" backup init "$D" --passfile "$RP" --kdf test >/dev/null

arrived=0
for at in 20 70 120; do
	pid=$(cat "$T/.pids/$(echo "$M" | tr / _)")
	vv_bk "$D" >/dev/null 2>&1 &
	for i in $(seq 1 1000); do
		[ "$(vv_bk_objs "$D")" -ge "$at" ] && break
		sleep 0.01
	done
	kill -KILL "$pid"
	wait
	fusermount3 -uz "$M" 2>/dev/null
	now=$(vv_bk_objs "$D")
	echo "# killed at $now objects (aimed at $at), $(find "$D/objects" -name '.tmp-*' | wc -l) tmp files"
	check "killed near $at: the repository verifies" "$VV_BIN" backup verify "$D" --passfile "$RP"
	check "killed near $at: objects only arrived, none lost" test "$now" -ge "$arrived"
	arrived=$now
	awk -F '\t' -v m="$M" '$1 != m' "$VV_MOUNTS" > "$VV_MOUNTS.new"; mv "$VV_MOUNTS.new" "$VV_MOUNTS"
	vv_mount "$S" "$M"
	# The daemon killed mid-create leaves its backup-* snapshot (a known
	# limit): delete it, so the next run takes a fresh one.
	for s in $("$VV_BIN" snapshot list "$M" 2>/dev/null | awk '/^backup-/ { print $1 }'); do
		"$VV_BIN" snapshot delete "$M" "$s" >/dev/null 2>&1
	done
done
out=$(vv_bk "$D")
echo "# $out"
total=$(vv_bk_objs "$D")
check "the resumed run sends only what had not arrived" test "$(echo "$out" | vv_bk_sent)" -eq $((total - arrived))
check "at least 160 objects" test "$total" -ge 160
check "no tmp file is left by a complete run" test -z "$(find "$D/objects" -name '.tmp-*' -newer "$D/manifests")"
check "verify --read-data" "$VV_BIN" backup verify "$D" --read-data --passfile "$RP"
out=$(vv_bk "$D")
check "an unchanged re-run sends nothing" test "$(echo "$out" | vv_bk_sent)" -eq 0

id=$(ls -t "$D/manifests" | head -1)
check "restore the last backup into a new store" "$VV_BIN" backup restore "$D" "$id" "$T/new" \
	--repo-passfile "$RP" --passfile "$NP" --kdf test
mkdir "$T/m2"
"$VV_BIN" mount "$T/new" "$T/m2" --passfile "$NP" --pid-file "$T/.pids/m2" --log "$T/daemon2.log"
printf '%s\t%s\n' "$T/m2" "$T/.pids/m2" >> "$VV_MOUNTS"
check "the restored files read back byte for byte" diff -r "$M/c" "$T/m2/c"
vv_umount "$T/m2"
vv_umount "$M"
test_done
