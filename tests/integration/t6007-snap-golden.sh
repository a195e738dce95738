#!/usr/bin/env bash
# t6007-snap-golden: snapshots made by the row-copy code of an older build
# (tests/data/golden-snap-v1.tar.gz, rows in snap_* tables) keep working
# beside the snapshots this build makes (files under STORE/snapshots/):
# both read as the vault was, by root and through the same access check
# for other uids, restore, back up, fsck counts both kinds of references,
# and deleting each kind frees exactly what only it held.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

vv_golden golden-snap-v1 'golden snap passphrase v1'
S=$T/golden-snap-v1
G() { "$VV_BIN" "$1" "$S" --passfile "$S.pass" "${@:2}"; }
M=$T/mnt
gmount() { vv_mount "$S" "$M" --passfile "$S.pass" "$@"; }
big_ok() {
	"$PY" - "$1" <<'PY'
import sys, random
r = random.Random(7)
want = bytes(r.getrandbits(8) for _ in range(300000))
sys.exit(0 if open(sys.argv[1], "rb").read() == want else 1)
PY
}

check "fsck of the old store (read-only) is clean" G fsck --dry-run
check "mount the old store" gmount
check "its two old snapshots are listed" sh -c "'$VV_BIN' snapshot list '$M' | grep -q '^old1 ' && '$VV_BIN' snapshot list '$M' | grep -q '^old2 '"
O1=$M/.snapshots/old1/products
check "old1: the first version of notes.txt" test "$(cat "$O1/notes.txt")" = "version one"
check "old1: big.bin (removed since) reads byte for byte" big_ok "$O1/big.bin"
check "old1: the hard link is one inode" test "$(stat -c %i "$O1/notes.txt")" = "$(stat -c %i "$O1/hardlink")"
check "old1: user xattr" test "$(getfattr --only-values -n user.note "$O1/notes.txt")" = golden
check "old1: the ACL of that moment" sh -c "getfacl -cn '$O1/shared' 2>/dev/null | grep -qx 'user:1000:r-x'"
expect_fail "old1: nobody cannot read the 0600 secret" as_nobody cat "$O1/shared/secret.txt"
check "old2: the second version" test "$(cat "$M/.snapshots/old2/products/notes.txt")" = "version two"
check "live: the second version" test "$(cat "$M/products/notes.txt")" = "version two"
expect_fail "old1 is read-only" sh -c "echo x > '$O1/notes.txt'"

# a snapshot of this build beside them
check "create new1 (a file snapshot)" sh -c "'$VV_BIN' snapshot create '$M' new1 >/dev/null"
check "new1 is a file under STORE/snapshots" sh -c "ls '$S/snapshots/' | grep -qx '[0-9]*\.db'"
check "the three are listed in order" sh -c "[ \"\$('$VV_BIN' snapshot list '$M' | awk '{print \$1}' | tr '\n' ' ')\" = 'old1 old2 new1 ' ]"
check "new1: the live state" test "$(cat "$M/.snapshots/new1/products/after.txt")" = after
check "new1 and old2 show the same tree" diff -r "$M/.snapshots/old2" "$M/.snapshots/new1"
check "new1: ACL as in old2" sh -c "[ \"\$(cd '$M/.snapshots/old2' && getfacl -R -p . 2>/dev/null)\" = \"\$(cd '$M/.snapshots/new1' && getfacl -R -p . 2>/dev/null)\" ]"
expect_fail "new1: nobody cannot read the 0600 secret either" as_nobody cat "$M/.snapshots/new1/products/shared/secret.txt"
check "u1000 may list the shared directory in new1 (ACL)" as_u1000 ls "$M/.snapshots/new1/products/shared"

# restore from the old kind
check "restore big.bin from old1" sh -c "'$VV_BIN' snapshot restore '$M' old1 /products/big.bin >/dev/null"
check "the restored big.bin reads byte for byte" big_ok "$M/products/big.bin"

# backups of both kinds
RP=$T/rpass
printf 'repo pass\n' > "$RP"
chmod 600 "$RP"
D=$T/repo
check "backup init" "$VV_BIN" backup init "$D" --passfile "$RP" --kdf test
check "back up old1 (rows)" sh -c "'$VV_BIN' backup create '$M' '$D' --snapshot old1 --passfile '$RP' >/dev/null"
check "back up new1 (file)" sh -c "'$VV_BIN' backup create '$M' '$D' --snapshot new1 --passfile '$RP' >/dev/null"
check "verify --read-data" "$VV_BIN" backup verify "$D" --read-data --passfile "$RP"
ids=$("$VV_BIN" backup list "$D" --passfile "$RP" --json | "$PY" -c 'import json,sys; print(" ".join(b["id"] for b in json.load(sys.stdin)))')
set -- $ids
NP=$T/npass
printf 'new pass\n' > "$NP"
chmod 600 "$NP"
for pair in "old1:$1" "new1:$2"; do
	name=${pair%%:*} id=${pair#*:}
	check "restore the $name backup into a new store" "$VV_BIN" backup restore "$D" "$id" "$T/r-$name" --repo-passfile "$RP" --passfile "$NP" --kdf test
	mkdir -p "$T/m-$name"
	"$VV_BIN" mount "$T/r-$name" "$T/m-$name" --passfile "$NP" --pid-file "$T/.pids/m-$name" --log "$T/daemon-$name.log"
	printf '%s\t%s\n' "$T/m-$name" "$T/.pids/m-$name" >> "$VV_MOUNTS"
	check "the $name backup is the snapshot, byte for byte" diff -r "$M/.snapshots/$name" "$T/m-$name"
	check "the $name backup keeps the ACL" sh -c "[ \"\$(cd '$M/.snapshots/$name' && getfacl -R -p . 2>/dev/null)\" = \"\$(cd '$T/m-$name' && getfacl -R -p . 2>/dev/null)\" ]"
	vv_umount "$T/m-$name"
done

# delete each kind; the chunks of big.bin stay while the live tree names them
check "delete old2 (rows)" sh -c "'$VV_BIN' snapshot delete '$M' old2 >/dev/null"
check "delete new1 (file)" sh -c "'$VV_BIN' snapshot delete '$M' new1 >/dev/null"
check "new1's file is gone" sh -c "[ -z \"\$(ls '$S/snapshots/')\" ]"
check "old1 still reads" big_ok "$O1/big.bin"
check "unmount" vv_umount "$M"
out=$(G fsck 2>&1) || true
echo "$out" | sed 's/^/# /'
check "fsck after all that: clean" grep -q clean <<<"$out"
check "remount" gmount
check "old1 after a remount" big_ok "$O1/big.bin"
check "delete old1" sh -c "'$VV_BIN' snapshot delete '$M' old1 >/dev/null"
check "the live big.bin is still whole" big_ok "$M/products/big.bin"
check "unmount again" vv_umount "$M"
out=$(G fsck 2>&1) || true
check "fsck at the end: clean" grep -q clean <<<"$out"
test_done
