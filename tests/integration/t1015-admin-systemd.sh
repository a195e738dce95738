#!/bin/bash
# t1015-admin-systemd: vecvault@.service as `cmake --install` puts it,
# started the way systemd would start it (systemd does not run here; see
# lib/sdunit.py): EnvironmentFile /etc/vecvault/NAME.conf (mapped to a
# temporary directory), the passphrase as a LoadCredential= credential in
# $CREDENTIALS_DIRECTORY, $NOTIFY_SOCKET a socket the test listens on.
# READY=1 comes from the main pid only once the vault is mounted and
# answers; SIGTERM (systemctl stop) gives STOPPING=1, an unmount and exit 0;
# a second start (path socket this time) finds the data; a wrong passphrase
# fails without READY=1.  `systemd-analyze verify` accepts the unit when it
# is installed.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

VV_BUILD=${VV_BUILD:-$VV_SRC/build}
UNIT=$T/inst/lib/systemd/system/vecvault@.service
S=$T/store
M=$T/mnt
ETC=$T/etc
mkdir -p "$M" "$ETC"
# The journal (stdout/stderr) and --log are separate files: --log must
# be the daemon's own 0600 file (docs/security.md, files outside STORE).
export SDUNIT_LOG=$T/journal.log

check "cmake --install puts the unit in lib/systemd/system" \
	sh -c "cmake --install '$VV_BUILD' --prefix '$T/inst' > '$T/install.log' 2>&1 && test -f '$UNIT'"
check "the unit runs the installed binary in the foreground" \
	grep -qF "ExecStart=$T/inst/bin/vecvault mount -f " "$UNIT"
check "no sandboxing that would hide the mount in a private namespace" \
	sh -c "! grep -Eq '^(PrivateTmp|ProtectSystem|ProtectHome|PrivateMounts|TemporaryFileSystem|BindPaths|ReadOnlyPaths)=' '$UNIT'"
if command -v systemd-analyze >/dev/null 2>&1; then
	mkdir -p "$T/units"
	cp "$UNIT" "$T/units/vecvault@demo.service"
	check "systemd-analyze verify accepts an instance" \
		timeout 60 systemd-analyze verify --man=no "$T/units/vecvault@demo.service"
fi

check "init" vv_init "$S"
cat > "$ETC/demo.conf" <<CONF
# written like /etc/vecvault/demo.conf
STORE=$S
MNT=$M
OPTIONS=--log $T/daemon.log --knn-cache 64M
CONF
install -m 600 "$PASSFILE" "$ETC/demo.pass"

# sdunit UNIT-ARGS...: run lib/sdunit.py, turn its OK/FAIL lines into checks.
sdunit() {
	local out=$T/sdunit.out line
	"$PY" "$VV_SRC/tests/integration/lib/sdunit.py" "$@" > "$out" 2>&1 || true
	while IFS= read -r line; do
		case $line in
		"OK "*) test_ok "${line#OK }" ;;
		"FAIL "*) test_fail "${line#FAIL }" ;;
		*) echo "# $line" ;;
		esac
	done < "$out"
	grep -q '^\(OK\|FAIL\) ' "$out" || test_fail "sdunit.py ran ($*)"
}

NS=@vv-t1015-$$-$RANDOM
sdunit "$UNIT" demo "$ETC" "$NS" 30 run
check "the audit log ends with the vault's clean close" \
	sh -c "tail -n 1 '$(vv_audit_log "$S")' | grep -q '\"op\":\"close\".*\"result\":\"ok\"'"
sdunit "$UNIT" demo "$ETC" "$T/notify.sock" 30 run
check "still not mounted after the second stop" sh -c "! grep -q ' $M ' /proc/mounts"

echo "not the passphrase" > "$ETC/demo.pass"
sdunit "$UNIT" demo "$ETC" "$NS" 30 fail
check "the failed start said why in its log or the journal" \
	sh -c "cat '$T/daemon.log' '$T/journal.log' 2>/dev/null | grep -q 'wrong passphrase'"
test_done
