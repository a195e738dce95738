#!/bin/bash
# t6044-trash-purge-links: a purged tree never holds a file that lives on
# through another name, so no survivor is left with its primary parent (the
# directory its rights, paths and links are taken from) in the purged
# tree.  A file reaches the trash only with its last name (the removal of
# another name moves the primary parent to a remaining one, drop_entry),
# and no name is added into or out of a trashed tree by any route: ln and
# mv through .trash, a directory descriptor and a file descriptor opened
# before the removal.  So the purge of such a tree leaves the outside name
# whole: it reads, takes a new link (which needs the primary parent) and
# goes to the trash by its own path.  Passes on main: it pins down why the
# purge (vault_trash.c free_tree) needs no primary-parent move of its own;
# with drop_entry's move removed (vault_ns.c), 2 checks fail.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
vv_init "$S" >/dev/null 2>&1
vv_mount "$S" "$M"
mkdir -p "$M/c/D/sub" "$M/c/E"
echo shared > "$M/c/D/sub/f"
echo alone > "$M/c/D/sub/t"
ln "$M/c/D/sub/f" "$M/c/E/g"                  # primary parent: D/sub
echo inner > "$M/c/D/sub/h"
ln "$M/c/D/sub/h" "$M/c/D/h2"                 # both names inside the tree

# Descriptors opened before the removal, tried after it.
"$PY" - "$M" > "$T/fd.out" 2>&1 <<'PY'
import errno, os, shutil, sys
m = sys.argv[1]
dfd = os.open(m + "/c/D/sub", os.O_RDONLY | os.O_DIRECTORY)
tfd = os.open(m + "/c/D/sub/t", os.O_RDONLY)
shutil.rmtree(m + "/c/D")
def try_(what, f):
    try:
        f()
        print(what, "OK")
    except OSError as e:
        print(what, errno.errorcode.get(e.errno, e.errno))
try_("link-into-dirfd", lambda: os.link(m + "/c/E/g", "g3", dst_dir_fd=dfd))
try_("rename-into-dirfd", lambda: os.rename(m + "/c/E/g", "g4", dst_dir_fd=dfd))
try_("create-in-dirfd", lambda: os.close(os.open("new", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=dfd)))
try_("linkat-trashed-fd", lambda: os.link("/proc/self/fd/%d" % tfd, m + "/c/E/t2", follow_symlinks=True))
PY
check "rm -rf of the tree" test ! -e "$M/c/D"
check "  f was not trashed (not its last name)" test "$(cat "$M/c/E/g")" = shared
sed 's/^/# /' "$T/fd.out"
check "no link into the removed directory by its old descriptor" eval '! grep -q "link-into-dirfd OK" "$T/fd.out"'
check "  no rename into it" eval '! grep -q "rename-into-dirfd OK" "$T/fd.out"'
check "  no file made in it" eval '! grep -q "create-in-dirfd OK" "$T/fd.out"'
check "  no new name for the trashed file by its descriptor" eval '! grep -q "linkat-trashed-fd OK" "$T/fd.out"'
check "  and none of them reached the live tree" test ! -e "$M/c/E/t2"
expect_errno EPERM link "$M/.trash/files/D/sub/t" "$M/c/E/t3"
expect_errno EROFS link "$M/c/E/g" "$M/.trash/files/D/sub/g5"
want root EROFS rename "$M/c/E/g" "$M/.trash/files/D/sub/g6"
check "the trashed tree holds t and h (by one of its names), not f" \
	eval 'test -e "$M/.trash/files/D/sub/t" -a ! -e "$M/.trash/files/D/sub/f" &&
	      test "$(ls "$M/.trash/files/D/sub/h" "$M/.trash/files/D/h2" 2>/dev/null | wc -l)" = 1'

check "purge the tree" "$VV_BIN" trash purge "$M" /c/D
check "the outside name reads" test "$(cat "$M/c/E/g")" = shared
check "  has one link" test "$(stat -c %h "$M/c/E/g")" = 1
check "  takes a new one (its primary parent is live)" ln "$M/c/E/g" "$M/c/E/g7"
check "  both names read" test "$(cat "$M/c/E/g7")" = shared
rm -f "$M/c/E/g7"
check "the outside name removed" rm "$M/c/E/g"
check "its removal is trashed by its own path" \
	grep -qx "Path=/c/E/g" "$M/.trash/info/g.trashinfo"
check "and restored there" "$VV_BIN" trash restore "$M" /c/E/g
check "  whole" test "$(cat "$M/c/E/g")" = shared
vv_umount "$M"
check "fsck is clean" "$VV_BIN" fsck "$S" --passfile "$PASSFILE"
test_done
