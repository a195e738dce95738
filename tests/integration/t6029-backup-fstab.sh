#!/bin/bash
# t6029-backup-fstab: the mount(8) helper mount.fuse.vecvault takes the
# scheduler's options (backup_to=, backup_every=, backup_passfile=, with
# keep_*=) as fstab options: each maps to its vecvault mount flag, so a
# bad value is refused before anything is mounted with the very message
# the command line gives (compared byte for byte), and a good set mounts
# with backups scheduled (the first runs at once; audited).  Then an fstab
# line through mount(8) itself, in a private mount namespace whose /sbin
# holds the helper (as t1014), so nothing is installed on the machine.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/lib/backup.sh"
vv_need_fuse

VV_BUILD=${VV_BUILD:-$VV_SRC/build}
H=$T/inst/sbin/mount.fuse.vecvault
check "cmake --install puts the helper in sbin" \
	sh -c "cmake --install '$VV_BUILD' --prefix '$T/inst' > '$T/install.log' 2>&1 && test -x '$H'"
vv_backup_vault
mkdir -p "$M"
"$VV_BIN" backup init "$D" --passfile "$RP" --kdf test >/dev/null
export VECVAULT_TEST_KDF=1

# --- mapping (-f: print the command, run nothing) --------------------------------
got=$("$H" "$S" "$M" -f -o "passfile=$PASSFILE,backup_to=$D,backup_every=1d,backup_passfile=$RP,keep_daily=7,keep_weekly=4" 2>&1 >/dev/null | sed -n 's/^mount.fuse.vecvault: //p')
want="$T/inst/bin/vecvault mount --passfile $PASSFILE --backup-to $D --backup-every 1d --backup-passfile $RP --keep-daily 7 --keep-weekly 4 -- $S $M"
if [ "$got" = "$want" ]; then test_ok "backup options map to the scheduler's flags"; else
	echo "# got:  $got"; echo "# want: $want"; test_fail "backup options map to the scheduler's flags"
fi
for o in backup_to= backup_every= backup_passfile=; do
	check "$o needs a value" sh -c "'$H' '$S' '$M' -o '$o' 2>&1 | grep -qF \"option '$o' needs a value\""
done

# --- the same checks and messages as the command line ----------------------------
# same OPTS FLAGS...: the helper with -o OPTS and vecvault mount with FLAGS
# both refuse, with the same message, and nothing is mounted.
same() {
	local opts=$1 hrc=0 crc=0
	shift
	"$H" "$S" "$M" -o "passfile=$PASSFILE,$opts" > /dev/null 2> "$T/h.err" || hrc=$?
	"$VV_BIN" mount "$S" "$M" --passfile "$PASSFILE" "$@" > /dev/null 2> "$T/c.err" || crc=$?
	if [ "$hrc" -eq 0 ] || [ "$crc" -eq 0 ] || ! cmp -s "$T/h.err" "$T/c.err" || [ ! -s "$T/c.err" ] ||
		grep -q " $M " /proc/mounts; then
		echo "# helper exit $hrc: $(cat "$T/h.err")"; echo "# CLI exit $crc: $(cat "$T/c.err")"
		grep -q " $M " /proc/mounts && fusermount3 -u "$M"
		return 1
	fi
	echo "#   $(cat "$T/c.err")"
}
check "a bad duration" same "backup_to=$D,backup_every=often,backup_passfile=$RP" \
	--backup-to "$D" --backup-every often --backup-passfile "$RP"
check "a duration past a year" same "backup_to=$D,backup_every=400d,backup_passfile=$RP" \
	--backup-to "$D" --backup-every 400d --backup-passfile "$RP"
check "backup_to without backup_every" same "backup_to=$D,backup_passfile=$RP" \
	--backup-to "$D" --backup-passfile "$RP"
check "backup_every without backup_to" same "backup_every=1d,backup_passfile=$RP" \
	--backup-every 1d --backup-passfile "$RP"
check "backup_every without backup_passfile" same "backup_to=$D,backup_every=1d" \
	--backup-to "$D" --backup-every 1d
check "keep_daily that is not a count" same "backup_to=$D,backup_every=1d,backup_passfile=$RP,keep_daily=x" \
	--backup-to "$D" --backup-every 1d --backup-passfile "$RP" --keep-daily x
check "a DEST that does not exist" same "backup_to=$T/nope,backup_every=1d,backup_passfile=$RP" \
	--backup-to "$T/nope" --backup-every 1d --backup-passfile "$RP"
mkdir "$T/notrepo"
check "a DEST that is no repository" same "backup_to=$T/notrepo,backup_every=1d,backup_passfile=$RP" \
	--backup-to "$T/notrepo" --backup-every 1d --backup-passfile "$RP"
printf 'wrong\n' > "$T/wrong" && chmod 600 "$T/wrong"
check "a wrong repository passphrase" same "backup_to=$D,backup_every=1d,backup_passfile=$T/wrong" \
	--backup-to "$D" --backup-every 1d --backup-passfile "$T/wrong"
cp -a "$D" "$T/open" && chmod 777 "$T/open"
check "a DEST others may write" same "backup_to=$T/open,backup_every=1d,backup_passfile=$RP" \
	--backup-to "$T/open" --backup-every 1d --backup-passfile "$RP"
check "a read-only mount" same "ro,backup_to=$D,backup_every=1d,backup_passfile=$RP" \
	-o ro --backup-to "$D" --backup-every 1d --backup-passfile "$RP"

# --- a real mount with backups scheduled -----------------------------------------------
PIDF=$T/.pids/helper
echo data > "$T/seed"
check "the helper mounts with backups scheduled" "$H" "$S" "$M" \
	-o "passfile=$PASSFILE,backup_to=$D,backup_every=1d,backup_passfile=$RP,keep_daily=7,pid_file=$PIDF,log=$T/daemon.log"
printf '%s\t%s\n' "$M" "$PIDF" >> "$VV_MOUNTS"
for i in $(seq 1 300); do
	[ "$("$VV_BIN" backup list "$D" --passfile "$RP" 2>/dev/null | wc -l)" -ge 1 ] && break
	sleep 0.1
done
check "the first backup runs at once" test "$("$VV_BIN" backup list "$D" --passfile "$RP" 2>/dev/null | wc -l)" -ge 1
check "and is audited" vv_audit_has "$LOG" op=backup 'detail~^create [0-9a-f]{32} to ' result=ok
check "the daemon logs the schedule" grep -q "scheduled backup: every 86400 s to $D" "$T/daemon.log"
check "umount" umount "$M"
check "its daemon exits" vv_wait_daemon "$PIDF"

# --- an fstab line through mount(8) (lib/mountns.sh) ---------------------------------------
. "$(dirname "$0")/lib/mountns.sh"
if vv_mountns_ok "$T/inst/sbin"; then
	cat > "$T/fstab" <<FSTAB
$S  $M  fuse.vecvault  defaults,passfile=$PASSFILE,backup_to=$D,backup_every=12h,backup_passfile=$RP,keep_daily=7,nofail,pid_file=$T/.pids/ns,log=$T/daemon.log  0  0
$S  $T/mnt2  fuse.vecvault  defaults,passfile=$PASSFILE,backup_to=$D,backup_every=soon,backup_passfile=$RP,noauto  0  0
FSTAB
	mkdir -p "$T/mnt2"
	vv_mountns_run "$T/inst/sbin" "$T/.pids/ns" "$M" 6 "$(cat <<NS
step "mount --fstab with backup options" mount --fstab "$T/fstab" "$M"
step "it is mounted" sh -c "findmnt -n -o FSTYPE '$M' | grep -qx fuse.vecvault"
step "the daemon took the schedule" sh -c "grep -q 'scheduled backup: every 43200 s to $D' '$T/daemon.log'"
step "umount" umount "$M"
step "its daemon exits" daemon_gone
step "a bad backup_every in fstab: mount(8) fails with the CLI's message" sh -c "! mount --fstab '$T/fstab' '$T/mnt2' 2> '$T/ns2.err' && grep -q \"bad --backup-every 'soon'\" '$T/ns2.err' && ! grep -q ' $T/mnt2 ' /proc/mounts"
NS
)"
else
	test_ok "mount(8) tests # SKIP no private mount namespace with an overlay /sbin here"
fi
check "nothing is left mounted" sh -c "! grep -q ' $M ' /proc/mounts"
test_done
