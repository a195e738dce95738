#!/bin/bash
# t6013-snap-consistency-schedule: snapshots taken while a writer appends
# numbered records (fsync after each) each hold a prefix of the final file,
# in whole records; while another process renames a file back and forth,
# each snapshot holds exactly one of the two names.  Then the daemon's
# schedule (--snapshot-every 1s --keep-hourly 1): scheduled snapshots
# appear, retention deletes all but the newest of the hour, both are
# audited, and a snapshot made by hand is never deleted by retention.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
vv_init "$S" >/dev/null
check "mount" vv_mount "$S" "$M"
mkdir "$M/c"
echo r > "$M/c/a"
"$PY" - "$M/c/log" "$T/stop" <<'PY' &
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
i = 0
while not os.path.exists(sys.argv[2]) and i < 200000:
    os.write(fd, b"%015d\n" % i)          # 16-byte records, one write each
    os.fsync(fd)
    i += 1
os.close(fd)
PY
W=$!
( n=0; while [ ! -e "$T/stop" ] && [ $n -lt 100000 ]; do
	mv "$M/c/a" "$M/c/b" 2>/dev/null; mv "$M/c/b" "$M/c/a" 2>/dev/null; n=$((n + 1)); done ) &
R=$!
for i in $(seq 100); do [ -s "$M/c/log" ] && break; sleep 0.1; done
for i in $(seq 1 8); do
	"$VV_BIN" snapshot create "$M" "c$i" >/dev/null || echo "# create c$i failed"
	sleep 0.2
done
touch "$T/stop"
wait $W $R || true
for i in $(seq 1 8); do
	f=$M/.snapshots/c$i/c/log
	size=$(stat -c %s "$f")
	check "c$i: the log is whole records ($size bytes)" test $((size % 16)) = 0
	check "c$i: a prefix of the final log" cmp -n "$size" "$f" "$M/c/log"
	n=$(ls "$M/.snapshots/c$i/c" | grep -cx '[ab]')
	check "c$i: exactly one of the renamed names" test "$n" = 1
done
check "unmount" vv_umount "$M"

check "mount with --snapshot-every 1s --keep-hourly 1" vv_mount "$S" "$M" --snapshot-every 1s --keep-hourly 1
check "a snapshot by hand" sh -c "'$VV_BIN' snapshot create '$M' manual >/dev/null"
LOG=$(vv_audit_log "$S")
check "scheduled snapshots are audited" vv_audit_has "$LOG" op=snapshot 'detail~^scheduled ' result=ok
check "retention deletions are audited" vv_audit_has "$LOG" op=snapshot 'detail~^expire ' result=ok
out=$("$VV_BIN" snapshot list "$M" --json)
nauto=$(grep -o '"scheduled":true' <<<"$out" | wc -l)
check "retention keeps the newest scheduled one of this hour (or two across an hour boundary): $nauto" \
	test "$nauto" -ge 1 -a "$nauto" -le 2
check "the manual snapshot is kept" grep -q '"name":"manual"' <<<"$out"
check "the c1..c8 snapshots (by hand) are kept" test "$(grep -o '"name":"c[0-9]"' <<<"$out" | wc -l)" = 8
check "unmount" vv_umount "$M"
check "fsck: clean" sh -c "'$VV_BIN' fsck '$S' --passfile '$PASSFILE' >'$T/fsck' 2>&1"
test_done
