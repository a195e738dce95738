#!/bin/bash
# t6026-backup-schedule: vecvault mount --backup-to DEST --backup-every DUR
# (engine/vault_backup.c "the schedule"): bad option values are refused at
# mount time with the reason; scheduled backups appear and are audited;
# the keep policy forgets old ones (audited); a DEST that disappears is a
# logged and audited failure, retried at the next tick, and backups resume
# when it returns; an unmount while the scheduler runs leaves a repository
# that verifies; the passphrase is never in argv, the log or the audit
# log; other users get nothing from DEST or from the schedule.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/lib/backup.sh"
vv_need_fuse

vv_backup_vault
"$VV_BIN" backup init "$D" --passfile "$RP" --kdf test >/dev/null
nbk() { "$VV_BIN" backup list "$D" --passfile "$RP" | wc -l; }
ncreated() { vv_audit_q "$LOG" count op=backup 'detail~^create [0-9a-f]{32} ' result=ok; }
# wait_for N CMD...: poll (bounded, generous) until CMD prints >= N.
wait_for() {
	local n=$1 i
	shift
	for i in $(seq 1 300); do
		[ "$("$@")" -ge "$n" ] && return 0
		sleep 0.2
	done
	echo "# waited for $n: $* -> $("$@")"
	return 1
}

# Refusals at mount time, each naming what is wrong; nothing gets mounted.
mkdir -p "$M"
refused() {
	local name=$1 pat=$2 rc=0 err
	shift 2
	err=$("$VV_BIN" mount "$S" "$M" --passfile "$PASSFILE" "$@" 2>&1) || rc=$?
	if [ "$rc" -ne 0 ] && printf '%s' "$err" | grep -q -- "$pat" && ! grep -q " $M " /proc/mounts
	then test_ok "$name"; else echo "# rc=$rc: $err"; test_fail "$name"; fi
}
refused "unknown interval unit" "bad --backup-every '2x'" --backup-to "$D" --backup-every 2x --backup-passfile "$RP"
refused "zero interval" "bad --backup-every '0s'" --backup-to "$D" --backup-every 0s --backup-passfile "$RP"
refused "--keep without a schedule" "give --snapshot-every or --backup-to" --keep-daily 3
refused "--backup-to without --backup-every" "need --backup-every" --backup-to "$D" --backup-passfile "$RP"
refused "--backup-every without a passfile" "needs --backup-to DEST and --backup-passfile" --backup-to "$D" --backup-every 2s
mkdir "$T/notrepo"
refused "DEST not a repository" "is not a backup repository" --backup-to "$T/notrepo" --backup-every 2s --backup-passfile "$RP"
refused "DEST missing" "--backup-to $T/nothere" --backup-to "$T/nothere" --backup-every 2s --backup-passfile "$RP"
printf 'wrong\n' > "$T/.wrong"
refused "wrong repository passphrase" "wrong passphrase for the repository" --backup-to "$D" --backup-every 2s --backup-passfile "$T/.wrong"
chmod 777 "$D"
refused "DEST others may write" "may be written by others" --backup-to "$D" --backup-every 2s --backup-passfile "$RP"
chmod 700 "$D"
refused "read-only mount" "needs a writable mount" -o ro --backup-to "$D" --backup-every 2s --backup-passfile "$RP"

vv_mount "$S" "$M" -o allow_other --backup-to "$D" --backup-every 2s --backup-passfile "$RP" --keep-daily 2
mkdir "$M/c"
for i in $(seq 1 6); do head -c 300000 /dev/urandom > "$M/c/f$i"; done
vv_sync "$M"
check "scheduled backups appear (3 of them)" wait_for 3 ncreated
check "they are audited with id and counts" vv_audit_has "$LOG" op=backup 'detail~^create [0-9a-f]{32} to .*objects, [0-9]+ sent' result=ok
check "the keep policy runs and is audited" vv_audit_has "$LOG" op=backup 'detail~^forget in .*keep hourly 0 daily 2.*[1-9][0-9]* forgotten' result=ok
check "keep-daily 2 leaves at most 2 backups" test "$(nbk)" -le 2
check "backup list shows the last success" sh -c "'$VV_BIN' backup list '$D' --passfile '$RP' 2>&1 >/dev/null | grep -q '^last success: '"
check "the scheduler leaves no snapshot behind" sh -c "! ls '$M/.snapshots' | grep -q '^backup-'"

# A create from the CLI is the same kind of record, with the id it printed.
id=$("$VV_BIN" backup create "$M" "$D" --passfile "$RP" | awk '{ print $2 }' | tr -d :)
check "CLI backup create is audited with its id" vv_audit_has "$LOG" op=backup "detail~^create $id to $D: " result=ok

# Secrets: not in the daemon's argv, its log, or the audit log.
pid=$(cat "$T/.pids/$(echo "$M" | tr / _)")
check "passphrase not in the daemon's argv" sh -c "! tr '\\0' ' ' < /proc/$pid/cmdline | grep -q 'repository passphrase'"
check "passphrase not in the daemon log" sh -c "! grep -q 'repository passphrase' '$T/daemon.log'"
check "passphrase not in the audit log" sh -c "! grep -q 'repository passphrase' '$LOG'"

# Other users: DEST is private, there is no verb to trigger the schedule,
# and backup.create through the socket stays owner-only.
want nobody EACCES listdir "$D"
want u1000 EACCES listdir "$D/manifests"
want u1001 EACCES read "$D/config"
expect_fail "u1000 cannot run backup.create" as_u1000 "$VV_BIN" backup create "$M" "$D" --passfile "$RP"
expect_fail "nobody cannot run backup.create" as_nobody "$VV_BIN" backup create "$M" "$D" --passfile "$RP"

# DEST gone: a failure, logged and audited with its reason, retried at
# the next tick (not in a loop); back: backups resume.
mv "$D" "$T/dest.away"
nfail() { vv_audit_q "$LOG" count op=backup 'detail~^create to .* failed: ' 'result!=ok'; }
check "a missing DEST is audited as a failure" wait_for 2 nfail
check "the failure names DEST" vv_audit_has "$LOG" op=backup "detail~is not a backup repository"
check "and is in the daemon log" grep -q "scheduled backup: .*next try in 2 s" "$T/daemon.log"
mv "$T/dest.away" "$D"
n0=$(ncreated)
check "backups resume once DEST is back" wait_for $((n0 + 1)) ncreated

# Unmount while the scheduler works: more data so a run takes a while.
mkdir "$M/big"
for i in $(seq 1 30); do head -c 1000000 /dev/urandom > "$M/big/b$i"; done
vv_sync "$M"
sleep 2
vv_umount "$M"
check "repository verifies after an unmount mid-schedule" "$VV_BIN" backup verify "$D" --read-data --passfile "$RP"
check "the daemon recorded its close" vv_audit_has "$LOG" op=close
test_done
