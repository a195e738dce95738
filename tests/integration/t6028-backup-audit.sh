#!/bin/bash
# t6028-backup-audit: every backup create, forget, prune and restore is a
# record of the vault's audit log.  forget/prune from the CLI run in the
# daemon of a mounted vault whose backups DEST holds (found by its id, or
# --vault MNT), which audits them with their counts; only the vault's
# owner may (u1000 and nobody are refused, and the refusal is audited);
# with no vault mounted the CLI refuses unless --without-vault, which
# says no log records it.  restore --into a vault is recorded around its
# writes (start, then done with counts), only by someone who may write
# there; restore into a new store is the new vault's first admin record.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/lib/backup.sh"
vv_need_fuse

vv_backup_vault 644
vv_mount "$S" "$M"
mkdir "$M/c"
for i in 1 2 3; do head -c 400000 /dev/urandom > "$M/c/f$i"; done
vv_sync "$M"
"$VV_BIN" backup init "$D" --passfile "$RP" --kdf test >/dev/null
bk() { "$VV_BIN" backup create "$M" "$D" --passfile "$RP" 2>/dev/null; }
nb() { "$VV_BIN" backup list "$D" --passfile "$RP" 2>/dev/null | wc -l; }
check "three backups" sh -c "'$VV_BIN' backup create '$M' '$D' --passfile '$RP' >/dev/null 2>&1 &&
	echo x > '$M/c/g1' && '$VV_BIN' backup create '$M' '$D' --passfile '$RP' >/dev/null 2>&1 &&
	echo y > '$M/c/g2' && '$VV_BIN' backup create '$M' '$D' --passfile '$RP' >/dev/null 2>&1"
ncreate() { vv_audit_q "$LOG" count op=backup 'detail~^create [0-9a-f]{32} to .* [0-9]+ objects, [0-9]+ sent' result=ok; }
for i in $(seq 1 100); do [ "$(ncreate)" -ge 3 ] && break; sleep 0.1; done
check "each create is a record with its counts" test "$(ncreate)" -ge 3

# --- forget/prune: only the owner, through the daemon ---------------------------
for who in u1000 nobody; do
	rc=0; err=$("as_$who" "$VV_BIN" backup forget "$D" --keep-daily 1 --prune --vault "$M" --passfile "$RP" 2>&1) || rc=$?
	check "$who: forget through the daemon is refused" test "$rc" -ne 0
	check "$who: saying why" sh -c "printf '%s' \"\$1\" | grep -q 'only root or the vault.s owner'" _ "$err"
done
check "nothing was forgotten" test "$(nb)" -eq 3
check "the refusals are audited (admin backup.forget, EACCES)" \
	vv_audit_has "$LOG" op=admin 'detail~^backup.forget ' result=EACCES uid=1000
check "a dry run lists verdicts and deletes nothing" \
	sh -c "'$VV_BIN' backup forget '$D' --keep-daily 1 --dry-run --passfile '$RP' | grep -c '^forget ' | grep -qx 2"
check "still three" test "$(nb)" -eq 3
check "the dry run is a record saying so" vv_audit_has "$LOG" op=backup 'detail~^forget in .*dry run.* 2 forgotten' result=ok
check "wrong passphrase: refused" sh -c "printf 'wrong\n' > '$T/wp'; ! '$VV_BIN' backup forget '$D' --keep-daily 1 --passfile '$T/wp' 2>/dev/null"
objs0=$(find "$D/objects" -type f | wc -l)
check "owner: forget --keep-daily 1 --prune" sh -c "'$VV_BIN' backup forget '$D' --keep-daily 1 --prune --passfile '$RP' > '$T/f.out'"
check "one backup left" test "$(nb)" -eq 1
check "and it says what it did" grep -qE '^2 backups forgotten, [0-9]+ objects \([0-9]+ bytes\) pruned' "$T/f.out"
check "the forget is a record with its count" \
	vv_audit_has "$LOG" op=backup "detail~^forget in $D \\(by uid 0; keep hourly 0 daily 1 weekly 0 monthly 0\\): 2 forgotten\$" result=ok
pruned=$(sed -n 's/.*forgotten, \([0-9]*\) objects.*/\1/p' "$T/f.out")
check "the prune is a record with its counts" \
	vv_audit_has "$LOG" op=backup "detail~^prune in $D \\(by uid 0\\): $pruned objects, [0-9]+ bytes deleted\$" result=ok
check "which match what left DEST" test "$(find "$D/objects" -type f | wc -l)" -eq $((objs0 - pruned))
check "--vault MNT names the vault explicitly" \
	"$VV_BIN" backup forget "$D" --keep-daily 1 --vault "$M" --passfile "$RP"

# --- restore --into a vault ------------------------------------------------------
ID=$("$VV_BIN" backup list "$D" --passfile "$RP" 2>/dev/null | head -1 | cut -c1-32)
mkdir "$M/back"
check "restore --into the vault" "$VV_BIN" backup restore "$D" "$ID" --into "$M/back" --passfile "$RP"
check "is recorded before its writes" vv_audit_has "$LOG" op=backup "detail~^restore $ID from $D \\(/\\) into /back: starting" result=ok
check "and after, with its counts" vv_audit_has "$LOG" op=backup "detail~^restore $ID from $D \\(/\\) into /back: done, [0-9]+ files, [0-9]+ bytes" result=ok
s1=$(vv_audit_q "$LOG" seqs op=backup "detail~^restore $ID .*into /back: starting" | awk '{print $1}')
w1=$(vv_audit_q "$LOG" seqs 'path~^/back/.' | awk '{print $1}')
check "the start comes before the first write ($s1 < $w1)" test "$s1" -lt "$w1"
# u1000's own copy of the repository (DEST itself is root's, mode 700).
cp -a "$D" "$T/ud" && chown -R 1000:1000 "$T/ud"
mkdir -m 755 "$M/closed"
rc=0; err=$(as_u1000 "$VV_BIN" backup restore "$T/ud" "$ID" --into "$M/closed" --passfile "$RP" 2>&1) || rc=$?
check "u1000 into a directory it may not write: refused" test "$rc" -ne 0
check "by the daemon, before anything is written" sh -c "printf '%s' \"\$1\" | grep -q 'may not write into /closed'" _ "$err"
check "nothing is there" test -z "$(ls -A "$M/closed")"
mkdir "$M/u" && chown 1000:1000 "$M/u"
check "u1000 into its own directory" as_u1000 "$VV_BIN" backup restore "$T/ud" "$ID" --into "$M/u" --path /c --passfile "$RP"
check "recorded as u1000's report" vv_audit_has "$LOG" op=backup "detail~^restore $ID from $T/ud \\(/c\\) into /u: done, .*reported by uid 1000" result=ok
check "nobody cannot forge a note about a directory it cannot write" \
	sh -c "! as_nobody() { :; }; ! setpriv --reuid=65534 --regid=65534 --clear-groups -- '$VV_BIN' admin '$M' \
	backup.restore dest=/x id=ab into=/closed phase=done 2>/dev/null"
check "a malformed note is refused" sh -c "! '$VV_BIN' admin '$M' backup.restore dest=/x id=zz into=/back phase=done 2>/dev/null"
check "restore into a plain directory needs no vault" sh -c "mkdir '$T/plain' && \
	'$VV_BIN' backup restore '$D' '$ID' --into '$T/plain' --passfile '$RP' >/dev/null 2>&1 && test -s '$T/plain/c/f1'"

# --- restore into a new store: the new vault's log -------------------------------
check "restore into a new store" env VECVAULT_TEST_KDF=1 "$VV_BIN" backup restore "$D" "$ID" "$T/new" \
	--repo-passfile "$RP" --passfile "$NP" --kdf test
check "its first admin record says where it came from" \
	vv_audit_has "$(vv_audit_log "$T/new")" op=admin "detail~^backup.restore $ID from $D"

# --- no vault mounted ----------------------------------------------------------------
vv_umount "$M"
rc=0; err=$("$VV_BIN" backup forget "$D" --keep-daily 1 --passfile "$RP" 2>&1) || rc=$?
check "no vault mounted: forget is refused" test "$rc" -eq 2
check "naming the ways out" sh -c "printf '%s' \"\$1\" | grep -q 'no vault whose backups .* is mounted here.*--without-vault'" _ "$err"
check "--without-vault does it here" sh -c "'$VV_BIN' backup forget '$D' --keep-daily 1 --prune --without-vault --passfile '$RP' 2> '$T/wv.err'"
check "and says no log records it" grep -q 'no vault.s audit log records this forget and prune' "$T/wv.err"
test_done
