#!/bin/bash
# t6041-grant-rename-race: a grant goes only to a collection it was
# authorized on.  u1001 administers /c1 (role G) and may rename in the
# vault's root (mode 0777, owned by root); while she grants role R on /c1
# again and again, her other process swaps /c1 and /c2 with
# renameat2(RENAME_EXCHANGE) as fast as it can.  Each grant either reaches
# c1 (wherever it is) or is refused; c2, which she does not administer,
# never gets R's entry.  Bounded loops, no timing asserted (the unit side,
# test_grant "swap", puts the rename exactly between the check and the
# change every time).
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
G=vv6041a R=vv6041r
if getent group 2000 >/dev/null; then
	echo "1..0 # SKIP gid 2000 (u1001's group in test-lib) is taken here"
	vv_done=1
	exit 77
fi
trap 'groupdel $G 2>/dev/null; groupdel $R 2>/dev/null; vv_cleanup' EXIT
groupadd -g 2000 $G
groupadd $R

vv_init "$S" >/dev/null
LOG=$(vv_audit_log "$S")
check "mount" vv_mount "$S" "$M"
mkdir -m 0755 "$M/c1" "$M/c2" "$M/c2/sub"
echo one > "$M/c1/f"
echo two > "$M/c2/s"
chmod 0777 "$M"
c1=$(stat -c %i "$M/c1")
c2=$(stat -c %i "$M/c2")
"$VV_BIN" role create $G "$M" >/dev/null
"$VV_BIN" role create $R "$M" >/dev/null
check "grant $G admin /c1" "$VV_BIN" grant $G admin "$M/c1"

cat > "$T/swap.py" <<'PY'
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, RENAME_EXCHANGE = -100, 2
a, b, stop, n = sys.argv[1].encode(), sys.argv[2].encode(), sys.argv[3], int(sys.argv[4])
done = 0
for i in range(n):
    if libc.renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) != 0:
        print("renameat2:", os.strerror(ctypes.get_errno()))
        sys.exit(1)
    done += 1
    if i % 64 == 0 and os.path.exists(stop):
        break
if done % 2:                     # leave them where they were
    libc.renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE)
print(done)
PY
check "u1001 may swap /c1 and /c2 (write on the root)" \
	as_u1001 "$PY" "$T/swap.py" "$M/c1" "$M/c2" "$T/none" 2
check "they are back in place" test "$(stat -c %i "$M/c1")" = "$c1"

rm -f "$T/stop"
as_u1001 "$PY" "$T/swap.py" "$M/c1" "$M/c2" "$T/stop" 200000 > "$T/swaps" 2>&1 &
swapper=$!
ok=0 refused=0
for i in $(seq 1 150); do
	if as_u1001 "$VV_BIN" admin "$M" grant role=$R perms=r path=/c1 >/dev/null 2>&1; then
		ok=$((ok + 1))
	else
		refused=$((refused + 1))
	fi
done
touch "$T/stop"
wait $swapper || true
echo "# grants: $ok done, $refused refused; swaps: $(cat "$T/swaps")"
check "the swapper ran" grep -q '^[0-9]*$' "$T/swaps"
check "c1 and c2 are back in place" test "$(stat -c %i "$M/c1"):$(stat -c %i "$M/c2")" = "$c1:$c2"
check "c2 never got $R's entry" sh -c "! getfacl -Rp '$M/c2' 2>/dev/null | grep -q 'group:$R'"
check "c2's grants name no $R" sh -c "! '$VV_BIN' grants '$M/c2' | grep -q '^$R '"
check "a grant without the swapper reaches c1" as_u1001 "$VV_BIN" grant $R r "$M/c1"
check "c1 names $R" sh -c "getfacl -p '$M/c1' | grep -q 'group:$R:r'"
if [ "$refused" -gt 0 ]; then
	check "u1001's refusals are audited" vv_audit_has "$LOG" op=admin uid=1001 result=EACCES "detail~^grant"
fi
test_done
