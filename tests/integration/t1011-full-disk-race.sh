#!/bin/bash
# t1011-full-disk-race: the full-disk invariant (DESIGN invariant 6) while
# the vault's own write-back is running.  When the disk fills, the vault
# releases its reserve so that deletions can still commit; the sealer,
# which writes chunks outside the vault lock and retries buffered data that
# hit ENOSPC, must never take that room (a half-written chunk holds its
# space until it is unlinked).  If it does, the commit's WAL write fails and
# the vault refuses every further write until it is remounted.
#
# Each round, on a 32 MiB tmpfs: writers keep streaming data into the vault
# while a file outside the store fills the disk; then rm of a vault file
# must work, and once the filler is gone a write must work again (the vault
# did not give up).  After the rounds: a clean unmount, a remount with every
# kept file intact, and a clean fsck.  No timing is asserted.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

FD=$T/fulldisk
M=$T/m
mkdir -p "$FD" "$M"
if ! mount -t tmpfs -o size=32m tmpfs "$FD" 2>/dev/null; then
	echo "1..0 # SKIP cannot mount a tmpfs"
	vv_done=1
	exit 0
fi
trap 'fusermount3 -uz "$M" 2>/dev/null; sleep 0.5; umount -l "$FD" 2>/dev/null; vv_cleanup' EXIT
S=$FD/store
vv_init "$S" >/dev/null
check "mount a vault on a 32 MiB tmpfs" vv_mount "$S" "$M"
head -c 200000 /dev/urandom > "$T/keep.src"
cp "$T/keep.src" "$M/keep"

# writers DIR TAG STOPFILE: two writers, each streaming 1 MiB writes into
# its own file until STOPFILE exists (errors ignored: ENOSPC is expected).
writers() {
	"$PY" - "$1" "$2" "$3" <<'EOF' &
import os, sys, threading
d, tag, stop = sys.argv[1:4]
blk = os.urandom(1 << 20)
def run(i):
    n = 0
    while not os.path.exists(stop) and n < 4000:
        n += 1
        try:
            with open(os.path.join(d, "%s-%d-%d" % (tag, i, n % 3)), "wb") as f:
                for _ in range(6):
                    f.write(blk)
        except OSError:
            pass
ts = [threading.Thread(target=run, args=(i,)) for i in range(2)]
for t in ts: t.start()
for t in ts: t.join()
EOF
	WPID=$!
}

ROUNDS=${ROUNDS:-6}
bad_rm=0 bad_write=0
for r in $(seq 1 "$ROUNDS"); do
	echo "victim $r" > "$M/victim$r"
	rm -f "$T/stop"
	writers "$M" "w$r" "$T/stop"
	sleep 0.3
	dd if=/dev/zero of="$FD/hog" bs=64K status=none 2>/dev/null || true
	sleep 0.5             # the writers keep hitting the full disk meanwhile
	rmres=$(errno_of unlink "$M/victim$r")
	[ "$rmres" = OK ] || { echo "# round $r: rm got $rmres"; bad_rm=$((bad_rm + 1)); }
	touch "$T/stop"
	wait "$WPID" 2>/dev/null || true
	rm -f "$FD/hog" "$M"/w"$r"-* 2>/dev/null || true
	ok=0
	for i in $(seq 1 100); do
		if (echo "after $r" > "$M/after$r") 2>/dev/null; then ok=1; break; fi
		sleep 0.1
	done
	[ "$ok" = 1 ] || { echo "# round $r: no write once space was back"; bad_write=$((bad_write + 1)); }
done
check "rm works on the full disk in every round ($bad_rm of $ROUNDS failed)" test "$bad_rm" = 0
check "writes work again once space is back ($bad_write of $ROUNDS failed)" test "$bad_write" = 0
check "the vault never refused further writes" sh -c "! grep -q 'refusing further writes' '$T/daemon.log'"
check "fsync of a new file works" "$PY" -c "
import os
fd = os.open('$M/last', os.O_WRONLY | os.O_CREAT, 0o644)
os.write(fd, b'last'); os.fsync(fd); os.close(fd)"
check "unmount" vv_umount "$M"
check "no error at unmount in the daemon log" sh -c \
	"! tail -n 20 '$T/daemon.log' | grep -Eq 'closing the vault|commit failed|sync at unmount'"
check "remount" vv_mount "$S" "$M"
check "kept file intact" cmp -s "$T/keep.src" "$M/keep"
check "file written after the last round intact" test "$(cat "$M/after$ROUNDS" 2>&1)" = "after $ROUNDS"
check "fsync'ed file intact" test "$(cat "$M/last" 2>&1)" = last
check "deleted files stay deleted" sh -c "! ls '$M' | grep -q '^victim'"
check "unmount again" vv_umount "$M"
rc=0
"$VV_BIN" fsck "$S" --passfile "$PASSFILE" > "$T/fsck.out" 2>&1 || rc=$?
if [ "$rc" = 1 ] && ! grep -q DAMAGED "$T/fsck.out"; then
	# orphans of writes cut by ENOSPC, freed by the first run: acceptable
	rc=0
	"$VV_BIN" fsck "$S" --passfile "$PASSFILE" > "$T/fsck.out" 2>&1 || rc=$?
fi
[ "$rc" = 0 ] || sed 's/^/#   /' "$T/fsck.out" | tail -n 5
check "fsck clean (exit $rc)" test "$rc" = 0
umount "$FD" || umount -l "$FD"
trap vv_cleanup EXIT
test_done
