#!/bin/bash
# t6004-trash-expire: items are purged after the retention: at mount (a
# remount with a shorter retention stands in for a clock jump past 30
# days: `--trash-days Ns` counts seconds, for tests only) and while mounted
# (the daemon's sweep runs every quarter of the retention, at most hourly);
# the purge frees the chunks and is audited; --trash-days 0 makes removals
# final; `trash purge --older-than` purges by age.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
vv_init "$S" >/dev/null 2>&1
LOG=$(vv_audit_log "$S")
chunks() { find "$S/chunks" -type f ! -name '.tmp-*' | wc -l; }
wait_for() {   # wait_for CMD...: poll with a generous cap, no timing asserted
	local i
	for i in $(seq 1 300); do "$@" && return 0; sleep 0.2; done
	return 1
}

vv_mount "$S" "$M"
mkdir "$M/c"
head -c 2000000 /dev/urandom > "$M/c/old"
echo keep > "$M/c/keep"
vv_sync "$M"
c0=$(chunks)
rm "$M/c/old"
vv_sync "$M"
check "in the trash, chunks kept" test "$(chunks)" -eq "$c0"
vv_umount "$M"
sleep 2
vv_mount "$S" "$M" --trash-days 1s
check "a mount past the retention purged it" test ! -e "$M/.trash/files/old"
fewer_chunks() { test "$(chunks)" -lt "$1"; }   # re-counted at each poll
check "its chunks are freed" wait_for fewer_chunks "$c0"
check "audited as a purge (expired)" vv_audit_has "$LOG" op=purge path=/.trash/files/old result=ok
check "the live file is untouched" test "$(cat "$M/c/keep")" = keep
rm "$M/c/keep"
check "while mounted, the sweep purges it too" wait_for test ! -e "$M/.trash/files/keep"
vv_umount "$M"

vv_mount "$S" "$M" --trash-days 0
echo x > "$M/c/final"
rm "$M/c/final"
check "--trash-days 0: removals are final" test -z "$(ls "$M/.trash/files")"
check "audited as a plain unlink" vv_audit_has "$LOG" op=unlink path=/c/final result=ok
vv_umount "$M"

vv_mount "$S" "$M"
echo a > "$M/c/a"; rm "$M/c/a"
sleep 2
echo b > "$M/c/b"; rm "$M/c/b"
check "trash purge --older-than 1s" "$VV_BIN" trash purge "$M" --older-than 1s
check "purged the older" test ! -e "$M/.trash/files/a"
check "kept the newer" test -e "$M/.trash/files/b"
expect_fail "--older-than needs an age" "$VV_BIN" trash purge "$M" --older-than 7x
expect_fail "--trash-days refuses garbage" "$VV_BIN" mount "$S" "$T/m2" --trash-days -3 --passfile "$PASSFILE"
test_done
