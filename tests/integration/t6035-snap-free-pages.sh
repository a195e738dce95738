#!/usr/bin/env bash
# t6035-snap-free-pages: a snapshot's file leaves out the pages that are
# free in meta.db (holes with a zero tag in snap_tags): after deleting half
# of 6000 small files (trash off), the snapshot takes about half the disk
# of its size, every remaining file reads from it byte for byte, its
# directory lists exactly the remaining names, fsck is clean; bytes planted
# in a left-out page (a live meta.db page, or garbage) are named by fsck,
# and a read of the snapshot never returns them.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
vv_init "$S" >/dev/null
check "mount, trash off" vv_mount "$S" "$M" --trash-days 0
"$PY" - "$M/c" <<'PY'
import os, sys
d = sys.argv[1]
os.mkdir(d)
for i in range(6000):
    with open("%s/f%05d" % (d, i), "wb") as f:
        f.write((b"%05d" % i) * 100)
PY
"$PY" - "$M/c" <<'PY'
import os, sys
for i in range(3000):
    os.unlink("%s/f%05d" % (sys.argv[1], i))
PY
check "create s1" sh -c "'$VV_BIN' snapshot create '$M' s1 >/dev/null"
F=$S/snapshots/1.db
size=$(stat -c %s "$F")
disk=$(( $(stat -c %b "$F") * $(stat -c %B "$F") ))
echo "# s1: $size bytes, $disk on disk; $(grep -c 'pages free in meta.db, left out' "$T/daemon.log") copies left pages out"
check "the daemon says free pages were left out" grep -q "pages free in meta.db, left out" "$T/daemon.log"
check "s1 takes less than 3/4 of its size on disk" test $((disk * 4)) -lt $((size * 3))
res=$("$PY" - "$M/.snapshots/s1/c" <<'PY'
import os, sys
d = sys.argv[1]
names = sorted(os.listdir(d))
ok = names == ["f%05d" % i for i in range(3000, 6000)]
for i in range(3000, 6000):
    with open("%s/f%05d" % (d, i), "rb") as f:
        ok = ok and f.read() == (b"%05d" % i) * 100
print("ok" if ok else "bad")
PY
)
check "s1 lists and reads exactly the remaining files" test "$res" = ok
check "unmount" vv_umount "$M"
out=$("$VV_BIN" fsck "$S" --passfile "$PASSFILE" --dry-run 2>&1) && rc=0 || rc=$?
check "fsck: clean" test "$rc" = 0
cp "$F" "$T/s1.orig"

# a left-out page: the first hole in the file (zeros: SEEK_HOLE)
hole=$("$PY" - "$F" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
end = os.fstat(fd).st_size
off = 0
while True:
    off = os.lseek(fd, off, os.SEEK_HOLE)
    if off >= end:
        print(0); break
    if off % 4096 == 0:
        print(off // 4096 + 1); break
    off += 4096 - off % 4096
PY
)
echo "# first left-out page: $hole"
check "s1 has a left-out page" test "$hole" -gt 1
for what in live garbage; do
	if [ $what = live ]; then
		dd if="$S/meta.db" of="$F" bs=4096 skip=$((hole - 1)) seek=$((hole - 1)) count=1 conv=notrunc status=none
	else
		head -c 4096 /dev/urandom | dd of="$F" bs=4096 seek=$((hole - 1)) count=1 conv=notrunc status=none
	fi
	out=$("$VV_BIN" fsck "$S" --passfile "$PASSFILE" --dry-run 2>&1) && rc=0 || rc=$?
	echo "$out" | grep "snapshot 1" | sed 's/^/# /'
	check "$what page planted in a hole: fsck exits 1" test "$rc" = 1
	check "$what page planted in a hole: fsck names page $hole" \
		grep -q "snapshot 1: its file does not match its record: 1 of its [0-9]* pages differ (first: page $hole;" <<<"$out"
	check "$what: mount" vv_mount "$S" "$M" --trash-days 0
	got=$("$PY" - "$M/.snapshots/s1/c" <<'PY'
import errno, sys
d = sys.argv[1]
bad = 0
for i in range(3000, 6000):
    try:
        with open("%s/f%05d" % (d, i), "rb") as f:
            bad += f.read() != (b"%05d" % i) * 100
    except OSError as e:
        bad += e.errno != errno.EIO
print(bad)
PY
)
	check "$what: s1 never reads wrong bytes" test "$got" = 0
	check "$what: unmount" vv_umount "$M"
	cp "$T/s1.orig" "$F"
done
test_done
