#!/bin/bash
# t2003-audit-log-paths: the files the daemon and the CLI keep outside STORE
# (audit log, its checkpoint temp file, rotated and pre-authentication
# files, the daemon's --log, --pid-file, the rollback anchors) cannot be
# turned against root by someone who can create names in the directory that
# holds them (docs/security.md, "Files outside the store").
#
# uid 65534 plants links and files in a sticky world-writable directory, as
# in /tmp.  Each time: the mount is refused with a message naming the file
# and what is wrong, nothing is mounted, and the victim files (root's, 0600)
# are byte for byte unchanged; for temporary files the planted name is
# replaced, never written through.  A fresh log in the same directory works.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
P=$T/pub                      # the shared directory, like /tmp
mkdir -p "$M" "$P"
chmod 1777 "$P"
vv_init "$S" >/dev/null

mkvictim() {
	printf 'root secret %s\n' "$1" > "$T/$1"
	chmod 600 "$T/$1"
	sha256sum "$T/$1" > "$T/$1.sum"
}
unchanged() { sha256sum -c --quiet "$T/$1.sum"; }
nobody() { as_nobody "$@"; }

# refused NAME PATTERN MOUNT-OPTIONS...: mount must fail, say PATTERN, and
# leave nothing mounted.
refused() {
	local name=$1 pat=$2 rc=0
	shift 2
	"$VV_BIN" mount "$S" "$M" --passfile "$PASSFILE" "$@" > "$T/out" 2>&1 || rc=$?
	if [ "$rc" -eq 0 ]; then
		echo "# mount succeeded; unmounting"
		fusermount3 -u "$M" 2>/dev/null
		sleep 1
	fi
	if [ "$rc" -ne 0 ] && grep -q -- "$pat" "$T/out" && ! mountpoint -q "$M"; then
		test_ok "$name"
	else
		echo "# exit $rc, output:"
		sed 's/^/#   /' "$T/out"
		test_fail "$name"
	fi
}

A=$P/audit.log

# --- the audit log ---------------------------------------------------------
mkvictim victim
nobody ln -s "$T/victim" "$A"
refused "audit log planted as a symlink: refused" "$A is a symbolic link" \
	--audit-log "$A" --log "$T/daemon.log"
check "victim of the audit-log symlink unchanged" unchanged victim
rm -f "$A"

nobody sh -c "umask 0; : > '$A'"
refused "audit log pre-created 0666 by uid 65534: refused" "$A is owned by uid 65534" \
	--audit-log "$A" --log "$T/daemon.log"
check "the planted log received nothing" test ! -s "$A"
rm -f "$A"

( umask 022; : > "$A" )
refused "our own audit log with mode 0644: refused" "$A has mode 0644" \
	--audit-log "$A" --log "$T/daemon.log"
rm -f "$A"

ln "$T/victim" "$A"
refused "audit log that is a hard link: refused" "$A has 2 hard links" \
	--audit-log "$A" --log "$T/daemon.log"
check "victim of the hard link unchanged" unchanged victim
rm -f "$A"

# A rotated file planted before the first mount: the chain would go on from
# whatever it says.
nobody sh -c "umask 0; echo '{\"seq\":1000}' > '$A.1'"
refused "planted audit.log.1: refused" "$A.1 is owned by uid 65534" \
	--audit-log "$A" --log "$T/daemon.log"
rm -f "$A" "$A.1"

mkdir -m 777 "$P/open"
refused "log directory writable by others and not sticky: refused" \
	"directory $P/open has mode 0777" --audit-log "$P/open/audit.log" --log "$T/daemon.log"

# --- the daemon's log and pid file -------------------------------------------
mkvictim victim3
nobody ln -s "$T/victim3" "$P/daemon.log"
refused "--log planted as a symlink: refused" "$P/daemon.log is a symbolic link" \
	--log "$P/daemon.log"
check "victim of the --log symlink unchanged" unchanged victim3
rm -f "$P/daemon.log"

nobody sh -c "umask 0; echo 1 > '$P/vv.pid'"
refused "--pid-file pre-created by uid 65534: refused" "$P/vv.pid is owned by uid 65534" \
	--pid-file "$P/vv.pid" --log "$T/daemon.log"
check "the planted pid file still says 1" test "$(cat "$P/vv.pid")" = 1
rm -f "$P/vv.pid"

# --- the rollback anchor ------------------------------------------------------
# An anchors directory someone else made: they could delete or swap anchors.
mkdir -m 700 "$T/state2"
cp -a "$VECVAULT_STATE_DIR/." "$T/state2/"
chmod 1777 "$T/state2"
mv "$T/state2/anchors" "$T/state2/anchors.ours"
nobody mkdir -m 777 "$T/state2/anchors"
VECVAULT_STATE_DIR=$T/state2 refused "anchors directory owned by uid 65534: refused" \
	"directory $T/state2/anchors is owned by uid 65534" --log "$T/daemon.log"
check "nothing was written into the planted anchors directory" \
	test -z "$(ls -A "$T/state2/anchors")"

# --- temporary and pre-authentication files: replaced, never written through --
mkvictim victim2
mkvictim victim4
nobody ln -s "$T/victim2" "$A.checkpoint.tmp"
nobody ln -s "$T/victim4" "$A.preauth"
printf 'wrong passphrase\n' > "$T/wrongpass"
chmod 600 "$T/wrongpass"
expect_fail "mount with a wrong passphrase fails" \
	"$VV_BIN" mount "$S" "$M" --passfile "$T/wrongpass" --audit-log "$A" --log "$T/daemon.log"
check "victim of the .preauth symlink unchanged by the failed unlock" unchanged victim4
rm -f "$A.preauth"

# A fresh log in the shared directory works, and the planted checkpoint
# temp name is replaced without writing through it.
check "mount with a fresh audit log in the sticky directory" \
	vv_mount "$S" "$M" --audit-log "$A"
mkdir "$M/c"
echo hello > "$M/c/f"
cat "$M/c/f" > /dev/null
check "unmount" vv_umount "$M"
check "victim of the checkpoint.tmp symlink unchanged" unchanged victim2
check "the checkpoint is our regular file now" test -f "$A.checkpoint" -a ! -L "$A.checkpoint"
check "no temp file left" test ! -e "$A.checkpoint.tmp" -a ! -L "$A.checkpoint.tmp"
check "the audit log is root's, mode 0600" test "$(stat -c '%u %a' "$A")" = "0 600"
check "the log holds this mount's records" grep -q '"path":"/c/f"' "$A"
check "audit verify passes" "$VV_BIN" audit verify "$S" --passfile "$PASSFILE" --audit-log "$A"
check "remount with the same log works" vv_mount "$S" "$M" --audit-log "$A"
check "unmount again" vv_umount "$M"

test_done
