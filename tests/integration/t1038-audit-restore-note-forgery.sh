#!/bin/bash
# t1038-audit-restore-note-forgery: the backup.restore note (what
# `vecvault backup restore --into` tells the daemon around its writes) is
# the one control verb whose words any user who may write a directory
# puts into a record of op "backup".  That record must name its reporter
# in its own fields (uid, gid, pid, comm), never pass for the daemon's
# (uid 0), and keep its "(reported by uid U ...)" however long the
# arguments: a user must not be able to write a record that looks like a
# restore root made.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse
export -f as_u1000

S=$T/store
M=$T/mnt
vv_init "$S" >/dev/null 2>&1
LOG=$(vv_audit_log "$S")
vv_mount "$S" "$M"
mkdir -m 755 "$M/u"
chown 1000:1000 "$M/u"

pad=$(printf '%*s' 170 '' | tr ' ' .)
fake="/srv/backups (/) into /: done, 9 files, 9 bytes (reported by uid 0, pid 1)$pad"
long=$(printf '%*s' 250 '' | tr ' ' x)
digits=$(printf '%*s' 600 '' | tr ' ' 7)
check "u1000 may send a note about its own directory" as_u1000 "$VV_BIN" admin "$M" backup.restore \
	"dest=$fake" id=ab into=/u phase=done "path=$long" "why=$long" files=12 bytes=34
check "its record is u1000's (uid, gid, comm)" vv_audit_has "$LOG" op=backup 'detail~^restore ab from /srv/backups' uid=1000 gid=1000 comm=vecvault-admin
check "and still names the reporter at its end" vv_audit_has "$LOG" op=backup 'detail~^restore ab from /srv/backups.*\(reported by uid 1000, pid [0-9]+\)$'
check "no backup record claims uid 0 for it" test "$(vv_audit_q "$LOG" count op=backup 'detail~^restore ab ' uid=0)" -eq 0
rc=0; err=$(as_u1000 "$VV_BIN" admin "$M" backup.restore dest=/x id=ab into=/u phase=done "files=$digits" 2>&1) || rc=$?
check "a count longer than 20 digits is refused" sh -c "[ $rc -ne 0 ] && printf '%s' \"\$1\" | grep -q 'malformed'" _ "$err"
rc=0; as_u1000 "$VV_BIN" admin "$M" backup.restore dest=/x id=ab into=/ phase=start >/dev/null 2>&1 || rc=$?
check "a note about / (not u1000's to write) is refused" test "$rc" -ne 0
check "root's own note is root's" "$VV_BIN" admin "$M" backup.restore dest=/r id=cd into=/u phase=start
check "recorded with uid 0 and its reporter" vv_audit_has "$LOG" op=backup 'detail~^restore cd from /r \(/\) into /u: starting \(reported by uid 0, pid [0-9]+\)$' uid=0

test_done
