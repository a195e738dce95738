#!/bin/bash
# t1048-bulk-memfd-lock: a bulk read's caller cannot hold the daemon's
# worker.  The caller's second thread write(2)s into its own memfd from a
# mapping of a file on a FUSE filesystem that never answers (one the
# caller would serve itself: here a second mount whose daemon the test
# stops), so it holds the memfd's inode lock for as long as it likes
# (root's own write into the memfd waits: checked); its first thread then
# asks for a bulk read into that memfd.  The daemon writes through a
# mapping of the slots (fs/bulk.c), which takes no such lock: the request
# is answered with the file's bytes while the lock is held, and no daemon
# thread waits in shmem_file_write_iter.  A memfd that is not sealed
# against shrinking (what keeps the mapping from a SIGBUS) is refused
# whole.  (main: the daemon's pwrite waited on the lock, uninterruptibly,
# until the stalled filesystem answered, with the uid's slot and the
# unmount behind it: checks 2-4 fail.)
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
head -c 65536 /dev/urandom > "$T/stall/f"
chmod 644 "$T/m/c/a" "$T/stall/f"
vv_sync "$T/m"
vv_sync "$T/stall"
D=$(cat "$T/.pids/$(echo "$T/m" | tr / _)")
D2=$(cat "$T/.pids/$(echo "$T/stall" | tr / _)")
# the stopped daemon is let go whatever happens, before test-lib unmounts
trap 'vv_st=$?; kill -CONT "$D2" 2>/dev/null; (exit $vv_st); vv_cleanup' EXIT

# hold.py DIR FILE: thread 2 holds the memfd's lock (its write faults on
# FILE's mapping) once the line on stdin says the FUSE daemon is stopped;
# then the bulk read of DIR/a.  Prints "held", then the answer and whether
# the slot holds a's bytes (fcntl.ioctl keeps the GIL over a buffer this
# large: the shell gives the answer 30 s).
cat > "$T/hold.py" <<'PY'
import mmap, os, sys, threading, time
sys.path.insert(0, os.environ["LIB"])
import bulk as B
d, ffile = sys.argv[1], sys.argv[2]
buf = B.Buf(1, 1 << 16)
m = mmap.mmap(os.open(ffile, os.O_RDONLY), 1 << 16, prot=mmap.PROT_READ)
print("mapped", os.getpid(), buf.fd, flush=True)
sys.stdin.readline()
threading.Thread(target=lambda: os.pwrite(buf.fd, memoryview(m)[:8192], 0), daemon=True).start()
print("writing", flush=True)
sys.stdin.readline()           # the shell saw the lock held
fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
e, h, st, _ = B.read(fd, ["a"], buf=buf)
same = e == "OK" and st[0][0] == 0 and buf.get(0, st[0][1]) == open(d + "/a", "rb").read()
print(e, st, "same" if same else "DIFFERENT", flush=True)
sys.stdin.readline()
os._exit(0)
PY
coproc HOLD { as_u1000 "$PY" "$T/hold.py" "$T/m/c" "$T/stall/f" 2>&1; }
hp=$HOLD_PID
read -r l pid mfd <&"${HOLD[0]}"
echo "# $l $pid $mfd"
echo 3 > /proc/sys/vm/drop_caches          # the mapping's page must come from the daemon
kill -STOP "$D2"
echo go >&"${HOLD[1]}"
read -r l <&"${HOLD[0]}"
# the lock is held indeed: root's own write into that memfd waits (one
# that got in before the caller's write started returns: try again)
held=free
for i in 1 2 3 4 5 6 7 8 9 10; do
	"$PY" -c 'import os, sys; os.pwrite(os.open(sys.argv[1], os.O_WRONLY), b"x", 60000)' \
		"/proc/$pid/fd/$mfd" &
	wp=$!
	sleep 1
	if kill -0 "$wp" 2>/dev/null; then
		held=held
		break
	fi
done
echo go >&"${HOLD[1]}"
read -t 30 -r ans <&"${HOLD[0]}" || ans=stuck
echo "# memfd lock $held; bulk read: $ans"
waiting=0
for t in /proc/"$D"/task/*; do
	[ "$(cat "$t/wchan" 2>/dev/null)" = shmem_file_write_iter ] && waiting=$((waiting + 1))
done
check "the caller holds its memfd's lock (a write into it by root waits)" [ "$held" = held ]
check "the bulk read into that memfd is answered with the file's bytes meanwhile" \
	[ "$ans" = "OK [(0, 3000)] same" ]
check "no daemon thread waits for the caller's memfd lock" [ "$waiting" = 0 ]
kill -CONT "$D2"
[ -z "${HOLD[1]:-}" ] || echo end >&"${HOLD[1]}"
wait "$hp" "$wp" 2>/dev/null || true

# the mapping is safe only because the memfd cannot shrink
cat > "$T/shrink.py" <<'PY'
import os, sys
sys.path.insert(0, os.environ["LIB"])
import bulk as B
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
e, h, st, buf = B.read(fd, ["a"], buf=B.Buf(1, 1 << 16, seal=False))
print(e, "untouched" if bytes(buf.m[:4096]) == bytes(4096) else "WRITTEN")
PY
check "a memfd that may shrink: refused whole (EINVAL), nothing written" \
	eval '[ "$(as_u1000 "$PY" "$T/shrink.py" "$T/m/c")" = "EINVAL untouched" ]'
check "the vault unmounts" vv_umount "$T/m"
test_done
