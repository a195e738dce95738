#!/bin/bash
# t1008-rollback: rolling meta.db back to an older copy is detected at mount
# by the commit counter anchored outside STORE (VECVAULT_STATE_DIR), and
# refused -- with a message about the rollback, a non-zero exit, nothing
# mounted and nothing in STORE or the anchor changed -- unless the user says
# it is an intended restore (`mount --accept-rollback`), which then serves
# the old state; afterwards a normal mount works again.  Also for fsck.
#
# A different machine (a fresh VECVAULT_STATE_DIR: no anchor for this store
# id) mounting an old copy succeeds: the anchor only protects against
# rollback on a machine that has seen the newer state; there is nothing to
# compare with elsewhere.  That is the documented limit of this protection.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
mkdir -p "$M"

vv_init "$S" >/dev/null
vv_mount "$S" "$M"
echo "state A" > "$M/a.txt"
mkdir "$M/coll"
head -c 200000 /dev/urandom > "$T/a.bin"
cp "$T/a.bin" "$M/coll/data"
vv_umount "$M"

# State A: a copy of the whole store.
cp -a "$S" "$T/storeA"

check "mount state A" vv_mount "$S" "$M"
echo "state B" > "$M/a.txt"
echo "new in B" > "$M/b.txt"
rm "$M/coll/data"
head -c 100000 /dev/urandom > "$M/coll/data2"
check "unmount state B" vv_umount "$M"

# Roll meta.db back to A (chunks stay those of B plus A's, as a careless
# restore of only meta.db would leave them).
cp -a "$T/storeA/meta.db" "$S/meta.db"
rm -f "$S/meta.db-wal"
[ -e "$T/storeA/meta.db-wal" ] && cp -a "$T/storeA/meta.db-wal" "$S/meta.db-wal"
# Chunks of A that B freed must be back for state A to read.
cp -an "$T/storeA/chunks/." "$S/chunks/"

sums() { (cd "$1" && find . -type f | sort | xargs sha256sum); }
sums "$S" > "$T/sums.before"
sums "$VECVAULT_STATE_DIR" > "$T/anchor.before"

rc=0
"$VV_BIN" mount "$S" "$M" --passfile "$PASSFILE" > "$T/out" 2>&1 || rc=$?
check "mount of rolled-back metadata is refused (exit $rc)" test "$rc" -ne 0 -a "$rc" -lt 128
check "the refusal talks about the rollback" grep -qi 'rollback\|rolled back\|older' "$T/out"
check "the refusal names --accept-rollback" grep -q -- '--accept-rollback' "$T/out"
[ "$rc" -ne 0 ] || printf '%s\t%s\n' "$M" "" >> "$VV_MOUNTS"
check "nothing mounted after the refusal" sh -c "! grep -q ' $M ' /proc/mounts"
sums "$S" > "$T/sums.after"
check "STORE bytes unchanged by the refused mount" cmp -s "$T/sums.before" "$T/sums.after"
sums "$VECVAULT_STATE_DIR" > "$T/anchor.after"
check "anchor unchanged by the refused mount" cmp -s "$T/anchor.before" "$T/anchor.after"

rc=0
"$VV_BIN" fsck "$S" --passfile "$PASSFILE" > "$T/out" 2>&1 || rc=$?
check "fsck of rolled-back metadata is refused too (exit $rc)" test "$rc" -ne 0
check "fsck's refusal talks about the rollback" grep -qi 'rollback\|rolled back' "$T/out"
sums "$S" > "$T/sums.after"
check "STORE bytes unchanged by the refused fsck" cmp -s "$T/sums.before" "$T/sums.after"

check "mount --accept-rollback succeeds" vv_mount "$S" "$M" --accept-rollback
check "it serves state A: a.txt" test "$(cat "$M/a.txt" 2>&1)" = "state A"
check "it serves state A: coll/data" cmp -s "$T/a.bin" "$M/coll/data"
expect_errno ENOENT stat "$M/b.txt"
expect_errno ENOENT stat "$M/coll/data2"
check "write after the accepted restore" sh -c "echo after > '$M/c.txt'"
check "unmount the restored vault" vv_umount "$M"

check "a normal mount works after the accepted restore" vv_mount "$S" "$M"
check "state A plus the new write" test "$(cat "$M/a.txt")$(cat "$M/c.txt")" = "state Aafter"
check "unmount" vv_umount "$M"
check "fsck after the accepted restore" sh -c \
	"'$VV_BIN' fsck '$S' --passfile '$PASSFILE' > '$T/out' 2>&1 || grep -q 'orphans freed' '$T/out'"
check "a second fsck is clean" sh -c "'$VV_BIN' fsck '$S' --passfile '$PASSFILE' > /dev/null"

# Rolling back once more to A (now older than what this machine saw after
# the restore) is refused again: the anchor moved with the restore.
cp -a "$T/storeA/meta.db" "$S/meta.db"; rm -f "$S/meta.db-wal"
expect_fail "a second rollback to A is refused again" \
	"$VV_BIN" mount "$S" "$M" --passfile "$PASSFILE" 2>/dev/null
check "nothing mounted" sh -c "! grep -q ' $M ' /proc/mounts"

# A different machine: no anchor for this store id -> the old copy mounts.
mkdir -m 700 "$T/other-state"
check "another machine (fresh state dir) mounts the old copy" \
	env VECVAULT_STATE_DIR="$T/other-state" "$VV_BIN" mount "$T/storeA" "$M" \
	--passfile "$PASSFILE" --pid-file "$T/.pids/other" --log "$T/daemon.log"
printf '%s\t%s\n' "$M" "$T/.pids/other" >> "$VV_MOUNTS"
check "it serves state A" test "$(cat "$M/a.txt" 2>&1)" = "state A"
check "unmount it" vv_umount "$M"

test_done
