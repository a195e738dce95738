#!/bin/bash
# t1014-admin-mount-helper: the mount(8) helper mount.fuse.vecvault, as
# `cmake --install` puts it.  Its option mapping (-f prints the vecvault
# command without running it): vecvault options become flags, the standard
# fstab options are ignored, suid/dev and unknown options are refused by
# name, -s tolerates unknown ones.  A real mount by direct invocation, and
# `umount MNT` (not fusermount3) unmounting it cleanly: the daemon exits
# and the audit log ends with the vault's close.  Then mount(8) itself:
# `mount -t fuse.vecvault` and an fstab line (`mount --fstab FILE MNT`),
# run in a private mount namespace whose /sbin holds the helper through a
# read-only overlay, so nothing is installed on the machine and the real
# /etc/fstab is not read.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

VV_BUILD=${VV_BUILD:-$VV_SRC/build}
S=$T/store
M=$T/mnt
H=$T/inst/sbin/mount.fuse.vecvault
mkdir -p "$M"

check "cmake --install puts the helper in sbin" \
	sh -c "cmake --install '$VV_BUILD' --prefix '$T/inst' > '$T/install.log' 2>&1 && test -x '$H'"
check "init" vv_init "$S"

# --- option mapping ------------------------------------------------------
# fake_cmd OPTS: the vecvault command the helper would run, on stdout.
fake_cmd() {
	"$H" "$S" "$M" -f -o "$1" 2>&1 >/dev/null | sed -n 's/^mount.fuse.vecvault: //p'
}
got=$(fake_cmd "rw,nosuid,nodev,noatime,passfile=/etc/vecvault/p,allow_other,nofail,_netdev,x-systemd.automount,defaults,audit_log=/var/log/a,knn_cache=512M,log=/var/log/d,pid_file=/run/p,audit_required,noauto,user")
want="$T/inst/bin/vecvault mount --passfile /etc/vecvault/p --audit-log /var/log/a --knn-cache 512M --log /var/log/d --pid-file /run/p --audit-required -o rw,allow_other -- $S $M"
if [ "$got" = "$want" ]; then test_ok "vecvault options map to flags, fstab options are ignored"; else
	echo "# got:  $got"; echo "# want: $want"
	test_fail "vecvault options map to flags, fstab options are ignored"
fi
check "ro reaches -o, the last of ro/rw wins" \
	test "$(fake_cmd rw,ro)" = "$T/inst/bin/vecvault mount -o rw,ro -- $S $M"
check "noexec and exec reach -o (fstab's user implies noexec)" \
	test "$(fake_cmd user,noexec,nosuid,nodev)" = "$T/inst/bin/vecvault mount -o noexec -- $S $M"
check "-o given twice accumulates" \
	sh -c "'$H' '$S' '$M' -f -o ro -o passfile=/p 2>&1 | grep -q -- 'mount --passfile /p -o ro -- '"

# refused_with OPTS TEXT: the helper exits 1 and its message has TEXT.
refused_with() {
	local out rc=0
	out=$("$H" "$S" "$M" -o "$1" 2>&1) || rc=$?
	[ "$rc" -eq 1 ] && printf '%s' "$out" | grep -qF -- "$2" && return 0
	echo "# exit $rc: $out"
	return 1
}
check "an unknown option is refused by name" refused_with "allow_other,frobnicate=3" "unknown option 'frobnicate=3'"
check "suid is refused" refused_with suid "option 'suid' is not supported"
check "dev is refused" refused_with dev "option 'dev' is not supported"
check "default_permissions is refused" refused_with default_permissions "unknown option 'default_permissions'"
check "passfile= needs a value" refused_with "passfile=" "option 'passfile=' needs a value"
check "-s ignores an unknown option, and says so" \
	sh -c "'$H' '$S' '$M' -s -f -o frobnicate,ro 2>&1 | grep -q \"ignoring unknown option 'frobnicate'\""
check "a glob in an option is not expanded" \
	sh -c "'$H' '$S' '$M' -f -o 'passfile=$T/*' 2>&1 | grep -qF -- '--passfile $T/* '"
check "too few arguments: usage, exit 1" sh -c "'$H' '$S' -o ro 2>/dev/null; test \$? -eq 1"

# --- a real mount by direct invocation, and umount(8) -------------------
PIDF=$T/.pids/direct
check "helper mounts the vault" \
	"$H" "$S" "$M" -o "rw,passfile=$PASSFILE,allow_other,nofail,pid_file=$PIDF,log=$T/daemon.log"
printf '%s\t%s\n' "$M" "$PIDF" >> "$VV_MOUNTS"
check "it is a vecvault FUSE mount with allow_other" \
	sh -c "grep ' $M fuse.vecvault ' /proc/mounts | grep -q allow_other"
check "write through the helper's mount" sh -c "echo helper > '$M/f'"
check "umount (as root, not fusermount3) unmounts" umount "$M"
check "the daemon exits after umount" vv_wait_daemon "$PIDF"
check "helper mounts with noexec" \
	"$H" "$S" "$M" -o "rw,passfile=$PASSFILE,noexec,user,pid_file=$PIDF,log=$T/daemon.log"
printf '%s\t%s\n' "$M" "$PIDF" >> "$VV_MOUNTS"
check "the mount is noexec" sh -c "grep ' $M fuse.vecvault ' /proc/mounts | grep -q noexec"
check "a script with x bits is written" sh -c "printf '#!/bin/sh\necho ran\n' > '$M/s.sh' && chmod 755 '$M/s.sh'"
check "but the kernel refuses to execute it (EACCES)" sh -c "! '$M/s.sh' 2>/dev/null"
check "and it still reads" sh -c "grep -q ran '$M/s.sh'"
check "umount the noexec mount" umount "$M"
check "the daemon exits after umount" vv_wait_daemon "$PIDF"
check "no longer mounted" sh -c "! grep -q ' $M ' /proc/mounts"
check "the audit log ends with the vault's clean close" \
	sh -c "tail -n 1 '$(vv_audit_log "$S")' | grep -q '\"op\":\"close\".*\"result\":\"ok\"'"
check "a wrong passphrase file: mount failure status 32" \
	sh -c "echo wrong > '$T/wrong' && '$H' '$S' '$M' -o passfile='$T/wrong' 2>/dev/null; test \$? -eq 32"

# --- mount(8) itself, in a private mount namespace (lib/mountns.sh) -----------
. "$(dirname "$0")/lib/mountns.sh"
cat > "$T/fstab" <<FSTAB
# test fstab: not /etc/fstab
$S  $M  fuse.vecvault  defaults,passfile=$PASSFILE,allow_other,nofail,_netdev,x-systemd.requires=network.target,pid_file=$T/.pids/ns,log=$T/daemon.log  0  0
FSTAB
if vv_mountns_ok "$T/inst/sbin"; then
	vv_mountns_run "$T/inst/sbin" "$T/.pids/ns" "$M" 10 "$(cat <<NS
step "mount -t fuse.vecvault" mount -t fuse.vecvault "$S" "$M" -o "passfile=$PASSFILE,allow_other,pid_file=$T/.pids/ns,log=$T/daemon.log"
step "the file written earlier reads back" test "\$(cat "$M/f" 2>/dev/null)" = helper
step "findmnt shows type fuse.vecvault" sh -c "findmnt -n -o FSTYPE '$M' | grep -qx fuse.vecvault"
step "umount after mount -t" umount "$M"
step "its daemon exits" daemon_gone
step "mount -t with an unknown option fails naming it" sh -c "! mount -t fuse.vecvault '$S' '$M' -o passfile=$PASSFILE,bogus 2>&1 | grep -q \"unknown option 'bogus'\" && exit 1; ! grep -q ' $M ' /proc/mounts"
step "mount --fstab FILE MNT" mount --fstab "$T/fstab" "$M"
step "the fstab mount serves the vault" test "\$(cat "$M/f" 2>/dev/null)" = helper
step "umount after the fstab mount" umount "$M"
step "its daemon exits too" daemon_gone
NS
)"
else
	test_ok "mount(8) tests # SKIP no private mount namespace with an overlay /sbin here"
fi
check "nothing of the namespace is left mounted here" sh -c "! grep -q ' $M ' /proc/mounts"
check "the vault is consistent after all that" \
	"$VV_BIN" fsck "$S" --passfile "$PASSFILE"
test_done
