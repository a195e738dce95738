#!/bin/bash
# t1019-write-direct: the daemon's write path with chunk files written by
# O_DIRECT (their 4 KiB-aligned part; the tail through the page cache, on
# the same descriptor) never changes what is stored.  On a STORE on the test's disk and on a
# tmpfs STORE (when root can mount one): large sequential writes with an
# odd tail, unaligned writes from two writers at once, overwrites in the
# middle and a truncate, each compared after a remount with the page cache
# dropped; then fsck is clean, every chunk file has exactly the size its
# extents say (no padding: fsck checks), and no temporary chunk is left.
# Last, a file completed by fsync survives a SIGKILL of the daemon during
# the next write.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

cold() {   # remount and drop the page cache: the next reads reach the daemon
	vv_umount "$2"
	sync
	echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
	vv_mount "$1" "$2"
}

run() {   # run NAME STORE
	local n=$1 S=$2 M=$T/mnt-$1 pid
	vv_init "$S" >/dev/null
	vv_mount "$S" "$M"
	head -c $((21 * 1048576 + 12345)) /dev/urandom > "$T/big"
	check "$n: dd of 21 MiB + odd tail, fsync" \
		dd if="$T/big" of="$M/big" bs=1M conv=fsync status=none
	# two writers at once, unaligned sizes, into two files
	check "$n: two concurrent unaligned writers" "$PY" - "$M" "$T" <<'EOF'
import os, sys, threading
m, t = sys.argv[1], sys.argv[2]
def writer(name, seed):
    import random
    r = random.Random(seed)
    data = bytearray(r.getrandbits(8) for _ in range(9 * 1048576 + 777))
    f = os.open(os.path.join(m, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    off = 0
    while off < len(data):
        n = r.choice((1, 4095, 65537, 300000, 1048576 + 3))
        os.pwrite(f, data[off:off + n], off)
        off += n
    os.fsync(f); os.close(f)
    open(os.path.join(t, name), "wb").write(data)
ts = [threading.Thread(target=writer, args=("w%d" % i, i)) for i in range(2)]
for x in ts: x.start()
for x in ts: x.join()
EOF
	cold "$S" "$M"
	check "$n: the dd file reads back after remount" cmp "$M/big" "$T/big"
	check "$n: writer 0's file reads back" cmp "$M/w0" "$T/w0"
	check "$n: writer 1's file reads back" cmp "$M/w1" "$T/w1"
	# overwrite across block and chunk boundaries, then truncate
	check "$n: overwrite in the middle and truncate" "$PY" - "$M/big" "$T/big" <<'EOF'
import os, sys
f = os.open(sys.argv[1], os.O_RDWR); g = os.open(sys.argv[2], os.O_RDWR)
for off, n in ((65536 - 5, 10), (4 * 1048576 - 100, 200000), (7 * 1048576 + 1, 3 * 1048576)):
    d = os.urandom(n)
    os.pwrite(f, d, off); os.pwrite(g, d, off)
os.ftruncate(f, 17 * 1048576 + 3); os.ftruncate(g, 17 * 1048576 + 3)
os.fsync(f)
EOF
	cold "$S" "$M"
	check "$n: the changed file reads back after remount" cmp "$M/big" "$T/big"
	vv_umount "$M"
	check "$n: fsck is clean (chunk sizes match their extents)" \
		"$VV_BIN" fsck "$S" --passfile "$PASSFILE"
	check "$n: no temporary chunk file is left" \
		test -z "$(find "$S/chunks" -name '.tmp-*' -print -quit)"

	# SIGKILL during a write: what fsync completed stays.
	vv_mount "$S" "$M"
	pid=$(cat "$T/.pids/$(echo "$M" | tr / _)")
	dd if="$T/big" of="$M/kept" bs=1M conv=fsync status=none
	( dd if=/dev/urandom of="$M/torn" bs=1M count=64 status=none 2>/dev/null || true ) &
	sleep 0.5
	kill -KILL "$pid"
	fusermount3 -uz "$M" 2>/dev/null || true
	wait || true
	awk -F '\t' -v m="$M" '$1 != m' "$VV_MOUNTS" > "$VV_MOUNTS.new"
	mv "$VV_MOUNTS.new" "$VV_MOUNTS"
	out=$("$VV_BIN" fsck "$S" --passfile "$PASSFILE" 2>&1) && rc=0 || rc=$?
	if [ "$rc" -eq 1 ] && echo "$out" | grep -q 'orphans freed$'; then rc=0; fi
	[ "$rc" -eq 0 ] || echo "$out" | sed 's/^/#   /'
	check "$n: fsck after SIGKILL finds no damage" test "$rc" -eq 0
	vv_mount "$S" "$M"
	check "$n: the fsync-ed file survived the SIGKILL" cmp "$M/kept" "$T/big"
	vv_umount "$M"
}

run disk "$T/store"
mkdir "$T/tmpfs"
if mount -t tmpfs -o size=512m,mode=0700 vv-t1019 "$T/tmpfs" 2>/dev/null; then
	run tmpfs "$T/tmpfs/store"
	umount "$T/tmpfs"
else
	echo "# tmpfs STORE skipped (cannot mount tmpfs here)"
fi
test_done
