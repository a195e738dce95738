#!/usr/bin/env bash
# t6034-trash-lite-attacks: the trash whose rows are the names in
# .trash/files (no entries; rm -rf's grouping from the daemon's memory,
# docs/design.md "Recycle bin") against what users may try and what the
# memory does not know:
# - one user taking name after name of a file in the trash (x, x.2 ...
#   x.99): another user's removal of x still goes to the trash, under a
#   name of its own, which the first may not purge or restore;
# - a removal, a restore by mv and the same name removed again before the
#   rmdir: the tree holds the file once, the stale memory of the first
#   removal grouping nothing;
# - two removals of one name in one directory before its rmdir: the newest
#   joins the tree, the older stays an item of its own;
# - a directory emptied before a remount: its items stay items of their
#   own, each restorable by its original path, after its directory;
# - the parts of a tree: not found by name in .trash/files by anyone;
# - fsck clean at the end.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
F=$M/.trash/files
vv_init "$S" >/dev/null 2>&1
vv_mount "$S" "$M"
mkdir -m 1777 "$M/pub"
count() { ls -A "$F" | grep -c "^$1" || true; }

# --- names taken one after another ---------------------------------------------
check "u1000 removes x 100 times" as_u1000 "$PY" - "$M/pub" <<'PY'
import os, sys
for i in range(100):
    p = os.path.join(sys.argv[1], "x")
    open(p, "w").write("u1000 %d\n" % i)
    os.unlink(p)
PY
check "x, x.2 ... x.99 and one more are items" test "$(count x)" = 100
check "x.2 holds the second" test "$(cat "$F/x.2")" = "u1000 1"
check "u1001 removes its own x" sh -c "echo u1001 > '$M/pub/x' && chown 1001:1001 '$M/pub/x' && setpriv --reuid=1001 --regid=1001 --groups=2000 -- rm '$M/pub/x'"
check "it is the 101st item" test "$(count x)" = 101
u1001name=$(grep -lx u1001 "$F"/x* 2>/dev/null | xargs -r -n1 basename || true)
check "under a name of its own" test -n "$u1001name"
want u1000 EPERM rename "$F/$u1001name" "$M/pub/stolen"
want u1000 EPERM unlink "$F/$u1001name"
check "u1001 restores it by mv" as_u1001 mv "$F/$u1001name" "$M/pub/x"
check "with its bytes" test "$(cat "$M/pub/x")" = u1001
check "purge u1000's" sh -c "'$VV_BIN' trash purge '$M' --all >/dev/null"
rm -f "$M/pub/x"
check "purge" sh -c "'$VV_BIN' trash purge '$M' --all >/dev/null"

# --- restore and remove again before the rmdir --------------------------------
mkdir "$M/pub/d"
echo one > "$M/pub/d/a"
echo b > "$M/pub/d/b"
rm "$M/pub/d/a"
check "restore a by mv" mv "$F/a" "$M/pub/d/a"
echo two > "$M/pub/d/a"
check "rm -rf d" rm -rf "$M/pub/d"
check "one item: d" test "$(ls -A "$F")" = d
check "d holds a and b" test "$(ls "$F/d" | tr '\n' ' ')" = "a b "
check "a is the last one" test "$(cat "$F/d/a")" = two
check "restore d" sh -c "'$VV_BIN' trash restore '$M' /pub/d >/dev/null"
check "whole" test "$(cat "$M/pub/d/a")$(cat "$M/pub/d/b")" = twob

# --- one name removed twice before the rmdir ------------------------------------
echo old > "$M/pub/d/a"
rm "$M/pub/d/a"
echo new > "$M/pub/d/a"
rm -rf "$M/pub/d"
check "d and the older a are items" test "$(ls -A "$F" | sort | tr '\n' ' ')" = "a d "
check "the older a is the item" test "$(cat "$F/a")" = old
check "the newest a joined d" test "$(cat "$F/d/a")" = new
check "restore d" sh -c "'$VV_BIN' trash restore '$M' /pub/d >/dev/null"
check "the older a is not restored over it" sh -c "! '$VV_BIN' trash restore '$M' /pub/d/a 2>/dev/null"
check "mv it to another name" mv "$F/a" "$M/pub/d/a-old"
check "both are back" test "$(cat "$M/pub/d/a")$(cat "$M/pub/d/a-old")" = newold
rm -rf "$M/pub/d"
check "purge" sh -c "'$VV_BIN' trash purge '$M' --all >/dev/null"

# --- the parts of a tree are no names --------------------------------------------
mkdir -p "$M/pub/t/s"
echo y > "$M/pub/t/s/y"
echo z > "$M/pub/t/z"
rm -rf "$M/pub/t"
want root ENOENT stat "$F/y"
want root ENOENT stat "$F/s"
want nobody ENOENT stat "$F/z"
want u1000 ENOENT stat "$M/.trash/info/z.trashinfo"
check "a new removal of z takes the next suffix (the part keeps its name)" sh -c "echo z2 > '$M/pub/z' && rm '$M/pub/z' && test \"\$(cat '$F/z.2')\" = z2"
check "the tree holds y" test "$(cat "$F/t/s/y")" = y
check "purge" sh -c "'$VV_BIN' trash purge '$M' --all >/dev/null"

# --- emptied before a remount ---------------------------------------------------
mkdir -p "$M/pub/r/s"
echo f > "$M/pub/r/s/f"
rm "$M/pub/r/s/f"
check "unmount" vv_umount "$M"
vv_mount "$S" "$M"
check "rmdir s and r after the remount" sh -c "rmdir '$M/pub/r/s' && rmdir '$M/pub/r'"
check "r and f are items (f was removed before the remount)" test "$(ls -A "$F" | sort | tr '\n' ' ')" = "f r "
check "f's .trashinfo names its path" sh -c "grep -qx 'Path=/pub/r/s/f' '$M/.trash/info/f.trashinfo'"
check "restore r (with s)" sh -c "'$VV_BIN' trash restore '$M' /pub/r >/dev/null && test -d '$M/pub/r/s'"
check "then f, into s" sh -c "'$VV_BIN' trash restore '$M' /pub/r/s/f >/dev/null && test \"\$(cat '$M/pub/r/s/f')\" = f"

check "unmount" vv_umount "$M"
check "fsck is clean" "$VV_BIN" fsck "$S" --passfile "$PASSFILE" --dry-run
test_done
