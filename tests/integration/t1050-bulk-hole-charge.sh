#!/bin/bash
# t1050-bulk-hole-charge: a hole the caller punches in its bulk-read buffer
# while a request runs is never filled by the daemon (fs/bulk_map.c: the
# kept mapping is registered with a userfaultfd, so a copy into a missing
# page faults SIGBUS instead of allocating it).  Filled, the page was the
# daemon's: charged to the daemon's memory cgroup for as long as the
# caller kept the memfd, and the request answered OK.  A caller could so
# move any amount of its memory into the daemon's cgroup (one request per
# 64 MiB memfd, punching as the copies run: its own charge goes with the
# punch), past its own limits, until the daemon's cgroup or the machine
# ran out.  The check after the request (st_blocks grew) did not see it:
# the pages punched and filled again left the count as it was.
#
# As uid 1000, 150 requests of 256 names (32 MiB of slots) each race a
# punch of the whole buffer at a random moment of the request.  Checks:
# no page the punch removed is there afterwards (only the daemon could
# have put it back), each answer OK or EINVAL, the daemon alive and
# serving the buffer again once the caller fills it; where a memory
# cgroup can be made for the daemon, nothing of the caller's buffer is
# charged to it.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
LIB=$VV_SRC/tests/integration/lib
export LIB

vv_init "$S" >/dev/null 2>&1
vv_mount "$S" "$M"
DPID=$(cat "$T/.pids/$(echo "$M" | tr / _)")
chmod 755 "$M"
mkdir "$M/c"
for i in $(seq -w 0 63); do head -c 100000 /dev/urandom > "$M/c/f$i"; done
chmod -R a+rX "$M/c"
vv_sync "$M"

# The daemon in a memory cgroup of its own (v1 or v2), when one can be
# made: what its faults allocate is charged there from now on.  A watcher
# removes the cgroup once the daemon has exited, however the test ends.
CG= SHMEM=
mem=$(awk -F: '$2 == "memory" { print $3 }' /proc/self/cgroup)
if [ -n "$mem" ] && [ -d "/sys/fs/cgroup/memory$mem" ]; then
	CG=/sys/fs/cgroup/memory$mem/vv-t1050-$$
	SHMEM=shmem
elif [ -f /sys/fs/cgroup/cgroup.controllers ]; then
	CG=/sys/fs/cgroup$(awk -F: '$1 == "0" { print $3 }' /proc/self/cgroup)/vv-t1050-$$
	SHMEM=shmem
fi
if [ -n "$CG" ] && mkdir "$CG" 2>/dev/null && [ -f "$CG/memory.stat" ] &&
	echo "$DPID" > "$CG/cgroup.procs" 2>/dev/null; then
	( while kill -0 "$DPID" 2>/dev/null; do sleep 0.2; done; rmdir "$CG" 2>/dev/null ) \
		> /dev/null 2>&1 < /dev/null &
else
	[ -n "$CG" ] && rmdir "$CG" 2>/dev/null
	CG=
fi
charged() { awk -v k="$SHMEM" '$1 == k { print $2 }' "$CG/memory.stat"; }
[ -n "$CG" ] && before=$(charged)

# race.py DIR: prints "answers A B ...", "refilled N" (requests after
# which a page the punch removed was there again: that buffer is kept as
# it is, up to 3 of them, and the race goes on in a new one), then
# "again X" (the buffer filled by the caller and served), then punches
# that buffer empty and waits for a line on stdin, keeping its memfds, so
# the shell can look at the daemon's cgroup.
# The ioctl goes through ctypes: Python's fcntl.ioctl holds the GIL, so
# the punching thread would only run after it.
cat > "$T/race.py" <<'PY'
import ctypes, errno, os, random, statistics, sys, threading, time
sys.path.insert(0, os.environ["LIB"])
import bulk as B
libc = ctypes.CDLL(None, use_errno=True)
d = sys.argv[1]
fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
names = ["f%02d" % i for i in range(64)] * 4
want = [open(d + "/" + n, "rb").read() for n in names[:64]]
SLOT = 1 << 17
SIZE = len(names) * SLOT
a = B.Buf(len(names), SLOT, name="t1050-a", seal=True)
kept = []

def ask():
    b = B.req(a, names)
    cb = (ctypes.c_char * len(b)).from_buffer(b)
    if libc.ioctl(fd, ctypes.c_ulong(B.BULK), cb) < 0:
        return errno.errorcode.get(ctypes.get_errno(), "?"), None
    del cb
    return "OK", B.parse(b)[1]

def fill():
    os.pwrite(a.fd, bytes(SIZE), 0)

def any_page():
    try:
        return os.lseek(a.fd, 0, os.SEEK_DATA) < SIZE
    except OSError:
        return False

durs = []
for _ in range(5):
    t0 = time.perf_counter(); ask(); durs.append(time.perf_counter() - t0)
dur = statistics.median(durs)
answers, refilled = set(), 0
for _ in range(150):
    fill()
    delay = random.uniform(0, dur)
    def punch():
        time.sleep(delay)
        libc.fallocate(a.fd, 3, ctypes.c_long(0), ctypes.c_long(SIZE))  # PUNCH_HOLE | KEEP_SIZE
    t = threading.Thread(target=punch)
    t.start()
    answers.add(ask()[0])
    t.join()
    if any_page():
        refilled += 1
        if len(kept) < 3:
            kept.append(a)
            a = B.Buf(len(names), SLOT, name="t1050-a", seal=True)
print("answers", " ".join(sorted(answers)), flush=True)
print("refilled", refilled, flush=True)
fill()
e, st = ask()
ok = e == "OK" and all(s == (0, len(want[i % 64])) for i, s in enumerate(st)) and \
    all(bytes(a.m[i * SLOT:i * SLOT + len(want[i])]) == want[i] for i in range(64))
print("again", "OK" if ok else e, flush=True)
# the caller's own pages punched out: what its buffers hold now is what
# the daemon filled
libc.fallocate(a.fd, 3, ctypes.c_long(0), ctypes.c_long(SIZE))
print("emptied", flush=True)
input()
PY
coproc RACE { setpriv --reuid=1000 --regid=1000 --clear-groups -- "$PY" "$T/race.py" "$M/c" 2>&1; }
exec 3<&"${RACE[0]}" 4>&"${RACE[1]}"
line() { local l; read -r -t 300 l <&3 && echo "$l" && echo "#   $l" >&2; }
A=$(line)
R=$(line)
G=$(line)
line > /dev/null
check "punches racing 150 requests: each answer OK or EINVAL" \
	eval 'case "$A" in "answers EINVAL"|"answers EINVAL OK"|"answers OK") true;; *) false;; esac'
check "no punched page filled again by the daemon" test "$R" = "refilled 0"
check "the buffer filled by its caller: served whole again" test "$G" = "again OK"
check "the daemon lived through the races" kill -0 "$DPID"
if [ -n "$CG" ]; then
	after=$(charged)
	echo "# daemon cgroup $SHMEM: $before before, $after after (the caller keeps its memfd)"
	check "nothing of the caller's buffer charged to the daemon's memory cgroup" \
		test "$((after - before))" -lt $((4 << 20))
else
	test_ok "# SKIP no memory cgroup could be made for the daemon"
fi
echo >&4
wait "$RACE_PID" 2>/dev/null || true
check "unmounted cleanly" vv_umount "$M"
test_done
