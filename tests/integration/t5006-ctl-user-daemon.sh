#!/bin/bash
# t5006-ctl-user-daemon: a vault mounted by an ordinary user (u1000) gets
# its control socket under that user's $XDG_RUNTIME_DIR/vecvault, which
# the user's CLI finds from the mount or --store; the socket is gone after
# unmount.  Root's CLI refuses the user's mount (a FUSE mount another user
# made could answer anything), and another user (u1001) cannot reach it.
#
# Where /dev/fuse is closed to users (containers), the test runs in a
# private mount namespace with a user-accessible copy of the device node
# bound over /dev/fuse: nothing changes outside the test.
if [ -z "${VV_T5006_NS:-}" ] && [ -c /dev/fuse ] &&
   ! setpriv --reuid=1000 --regid=1000 --clear-groups -- sh -c 'test -r /dev/fuse && test -w /dev/fuse' &&
   command -v unshare >/dev/null; then
	exec unshare -m --propagation private env VV_T5006_NS=1 bash "$0" "$@"
fi
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse
if [ -n "${VV_T5006_NS:-}" ]; then
	mknod "$T/fuse" c 10 229 && chmod 666 "$T/fuse" && mount --bind "$T/fuse" /dev/fuse || true
fi
if ! as_u1000 sh -c 'test -r /dev/fuse && test -w /dev/fuse'; then
	echo "1..0 # SKIP users cannot open /dev/fuse here ($(stat -c %A /dev/fuse))"
	vv_done=1
	exit 77
fi

U=$T/u1000
mkdir -m 700 "$U" "$U/run" "$U/state" "$U/audit" "$U/mnt"
cp "$PASSFILE" "$U/pass"
chown -R 1000:1000 "$U"
chmod 755 "$U" "$U/mnt"
uenv() {
	as_u1000 env XDG_RUNTIME_DIR="$U/run" VECVAULT_STATE_DIR="$U/state" \
		VECVAULT_AUDIT_DIR="$U/audit" VECVAULT_TEST_KDF=1 HOME="$U" "$@"
}
check "u1000 makes a vault" uenv "$VV_BIN" init "$U/store" --passfile "$U/pass" --kdf test
ID=$(vv_store_id "$U/store")
check "u1000 mounts it" uenv "$VV_BIN" mount "$U/store" "$U/mnt" --passfile "$U/pass" \
	--pid-file "$U/pid" --log "$U/log"
printf '%s\t%s\n' "$U/mnt" "$U/pid" >> "$VV_MOUNTS"
SOCK=$U/run/vecvault/$ID.sock
check "its socket is in u1000's runtime dir" test -S "$SOCK"
check "owned by u1000" test "$(stat -c %u "$SOCK")" = 1000
check "not in /run/vecvault" test ! -e "/run/vecvault/$ID.sock"
out=$(uenv "$VV_BIN" admin "$U/mnt" vault.ping)
check "u1000's CLI finds it from the mount" grep -q "^uid 1000 (owner)$" <<<"$out"
check "and from --store" uenv "$VV_BIN" admin --store "$U/store" vault.ping
rc=0; err=$("$VV_BIN" admin "$U/mnt" vault.ping 2>&1) || rc=$?
check "root's CLI refuses the user's mount: exit 2" test "$rc" = 2
check "and says who mounted it" grep -q "mounted by uid 1000, neither root nor you" <<<"$err"
rc=0; err=$(as_u1001 env XDG_RUNTIME_DIR="$U/run" "$VV_BIN" admin "$U/mnt" vault.ping 2>&1) || rc=$?
check "u1001 pointed at u1000's mount and runtime dir: exit 2" test "$rc" = 2
check "u1001's CLI refuses the mount" grep -q "mounted by uid 1000, neither root nor you" <<<"$err"
rc=0; err=$(as_u1001 "$PY" -c '
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1]); print("connected")
except OSError as e:
    print(e.strerror)' "$SOCK" 2>&1) || rc=$?
check "u1001 cannot even connect (the runtime dir is u1000's, 0700)" grep -q "Permission denied" <<<"$err"
check "u1000 unmounts" as_u1000 fusermount3 -u "$U/mnt"
vv_wait_daemon "$U/pid"
check "the socket is gone" test ! -e "$SOCK"

test_done
