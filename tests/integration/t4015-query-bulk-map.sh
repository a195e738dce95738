#!/bin/bash
# t4015-query-bulk-map: the bulk read into a buffer the daemon keeps mapped
# (fs/bulk_map.c; docs/design.md "The bulk read"): a memfd sealed against
# shrinking is mapped by the daemon once and written through the mapping
# from one request to the next; one without the seal is refused (the
# daemon never write(2)s into a memfd: its inode lock is the caller's to
# hold).  Attacks on the kept mapping, as uid 1000: the
# file cut (the seal refuses it), a hole punched between requests and
# during them, a write seal added after a mapped request, the descriptor
# number given to another memfd, more buffers than a uid may have mapped,
# a caller killed mid-request; the daemon lives, nothing lands anywhere
# but the buffer named, and no mapping outlives its caller.  The tool
# seals its buffers: `vecvault query --no-offload` is served through
# mappings, with the plain directory's output, and they go after it exits.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse
vv_need_numpy

P=$T/plain
S=$T/store
M=$T/mnt
LIB=$VV_SRC/tests/integration/lib
export LIB T
mkdir -p "$P"
"$PY" - "$T" "$LIB" <<'PY'
import numpy as np, sys
sys.path.insert(0, sys.argv[2])
from seg_layout import layout as cut
T = sys.argv[1]
rng = np.random.default_rng(4015)
X = rng.standard_normal((6000, 16)).astype('<f4')
X[[5, 950, 951, 4200]] = X[5]            # ties across segments: by (segment, row)
q = rng.standard_normal((1, 16)).astype('<f4'); q[0] = X[5]
np.save(T + "/q1.npy", q)
cut(T + "/plain", "many", X, [20] * 300, T + "/X.many.npy")
PY

vv_init "$S" >/dev/null 2>&1
vv_mount "$S" "$M"
DPID=$(cat "$T/.pids/$(echo "$M" | tr / _)")
cp -r "$P/many" "$M/"
chmod 755 "$M"
mkdir "$M/c"
for i in $(seq -w 0 63); do head -c 60000 /dev/urandom > "$M/c/f$i"; done
chmod -R a+rX "$M/c"
vv_sync "$M"
# maps NAME: how many of the daemon's mappings are of memfd NAME
maps() { grep -c "/memfd:$1 " "/proc/$DPID/maps" || true; }
# gone NAME: no mapping of memfd NAME left (polled, bounded)
gone() {
	local i
	for i in $(seq 200); do [ "$(maps "$1")" = 0 ] && return 0; sleep 0.1; done
	return 1
}
alive() { kill -0 "$DPID"; }

# hand.py DIR: by hand, as uid 1000, through lib/bulk.py; prints one line
# per step (the shell checks them), then waits for a line on stdin so the
# daemon's mappings can be looked at while the buffers live
cat > "$T/hand.py" <<'PY'
import ctypes, fcntl, mmap, os, sys, threading
sys.path.insert(0, os.environ["LIB"])
import bulk as B
d = sys.argv[1]
fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
names = ["f%02d" % i for i in range(64)]
want = [open(d + "/" + n, "rb").read() for n in names]
libc = ctypes.CDLL(None, use_errno=True)
def punch(f, off, n):
    return libc.fallocate(f, 3, ctypes.c_long(off), ctypes.c_long(n))  # PUNCH_HOLE | KEEP_SIZE
def ask(buf, ns, **over):
    e, h, st, _ = B.read(fd, ns, buf=buf, **over)
    if e != "OK":
        return e
    ok = all(s[0] == 0 and buf.get(i, s[1]) == want[names.index(ns[i])] for i, s in enumerate(st))
    return "OK" if ok else "WRONG"
def say(*a):
    print(*a, flush=True)

a = B.Buf(64, 1 << 16, name="t4015-a", seal=True)
say("sealed", ask(a, names[:32]), ask(a, names[32:]))
u = B.Buf(64, 1 << 16, name="t4015-u", seal=False)
say("unsealed", ask(u, names), "untouched" if u.m[:] == bytes(len(u.m)) else "WRITTEN")
input()                                   # the shell looks at the maps
try:
    os.ftruncate(a.fd, 4096)
    say("cut allowed")
except OSError as e:
    say("cut", "EPERM" if e.errno == 1 else e.errno)
os.ftruncate(a.fd, 128 << 16)             # growing is allowed
os.posix_fallocate(a.fd, 0, 128 << 16)
say("grown", ask(a, names))
# a hole punched between two requests: refused before anything is written
punch(a.fd, 0, 1 << 16)
say("hole", ask(a, names[:4]), os.fstat(a.fd).st_blocks * 512 < os.fstat(a.fd).st_size)
a.m[:1 << 16] = bytes(1 << 16)            # filled again by the caller
say("refilled", ask(a, names))
# holes punched (and filled again by the caller) while requests run: each
# request served (its bytes as the punch left them) or refused, no other
# answer (a copy faulting would be EIO; a daemon dying, ENOTCONN)
stop = False
def puncher():
    while not stop:
        punch(a.fd, 5 << 16, 1 << 16)
        a.m[5 << 16:6 << 16] = bytes(1 << 16)
t = threading.Thread(target=puncher); t.start()
res = set(ask(a, names) for _ in range(100))
stop = True; t.join()
say("race", " ".join(sorted(res)))
a.m[:] = bytes(len(a.m))
say("after race", ask(a, names))
# F_SEAL_FUTURE_WRITE added to a buffer the daemon maps: refused, untouched
b = B.Buf(4, 1 << 16, name="t4015-b", seal=True)
say("b", ask(b, names[:4]))
b.m[:] = b"\xaa" * len(b.m)
fcntl.fcntl(b.fd, fcntl.F_ADD_SEALS, 16)    # F_SEAL_FUTURE_WRITE
say("future-write", ask(b, names[:4]), "untouched" if b.m[:] == b"\xaa" * len(b.m) else "WRITTEN")
# the descriptor number of a mapped buffer given to another memfd: the new
# one is written, the old one (still mapped by the daemon) never again
c = B.Buf(4, 1 << 16, name="t4015-c", seal=True)
say("c", ask(c, names[:4]))
c.m[:] = b"\xbb" * len(c.m)
n = B.Buf(4, 1 << 16, name="t4015-n", seal=True)
os.dup2(n.fd, c.fd)
e, h, st, _ = B.read(fd, names[:4], buf=c, mem_ino=c.ino)
say("old identity", e, "untouched" if c.m[:] == b"\xbb" * len(c.m) else "WRITTEN")
e, h, st, _ = B.read(fd, names[:4], buf=c, mem_ino=n.ino)
say("swapped", e, "old untouched" if c.m[:] == b"\xbb" * len(c.m) else "OLD WRITTEN",
    "new written" if n.get(0, 60000) == want[0] else "NEW NOT WRITTEN")
# more buffers than a uid may have mapped (16): served while a mapping is
# to be had, EBUSY beyond (the tool opens those files itself)
many = [B.Buf(2, 1 << 16, name="t4015-m", seal=True) for _ in range(24)]
say("many", " ".join(sorted(set(ask(x, names[:2]) for x in many))))
input()
# a thread's buffer: the mapping goes once that thread has ended, though
# this process keeps the memfd
def in_thread():
    global tb
    tb = B.Buf(4, 1 << 16, name="t4015-t", seal=True)
    say("thread", ask(tb, names[:4]))
th = threading.Thread(target=in_thread); th.start(); th.join()
input()
say("end")
PY
coproc HAND { setpriv --reuid=1000 --regid=1000 --clear-groups -- "$PY" "$T/hand.py" "$M/c" 2>&1; }
exec 3<&"${HAND[0]}" 4>&"${HAND[1]}"
line() { local l; read -r -t 120 l <&3 && echo "$l" && echo "#   $l" >&2; }
L1=$(line); L2=$(line)
check "a sealed buffer: served twice, the files' bytes" test "$L1" = "sealed OK OK"
check "a sealed buffer: the daemon keeps one mapping of it" test "$(maps t4015-a)" = 1
check "a buffer not sealed against shrinking: refused, nothing written, never mapped" \
	eval 'test "$L2" = "unsealed EINVAL untouched" && test "$(maps t4015-u)" = 0'
echo >&4
check "the seal: cutting the mapped buffer refused" test "$(line)" = "cut EPERM"
check "grown: served through a new mapping" test "$(line)" = "grown OK"
check "a hole punched between requests: refused, no page filled" test "$(line)" = "hole EINVAL True"
check "filled again: served" test "$(line)" = "refilled OK"
R=$(line)
check "holes punched during 100 requests: each served whole or refused, nothing else" \
	eval 'case "$R" in race|race\ *EIO*|race\ *ENOTCONN*) false;; race\ *) echo "$R" | grep -qvE " [A-Z]*[a-z]"; ;; *) false;; esac'
check "after the race: served" test "$(line)" = "after race OK"
check "the daemon lived through the races" alive
line > /dev/null
check "a write seal added to a mapped buffer: refused, nothing written" \
	test "$(line)" = "future-write EINVAL untouched"
line > /dev/null
check "a descriptor number given to another memfd: the old identity refused, nothing written" \
	test "$(line)" = "old identity EBADF untouched"
check "the new identity: the new memfd written, never the old one the daemon maps" \
	test "$(line)" = "swapped OK old untouched new written"
check "24 buffers of one uid: served or EBUSY, nothing else" \
	eval 'case "$(line)" in "many EBUSY OK"|"many OK") true;; *) false;; esac'
check "at most 16 of them mapped" eval '[ "$(maps t4015-m)" -le 16 ] && [ "$(maps t4015-m)" -ge 1 ]'
check "unused for 2 s (the process keeps them): unmapped" gone t4015-m
echo >&4
check "a buffer sent from a thread: served" test "$(line)" = "thread OK"
check "that thread ended: its mapping goes (the process keeps the memfd)" gone t4015-t
echo >&4
line > /dev/null
wait "$HAND_PID" 2>/dev/null || true
check "the process ended: none of its mappings left" \
	eval 'gone t4015-a && gone t4015-b && gone t4015-m && gone t4015-n'

# killed in the middle of its requests: the daemon goes on, the mapping goes
setpriv --reuid=1000 --regid=1000 --clear-groups -- "$PY" "$LIB/bulk.py" loop "$M/c" f t4015-k seal \
	> "$T/looping" &
lp=$!
for _ in $(seq 50); do [ -s "$T/looping" ] && break; sleep 0.1; done
sleep 0.5
was=$(maps t4015-k)
kill -9 $lp; wait $lp 2>/dev/null || true
check "a reader killed mid-request (its buffer mapped): the mapping goes" \
	eval '[ "$was" = 1 ] && gone t4015-k'
check "and the daemon serves" alive

# the tool seals its buffers: served through mappings, the plain output
refcheck() { "$PY" "$LIB/knn_ref.py" --strict "$T/X.many.npy" - "$T/q1.npy" "$1" l2 10; }
"$VV_BIN" query "$P/many" -q "$T/q1.npy" -k 10 > "$T/ref"
check "plain: at the float64 reference" refcheck "$T/ref"
for who in root u1000; do
	run=as_root
	[ "$who" = u1000 ] && run=as_u1000
	$run "$VV_BIN" query "$M/many" -q "$T/q1.npy" -k 10 --no-offload --stats > "$T/out.$who" 2> "$T/err.$who"
	check "$who --no-offload: 299 segments in bulk, the plain output" \
		eval 'grep -q "bulk read: 299 segments read in" "$T/err.$who" && cmp "$T/ref" "$T/out.$who"'
done
check "the tool's buffers: no mapping left after it exited" gone vecvault-bulk
check "unmounted cleanly" vv_umount "$M"
test_done
