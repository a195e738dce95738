#!/bin/bash
# t6025-backup-restore-into: `backup restore DEST ID --into DIR [--path P]`
# writes a backup's files back through a mount as the user who runs it:
# the same bytes, modes, ACLs, xattrs, symlinks and hard links as root;
# u1000 is held to the vault's access checks (a directory it cannot write
# is refused, named, and audited as a denial); it never overwrites; a
# tampered object stops it, naming the object, with no wrong byte written.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/lib/backup.sh"
vv_need_fuse

vv_backup_vault 644
chmod 755 "$T"
vv_mount "$S" "$M"
mkdir -p "$M/products/sub"
head -c 900000 /dev/urandom > "$M/products/big.bin"
printf 'note\n' > "$M/products/sub/note.txt"
ln "$M/products/big.bin" "$M/products/big2.bin"
ln -s sub/note.txt "$M/products/link"
setfacl -m u:1000:r "$M/products/sub/note.txt"
setfattr -n user.tag -v gold "$M/products/big.bin"
chmod 750 "$M/products/sub"
vv_sync "$M"
"$VV_BIN" backup init "$D" --passfile "$RP" --kdf test >/dev/null
"$VV_BIN" backup create "$M" "$D" --passfile "$RP" >/dev/null
ID=$(ls "$D/manifests")
chmod -R a+rX "$D"      # u1000 may read this repository (it has the passphrase)

mkdir "$M/back"
check "restore --into --path /products as root" "$VV_BIN" backup restore "$D" "$ID" --into "$M/back" --path /products --passfile "$RP"
check "the same bytes and tree" diff -r --no-dereference "$M/products" "$M/back"
check "the same modes, owners and links" sh -c "[ \"\$(cd '$M/products' && find . -printf '%p %M %U %G %s %n %l\n' | sort)\" = \"\$(cd '$M/back' && find . -printf '%p %M %U %G %s %n %l\n' | sort)\" ]"
check "the same ACLs" sh -c "[ \"\$(cd '$M/products' && getfacl -R -n -p . 2>/dev/null)\" = \"\$(cd '$M/back' && getfacl -R -n -p . 2>/dev/null)\" ]"
check "the same xattrs" sh -c "[ \"\$(cd '$M/products' && getfattr -R -d -e hex . 2>/dev/null)\" = \"\$(cd '$M/back' && getfattr -R -d -e hex . 2>/dev/null)\" ]"
expect_fail "it never overwrites" "$VV_BIN" backup restore "$D" "$ID" --into "$M/back" --path /products --passfile "$RP"
check "what was there is unchanged" cmp "$M/products/big.bin" "$M/back/big.bin"

# u1000 through the vault's access checks.
mkdir "$M/closed" && chmod 755 "$M/closed"
rc=0; err=$(as_u1000 "$VV_BIN" backup restore "$D" "$ID" --into "$M/closed" --path /products/sub --passfile "$RP" 2>&1) || rc=$?
check "u1000 cannot restore into a directory it cannot write" test "$rc" -ne 0
echo "# $err"
check "the refusal is named" sh -c "printf '%s' '$err' | grep -qi 'closed.*permission denied'"
audited() { for i in $(seq 1 50); do grep "\"uid\":1000" "$LOG" | grep -q "$1" && return 0; sleep 0.1; done; return 1; }
check "and audited as a denial of uid 1000" audited '"result":"EACCES"'
mkdir "$M/u1000" && chown 1000:1000 "$M/u1000"
check "u1000 restores into its own directory" as_u1000 "$VV_BIN" backup restore "$D" "$ID" --into "$M/u1000" --path /products/big.bin --passfile "$RP"
check "a single file, whole" cmp "$M/products/big.bin" "$M/u1000/big.bin"
check "owned by u1000" test "$(stat -c %u "$M/u1000/big.bin")" = 1000
check "its writes are audited as uid 1000" audited 'u1000/big.bin'

# Tamper: an object flipped (the largest: a chunk, not a metadata pack).
O=$(find "$D/objects" -type f -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2-)
python3 -c 'import sys; p=sys.argv[1]; b=bytearray(open(p,"rb").read()); b[5000] ^= 1; open(p,"wb").write(b)' "$O"
mkdir "$M/t"
rc=0; err=$("$VV_BIN" backup restore "$D" "$ID" --into "$M/t" --path /products --passfile "$RP" 2>&1) || rc=$?
check "a tampered object stops restore --into" test "$rc" -ne 0
check "naming the object" sh -c "printf '%s' '$err' | grep -q 'object $(basename "$O"): altered'"
check "no file got a wrong byte" sh -c "for f in \$(cd '$M/t' && find . -type f); do cmp -n \$(stat -c %s \"$M/t/\$f\") \"$M/t/\$f\" \"$M/products/\$f\" || exit 1; done"
vv_umount "$M"
test_done
