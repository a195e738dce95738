#!/bin/bash
# t6031-backup-key-cache: the daemon keeps a repository key that a slot
# unlocked, with a keyed verifier of the passphrase (docs/security.md
# "Backup repository keys in the daemon"), so that a re-run skips the
# Argon2id.  What must not change: a wrong passphrase is refused after a
# right one was cached (also one that differs in one byte, a prefix, or
# has the right one as its prefix), through the CLI and raw over the
# control socket; another
# repository made at the same path with the same passphrase (a new id and
# key) is not taken for the old one; the key is gone with the daemon.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/lib/backup.sh"
vv_need_fuse

vv_backup_vault
vv_mount "$S" "$M"
sent() { sed -n 's/.* objects, \([0-9]*\) sent .*/\1/p'; }
mkdir "$M/c"
head -c 800000 /dev/urandom > "$M/c/f"
vv_sync "$M"
"$VV_BIN" backup init "$D" --passfile "$RP" --kdf test >/dev/null
check "a first create unlocks the key" "$VV_BIN" backup create "$M" "$D" --passfile "$RP"
check "a second one (from the cache)" "$VV_BIN" backup create "$M" "$D" --passfile "$RP"
right=$(cat "$RP")
for wrong in "${right}x" "${right%?}" "X${right:1}" "${right:0:3}" "$right$right"; do
	printf '%s\n' "$wrong" > "$T/wrong"
	rc=0; err=$("$VV_BIN" backup create "$M" "$D" --passfile "$T/wrong" 2>&1) || rc=$?
	check "a wrong passphrase after a cached right one is refused ('${wrong:0:6}...', ${#wrong} bytes)" \
		sh -c "[ $rc -ne 0 ] && printf '%s' '$err' | grep -q 'wrong passphrase'"
done
check "no backup was made with a wrong one" test "$("$VV_BIN" backup list "$D" --passfile "$RP" | wc -l)" -eq 2
# The same request sent raw over the control socket (as any owner may).
rc=0; err=$("$VV_BIN" admin "$M" backup.create dest="$D" pass="${right}y" 2>&1) || rc=$?
check "raw over the socket: refused too" sh -c "[ $rc -ne 0 ] && printf '%s' '$err' | grep -q 'wrong passphrase'"
check "the right one still works" "$VV_BIN" backup create "$M" "$D" --passfile "$RP"

# Another repository at the same path, same passphrase: a new id and key.
mv "$D" "$T/old"
"$VV_BIN" backup init "$D" --passfile "$RP" --kdf test >/dev/null
out=$("$VV_BIN" backup create "$M" "$D" --passfile "$RP")
echo "# $out"
check "a new repository at the same path gets everything sent" test "$(echo "$out" | sent)" -gt 0
check "under its own key: it verifies with --read-data" "$VV_BIN" backup verify "$D" --read-data --passfile "$RP"
check "and none of its object names is one of the old repository's (other key)" bash -c "[ -z \"\$(comm -12 <(cd '$D/objects' && find . -type f | sort) <(cd '$T/old/objects' && find . -type f | sort))\" ]"
rm -rf "$D"
mv "$T/old" "$D"
vv_umount "$M"
vv_mount "$S" "$M"
check "a create after the remount" "$VV_BIN" backup create "$M" "$D" --passfile "$RP"
printf 'wrong\n' > "$T/wrong"
expect_fail "and a wrong one is refused" "$VV_BIN" backup create "$M" "$D" --passfile "$T/wrong"
vv_umount "$M"
test_done
