#!/bin/bash
# t6020-backup-roundtrip: backup init/create/list/verify/restore on a real
# mount: the restored vault (a new store, new passphrase, no rollback
# complaint) holds byte-identical files with the same modes, owners, times,
# ACLs, xattrs, symlinks and hard links, fsck finds it clean, and a query on
# it answers as on the original; the vault can be deleted and restored from
# DEST alone; every create is an audit record.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/lib/backup.sh"
vv_need_fuse

vv_backup_vault
vv_mount "$S" "$M"

mkdir "$M/products" "$M/docs"
head -c 3000000 /dev/urandom > "$M/products/big.bin"
head -c 70000 /dev/urandom > "$M/products/mid.bin"
printf 'small\n' > "$M/docs/note.txt"
printf 'top level\n' > "$M/top.txt"
: > "$M/docs/empty"
ln -s ../top.txt "$M/docs/link"
ln "$M/products/big.bin" "$M/products/big-link.bin"
mkdir -p "$M/docs/a/b/c"
printf 'deep\n' > "$M/docs/a/b/c/deep.txt"
chmod 640 "$M/docs/note.txt"
chown 1000:1001 "$M/docs/note.txt"
chmod 1777 "$M/docs/a"
setfattr -n user.color -v blue "$M/top.txt"
setfattr -n user.bin -v 0x00ff00 "$M/products/mid.bin"
setfacl -m u:1000:rw,g:2000:r "$M/docs/note.txt"
setfacl -d -m u:1001:rx "$M/docs/a"
touch -d '2020-01-02 03:04:05' "$M/products/mid.bin"
python3 -c '
import struct, sys
h = "{\x27descr\x27: \x27<f4\x27, \x27fortran_order\x27: False, \x27shape\x27: (64, 16), }"
h += " " * ((64 - (10 + len(h) + 1) % 64) % 64) + "\n"
with open(sys.argv[1], "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode())
    f.write(struct.pack("<1024f", *[float((i * 7919) % 101) for i in range(1024)]))
' "$M/products/vec.npy"
vv_sync "$M"

check "init makes a repository" "$VV_BIN" backup init "$D" --passfile "$RP" --kdf test
expect_fail "init refuses a non-empty DEST" "$VV_BIN" backup init "$D" --passfile "$RP" --kdf test
out=$("$VV_BIN" backup create "$M" "$D" --passfile "$RP" --tag nightly 2>&1)
check "create works" test $? -eq 0
echo "# $out"
ID=$(printf '%s\n' "$out" | awk '/^backup /{print $2}' | tr -d :)
check "create prints the backup id" sh -c "printf '%s' '$ID' | grep -Eq '^[0-9a-f]{32}$'"
check "create is audited in the vault log, naming backup.create and DEST" \
	vv_audit_has "$LOG" op=admin result=ok "detail=backup.create $D"
check "the auto snapshot is gone again" sh -c "! ls '$M/.snapshots' | grep -q backup-"
lst=$("$VV_BIN" backup list "$D" --passfile "$RP")
check "list shows the id first" sh -c "printf '%s\n' '$lst' | grep -q '^$ID '"
check "list shows the tag" sh -c "printf '%s\n' '$lst' | grep -q ' nightly '"
check "list --json is JSON" sh -c "'$VV_BIN' backup list '$D' --passfile '$RP' --json | python3 -c 'import json,sys; j=json.load(sys.stdin); assert j[0][\"id\"]==\"$ID\" and j[0][\"tag\"]==\"nightly\"'"
check "verify: clean" "$VV_BIN" backup verify "$D" --passfile "$RP"
check "verify --read-data: clean" "$VV_BIN" backup verify "$D" --read-data --passfile "$RP"
expect_fail "list with a wrong passphrase fails" sh -c "echo wrong | '$VV_BIN' backup list '$D' --passfile /dev/stdin"

check "restore into a new store" "$VV_BIN" backup restore "$D" "${ID:0:8}" "$T/s2" --repo-passfile "$RP" --passfile "$NP" --kdf test
expect_fail "restore refuses an existing store" "$VV_BIN" backup restore "$D" "$ID" "$T/s2" --repo-passfile "$RP" --passfile "$NP" --kdf test
mkdir "$T/m2"
check "the restored vault mounts with the new passphrase" "$VV_BIN" mount "$T/s2" "$T/m2" --passfile "$NP" --pid-file "$T/.pids/m2" --log "$T/daemon2.log"
printf '%s\t%s\n' "$T/m2" "$T/.pids/m2" >> "$VV_MOUNTS"
check "files are byte-identical" diff -r --no-dereference "$M" "$T/m2"
tree() { (cd "$1" && find . -path ./.snapshots -prune -o -printf '%p %M %U %G %s %n %l\n' | sort); }
check "modes, owners, sizes, link counts, symlinks equal" sh -c "[ \"\$(cd '$M' && find . -printf '%p %M %U %G %s %n %l %T@\n' | sort)\" = \"\$(cd '$T/m2' && find . -printf '%p %M %U %G %s %n %l %T@\n' | sort)\" ]"
check "getfacl -R equal" sh -c "[ \"\$(cd '$M' && getfacl -R -p . 2>/dev/null)\" = \"\$(cd '$T/m2' && getfacl -R -p . 2>/dev/null)\" ]"
check "getfattr -R equal" sh -c "[ \"\$(cd '$M' && getfattr -R -d -m - -e hex . 2>/dev/null)\" = \"\$(cd '$T/m2' && getfattr -R -d -m - -e hex . 2>/dev/null)\" ]"
check "hard links stay one inode" sh -c "[ \$(stat -c %i '$T/m2/products/big.bin') = \$(stat -c %i '$T/m2/products/big-link.bin') ]"
V=$(python3 -c 'print(",".join(["1"]*16))')
q1=$("$VV_BIN" query "$M/products" --vector "$V" -k 3 2>&1)
q2=$("$VV_BIN" query "$T/m2/products" --vector "$V" -k 3 2>&1)
echo "# $q1"
check "a query on the restored vault answers" test -n "$q1"
check "and as on the original" test "$q1" = "$q2"
check "the restored vault's new files work" sh -c "echo more > '$T/m2/products/new.txt' && cat '$T/m2/products/new.txt' | grep -q more"
vv_umount "$T/m2"
check "the restore is the first record of the new vault's log" sh -c "grep -q 'backup.restore $ID from $D' '$(vv_audit_log "$T/s2")'"
check "fsck: the restored store is clean" sh -c "'$VV_BIN' fsck '$T/s2' --passfile '$NP' 2>&1 | grep -q clean"

# The vault and its passphrase gone: DEST alone restores.
sums=$(cd "$M" && find . -path ./.snapshots -prune -o -type f -print0 | sort -z | xargs -0 sha256sum)
vv_umount "$M"
rm -rf "$S" "$T/s2" "$PASSFILE"
check "restore with DEST alone after the vault is deleted" "$VV_BIN" backup restore "$D" "$ID" "$T/s3" --repo-passfile "$RP" --passfile "$NP" --kdf test
mkdir "$T/m3"
"$VV_BIN" mount "$T/s3" "$T/m3" --passfile "$NP" --pid-file "$T/.pids/m3" --log "$T/daemon3.log"
printf '%s\t%s\n' "$T/m3" "$T/.pids/m3" >> "$VV_MOUNTS"
check "its files hash as before" test "$sums" = "$(cd "$T/m3" && find . -path ./.snapshots -prune -o -type f -print0 | sort -z | xargs -0 sha256sum)"
vv_umount "$T/m3"
test_done
