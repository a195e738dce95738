#!/usr/bin/env bash
# t6009-snap-file-crash: the leftovers and hostile files around snapshot
# files.  Files under STORE/snapshots/ that no snapshot owns (a copy whose
# ready commit never came, a reader's empty -wal, junk) are removed at the
# next read-write mount and left alone by a read-only one; a symlink
# planted where the next snapshot's file goes is never written through
# (create fails naming the problem, loses nothing, and the next create
# works); a SIGKILL of the daemon right after a create, or while one runs,
# leaves either a whole snapshot or none, and a store fsck finds clean.
# On a disk without room for the copy of meta.db (above the full-disk
# reserve) create fails saying so, before anything is written.
# (Power cuts at every write of a create: tests/unit/test_crash.c.)
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
pidf="$T/.pids/$(echo "$M" | tr / _)"
forget_mount() {
	awk -F '\t' -v m="$M" '$1 != m' "$VV_MOUNTS" > "$VV_MOUNTS.new"
	mv "$VV_MOUNTS.new" "$VV_MOUNTS"
}
vv_init "$S" >/dev/null
check "mount" vv_mount "$S" "$M"
mkdir -m 755 "$M/c"
"$PY" - "$M/c" <<'PY'
import sys
for i in range(2000):
    open("%s/f%05d" % (sys.argv[1], i), "w").write("file %d\n" % i)
PY
check "create s1" sh -c "'$VV_BIN' snapshot create '$M' s1 >/dev/null"
check "unmount" vv_umount "$M"

# planted leftovers
printf 'junk' > "$S/snapshots/77.db"
: > "$S/snapshots/1.db-wal"
printf 'x' > "$S/snapshots/notes"
check "a read-only mount leaves them" vv_mount "$S" "$M" -o ro
check "s1 reads on the read-only mount" test "$(cat "$M/.snapshots/s1/c/f00007")" = "file 7"
check "unmount (ro)" vv_umount "$M"
check "still there after the ro mount" test -f "$S/snapshots/77.db" -a -f "$S/snapshots/notes"
check "fsck --dry-run leaves them too" sh -c "'$VV_BIN' fsck '$S' --passfile '$PASSFILE' --dry-run >/dev/null; test -f '$S/snapshots/77.db'"
check "a read-write mount" vv_mount "$S" "$M"
check "removed what no snapshot owns" test "$(ls -A "$S/snapshots" | tr '\n' ' ')" = "1.db "
check "the daemon log says so" grep -q "no snapshot of this store owns it" "$T/daemon.log"
check "s1 still reads" test "$(cat "$M/.snapshots/s1/c/f00007")" = "file 7"

# a symlink where the next snapshot's file goes
echo victim > "$T/victim"
next=$(( $("$VV_BIN" snapshot list "$M" --json | "$PY" -c 'import json,sys; print(max(s["id"] for s in json.load(sys.stdin)))') + 1 ))
ln -s "$T/victim" "$S/snapshots/$next.db"
rc=0; err=$("$VV_BIN" snapshot create "$M" s2 2>&1) || rc=$?
echo "# $err"
check "create over a planted symlink fails" test "$rc" = 1
check "the message names the file, not the name" grep -q "cannot write the snapshot.s file" <<<"$err"
check "the victim is untouched" test "$(cat "$T/victim")" = victim
check "the symlink is still a symlink" test -L "$S/snapshots/$next.db"
check "s2 does not exist" sh -c "! '$VV_BIN' snapshot list '$M' | grep -q '^s2 '"
check "the vault still writes" sh -c "echo more > '$M/c/more' && test \"\$(cat '$M/c/more')\" = more"
check "the next create works (its own id)" sh -c "'$VV_BIN' snapshot create '$M' s2 >/dev/null"
check "s2 holds the new file" test "$(cat "$M/.snapshots/s2/c/more")" = more

# SIGKILL right after a create returned: the snapshot is durable
check "create s3" sh -c "'$VV_BIN' snapshot create '$M' s3 >/dev/null"
kill -KILL "$(cat "$pidf")"
fusermount3 -uz "$M" 2>/dev/null || umount -l "$M" 2>/dev/null || true
forget_mount
sleep 0.5
check "remount after SIGKILL" vv_mount "$S" "$M"
check "s3 survived" test "$(cat "$M/.snapshots/s3/c/f01999")" = "file 1999"

# SIGKILL while a create runs: all or nothing
("$VV_BIN" snapshot create "$M" s4 >/dev/null 2>&1 &)
sleep 0.05
kill -KILL "$(cat "$pidf")"
fusermount3 -uz "$M" 2>/dev/null || umount -l "$M" 2>/dev/null || true
forget_mount
sleep 0.5
check "remount after a SIGKILL during create" vv_mount "$S" "$M"
if "$VV_BIN" snapshot list "$M" | grep -q '^s4 '; then
	echo "# s4 was made before the kill"
	check "s4 is whole" test "$(cat "$M/.snapshots/s4/c/f01999")" = "file 1999"
else
	echo "# s4 was not made"
	check "no file without a snapshot" test "$(ls "$S/snapshots" | grep -c "\.db$")" = 3
fi
check "the other snapshots read" sh -c "test \"\$(cat '$M/.snapshots/s1/c/f00001')\" = 'file 1' && test \"\$(cat '$M/.snapshots/s2/c/more')\" = more"
check "unmount" vv_umount "$M"
out=$("$VV_BIN" fsck "$S" --passfile "$PASSFILE" 2>&1) || true
echo "$out" | sed 's/^/# /'
check "fsck: clean" grep -q "clean" <<<"$out"

# no room for the copy: a small tmpfs, meta.db of some MiB, data up to it
[ "$(id -u)" = 0 ] || { test_done; exit; }
FS=$T/fs
mkdir "$FS"
mount -t tmpfs -o size=40m tmpfs "$FS" || { test_done; exit; }
S3=$FS/store
M3=$T/m3
vv_init "$S3" >/dev/null 2>&1
check "small disk: mount" vv_mount "$S3" "$M3"
mkdir "$M3/c"
"$PY" - "$M3/c" <<'PY'
import sys
for i in range(12000):
    open("%s/f%05d" % (sys.argv[1], i), "wb").write(b"y" * 512)
PY
check "small disk: a first snapshot" sh -c "'$VV_BIN' snapshot create '$M3' a >/dev/null"
free_kb() { df -k --output=avail "$FS" | tail -1 | tr -d ' '; }
meta_kb=$(( $(stat -c %s "$S3/meta.db") / 1024 ))
echo "# meta.db $meta_kb KiB, $(free_kb) KiB free"
i=0
while [ "$(free_kb)" -gt $((meta_kb + 2048)) ] && [ $i -lt 40 ]; do
	head -c 1048576 /dev/urandom > "$M3/c/d$i" 2>/dev/null && vv_sync "$M3" || break
	i=$((i + 1))
done
echo "# wrote $i MiB, $(free_kb) KiB free"
rc=0; err=$("$VV_BIN" snapshot create "$M3" b 2>&1) || rc=$?
echo "# $err"
check "small disk: create without room fails" test "$rc" = 1
check "small disk: the message says why" grep -q "no room on the store's disk" <<<"$err"
check "small disk: no file was left" test "$(ls "$S3/snapshots" | grep -c "\.db$")" = 1
check "small disk: snapshot a still reads" test "$(head -c 3 "$M3/.snapshots/a/c/f00007")" = yyy
for j in $(seq 0 $((i - 1))); do rm -f "$M3/c/d$j"; done
"$VV_BIN" trash purge "$M3" --all >/dev/null 2>&1 || true
for k in $(seq 1 300); do [ "$(free_kb)" -gt $((meta_kb * 2 + 4096)) ] && break; sleep 0.2; done
check "small disk: with room again, create works" sh -c "'$VV_BIN' snapshot create '$M3' b >/dev/null"
check "small disk: unmount" vv_umount "$M3"
umount "$FS"
test_done
