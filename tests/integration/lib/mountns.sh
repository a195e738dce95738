# mountns.sh - sourced by the tests that run mount(8) itself (t1014,
# t6029) after test-lib.sh.  mount(8) looks for helpers only in /sbin, so
# the steps run in a private mount namespace whose /sbin holds the helper
# through a read-only overlay: nothing is installed on the machine, and
# the overlay, the vault mounts and the namespace go away with the script
# (its trap unmounts MNT and stops the daemon it started first).

# vv_mountns_ok SBINDIR: can this machine make such a namespace, with the
# helper installed in SBINDIR?
vv_mountns_ok() {
	VV_NS_SBIN=$(readlink -f /sbin)
	unshare -m --propagation private sh -c \
		"mount -t overlay overlay -o 'lowerdir=$1:$VV_NS_SBIN' '$VV_NS_SBIN' && test -x /sbin/mount.fuse.vecvault" \
		2>/dev/null
}

# vv_mountns_run SBINDIR PIDFILE MNT N STEPS: run the shell text STEPS (lines
# `step NAME CMD...`; `daemon_gone` waits for PIDFILE's daemon to exit) in
# the namespace; each step becomes a TAP line here, then a check that all N
# ran.  STEPS is expanded by the caller (escape what the namespace expands).
vv_mountns_run() {
	local sbin=$1 pidf=$2 mnt=$3 n=$4 steps=$5 st name
	{
		cat <<NS
set -u
cleanup() {
	umount "$mnt" 2>/dev/null
	pid=\$(cat "$pidf" 2>/dev/null) && kill -TERM "\$pid" 2>/dev/null
	i=0; while [ -n "\${pid:-}" ] && kill -0 "\$pid" 2>/dev/null && [ \$i -lt 100 ]; do sleep 0.1; i=\$((i+1)); done
}
trap cleanup EXIT
mount -t overlay overlay -o "lowerdir=$sbin:$VV_NS_SBIN" "$VV_NS_SBIN" || exit 90
# step NAME CMD...: one TAP-like line per step for the outer script.
step() { n=\$1; shift; if "\$@"; then echo "OK \$n"; else echo "FAIL \$n"; fi; }
daemon_gone() {
	pid=\$(cat "$pidf" 2>/dev/null) || return 0
	i=0; while kill -0 "\$pid" 2>/dev/null; do i=\$((i+1)); [ \$i -le 300 ] || return 1; sleep 0.1; done
}
NS
		printf '%s\n' "$steps"
	} > "$T/ns.sh"
	unshare -m --propagation private sh "$T/ns.sh" > "$T/ns.out" 2>&1 || true
	while read -r st name; do
		case $st in
		OK) test_ok "$name" ;;
		FAIL) test_fail "$name" ;;
		esac
	done < "$T/ns.out"
	check "all mount(8) steps ran" test "$(grep -cE '^(OK|FAIL) ' "$T/ns.out")" -eq "$n"
	grep -vE '^(OK|FAIL) ' "$T/ns.out" | sed 's/^/# ns: /'
}
