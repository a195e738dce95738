# test-lib.sh - shared setup for the integration tests (git t/test-lib.sh
# style).  Source it first from every tNNNN-area-what.sh:
#
#   . "$(dirname "$0")/test-lib.sh"
#   vv_need_fuse
#   vv_init "$T/store"
#   vv_mount "$T/store" "$T/mnt"
#   check "a file reads back" sh -c "echo hi > $T/mnt/f && test \"\$(cat $T/mnt/f)\" = hi"
#   expect_errno ENOENT stat "$T/mnt/missing"
#   test_done
#
# A test that mounts calls vv_need_fuse first (exit 77 without /dev/fuse or
# fusermount3; vv_mount checks too).  Everything lives in a
# temporary directory $T that is removed at exit, after every mount this
# script made is unmounted (and its daemon stopped), even when a test fails.
# Tests never assert on timing: waits poll for a state with a generous cap.

set -eu

VV_SRC=${VV_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
VV_BIN=${VV_BIN:-$VV_SRC/build/vecvault}
if [ ! -x "$VV_BIN" ]; then
	echo "1..0 # SKIP vecvault binary not found at $VV_BIN (set VV_BIN)"
	exit 77
fi
PY=/usr/bin/python3

T=$(mktemp -d "${TMPDIR:-/tmp}/vv-test.XXXXXX")
# Other users (as_nobody) must be able to reach mount points under $T.
chmod 755 "$T"
mkdir -m 700 "$T/.state" "$T/.audit" "$T/.pids"
export VECVAULT_STATE_DIR="$T/.state"
export VECVAULT_AUDIT_DIR="$T/.audit"
export VECVAULT_TEST_KDF=1
PASSFILE="$T/.pass"
printf 'correct horse battery staple\n' > "$PASSFILE"
chmod 600 "$PASSFILE"
VV_MOUNTS="$T/.mounts"          # lines: MNT<TAB>PIDFILE
: > "$VV_MOUNTS"

vv_passed=0
vv_failed=0
vv_done=0
vv_rc=                  # the status test_done or a skip chose (vv_cleanup exits with it)

test_ok() {
	vv_passed=$((vv_passed + 1))
	echo "ok $((vv_passed + vv_failed)) - $1"
}

test_fail() {
	vv_failed=$((vv_failed + 1))
	echo "not ok $((vv_passed + vv_failed)) - $1"
}

# check NAME CMD...: run CMD; pass if it succeeds.
check() {
	local name=$1
	shift
	if "$@"; then test_ok "$name"; else test_fail "$name"; fi
}

# expect_fail NAME CMD...: pass if CMD fails (exits non-zero, not by signal).
expect_fail() {
	local name=$1 rc=0
	shift
	"$@" || rc=$?
	if [ "$rc" -ne 0 ] && [ "$rc" -lt 128 ]; then test_ok "$name"; else
		echo "# expected failure, got exit status $rc: $*"
		test_fail "$name"
	fi
}

# One file-system operation in Python, printing "OK" or the errno name, so
# tests can check the exact error.  Ops: stat lstat read write append create
# mkdir rmdir unlink rename link symlink readlink listdir chmod access
# getxattr setxattr removexattr truncate exec.
VV_PYOP='
import errno, os, sys
op, a = sys.argv[1], sys.argv[2:]
try:
    if op == "stat": os.stat(a[0])
    elif op == "lstat": os.lstat(a[0])
    elif op == "read":
        with open(a[0], "rb") as f: f.read()
    elif op == "write":
        with open(a[0], "wb") as f: f.write(a[1].encode() if len(a) > 1 else b"x")
    elif op == "append":
        with open(a[0], "ab") as f: f.write(a[1].encode() if len(a) > 1 else b"x")
    elif op == "create": os.close(os.open(a[0], os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    elif op == "mkdir": os.mkdir(a[0])
    elif op == "rmdir": os.rmdir(a[0])
    elif op == "unlink": os.unlink(a[0])
    elif op == "rename": os.rename(a[0], a[1])
    elif op == "link": os.link(a[0], a[1])
    elif op == "symlink": os.symlink(a[0], a[1])
    elif op == "readlink": os.readlink(a[0])
    elif op == "listdir": os.listdir(a[0])
    elif op == "chmod": os.chmod(a[0], int(a[1], 8))
    elif op == "access":
        m = {"r": os.R_OK, "w": os.W_OK, "x": os.X_OK, "f": os.F_OK}
        if not os.access(a[0], sum(m[c] for c in a[1])): raise OSError(errno.EACCES, "access")
    elif op == "getxattr": os.getxattr(a[0], a[1])
    elif op == "setxattr": os.setxattr(a[0], a[1], a[2].encode())
    elif op == "removexattr": os.removexattr(a[0], a[1])
    elif op == "truncate": os.truncate(a[0], int(a[1]))
    elif op == "exec": os.execv(a[0], [a[0]])
    else: print("BADOP"); sys.exit(2)
    print("OK")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
'

# errno_of OP ARGS...: print OK or the errno name.
errno_of() {
	"$PY" -c "$VV_PYOP" "$@"
}

# expect_errno [--as-nobody] ERRNO OP ARGS...: want, as root (or nobody).
expect_errno() {
	local who=root
	if [ "$1" = "--as-nobody" ]; then who=nobody; shift; fi
	want "$who" "$@"
}

# as_nobody CMD...: run CMD as uid/gid 65534 without supplementary groups.
as_nobody() {
	setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"
}

# as_u1000 / as_u1001 / as_root CMD...: uid/gid 1000 (no supplementary
# groups); uid/gid 1001 with supplementary group 2000; root as is.
as_u1000() { setpriv --reuid=1000 --regid=1000 --clear-groups -- "$@"; }
as_u1001() { setpriv --reuid=1001 --regid=1001 --groups=2000 -- "$@"; }
as_root() { "$@"; }

# want WHO ERRNO OP ARGS...: like expect_errno, as WHO (root, nobody, u1000,
# u1001).
want() {
	local who=$1 exp=$2 got
	shift 2
	got=$("as_$who" "$PY" -c "$VV_PYOP" "$@" 2>&1) || true
	if [ "$got" = "$exp" ]; then test_ok "$who: $* -> $exp"; else
		echo "# expected $exp, got $got"
		test_fail "$who: $* -> $exp"
	fi
}

# vv_store_id STORE: the store id (the vault id naming its control socket).
# vv_sanitizer: "asan" or "tsan" when $VV_BIN is a sanitizer build
# (-DVV_SANITIZE=ON, -DVV_SANITIZE_THREAD=ON), else nothing.  For the few
# checks a sanitizer's runtime makes untrue (ASan's mlock locks nothing).
vv_sanitizer() {
	case $(ldd "$VV_BIN" 2>/dev/null) in
	*libasan*) echo asan ;;
	*libtsan*) echo tsan ;;
	esac
}

vv_store_id() {
	"$VV_BIN" info "$1" | awk '/^store id:/ { print $3 }'
}

# vv_ctl_socket STORE: the control socket of STORE's vault when root's
# daemon serves it (tools/env.c decides: /run/vecvault/ID.sock).
vv_ctl_socket() {
	echo "/run/vecvault/$(vv_store_id "$1").sock"
}

# vv_audit_log STORE: the path of STORE's audit log under $VECVAULT_AUDIT_DIR.
# vv_same_errors PLAIN MOUNT PDIR MDIR: `vecvault query`'s messages in
# PLAIN.err (run on PDIR) and MOUNT.err (on MDIR) are the same, the
# directories and --stats lines aside; the mount's are shown.
vv_same_errors() {
	grep -v "stats:" "$1.err" | sed "s|$3/|DIR/|g" > "$T/pe"
	grep -v "stats:" "$2.err" | sed "s|$4/|DIR/|g" > "$T/me"
	sed 's/^/#   /' "$T/me"
	cmp -s "$T/pe" "$T/me"
}

vv_audit_log() {
	echo "$VECVAULT_AUDIT_DIR/$(vv_store_id "$1")/audit.log"
}

# vv_audit_q LOG CMD [FILTER...]: query an audit log (lib/auditq.py: CMD is
# count, seqs or a field to print; FILTER key=value, key!=value, key~regex,
# key>=N).
vv_audit_q() {
	"$PY" "$VV_SRC/tests/integration/lib/auditq.py" "$@"
}

# vv_audit_since LOG SEQ FILTER...: records from SEQ on matching FILTER.
vv_audit_since() { local log=$1 s=$2; shift 2; vv_audit_q "$log" count "seq>=$s" "$@"; }
# vv_audit_upto LOG SEQ1 SEQ2 FILTER...: records from SEQ1 until before SEQ2.
vv_audit_upto() {
	local log=$1 a=$2 b=$3
	shift 3
	echo $(($(vv_audit_since "$log" "$a" "$@") - $(vv_audit_since "$log" "$b" "$@")))
}
# vv_audit_wait_upto LOG N SEQ1 SEQ2 FILTER...: until N such records (the
# writer flushes every second); polls, no timing asserted.
vv_audit_wait_upto() {
	local log=$1 n=$2 a=$3 b=$4 i
	shift 4
	for i in $(seq 100); do
		[ "$(vv_audit_upto "$log" "$a" "$b" "$@")" = "$n" ] && return 0
		sleep 0.1
	done
	echo "# $(vv_audit_upto "$log" "$a" "$b" "$@") records from $a before $b, not $n: $*"
	vv_audit_q "$log" seqs "seq>=$a" "$@" | sed 's/^/# seqs: /'
	return 1
}

# vv_audit_has LOG FILTER...: at least one matching record (polls: the
# writer flushes every second; generous cap, no timing asserted).
vv_audit_has() {
	local log=$1 i
	shift
	for i in $(seq 1 100); do
		[ "$(vv_audit_q "$log" count "$@")" -ge 1 ] && return 0
		sleep 0.1
	done
	echo "# no record matching: $*"
	return 1
}

# vv_need_fuse: skip the test (exit 77) without /dev/fuse or fusermount3.
vv_need_fuse() {
	if [ -c /dev/fuse ] && command -v fusermount3 >/dev/null 2>&1; then
		vv_guard_start
		return 0
	fi
	echo "1..0 # SKIP no /dev/fuse or fusermount3"
	vv_done=1 vv_rc=77
	exit 77
}

# vv_guard_start: once per test, before its first mount, start
# lib/guard.sh, which unmounts and removes $T if this script dies without
# running its EXIT trap (SIGKILL from ctest's timeout).  Double fork and
# setsid: the guard is no job of this shell (a bare `wait` in a test must
# not wait for it), not in its process group (a kill of the group spares
# it), and holds none of its output pipes (ctest reads them to EOF).
vv_guard_pid_file="$T/.guard"
vv_guard_start() {
	[ -e "$vv_guard_pid_file" ] && return 0
	: > "$vv_guard_pid_file"
	( setsid sh "$VV_SRC/tests/integration/lib/guard.sh" "$$" "$T" \
		</dev/null >/dev/null 2>&1 & )
}

# vv_need_numpy: skip the test (exit 77) when python3 has no numpy.
vv_need_numpy() {
	"$PY" -c 'import numpy' 2>/dev/null && return 0
	echo "1..0 # SKIP no numpy"
	vv_done=1 vv_rc=77
	exit 77
}

# vv_group NAME [GID]: make a system group for the test (groupadd), removed
# at exit even when the test fails.  Skips the test without groupadd.
vv_group() {
	if ! command -v groupadd >/dev/null; then
		echo "1..0 # SKIP no groupadd"
		vv_done=1 vv_rc=77
		exit 77
	fi
	groupadd ${2:+-g "$2"} "$1" || return $?
	echo "$1" >> "$T/.groups"
}

# vv_role_member USER GROUP: a system group and a user in it (no home, no
# login, primary group nogroup): a role and its member.  Both are made
# afresh (ones a killed earlier run left are removed first) and removed at
# exit even when the test fails, the user first.
vv_role_member() {
	userdel "$1" 2>/dev/null || true
	groupdel "$2" 2>/dev/null || true
	vv_group "$2" || return $?
	useradd -M -N -g nogroup -G "$2" -s /usr/sbin/nologin "$1" || return $?
	echo "$1" >> "$T/.users"
}

# vv_init STORE [init options]
vv_init() {
	local store=$1
	shift
	"$VV_BIN" init "$store" --passfile "$PASSFILE" --kdf test "$@"
}

# vv_golden NAME PASSPHRASE: unpack the golden store (or backup
# repository) tests/data/NAME.tar.gz into $T/NAME and put PASSPHRASE in the
# passfile $T/NAME.pass (0600).  Mount it with
# vv_mount "$T/NAME" MNT --passfile "$T/NAME.pass" [options].  Fails naming
# the archive when it is missing or holds no NAME/ (errexit stops the test).
vv_golden() {
	local name=$1 pass=$2 tgz="$VV_SRC/tests/data/$1.tar.gz"
	if [ ! -f "$tgz" ]; then
		echo "# vv_golden: no golden archive $tgz"
		return 1
	fi
	if ! tar -C "$T" -xzf "$tgz"; then
		echo "# vv_golden: $tgz does not unpack"
		return 1
	fi
	if [ ! -d "$T/$name" ]; then
		echo "# vv_golden: $tgz holds no $name/"
		return 1
	fi
	(umask 077 && printf '%s\n' "$pass" > "$T/$name.pass")
}

# vv_mount STORE MNT [mount options]: mount and record it for cleanup.
vv_mount() {
	local store=$1 mnt=$2 pidf
	shift 2
	vv_need_fuse
	mkdir -p "$mnt"
	pidf="$T/.pids/$(echo "$mnt" | tr / _)"
	"$VV_BIN" mount "$store" "$mnt" --passfile "$PASSFILE" --pid-file "$pidf" \
		--log "$T/daemon.log" "$@" || return $?
	printf '%s\t%s\n' "$mnt" "$pidf" >> "$VV_MOUNTS"
}

# Wait (bounded) for the daemon whose pid is in pidfile to exit.
vv_wait_daemon() {
	local pidf=$1 pid i=0
	[ -s "$pidf" ] || return 0
	pid=$(cat "$pidf" 2>/dev/null) || return 0
	while kill -0 "$pid" 2>/dev/null; do
		i=$((i + 1))
		[ "$i" -le 600 ] || return 1
		sleep 0.1
	done
	return 0
}

# vv_umount MNT: unmount, wait for the daemon to close the vault and exit.
vv_umount() {
	local mnt=$1 pidf rc=0
	pidf=$(awk -F '\t' -v m="$mnt" '$1 == m { p = $2 } END { print p }' "$VV_MOUNTS")
	fusermount3 -u "$mnt" || rc=$?
	if [ "$rc" -eq 0 ] && [ -n "$pidf" ]; then
		vv_wait_daemon "$pidf" || rc=1
	fi
	if [ "$rc" -eq 0 ]; then
		awk -F '\t' -v m="$mnt" '$1 != m' "$VV_MOUNTS" > "$VV_MOUNTS.new"
		mv "$VV_MOUNTS.new" "$VV_MOUNTS"
	fi
	return "$rc"
}

# vv_cold STORE MNT: unmount, drop the page cache and mount again, so the
# next reads reach the daemon cold.
# vv_sync MNT: make every change made through the vecvault mount MNT
# durable, as a crash test needs before it kills the daemon.  `sync -f`
# cannot: the kernel sends SYNCFS only to virtiofs, never to a FUSE
# daemon; an fsync of the root directory (FSYNCDIR) commits everything.
vv_sync() {
	"$PY" -c 'import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY); os.fsync(fd)' "$1"
}

vv_cold() {
	vv_umount "$2"
	sync
	echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
	vv_mount "$1" "$2"
}

# test_done: print the summary and exit (non-zero if anything failed).
test_done() {
	vv_done=1
	echo "1..$((vv_passed + vv_failed))"
	echo "# $vv_passed passed, $vv_failed failed"
	vv_rc=1
	[ "$vv_failed" -eq 0 ] && vv_rc=0
	exit "$vv_rc"
}

# Where errexit stopped a script: vv_cleanup prints it (CI shows only the
# test's output, so a bare "stopped early" named no cause).
vv_errat=
set -E
trap 'vv_errat="line $LINENO (status $?): $BASH_COMMAND"' ERR

vv_cleanup() {
	local rc=$? mnt pidf pid
	set +e
	# The status test_done or a skip chose, not $?: a test's own EXIT trap
	# runs commands (groupdel, umount, rm) before calling this, and their
	# status would otherwise turn a failed test into a pass.
	[ "$vv_done" -eq 1 ] && [ -n "$vv_rc" ] && rc=$vv_rc
	if [ "$vv_done" -eq 0 ]; then
		echo "# test script stopped early (exit status $rc)"
		[ -n "$vv_errat" ] && echo "# errexit at $vv_errat"
		vv_failed=$((vv_failed + 1))
		echo "1..$((vv_passed + vv_failed))"
		echo "# $vv_passed passed, $vv_failed failed"
		rc=1
	fi
	while IFS="$(printf '\t')" read -r mnt pidf; do
		[ -n "$mnt" ] || continue
		fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -uz "$mnt" 2>/dev/null
		if ! vv_wait_daemon "$pidf"; then
			pid=$(cat "$pidf" 2>/dev/null)
			[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null
			sleep 1
			[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
		fi
	done < "$VV_MOUNTS"
	# Mounts a failed expectation left behind (a mount that should have
	# been refused but was not): lazily unmount; their daemons then exit.
	awk -v t="$T/" 'index($2, t) == 1 { print $2 }' /proc/mounts | while read -r mnt; do
		fusermount3 -uz "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null
	done
	# A sanitizer build: UBSan reports to stderr whatever UBSAN_OPTIONS
	# says (GCC 12 with ASan), for a daemon its --log, deleted below: keep
	# each log with one where sanitizer/reports looks (tests/README.md).
	if [ -d "${VV_BUILD:-}/sanitizer-logs" ]; then
		find "$T" -maxdepth 2 -name '*.log' -type f -exec grep -l 'runtime error:' {} + 2>/dev/null |
		while read -r f; do
			cp "$f" "$VV_BUILD/sanitizer-logs/ubsan.${0##*/}.${T##*/}.${f##*/}"
		done
	fi
	if [ "$rc" -ne 0 ] && [ -s "$T/daemon.log" ]; then
		echo "# daemon log (last 30 lines):"
		tail -n 30 "$T/daemon.log" | sed 's/^/#   /'
	fi
	# System users vv_role_member made, then the groups vv_group made.
	[ -s "$T/.users" ] && while read -r u; do userdel "$u" 2>/dev/null; done < "$T/.users"
	[ -s "$T/.groups" ] && while read -r g; do groupdel "$g" 2>/dev/null; done < "$T/.groups"
	# --one-file-system: never descend into a mount that is somehow left.
	rm -rf --one-file-system "$T"
	exit "$rc"
}
trap vv_cleanup EXIT
trap 'exit 130' INT TERM
