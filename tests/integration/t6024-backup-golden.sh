#!/bin/bash
# t6024-backup-golden: the golden repository (tests/data/golden-backup-v1,
# made once by tests/data/make-golden-backup.sh, never regenerated) still
# lists, verifies with --read-data and restores both of its backups to the
# files it recorded; and a backup this build makes of the golden store
# (tests/data/golden-v1) restores to the same files.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

vv_golden golden-backup-v1 'golden repository v1'
vv_golden golden-v1 'golden passphrase v1'
D=$T/golden-backup-v1
RP=$D.pass                      # also the passphrase of the repository made here
printf 'new vault\n' > "$T/npass"
chmod 600 "$T/npass"
sums() { (cd "$1" && find . -path ./.snapshots -prune -o -path ./.trash -prune -o -type f -print0 | sort -z | xargs -0 sha256sum); }

lst=$("$VV_BIN" backup list "$D" --passfile "$RP")
echo "$lst" | sed 's/^/# /'
check "the golden repository lists two backups" test "$(echo "$lst" | wc -l)" -eq 2
check "tagged first and second" sh -c "printf '%s\n' '$lst' | grep -q ' first ' && printf '%s\n' '$lst' | grep -q ' second '"
check "it verifies, reading every block" "$VV_BIN" backup verify "$D" --read-data --passfile "$RP"
for tag in first second; do
	id=$(echo "$lst" | awk -v t="$tag" '$4 == t { print $1 }')
	check "restore the $tag backup" "$VV_BIN" backup restore "$D" "$id" "$T/s-$tag" --repo-passfile "$RP" --passfile "$T/npass" --kdf test
	vv_mount "$T/s-$tag" "$T/m-$tag" --passfile "$T/npass"
	check "its files are the recorded ones" test "$(sums "$T/m-$tag")" = "$(cat "$T/$tag.sha256")"
	check "symlink, hard link, ACL and xattr came back" sh -c "[ \"\$(readlink '$T/m-$tag/products/link')\" = notes.txt ] && [ \$(stat -c %h '$T/m-$tag/products/notes.txt') = 2 ] && getfacl -n -p '$T/m-$tag/products/shared' | grep -q user:1000:r-x && getfattr -n user.note --only-values '$T/m-$tag/products/notes.txt' | grep -qx golden"
	vv_umount "$T/m-$tag"
	check "fsck: clean" sh -c "'$VV_BIN' fsck '$T/s-$tag' --passfile '$T/npass' 2>&1 | grep -q clean"
done

# This build backing up the golden store.
vv_mount "$T/golden-v1" "$T/gm" --passfile "$T/golden-v1.pass" --accept-rollback
"$VV_BIN" backup init "$T/d2" --passfile "$RP" --kdf test >/dev/null
check "back up the golden store" "$VV_BIN" backup create "$T/gm" "$T/d2" --passfile "$RP"
want_sums=$(sums "$T/gm")
vv_umount "$T/gm"
id=$("$VV_BIN" backup list "$T/d2" --passfile "$RP" | awk '{print $1}')
check "restore it" "$VV_BIN" backup restore "$T/d2" "$id" "$T/s3" --repo-passfile "$RP" --passfile "$T/npass" --kdf test
vv_mount "$T/s3" "$T/m3" --passfile "$T/npass"
check "to the golden store's files" test "$(sums "$T/m3")" = "$want_sums"
V=$(python3 -c 'print(",".join(["1"]*4))')
check "a query on it answers" sh -c "'$VV_BIN' query '$T/m3/products' --vector '$V' -k 3 | grep -q seg.fvecs"
vv_umount "$T/m3"
test_done
