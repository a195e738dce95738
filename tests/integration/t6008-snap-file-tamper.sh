#!/usr/bin/env bash
# t6008-snap-file-tamper: a snapshot kept as STORE/snapshots/ID.db is bound
# to its record in meta.db (the tag of each of its pages, checked on every
# page read): a file swapped with another snapshot's, an older snapshot's
# file renamed over a newer one, one from another store, a flipped byte
# in page 1, a page of another snapshot of the same store swapped in, a
# truncation or a missing file reads as EIO (lookup, read, restore),
# fsck names the snapshot, the live tree and the other snapshots are
# untouched, and deleting the broken snapshot still drops its references.
# A single flipped page in the middle of a large snapshot: the entries on
# it read EIO, every other entry reads its own bytes (checked page by page,
# nothing unauthentic is ever returned), and fsck names the page.  A log
# planted beside a snapshot file while mounted is refused (EIO), never
# replayed over it.  The directory and files are root's alone (0700/0600):
# uid 65534 and u1000 cannot read or plant them.
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

# page 1 (SQLite's header, read by every access); a flip elsewhere only
# fails the reads that touch its page (below, the large snapshot)
"$PY" - "$F1" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[100] ^= 1
open(p, "wb").write(b)
PY
broken "one flipped byte in page 1"
cp "$T/f1.orig" "$F1"

# a page of s2 (same store, same key, same place: it authenticates) in
# s1, each page in turn that differs between the two (one holds f.txt's
# row): s1 never shows s2's bytes, the page holding them reads EIO, and
# fsck names the page.  (Pages the two share are the same bytes.)
diff_pages=$("$PY" - "$F1" "$F2" <<'PY'
import sys
a, b = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()
print(" ".join(str(i // 4096 + 1) for i in range(0, min(len(a), len(b)), 4096)
               if a[i:i + 4096] != b[i:i + 4096]))
PY
)
echo "# pages of s1 and s2 that differ: $diff_pages"
check "some pages of s1 and s2 differ" test -n "$diff_pages"
eio=0; shown=0
for pg in $diff_pages; do
	dd if="$F2" of="$F1" bs=4096 skip=$((pg - 1)) seek=$((pg - 1)) count=1 conv=notrunc status=none
	vv_mount "$S" "$M" || break
	got=$(cat "$M/.snapshots/s1/c/f.txt" 2>&1) || true
	case $got in
	one) ;;
	*'Input/output error'*) eio=$((eio + 1)) ;;
	*) shown=$((shown + 1)); echo "# page $pg of s2 in s1: read gave: $got" ;;
	esac
	vv_umount "$M" || break
	out=$("$VV_BIN" fsck "$S" --passfile "$PASSFILE" --dry-run 2>&1) || true
	grep -q "snapshot $id1: its file does not match its record: 1 of its [0-9]* pages differ (first: page $pg;" <<<"$out" ||
		{ shown=$((shown + 1)); echo "# page $pg of s2 in s1: fsck did not name it"; }
	cp "$T/f1.orig" "$F1"
done
check "a page of s2 in s1: s1 never shows s2's bytes, fsck names each page" test "$shown" = 0
check "a page of s2 in s1: the one holding f.txt reads EIO" test "$eio" -ge 1
cp "$T/f1.orig" "$F1"
check "after the page swaps: mount" vv_mount "$S" "$M"
check "s1 whole again" test "$(cat "$M/.snapshots/s1/c/f.txt")" = one
check "live f.txt untouched" test "$(cat "$M/c/f.txt")" = two
check "unmount after the page swaps" vv_umount "$M"

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

# the older snapshot's file renamed over the newer one's: s2 is EIO, and
# s1 (its file gone) too
mv "$F1" "$F2"
check "older over newer: mount" vv_mount "$S" "$M"
expect_fail "older over newer: s2 reads EIO" cat "$M/.snapshots/s2/c/f.txt"
check "older over newer: the error is EIO" sh -c "cat '$M/.snapshots/s2/c/f.txt' 2>&1 | grep -q 'Input/output error'"
expect_fail "older over newer: s1 reads EIO" cat "$M/.snapshots/s1/c/f.txt"
check "older over newer: the live tree reads" test "$(cat "$M/c/f.txt")" = two
check "older over newer: unmount" vv_umount "$M"
out=$("$VV_BIN" fsck "$S" --passfile "$PASSFILE" --dry-run 2>&1) && rc=0 || rc=$?
check "older over newer: fsck exits 1" test "$rc" = 1
check "older over newer: fsck names snapshot $id2" grep -q "snapshot $id2: its file" <<<"$out"
check "older over newer: fsck names snapshot $id1" grep -q "snapshot $id1: its file" <<<"$out"
cp "$T/f1.orig" "$F1"
cp "$T/f2.orig" "$F2"

# a log planted beside s1's file while mounted, before this process read
# s1: the live meta.db's WAL (same keys; frames authenticate anywhere)
check "planted log: mount" vv_mount "$S" "$M"
echo three > "$M/c/f.txt"
cp "$S/meta.db-wal" "$F1-wal"
got=$(cat "$M/.snapshots/s1/c/f.txt" 2>&1) || true
echo "# planted log of $(stat -c %s "$F1-wal") bytes: s1 read gave: $got"
check "planted log: s1 never shows the live bytes" test "$got" != three
if [ "$(stat -c %s "$F1-wal")" -gt 32 ]; then
	check "planted log: refused, EIO" grep -q 'Input/output error' <<<"$got"
fi
rm -f "$F1-wal"
check "planted log: s2 reads" test "$(cat "$M/.snapshots/s2/c/f.txt")" = two
echo two > "$M/c/f.txt"
check "planted log: unmount" vv_umount "$M"

rm "$F1"
broken "missing file"
check "mount with s1's file missing" vv_mount "$S" "$M"
check "delete s1 all the same" sh -c "'$VV_BIN' snapshot delete '$M' s1 >/dev/null"
check "s2 still reads" test "$(cat "$M/.snapshots/s2/c/f.txt")" = two
check "the live big.bin is whole" cmp "$M/c/big.bin" "$T/big.orig"
check "unmount" vv_umount "$M"
out=$("$VV_BIN" fsck "$S" --passfile "$PASSFILE" 2>&1) || true
check "fsck: clean after the delete" grep -q clean <<<"$out"

# A large snapshot (3000 files of 1500 bytes inline: ~1500 pages), one
# flipped byte in the middle page: the files whose rows are on it read
# EIO, every other one reads its own bytes; fsck names that page.
check "large: mount" vv_mount "$S" "$M"
"$PY" - "$M/big" <<'PY'
import os, sys
d = sys.argv[1]
os.mkdir(d)
for i in range(3000):
    with open("%s/f%04d" % (d, i), "wb") as f:
        f.write((b"%04d" % i) * 375)
PY
check "large: create s3" sh -c "'$VV_BIN' snapshot create '$M' s3 >/dev/null"
id3=$("$VV_BIN" snapshot list "$M" --json | "$PY" -c 'import json,sys; print([s["id"] for s in json.load(sys.stdin) if s["name"]=="s3"][0])')
F3=$S/snapshots/$id3.db
check "large: unmount" vv_umount "$M"
pages=$(( $(stat -c %s "$F3") / 4096 ))
mid=$(( pages / 2 + 1 ))
echo "# s3: $pages pages; flipping page $mid"
"$PY" - "$F3" "$mid" <<'PY'
import sys
p, n = sys.argv[1], int(sys.argv[2])
with open(p, "r+b") as f:
    f.seek((n - 1) * 4096 + 1000)
    b = f.read(1)
    f.seek((n - 1) * 4096 + 1000)
    f.write(bytes([b[0] ^ 1]))
PY
check "large: mount again" vv_mount "$S" "$M"
res=$("$PY" - "$M/.snapshots/s3/big" <<'PY'
import errno, sys
d = sys.argv[1]
ok = eio = wrong = 0
for i in range(3000):
    try:
        with open("%s/f%04d" % (d, i), "rb") as f:
            b = f.read()
        if b == (b"%04d" % i) * 375:
            ok += 1
        else:
            wrong += 1
    except OSError as e:
        if e.errno == errno.EIO:
            eio += 1
        else:
            wrong += 1
print(ok, eio, wrong)
PY
)
read -r ok eio wrong <<<"$res"
echo "# large: $ok files read whole, $eio EIO, $wrong wrong"
check "large: some files read EIO" test "$eio" -ge 1
check "large: no file reads wrong bytes or another error" test "$wrong" = 0
check "large: the other files read whole (>= 2900 of 3000)" test "$ok" -ge 2900
check "large: the live files read" test "$(cat "$M/big/f0042")" = "$(printf '0042%.0s' $(seq 375))"
check "large: unmount again" vv_umount "$M"
out=$("$VV_BIN" fsck "$S" --passfile "$PASSFILE" --dry-run 2>&1) && rc=0 || rc=$?
echo "$out" | grep -i "snapshot $id3" | sed 's/^/# /'
check "large: fsck exits 1" test "$rc" = 1
check "large: fsck names page $mid of snapshot $id3" \
	grep -q "snapshot $id3: its file does not match its record: 1 of its $pages pages differ (first: page $mid" <<<"$out"
test_done
