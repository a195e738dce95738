#!/usr/bin/env bash
# t6008-snap-file-tamper: a snapshot kept as STORE/snapshots/ID.db is bound
# to its record in meta.db (a keyed hash of the whole file): a file swapped
# with another snapshot's, one from another store, a flipped byte, a
# truncation or a missing file reads as EIO (lookup, read, restore, backup),
# fsck names the snapshot, the live tree and the other snapshots are
# untouched, and deleting the broken snapshot still drops its references.
# The directory and files are root's alone (0700/0600): uid 65534 and u1000
# cannot read or plant them.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
vv_init "$S" >/dev/null
check "mount" vv_mount "$S" "$M"
mkdir -m 755 "$M/c"
echo one > "$M/c/f.txt"
head -c 300000 /dev/urandom > "$M/c/big.bin"
cp "$M/c/big.bin" "$T/big.orig"
check "create s1" sh -c "'$VV_BIN' snapshot create '$M' s1 >/dev/null"
echo two > "$M/c/f.txt"
check "create s2" sh -c "'$VV_BIN' snapshot create '$M' s2 >/dev/null"
check "s1 reads one" test "$(cat "$M/.snapshots/s1/c/f.txt")" = one
check "s2 reads two" test "$(cat "$M/.snapshots/s2/c/f.txt")" = two
id1=$("$VV_BIN" snapshot list "$M" --json | "$PY" -c 'import json,sys; print([s["id"] for s in json.load(sys.stdin) if s["name"]=="s1"][0])')
id2=$("$VV_BIN" snapshot list "$M" --json | "$PY" -c 'import json,sys; print([s["id"] for s in json.load(sys.stdin) if s["name"]=="s2"][0])')
F1=$S/snapshots/$id1.db
F2=$S/snapshots/$id2.db
check "the files exist" test -f "$F1" -a -f "$F2"
check "snapshots/ is 0700" test "$(stat -c %a "$S/snapshots")" = 700
check "the files are 0600 root" test "$(stat -c %a:%u "$F1")" = 600:0
expect_fail "nobody cannot list snapshots/" as_nobody ls "$S/snapshots"
expect_fail "u1000 cannot read a snapshot file" as_u1000 cat "$F1"
expect_fail "u1000 cannot plant a file there" as_u1000 sh -c "echo x > '$S/snapshots/99.db'"
check "unmount" vv_umount "$M"
cp "$F1" "$T/f1.orig"
cp "$F2" "$T/f2.orig"

# reads of s1 must fail, everything else must work; $1 says what was done
broken() {
	local what=$1
	check "$what: mount" vv_mount "$S" "$M"
	expect_fail "$what: s1's file reads EIO" cat "$M/.snapshots/s1/c/f.txt"
	check "$what: the error is EIO" sh -c "cat '$M/.snapshots/s1/c/f.txt' 2>&1 | grep -q 'Input/output error'"
	check "$what: the live tree reads" test "$(cat "$M/c/f.txt")" = two
	check "$what: s2 reads" test "$(cat "$M/.snapshots/s2/c/f.txt")" = two
	rc=0; err=$("$VV_BIN" snapshot restore "$M" s1 /c/f.txt 2>&1) || rc=$?
	check "$what: restore from s1 fails" test "$rc" != 0
	check "$what: and restores nothing" test "$(cat "$M/c/f.txt")" = two
	check "$what: the listing still names s1" sh -c "'$VV_BIN' snapshot list '$M' | grep -q '^s1 '"
	check "$what: unmount" vv_umount "$M"
	out=$("$VV_BIN" fsck "$S" --passfile "$PASSFILE" --dry-run 2>&1) && rc=0 || rc=$?
	echo "$out" | grep -i "snapshot $id1" | sed 's/^/# /'
	check "$what: fsck exits 1" test "$rc" = 1
	check "$what: fsck names snapshot $id1" grep -q "snapshot $id1: its file" <<<"$out"
}

cp "$T/f2.orig" "$F1"
broken "s2's file in s1's place"
cp "$T/f1.orig" "$F1"
check "put back: mount" vv_mount "$S" "$M"
check "put back: s1 reads one again" test "$(cat "$M/.snapshots/s1/c/f.txt")" = one
check "put back: unmount" vv_umount "$M"

"$PY" - "$F1" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 1
open(p, "wb").write(b)
PY
broken "one flipped byte"
cp "$T/f1.orig" "$F1"

truncate -s -4096 "$F1"
broken "truncated by a page"
cp "$T/f1.orig" "$F1"

# another store's snapshot file (other key) under s1's name
S2=$T/store2
vv_init "$S2" >/dev/null
check "other store: mount" vv_mount "$S2" "$T/m2"
mkdir "$T/m2/c" && echo other > "$T/m2/c/f.txt"
check "other store: snapshot" sh -c "'$VV_BIN' snapshot create '$T/m2' s1 >/dev/null"
check "other store: unmount" vv_umount "$T/m2"
cp "$S2/snapshots/1.db" "$F1"
broken "another store's file"
cp "$T/f1.orig" "$F1"

rm "$F1"
broken "missing file"
check "mount with s1's file missing" vv_mount "$S" "$M"
check "delete s1 all the same" sh -c "'$VV_BIN' snapshot delete '$M' s1 >/dev/null"
check "s2 still reads" test "$(cat "$M/.snapshots/s2/c/f.txt")" = two
check "the live big.bin is whole" cmp "$M/c/big.bin" "$T/big.orig"
check "unmount" vv_umount "$M"
out=$("$VV_BIN" fsck "$S" --passfile "$PASSFILE" 2>&1) || true
check "fsck: clean after the delete" grep -q clean <<<"$out"
test_done
