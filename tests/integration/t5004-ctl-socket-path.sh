#!/bin/bash
# t5004-ctl-socket-path: who may own the control socket's path.
#   - the CLI refuses a socket planted by another uid (here u1000, in a
#     $XDG_RUNTIME_DIR/vecvault the CLI searches), and sends it nothing;
#   - the daemon refuses a symlink or a file that is not its socket at the
#     path (left alone; the mount still serves files, its log says why, and
#     the CLI says no daemon serves the vault);
#   - a stale socket of ours (a daemon killed with SIGKILL) is replaced at
#     the next mount;
#   - SIGTERM stops the daemon and removes the socket.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
vv_init "$S" >/dev/null
ID=$(vv_store_id "$S")
SOCK=$(vv_ctl_socket "$S")
mkdir -p /run/vecvault

# --- a socket planted by another user -------------------------------------
mkdir -p -m 777 "$T/xdg/vecvault"
chown 1000:1000 "$T/xdg/vecvault"
as_u1000 "$PY" -c '
import os, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen(8); s.settimeout(0.2)
open(sys.argv[2], "w").close()
got = 0
t0 = time.monotonic()
while not os.path.exists(sys.argv[3]) and time.monotonic() - t0 < 60:
    try:
        c, _ = s.accept(); got += 1; c.close()
    except socket.timeout:
        pass
print(got)
' "$T/xdg/vecvault/$ID.sock" "$T/xdg/vecvault/ready" "$T/xdg/vecvault/stop" > "$T/planted.out" &
planter=$!
for i in $(seq 1 300); do [ -e "$T/xdg/vecvault/ready" ] && break; sleep 0.1; done
check "u1000 planted a socket" test -S "$T/xdg/vecvault/$ID.sock"
rc=0; err=$(XDG_RUNTIME_DIR=$T/xdg "$VV_BIN" admin --store "$S" vault.ping 2>&1) || rc=$?
check "the CLI refuses it: exit 2" test "$rc" = 2
check "and says whose it is" grep -q "owned by uid 1000, neither root nor you" <<<"$err"
touch "$T/xdg/vecvault/stop"
wait "$planter"
check "the planted socket never saw a connection" test "$(cat "$T/planted.out")" = 0

# --- a symlink at the daemon's path --------------------------------------
echo precious > "$T/target"
ln -s "$T/target" "$SOCK"
check "mount with a symlink at the socket path still serves" vv_mount "$S" "$M"
check "the symlink is left alone" test -L "$SOCK"
check "its target is untouched" test "$(cat "$T/target")" = precious
check "the daemon log says why" grep -q "is a symbolic link: refused as control socket" "$T/daemon.log"
rc=0; err=$("$VV_BIN" admin "$M" vault.ping 2>&1) || rc=$?
check "the CLI: exit 2" test "$rc" = 2
check "the CLI refuses the link" grep -q "refusing $SOCK: not a socket" <<<"$err"
check "files are served meanwhile" sh -c "echo x > '$M/f' && test \"\$(cat '$M/f')\" = x"
check "unmount" vv_umount "$M"
check "the symlink is still there" test -L "$SOCK"
rm -f "$SOCK"

# --- a regular file at the path ------------------------------------------
echo notasocket > "$SOCK"
check "mount with a file at the socket path" vv_mount "$S" "$M"
check "the file is left alone" test "$(cat "$SOCK")" = notasocket
check "the daemon log says it is not our socket" grep -q "exists and is not a socket of uid 0" "$T/daemon.log"
check "unmount" vv_umount "$M"
rm -f "$SOCK"

# --- a stale socket after SIGKILL -----------------------------------------
check "mount" vv_mount "$S" "$M"
pid=$(cat "$T/.pids/$(echo "$M" | tr / _)")
kill -KILL "$pid"
for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
fusermount3 -uz "$M" 2>/dev/null || true
check "SIGKILL left the socket behind" test -S "$SOCK"
rc=0; err=$("$VV_BIN" admin --store "$S" vault.ping 2>&1) || rc=$?
check "nothing listens: exit 2" test "$rc" = 2
check "no daemon serves it" grep -q "no daemon serves the vault in" <<<"$err"
check "remount replaces the stale socket" vv_mount "$S" "$M"
check "and answers" "$VV_BIN" admin "$M" vault.ping

# --- SIGTERM --------------------------------------------------------------
pid=$(cat "$T/.pids/$(echo "$M" | tr / _)")
kill -TERM "$pid"
for i in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
check "SIGTERM stopped the daemon" sh -c "! kill -0 $pid 2>/dev/null"
check "and removed the socket" test ! -e "$SOCK"
fusermount3 -uz "$M" 2>/dev/null || true

test_done
