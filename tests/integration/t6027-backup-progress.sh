#!/bin/bash
# t6027-backup-progress: backup create (whose copy runs in the daemon: the
# progress comes back as progress frames on the control socket), verify
# --read-data and both restores show a progress line redrawn in place
# (\r) with bytes and objects done, rate and ETA when stderr is a terminal
# (util-linux script), and only one summary line when it is not; stdout
# is the same either way.  An empty vault (a 0-byte backup) shows a sane
# line (100%, ETA 0:00, no NaN, nothing negative).  The frames as a peer
# sees them: well formed, never going back, only for the owner, and a peer
# that does not read them (or hangs up) does not stall or stop the backup.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/lib/backup.sh"
vv_need_fuse
command -v script >/dev/null || { echo "# util-linux script is missing"; exit 77; }

vv_backup_vault
export VECVAULT_PROGRESS_DELAY=0
vv_mount "$S" "$M"
mkdir "$M/c"
for i in $(seq 1 24); do head -c 2000000 /dev/urandom > "$M/c/f$i"; done
vv_sync "$M"
"$VV_BIN" backup init "$D" --passfile "$RP" --kdf test >/dev/null

# tty OUT CMD...: run CMD with stdin/stdout/stderr on a terminal (script),
# the transcript (what the terminal showed) into OUT.
tty() {
	local out=$1
	shift
	script -qfec "$(printf '%q ' "$@")" "$out" > /dev/null
}
# The fields of one drawn line.
LINE='vecvault backup: [a-z ()]+: +[0-9]+% [0-9.]+ [kMGTPE]?B/[0-9.]+ [kMGTPE]?B, [0-9]+/[0-9]+ objects, [0-9.]+ [kMGTPE]?B/s, ETA ([0-9]+:[0-9]{2}(:[0-9]{2})?|--:--|>99h)'
# lines OUT: every progress line drawn in the transcript, one a line.
lines() { tr '\r' '\n' < "$1" | sed 's/\x1b\[K//g' | grep -a '^vecvault backup: .*%'; }
# fields_ok OUT: lines were drawn up to 100%, each with every field, sane.
fields_ok() {
	local bad
	lines "$1" | grep -aq 100% || { echo "# no line reaching 100% in $1"; return 1; }
	bad=$(lines "$1" | grep -avE "^$LINE\$")
	[ -z "$bad" ] || { echo "# malformed: $bad"; return 1; }
	! lines "$1" | grep -aqiE 'nan|inf|-[0-9]'
}
# no_progress ERR: a non-terminal stderr holds no progress bytes.
no_progress() { ! grep -q $'\r' "$1" && ! grep -qE '[0-9]+%|ETA' "$1"; }
summary_ok() { grep -qE "^vecvault backup: $2: [0-9]+ objects, [0-9]+ bytes in [0-9.]+ s \([0-9.]+ MB/s\)\$" "$1"; }

# --- create ------------------------------------------------------------------
check "create on a terminal" tty "$T/c.tty" "$VV_BIN" backup create "$M" "$D" --passfile "$RP"
check "create: redrawn in place (several \\r updates)" test "$(tr -cd '\r' < "$T/c.tty" | wc -c)" -ge 3
check "create: every line has bytes, objects, rate and ETA" fields_ok "$T/c.tty"
check "create: it reaches 100% with ETA 0:00" sh -c "tr '\r' '\n' < '$T/c.tty' | grep -aqE 'creating: 100% .* ETA 0:00'"
check "create: the line is cleared before the result" grep -aq $'\r\e\[K' "$T/c.tty"
check "create: the result and the summary line follow" \
	sh -c "grep -aq 'backup [0-9a-f]\{32\}: ' '$T/c.tty' && grep -aqE 'vecvault backup: create: [0-9]+ objects' '$T/c.tty'"
check "create, stderr a file" sh -c "'$VV_BIN' backup create '$M' '$D' --passfile '$RP' > '$T/c.out' 2> '$T/c.err'"
check "create, stderr a file: no progress" no_progress "$T/c.err"
check "create, stderr a file: one summary line" summary_ok "$T/c.err" create
check "create, stderr a file: only that line" test "$(wc -l < "$T/c.err")" -eq 1
check "create --json: stdout is the JSON alone" \
	sh -c "'$VV_BIN' backup create '$M' '$D' --passfile '$RP' --json 2>/dev/null | '$PY' -c 'import json,sys; json.load(sys.stdin)'"

# --- verify --read-data --------------------------------------------------------
check "verify --read-data on a terminal" tty "$T/v.tty" "$VV_BIN" backup verify "$D" --read-data --passfile "$RP"
check "verify: every line has every field" fields_ok "$T/v.tty"
check "verify: reaches 100%" sh -c "tr '\r' '\n' < '$T/v.tty' | grep -aqE 'verifying \(reading data\): 100% '"
check "verify, stderr a file" sh -c "'$VV_BIN' backup verify '$D' --read-data --passfile '$RP' > '$T/v.out' 2> '$T/v.err'"
check "verify, stderr a file: no progress, one summary" sh -c "! grep -q \$'\\r' '$T/v.err' && test \$(wc -l < '$T/v.err') -eq 1"
check "verify: the summary line" summary_ok "$T/v.err" verify

# --- restore -------------------------------------------------------------------
ID=$("$VV_BIN" backup list "$D" --passfile "$RP" 2>/dev/null | head -1 | cut -c1-32)
export VECVAULT_TEST_KDF=1
check "restore on a terminal" tty "$T/r.tty" "$VV_BIN" backup restore "$D" "$ID" "$T/new1" \
	--repo-passfile "$RP" --passfile "$NP" --kdf test
check "restore: every line has every field" fields_ok "$T/r.tty"
check "restore: reaches 100% with ETA 0:00" sh -c "tr '\r' '\n' < '$T/r.tty' | grep -aqE 'restoring: 100% .* ETA 0:00'"
check "restore, stderr a file" sh -c "'$VV_BIN' backup restore '$D' '$ID' '$T/new2' --repo-passfile '$RP' \
	--passfile '$NP' --kdf test > '$T/r.out' 2> '$T/r.err'"
check "restore, stderr a file: no progress" no_progress "$T/r.err"
check "restore: the summary line" summary_ok "$T/r.err" restore
mkdir "$M/back"
check "restore --into on a terminal" tty "$T/i.tty" "$VV_BIN" backup restore "$D" "$ID" --into "$M/back" \
	--path /c --passfile "$RP"
check "restore --into: every line has every field" fields_ok "$T/i.tty"
check "restore --into: the files are back" cmp "$M/c/f7" "$M/back/f7"

# --- a 0-byte backup -----------------------------------------------------------
S2=$T/empty M2=$T/mnt2
vv_init "$S2" >/dev/null 2>&1
vv_mount "$S2" "$M2"
"$VV_BIN" backup init "$T/d2" --passfile "$RP" --kdf test >/dev/null
check "an empty vault's backup on a terminal" tty "$T/e.tty" "$VV_BIN" backup create "$M2" "$T/d2" --passfile "$RP"
check "0 bytes: the line is sane (100%, 0/0, ETA 0:00)" \
	sh -c "tr '\r' '\n' < '$T/e.tty' | grep -aqE 'creating: 100% 0 B/0 B, 0/0 objects, [0-9.]+ [kMG]?B/s, ETA 0:00'"
check "0 bytes: every line well formed, no NaN, nothing negative" fields_ok "$T/e.tty"
check "0 bytes, stderr a file: the summary" \
	sh -c "'$VV_BIN' backup create '$M2' '$T/d2' --passfile '$RP' 2>&1 >/dev/null | grep -qE '^vecvault backup: create: 0 objects, 0 bytes in [0-9.]+ s \(0.0 MB/s\)\$'"
ID2=$("$VV_BIN" backup list "$T/d2" --passfile "$RP" 2>/dev/null | head -1 | cut -c1-32)
check "0 bytes: restore on a terminal" tty "$T/e2.tty" "$VV_BIN" backup restore "$T/d2" "$ID2" "$T/new3" \
	--repo-passfile "$RP" --passfile "$NP" --kdf test
check "0 bytes: restore's line is sane" fields_ok "$T/e2.tty"
vv_umount "$M2"

# --- the frames, as a peer sees them --------------------------------------------
SOCK=$(vv_ctl_socket "$S")
CP="$PY $VV_SRC/tests/integration/lib/ctlprog.py"
head -c 3000000 /dev/urandom > "$M/c/g1"
vv_sync "$M"
check "a raw client gets well-formed progress frames, then the reply" \
	sh -c "$CP '$SOCK' read '$D' '$RP' > '$T/raw.out'"
check "the last frame says all done" sh -c "grep '^progress' '$T/raw.out' | tail -1 | awk '\$2==\$3 && \$4==\$5 && \$3>0 {ok=1} END {exit !ok}'"
check "and the reply is a success" grep -q '^reply 0 ' "$T/raw.out"
n=$("$VV_BIN" backup list "$D" --passfile "$RP" 2>/dev/null | wc -l)
check "a peer that does not read: the backup completes all the same" \
	sh -c "$CP '$SOCK' lazy '$D' '$RP' | grep -q '^reply 0 '"
check "a peer that hangs up after one frame: the backup still completes" \
	sh -c "$CP '$SOCK' hangup '$D' '$RP' >/dev/null"
for i in $(seq 1 100); do
	[ "$("$VV_BIN" backup list "$D" --passfile "$RP" 2>/dev/null | wc -l)" -ge $((n + 2)) ] && break
	sleep 0.1
done
check "both backups are listed" test "$("$VV_BIN" backup list "$D" --passfile "$RP" 2>/dev/null | wc -l)" -ge $((n + 2))
chmod 644 "$RP"
mkdir -m 700 "$T/u1000d" && chown 1000:1000 "$T/u1000d"
as_u1000 "$VV_BIN" backup init "$T/u1000d/r" --passfile "$RP" --kdf test >/dev/null
check "u1000 (not the owner) asking for progress: refused" \
	sh -c "as_u1000() { setpriv --reuid=1000 --regid=1000 --clear-groups -- \"\$@\"; }; \
	as_u1000 $CP '$SOCK' read '$T/u1000d/r' '$RP' > '$T/u.out'; grep -q '^reply -' '$T/u.out'"
check "and sees no progress frame" sh -c "! grep -q '^progress' '$T/u.out'"
check "nobody through the CLI: refused with the reason" \
	sh -c "setpriv --reuid=65534 --regid=65534 --clear-groups -- '$VV_BIN' backup create '$M' '$T/u1000d/r' \
	--passfile '$RP' 2>&1 | grep -q 'only root or the vault.s owner'"
check "the daemon still serves" "$VV_BIN" admin "$M" vault.ping
vv_umount "$M"
test_done
