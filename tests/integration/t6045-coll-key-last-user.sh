#!/bin/bash
# t6045-coll-key-last-user: a removed collection's key goes when its last
# user goes, never before (crypto-shredding, docs/design.md "Collections
# and keys").  Kept by a file held open across its collection's rmdir, a
# trashed file of a collection removed for good, a snapshot: each reads
# while it lasts, and the key goes at its last close, at its purge (by
# `trash purge` and by the retention at mount), at the snapshot's delete,
# and after a SIGKILL with the file still open (the next mount frees the
# inode and its key together).  Main kept the key in every case but the
# snapshot's (a store copied before held a key its owner believed gone).
# The key count is fsck's (`--dry-run`: it opens read-only, so it drops
# nothing itself; meta.db is page-encrypted).
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
vv_init "$S" >/dev/null 2>&1
head -c 300000 /dev/urandom > "$T/big"        # past inline: in chunks
keys() {      # keys N: fsck counts N collection keys (the root's too), none unneeded
	"$VV_BIN" fsck "$S" --passfile "$PASSFILE" --dry-run 2>/dev/null |
		grep -qx "$S: $1 collection keys, 0 needed by nothing (0 dropped)"
}
# open_rmdir DIR: open DIR/f, unlink it, rmdir DIR, read it whole through
# the handle; then hold it (hold) or close it.
open_rmdir() (
	exec "$PY" - "$1" "$T/big" "$2" <<'PY'
import os, sys, time
d, want, how = sys.argv[1], open(sys.argv[2], "rb").read(), sys.argv[3]
fd = os.open(d + "/f", os.O_RDONLY)
os.unlink(d + "/f")
os.rmdir(d)
got = b""
while True:
    b = os.pread(fd, 1 << 20, len(got))
    if not b:
        break
    got += b
if got != want:
    sys.exit(1)
if how == "hold":   # until the test has killed the daemon (at most 60 s)
    print("held", flush=True)
    for _ in range(600):
        if os.path.exists(sys.argv[2] + ".done"):
            break
        time.sleep(0.1)
os.close(fd)
PY
)
check "a new store has the root collection's key" keys 1

# 1. A file open across its collection's rmdir (the trash off).
vv_mount "$S" "$M" --trash-days 0
mkdir "$M/k1"
cp "$T/big" "$M/k1/f"
check "open file: reads whole after its collection's rmdir" open_rmdir "$M/k1" close
vv_umount "$M"
check "open file: the key went at its last close" keys 1

# 2. A trashed file of a collection removed for good, purged by `trash purge`.
vv_mount "$S" "$M"
mkdir "$M/k2" "$M/k3"
cp "$T/big" "$M/k2/f"
cp "$T/big" "$M/k3/g"
rm "$M/k2/f" "$M/k3/g"
vv_umount "$M"
vv_mount "$S" "$M" --trash-days 0
rmdir "$M/k2" "$M/k3"
vv_umount "$M"
check "trashed files: both keys kept after the rmdirs" keys 3
vv_mount "$S" "$M" --trash-days 0
check "trashed file: reads" cmp "$M/.trash/files/f" "$T/big"
check "trash purge" "$VV_BIN" trash purge "$M" /k2/f
vv_umount "$M"
# The kernel's lookup of the purged file (the cmp above) keeps its row,
# revoked, until a FORGET that an unmount never sends: the next writable
# open frees the row and the key together (docs/design.md).
vv_mount "$S" "$M" --trash-days 0
vv_umount "$M"
check "trash purge: its key went, the other stays" keys 2

# 3. ... and by the retention (purged at mount).
sleep 2
vv_mount "$S" "$M" --trash-days 1s
check "retention: the item was purged at mount" test ! -e "$M/.trash/files/g"
vv_umount "$M"
check "retention: its key went" keys 1

# 4. A snapshot holding files of the collection.
vv_mount "$S" "$M" --trash-days 0
mkdir "$M/k4"
cp "$T/big" "$M/k4/f"
"$VV_BIN" snapshot create "$M" s1 >/dev/null
rm -r "$M/k4"
vv_umount "$M"
check "snapshot: key kept" keys 2
vv_mount "$S" "$M" --trash-days 0
check "snapshot: its copy reads" cmp "$M/.snapshots/s1/k4/f" "$T/big"
check "snapshot delete" "$VV_BIN" snapshot delete "$M" s1
vv_umount "$M"
check "snapshot: the key went with it" keys 1

# 5. SIGKILL while the file is held open: its inode row outlives the
# daemon; the next mount frees it and the key in one commit.
vv_mount "$S" "$M" --trash-days 0
mkdir "$M/k5"
cp "$T/big" "$M/k5/f"
vv_sync "$M"
open_rmdir "$M/k5" hold > "$T/held" &
hp=$!
i=0
while [ "$(cat "$T/held")" != held ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
check "crash: the held file read whole" test "$(cat "$T/held")" = held
vv_sync "$M"
pidf=$(awk -F '\t' -v m="$M" '$1 == m { p = $2 } END { print p }' "$VV_MOUNTS")
kill -KILL "$(cat "$pidf")"
: > "$T/big.done"
wait "$hp" 2>/dev/null || true
fusermount3 -uz "$M" 2>/dev/null || umount -l "$M" 2>/dev/null || true
vv_wait_daemon "$pidf" || true
awk -F '\t' -v m="$M" '$1 != m' "$VV_MOUNTS" > "$VV_MOUNTS.new" && mv "$VV_MOUNTS.new" "$VV_MOUNTS"
check "crash: the key outlived the daemon with its open inode" keys 2
vv_mount "$S" "$M"
vv_umount "$M"
check "crash: the next mount dropped it with the inode" keys 1
check "fsck is clean" "$VV_BIN" fsck "$S" --passfile "$PASSFILE"
test_done
