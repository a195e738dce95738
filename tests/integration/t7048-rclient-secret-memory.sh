#!/bin/bash
# t7048-rclient-secret-memory: a vv:// client daemon keeps its login secret
# (the API key, or the password) for the life of the mount, to log in again
# after a reconnect.  It used to keep it in ordinary heap memory of a
# dumpable process: any other process of the mounting user could read it
# out of /proc/PID/mem (no key file needed: a password typed or piped in,
# a key file removed after mounting), a crash wrote it into a core file,
# and it could be swapped out.  Now the client daemon is not dumpable and
# writes no core (as the vault daemon), and the secret sits in locked
# memory left out of dumps.  /dev/fuse here is root's alone, so "the
# mounting user" is root without CAP_SYS_PTRACE (the capability that
# reads any process's memory): the client and its neighbour both run so.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse

vv_evil_init
# a fake server that logs anything in (vvfake.login) and answers ENOENT
cat > "$T/evil.py" <<'PY'
import sys
import vvfake
vvfake.serve_forever(*sys.argv[2:5], vvfake.enoent)
PY
vv_evil_serve enoent

# the mounting user and another process of it: root without CAP_SYS_PTRACE
noptrace() { setpriv --bounding-set=-sys_ptrace -- "$@"; }
R=$T/r
mkdir "$R"
check "the client mounts vv:// with an API key" noptrace "$VV_BIN" mount "vv://127.0.0.1:$P" \
	"$R" --key-file "$T/key" --pin "$FP" --timeout 10 --log "$T/client.log"
printf '%s\t%s\n' "$R" "" >> "$VV_MOUNTS"
cpid=$(ps -eo pid,args | awk -v u="vv://127.0.0.1:$P" '$0 ~ "vecvault mount " u " " { print $1 }')
capeff=$(awk '$1 == "CapEff:" { print $2 }' "/proc/$cpid/status" 2>/dev/null || true)
check "the client daemon runs, without CAP_SYS_PTRACE (bit 19)" \
	test -n "$capeff" -a $(( (0x${capeff:-0} >> 19) & 1 )) = 0

# another process of that user looks for the key's secret in the daemon's
# memory: 0 = it may not read it, 1 = found, 2 = readable but not found
cat > "$T/scan.py" <<'PY'
import re, sys
pid, needle = sys.argv[1], sys.argv[2].encode()
try:
    maps = open('/proc/%s/maps' % pid).read().splitlines()
    mem = open('/proc/%s/mem' % pid, 'rb')
except PermissionError:
    sys.exit(0)
readable = 0
for line in maps:
    m = re.match(r'([0-9a-f]+)-([0-9a-f]+) r', line)
    if not m:
        continue
    lo, hi = int(m.group(1), 16), int(m.group(2), 16)
    try:
        mem.seek(lo)
        data = mem.read(hi - lo)
    except (OSError, OverflowError, ValueError):
        continue
    readable += 1
    if needle in data:
        print('# found the secret in', line)
        sys.exit(1)
print('# %d regions readable, no secret in them' % readable)
sys.exit(0 if readable == 0 else 2)
PY
check "another process of the mounting user cannot read the API key out of the daemon" \
	noptrace "$PY" "$T/scan.py" "$cpid" "0000000000000000.secret"
check "the daemon writes no core file (RLIMIT_CORE 0)" \
	grep -Eq '^Max core file size +0 +0 ' "/proc/$cpid/limits"
if [ -n "$(vv_sanitizer)" ]; then
	# the sanitizers' mlock interceptor returns 0 and locks nothing
	test_ok "the secret is kept in locked memory # SKIP $(vv_sanitizer) build: mlock is a no-op"
else
	check "the secret is kept in locked memory" \
		awk '$1 == "VmLck:" { exit !($2 > 0) }' "/proc/$cpid/status"
fi
check "the daemon's log does not show the secret" sh -c "! grep -q secret '$T/client.log'"
check "unmounted" fusermount3 -u "$R"

test_done
