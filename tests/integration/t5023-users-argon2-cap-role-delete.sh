#!/bin/bash
# t5023-users-argon2-cap-role-delete: two limits of vault users.
#  - Password logins are Argon2id (64 MiB each): 24 clients sending AUTH
#    at once (from 24 loopback addresses) to the remote listener get each a login or "busy" (EBUSY,
#    audited), never anything else; the daemon's peak memory grows by far
#    less than 24 x 64 MiB (at most 2 run at once: bounded by 5 x 64 MiB
#    here, for slack); a legitimate login afterwards works.
#  - `role delete` of a role vault users hold is refused, naming one; with
#    --revoke-all the role goes and so do the users' holds on it, so a role
#    created again under that name gives nothing back (their logins carry
#    no gid of it).
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse
vv_need_loopback_alias

S=$T/store
M=$T/mnt
LOG=$T/daemon.log
G=vvt5023$$
vv_group "$G"
GID=$(getent group "$G" | cut -d: -f3)
vv_tls "$T/tls" >/dev/null
vv_init "$S" >/dev/null
AUD=$(vv_audit_log "$S")
check "mount --listen 127.0.0.1:0" vv_mount "$S" "$M" --listen 127.0.0.1:0 \
	--tls-cert "$T/tls/cert.pem" --tls-key "$T/tls/key.pem"
P=$(vv_port "$LOG" 127.0.0.1:0)
DPID=$(cat "$T/.pids/$(echo "$M" | tr / _)")
PW='a password for carol, long enough'
printf '%s\n' "$PW" > "$T/pw"
chmod 600 "$T/pw"
check "role $G" "$VV_BIN" role create "$G" "$M"
check "user carol with the role" "$VV_BIN" user add carol --uid 1001 --role "$G" \
	--password-file "$T/pw" "$M"

login='
def login(src=None):
    c = R.Client("127.0.0.1", '"$P"', bind=src, timeout=120)
    try:
        return c.auth_password("carol", "'"$PW"'")
    finally:
        c.t.close()
'
check "one login first (its 64 MiB counted in the baseline)" rpy "$login
assert login()[0] == 1001"
hwm() { awk '/^VmHWM:/ { print $2 }' "/proc/$DPID/status"; }
before=$(hwm)
check "24 logins at once: each a login or busy" rpy "$login
import threading
res = []
def one(i):
    try:
        res.append(login('127.0.0.%d' % (10 + i))[0])
    except R.Error as e:
        res.append(e.status)
    except Exception as e:
        res.append(repr(e))
# one connection per source address: the per-address connection limit
# must not be what bounds them
th = [threading.Thread(target=one, args=(i,)) for i in range(24)]
[t.start() for t in th]
[t.join() for t in th]
print('# results:', sorted(res))
assert len(res) == 24 and all(r in (1001, -20) for r in res), res
assert res.count(1001) >= 2, res"
after=$(hwm)
echo "# daemon VmHWM $before kB -> $after kB"
check "peak memory grew by less than 5 x 64 MiB" test $((after - before)) -lt $((5 * 65536))
check "a login afterwards works" rpy "$login
r = login()
assert r == [1001, 'carol'], r"
if grep -q "too many password checks" "$AUD"; then
	check "busy refusals are audited as EBUSY" vv_audit_has "$AUD" op=auth result=EBUSY \
		"detail~too many password checks"
fi

# role delete while a vault user holds it.  A directory only the group may
# enter tells whether carol's login carries its gid.
mkdir -p "$M/c/gdir"
echo group-only > "$M/c/gdir/f"
chgrp "$G" "$M/c/gdir" "$M/c/gdir/f"
chmod 0070 "$M/c/gdir"
chmod 0040 "$M/c/gdir/f"
readf='
c = R.Client("127.0.0.1", '"$P"')
c.auth_password("carol", "'"$PW"'")
try:
    print(c.read_file("/c/gdir/f"))
except R.Error as e:
    print("error", e.status)
'
check "with the role, carol reads the group-only file remotely" \
	sh -c "rpy() { \"\$0\" -c \"import sys; import vvremote as R
\$1\"; }; rpy '$readf' | grep -q group-only" "$PY"
rc=0
"$VV_BIN" role delete "$G" "$M" > "$T/o" 2>&1 || rc=$?
check "role delete of a held role: refused (exit 1)" test "$rc" -eq 1
check "the message names the holder and --revoke-all" \
	grep -q "held by 1 vault user (e.g. carol).*--revoke-all" "$T/o"
check "carol still holds it" sh -c "'$VV_BIN' user show carol '$M' --json | grep -q '\"roles\":\[\"$G\"\]'"
check "role delete --revoke-all" "$VV_BIN" role delete "$G" --revoke-all "$M"
check "user show: carol holds no role" sh -c "'$VV_BIN' user show carol '$M' --json | grep -q '\"roles\":\[\]'"
check "a role of the same name again" "$VV_BIN" role create "$G" "$M"
check "carol still holds no role" sh -c "'$VV_BIN' user show carol '$M' --json | grep -q '\"roles\":\[\]'"
out=$(rpy "$readf" 2>&1)
echo "# carol's read now: $out"
check "her login carries no gid of the new role: EACCES" test "$out" = "error -5"
check "audited: role.delete refused" vv_audit_has "$AUD" op=admin result=EBUSY "detail=role.delete $G"
check "audited: role.delete done" vv_audit_has "$AUD" op=admin result=ok "detail=role.delete $G"
test_done
