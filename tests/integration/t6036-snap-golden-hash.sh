#!/usr/bin/env bash
# t6036-snap-golden-hash: snapshot files made by the build before page tags
# (tests/data/golden-snap-v2.tar.gz: snap_files.mac, the keyed hash of the
# whole file, and no snap_tags row) keep their old read path: they read
# as the vault was, fsck checks their hash, a flipped byte anywhere in the
# file is EIO for every read of that snapshot and fsck names it, and they
# delete; a snapshot this build makes beside them is bound page by page.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

vv_golden golden-snap-v2 'golden snap passphrase v2'
S=$T/golden-snap-v2
M=$T/mnt
gmount() { vv_mount "$S" "$M" --passfile "$S.pass" "$@"; }
files_ok() {
	"$PY" - "$1" <<'PY'
import sys
sys.exit(0 if all(open("%s/f%03d" % (sys.argv[1], i), "rb").read() == (b"%03d" % i) * 300
                  for i in range(50)) else 1)
PY
}

check "mount the golden store" gmount
check "h1 reads version one" test "$(cat "$M/.snapshots/h1/c/notes.txt")" = "version one"
check "h2 reads version two" test "$(cat "$M/.snapshots/h2/c/notes.txt")" = "version two"
check "h1's files read whole" files_ok "$M/.snapshots/h1/c"
check "a new snapshot beside them" sh -c "'$VV_BIN' snapshot create '$M' n1 >/dev/null"
check "n1 reads version two" test "$(cat "$M/.snapshots/n1/c/notes.txt")" = "version two"
check "unmount" vv_umount "$M"
out=$("$VV_BIN" fsck "$S" --passfile "$S.pass" --dry-run 2>&1) && rc=0 || rc=$?
check "fsck: clean (hash-bound and tag-bound snapshots)" test "$rc" = 0

# one flipped byte in the last page of h1's file (its hash covers every
# byte): every read of h1 is EIO, h2 and n1 read
cp "$S/snapshots/1.db" "$T/1.orig"
"$PY" - "$S/snapshots/1.db" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(-100, 2)
    b = f.read(1)
    f.seek(-100, 2)
    f.write(bytes([b[0] ^ 1]))
PY
check "flipped: mount" gmount
expect_fail "flipped: h1 reads EIO" cat "$M/.snapshots/h1/c/notes.txt"
check "flipped: the error is EIO" sh -c "cat '$M/.snapshots/h1/c/notes.txt' 2>&1 | grep -q 'Input/output error'"
check "flipped: h2 reads" test "$(cat "$M/.snapshots/h2/c/notes.txt")" = "version two"
check "flipped: n1 reads" test "$(cat "$M/.snapshots/n1/c/notes.txt")" = "version two"
check "flipped: unmount" vv_umount "$M"
out=$("$VV_BIN" fsck "$S" --passfile "$S.pass" --dry-run 2>&1) && rc=0 || rc=$?
check "flipped: fsck exits 1" test "$rc" = 1
check "flipped: fsck names snapshot 1" grep -q "snapshot 1: its file" <<<"$out"
cp "$T/1.orig" "$S/snapshots/1.db"

check "delete: mount" gmount
check "delete h1" sh -c "'$VV_BIN' snapshot delete '$M' h1 >/dev/null"
check "h1's file is gone" test ! -e "$S/snapshots/1.db"
check "h2 still reads" test "$(cat "$M/.snapshots/h2/c/notes.txt")" = "version two"
check "the live files read" files_ok "$M/c"
check "delete: unmount" vv_umount "$M"
out=$("$VV_BIN" fsck "$S" --passfile "$S.pass" 2>&1) && rc=0 || rc=$?
check "fsck: clean after the delete" test "$rc" = 0
test_done
