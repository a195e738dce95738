#!/bin/bash
# t6010-snap-basic: vecvault snapshot create/list/delete on a real mount, as
# root and as other uids: .snapshots is found by name but not listed (find,
# rsync -a of the mount skip it), a snapshot reads as the vault did then,
# its inode numbers differ from the live tree's and stay the same after a
# remount, hard links stay hard links through cp -a, each operation is
# audited, and only the owner may create or delete.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
vv_init "$S" >/dev/null
LOG=$(vv_audit_log "$S")
check "mount" vv_mount "$S" "$M"
mkdir -m 755 "$M/products" "$M/private"
head -c 3000000 /dev/urandom > "$M/products/a.bin"
echo small > "$M/products/s.txt"
ln "$M/products/s.txt" "$M/products/s-link.txt"
echo secret > "$M/private/p.txt"
chmod 700 "$M/private"
chmod 600 "$M/private/p.txt"
cp "$M/products/a.bin" "$T/a.orig"

check "create s1" sh -c "'$VV_BIN' snapshot create '$M' s1 >/dev/null"
out=$("$VV_BIN" snapshot list "$M")
check "list names s1" grep -q "^s1 " <<<"$out"
out=$(as_nobody "$VV_BIN" snapshot list "$M" --json)
check "list as nobody, json" grep -q '"name":"s1"' <<<"$out"
rc=0; err=$(as_u1000 "$VV_BIN" snapshot create "$M" x 2>&1) || rc=$?
check "create as u1000: refused (exit 1)" test "$rc" = 1
check "create as u1000: says who may" grep -q "only root or the vault's owner" <<<"$err"
rc=0; err=$("$VV_BIN" snapshot create "$M" s1 2>&1) || rc=$?
check "create s1 again: exit 1" test "$rc" = 1
check "create s1 again: named" grep -q "'s1' exists already" <<<"$err"
rc=0; err=$("$VV_BIN" snapshot create "$M" 'a/b' 2>&1) || rc=$?
check "a name with /: refused" test "$rc" = 1
check "default name is the UTC time" sh -c "'$VV_BIN' snapshot create '$M' | grep -Eq 'created snapshot 20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z'"

check "ls / does not list .snapshots" sh -c "! ls -a '$M' | grep -q snapshots"
check "find does not enter .snapshots" sh -c "! find '$M' | grep -q snapshots"
mkdir "$T/rs"
check "rsync -a of the mount" rsync -a "$M/" "$T/rs/"
check "... copies no snapshot" test ! -e "$T/rs/.snapshots"
check "getfattr -d on .snapshots and a snapshot's collection" sh -c "getfattr -d '$M/.snapshots' '$M/.snapshots/s1/products' >/dev/null 2>&1"
check "ls .snapshots/ lists s1" sh -c "ls '$M/.snapshots/' | grep -qx s1"
check "nobody may list .snapshots/" sh -c "setpriv --reuid=65534 --regid=65534 --clear-groups ls '$M/.snapshots/' | grep -qx s1"
check "the snapshot's a.bin equals the original" cmp "$M/.snapshots/s1/products/a.bin" "$T/a.orig"
check "nobody reads the snapshot's public file" sh -c "setpriv --reuid=65534 --regid=65534 --clear-groups cat '$M/.snapshots/s1/products/s.txt' >/dev/null"
want nobody EACCES listdir "$M/.snapshots/s1/private"
want u1000 EACCES read "$M/.snapshots/s1/private/p.txt"
want nobody EACCES stat "$M/.snapshots/s1/private/p.txt"
want root EPERM rmdir "$M/.snapshots"
want root EEXIST mkdir "$M/.snapshots"
want root EPERM rename "$M/.snapshots" "$M/x"
want root EPERM rename "$M/products" "$M/.snapshots"
want u1000 EROFS mkdir "$M/.snapshots/new"

live=$(stat -c %i "$M/products/a.bin")
snap=$(stat -c %i "$M/.snapshots/s1/products/a.bin")
check "the snapshot's inode number differs from the live one" test "$live" != "$snap"
check "same st_dev (one file system: find -xdev enters .snapshots when named)" \
	test "$(stat -c %d "$M/products")" = "$(stat -c %d "$M/.snapshots/s1/products")"
mkdir "$T/cp"
check "cp -a from the snapshot" cp -a "$M/.snapshots/s1/products" "$T/cp/"
check "... keeps the hard link" test "$(stat -c %i "$T/cp/products/s.txt")" = "$(stat -c %i "$T/cp/products/s-link.txt")"

# live changes do not reach the snapshot
echo changed > "$M/products/s.txt"
rm "$M/products/a.bin"
check "the live change is not in the snapshot" test "$(cat "$M/.snapshots/s1/products/s.txt")" = small
check "the removed file still reads from the snapshot" cmp "$M/.snapshots/s1/products/a.bin" "$T/a.orig"

check "unmount" vv_umount "$M"
check "fsck (counts the snapshots' references)" sh -c "'$VV_BIN' fsck '$S' --passfile '$PASSFILE' > '$T/fsck.out' 2>&1"
check "fsck names the snapshots and their references" grep -q "snapshots holding [1-9][0-9]* chunk references" "$T/fsck.out"
check "remount" vv_mount "$S" "$M"
check "s1 survives the remount" cmp "$M/.snapshots/s1/products/a.bin" "$T/a.orig"
check "with the same inode number" test "$(stat -c %i "$M/.snapshots/s1/products/a.bin")" = "$snap"

rc=0; err=$(as_u1000 "$VV_BIN" snapshot delete "$M" s1 2>&1) || rc=$?
check "delete as u1000: refused" test "$rc" = 1
check "delete s1" sh -c "'$VV_BIN' snapshot delete '$M' s1 >/dev/null"
check "s1 is gone" test ! -e "$M/.snapshots/s1"
rc=0; err=$("$VV_BIN" snapshot delete "$M" s1 2>&1) || rc=$?
check "delete s1 again: exit 1" test "$rc" = 1
check "delete s1 again: named" grep -q "no snapshot named 's1'" <<<"$err"

check "create audited" vv_audit_has "$LOG" op=admin uid=0 result=ok 'detail~^snapshot.create s1'
check "refused create audited with the uid" vv_audit_has "$LOG" op=admin uid=1000 result=EACCES 'detail~^snapshot.create'
check "delete audited" vv_audit_has "$LOG" op=admin uid=0 result=ok 'detail~^snapshot.delete s1'
check "EROFS audited" vv_audit_has "$LOG" uid=1000 result=EROFS
check "unmount" vv_umount "$M"
test_done
