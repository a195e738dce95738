#!/bin/bash
# t1021-killed-test-guard: a test killed by SIGKILL (ctest's timeout) runs
# no EXIT trap; test-lib's guard (lib/guard.sh) must still unmount its FUSE
# mounts, see its daemon exit and remove its temporary directory.  Also: a
# test that calls a bare `wait` after mounting must not wait for the guard
# (it is not a job of the test shell), and a test that ends normally leaves
# nothing for the guard to do.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

SUB=$T/sub
mkdir -p "$SUB"
# The sub-test: mount, say where, then block until killed.
cat > "$T/sub-killed.sh" <<SUBEOF
. "$VV_SRC/tests/integration/test-lib.sh"
vv_need_fuse
vv_init "\$T/store" >/dev/null
vv_mount "\$T/store" "\$T/mnt"
echo hello > "\$T/mnt/f"
echo "\$T \$(cat "\$T/.pids/\$(echo "\$T/mnt" | tr / _)")" > "$SUB/ready"
while :; do sleep 1; done
SUBEOF
# The second sub-test: a background job and a bare wait after a mount.
cat > "$T/sub-wait.sh" <<SUBEOF
. "$VV_SRC/tests/integration/test-lib.sh"
vv_need_fuse
vv_init "\$T/store" >/dev/null
vv_mount "\$T/store" "\$T/mnt"
echo "\$T" > "$SUB/wait-dir"
sleep 0.2 &
wait
check "bare wait returned" true
test_done
SUBEOF

# poll CMD... for up to 60 s (never a timing assertion: a generous cap)
poll() {
	local i=0
	until "$@"; do
		i=$((i + 1))
		[ $i -le 600 ] || return 1
		sleep 0.1
	done
}
mounted() { awk -v m="$1" '$2 == m { f = 1 } END { exit !f }' /proc/mounts; }
not_mounted() { ! mounted "$1"; }
gone() { ! kill -0 "$1" 2>/dev/null; }
no_dir() { [ ! -e "$1" ]; }

TMPDIR=$SUB VV_BIN=$VV_BIN VV_SRC=$VV_SRC bash "$T/sub-killed.sh" > "$T/sub-killed.out" 2>&1 &
spid=$!
check "the sub-test mounted" poll test -s "$SUB/ready"
read -r sdir dpid < "$SUB/ready"
check "its mount is there" mounted "$sdir/mnt"
check "its daemon runs" kill -0 "$dpid"
kill -KILL "$spid"
wait "$spid" 2>/dev/null || true
check "after SIGKILL of the sub-test its mount goes (guard)" poll not_mounted "$sdir/mnt"
check "its daemon exits" poll gone "$dpid"
check "its temporary directory is removed" poll no_dir "$sdir"
check "the sub-test's output shows no cleanup ran (killed)" \
	sh -c "! grep -q 'passed' '$T/sub-killed.out'"

# A bare wait after a mount returns (bounded by timeout: a hang fails).
rc=0
TMPDIR=$SUB VV_BIN=$VV_BIN VV_SRC=$VV_SRC timeout 120 bash "$T/sub-wait.sh" \
	> "$T/sub-wait.out" 2>&1 || rc=$?
sed 's/^/#   sub: /' "$T/sub-wait.out"
check "a test with a bare wait after mounting finishes and passes" test "$rc" -eq 0
wdir=$(cat "$SUB/wait-dir" 2>/dev/null || echo /nonexistent)
check "and cleaned up itself (no mount left)" not_mounted "$wdir/mnt"
check "its directory is gone" poll no_dir "$wdir"
check "no mount under the sub-tests' directory is left" \
	sh -c "! grep -q ' $SUB/' /proc/mounts"
test_done
