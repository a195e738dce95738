#!/bin/bash
# t1051-bulk-fuse-descriptor: a bulk read's caller cannot hold the
# daemon's worker by naming, as its buffer, a file on a FUSE filesystem
# that never answers (one it would serve itself: fusermount3 needs no
# privilege; here a second mount whose daemon the test stops).  The daemon
# took any descriptor with pidfd_getfd and only then looked at it:
# fstatfs(2) of that file asked the stalled server (and close(2) sends it
# FLUSH whatever its mount's options), so the worker waited
# uninterruptibly with the uid's slot and the unmount behind it.  Now the
# descriptor is looked at in /proc/TID/fdinfo first and taken only when it
# is a memfd of the inode named (fs/bulk.c); a file put under that number
# between that look and the take is closed aside, on a thread of its own
# (at most 4; EBUSY beyond).
#
# Checks, as uid 1000, with the second mount's daemon stopped: the FUSE
# file named as the buffer is refused (EINVAL) at once; no daemon thread
# waits on the stalled filesystem; a second thread swapping the FUSE file
# and a memfd under the buffer's number while 200 requests run: each
# answered (OK, EBADF, EINVAL or EBUSY) while the filesystem is stalled, at
# most 4 daemon threads waiting on it; once it answers again, the buffer
# is served and the vault unmounts.  (main: checks 1-3 fail; the worker
# waited in fuse_statfs until the stalled filesystem was let go.)
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

LIB=$VV_SRC/tests/integration/lib
export LIB
vv_init "$T/s" >/dev/null 2>&1
vv_init "$T/s2" >/dev/null 2>&1
vv_mount "$T/s" "$T/m"
vv_mount "$T/s2" "$T/stall"
chmod 755 "$T/m" "$T/stall"
mkdir "$T/m/c"
head -c 3000 /dev/urandom > "$T/m/c/a"
head -c 4096 /dev/urandom > "$T/stall/f"
chmod 644 "$T/m/c/a" "$T/stall/f"
chown 1000 "$T/stall/f"               # opened for writing: its close sends FLUSH
vv_sync "$T/m"
vv_sync "$T/stall"
D=$(cat "$T/.pids/$(echo "$T/m" | tr / _)")
D2=$(cat "$T/.pids/$(echo "$T/stall" | tr / _)")
# the stopped daemon is let go whatever happens, before test-lib unmounts
trap 'vv_st=$?; kill -CONT "$D2" 2>/dev/null; (exit $vv_st); vv_cleanup' EXIT

# waiting: how many of the vault daemon's threads wait for an answer of a
# FUSE filesystem (its own workers read /dev/fuse, they do not wait so)
waiting() {
	local t n=0
	for t in /proc/"$D"/task/*; do
		grep -q request_wait_answer "$t/stack" 2>/dev/null && n=$((n + 1))
	done
	echo "$n"
}

# fusefd.py DIR FILE: FILE (on the mount to be stopped) opened first, for
# reading and writing (its close sends FLUSH: a read-only vecvault handle
# asks for none) and read-only (for the race: the swapping thread's own
# dup2 closes it there, which must not wait);
# after a line on stdin, the bulk read naming it as the buffer, then the
# race, then (after another line) a request into the memfd.  The ioctl
# goes through ctypes: fcntl.ioctl keeps the GIL, which the swapping
# thread needs.
cat > "$T/fusefd.py" <<'PY'
import ctypes, errno, os, sys, threading
sys.path.insert(0, os.environ["LIB"])
import bulk as B
libc = ctypes.CDLL(None, use_errno=True)
d, f = sys.argv[1], sys.argv[2]
ff = os.open(f, os.O_RDWR)
ffr = os.open(f, os.O_RDONLY)
st = os.fstat(ff)
dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
want = open(d + "/a", "rb").read()
buf = B.Buf(1, 1 << 16, name="t1051", seal=True)

def ask(**over):
    b = B.req(buf, ["a"], **over)
    cb = (ctypes.c_char * len(b)).from_buffer(b)
    r = libc.ioctl(dfd, ctypes.c_ulong(B.BULK), cb)
    del cb
    return "OK" if r == 0 else errno.errorcode.get(ctypes.get_errno(), "?")

print("ready", flush=True)
sys.stdin.readline()                      # the server is stopped
print("fuse", ask(memfd=ff, mem_dev=st.st_dev, mem_ino=st.st_ino), flush=True)
sys.stdin.readline()                      # the shell counted the waiters
num = os.dup(buf.fd)
stop = False
def swap():
    while not stop:
        os.dup2(ffr, num)
        os.dup2(buf.fd, num)
t = threading.Thread(target=swap)
t.start()
res = set(ask(memfd=num) for _ in range(200))
stop = True
t.join()
print("race", " ".join(sorted(res)), flush=True)
sys.stdin.readline()                      # the server answers again
os.dup2(buf.fd, num)
r = ask(memfd=num)
print("again", r if r != "OK" or buf.get(0, len(want)) == want else "WRONG", flush=True)
sys.stdin.readline()
PY
coproc FD { setpriv --reuid=1000 --regid=1000 --clear-groups -- "$PY" "$T/fusefd.py" "$T/m/c" "$T/stall/f" 2>&1; }
exec 3<&"${FD[0]}" 4>&"${FD[1]}"
line() { local l; read -r -t "$1" l <&3 && echo "$l" && echo "#   $l" >&2; }
line 60 > /dev/null
kill -STOP "$D2"
echo >&4
L=$(line 20 || true)
check "a FUSE file named as the buffer: refused at once (EINVAL)" test "$L" = "fuse EINVAL"
check "no daemon thread waits on the stalled filesystem" test "$(waiting)" = 0
echo >&4
R=$(line 120 || true)
check "its descriptor number swapped with a memfd's during 200 requests: each answered" \
	eval 'case "$R" in race\ *) echo "$R" | grep -qvE " (ENOTCONN|EIO|EINTR|\?)( |$)";; *) false;; esac'
n=$(waiting)
echo "# daemon threads waiting on the stalled filesystem: $n"
check "at most 4 daemon threads (closing aside) wait on it" test "$n" -le 4
kill -CONT "$D2"
echo >&4
check "the filesystem answering again: the buffer served" test "$(line 60 || true)" = "again OK"
echo >&4
wait "$FD_PID" 2>/dev/null || true
check "unmounted cleanly" vv_umount "$T/m"
test_done
