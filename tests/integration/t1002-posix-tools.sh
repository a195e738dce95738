#!/bin/bash
# t1002-posix-tools: ordinary tools on a real mount.  A source tree (nested
# dirs, ~300 files of varied sizes incl. block boundaries, a sparse file,
# hard links, symlinks, a fifo, xattrs, ACLs, setuid/setgid/sticky modes,
# other owners, nanosecond mtimes; lib/mktree.py) goes in with cp -a,
# rsync -aAXH (a second rsync transfers nothing) and tar x, each compared
# with lib/treecmp.py (mode, owner, size, mtime ns, content, hard-link
# groups, symlink targets, xattrs, getfacl).  Then mv within and across
# collections (os.rename gives EXDEV, mv copies), rm -r, mkdir -p deep,
# dd conv=notrunc, truncate up/down, mmap read and write+msync; a remount
# compares everything again, inode numbers are unchanged, and files created
# after deletions never get a previously used inode number.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

LIB=$(cd "$(dirname "$0")" && pwd)/lib
S=$T/store
M=$T/mnt
SRC=$T/src
REF=$T/ref

cmp_tree() { "$PY" "$LIB/treecmp.py" compare "$@"; }

check "init" vv_init "$S"
check "mount" vv_mount "$S" "$M"
check "build the source tree" "$PY" "$LIB/mktree.py" "$SRC"
mkdir -p "$REF"

# --- cp -a -------------------------------------------------------------
check "mkdir collections" mkdir "$M/c1" "$M/c2" "$M/c3"
check "cp -a into the mount" cp -a "$SRC" "$M/c1/tree"
check "diff -r after cp -a" diff -r --no-dereference -x fifo "$SRC" "$M/c1/tree"
check "metadata after cp -a (modes, owners, ns mtimes, links, xattrs, ACLs)" \
	cmp_tree "$SRC" "$M/c1/tree"
check "fifo copied as a fifo" test -p "$M/c1/tree/links/fifo"
check "setgid dir kept its bit" test -g "$M/c1/tree/sgid"
check "sticky dir kept its bit" test -k "$M/c1/tree/sticky"
check "sparse copy is not fully allocated" sh -c \
	"test \$(stat -c %b '$M/c1/tree/sizes/sparse') -lt 8192"

# --- rsync -aAXH -------------------------------------------------------
check "rsync -aAXH into a second collection" rsync -aAXH "$SRC/" "$M/c2/tree/"
check "metadata after rsync -aAXH" cmp_tree "$SRC" "$M/c2/tree"
check "second rsync runs" sh -c "rsync -aAXH --itemize-changes '$SRC/' '$M/c2/tree/' > '$T/rsync2.out'"
check "second rsync transfers nothing (itemize empty)" test ! -s "$T/rsync2.out"
[ -s "$T/rsync2.out" ] && head -20 "$T/rsync2.out" | sed 's/^/# /'
check "rsync --checksum finds no differences either" sh -c \
	"test -z \"\$(rsync -aAXH --checksum --itemize-changes '$SRC/' '$M/c2/tree/')\""
# an rsync update: change a file in the source, rsync brings just that over
touch -r "$SRC/g" "$T/gstamp"
printf 'changed\n' > "$SRC/g/new-in-src"
touch -d '2020-02-02 02:02:02.5' "$SRC/g/new-in-src" "$SRC/g"
check "incremental rsync" sh -c "rsync -aAXH --itemize-changes '$SRC/' '$M/c2/tree/' > '$T/rsync3.out'"
check "incremental rsync sent only the new file" \
	test "$(grep -c . "$T/rsync3.out")" -le 2 -a "$(grep -c new-in-src "$T/rsync3.out")" = 1
check "metadata after incremental rsync" cmp_tree "$SRC" "$M/c2/tree"
rm "$SRC/g/new-in-src"
touch -r "$T/gstamp" "$SRC/g"
check "rsync --delete removes it again" rsync -aAXH --delete "$SRC/" "$M/c2/tree/"
check "trees equal after rsync --delete" cmp_tree "$SRC" "$M/c2/tree"

# --- tar ---------------------------------------------------------------
TAROPT="--xattrs --xattrs-include=* --acls --numeric-owner"
mkdir "$M/c3/tree"
check "tar c | tar x into the mount" sh -c \
	"tar -C '$SRC' $TAROPT -cSpf - . | tar -C '$M/c3/tree' $TAROPT --warning=no-timestamp -xpf -"
check "metadata after tar x" cmp_tree "$SRC" "$M/c3/tree"
check "tar c from the mount equals tar c from the source (listing)" sh -c \
	"tar -C '$SRC' --numeric-owner --full-time -cf - . | tar -tvf - | sort > '$T/l1' &&
	 tar -C '$M/c3/tree' --numeric-owner --full-time -cf - . | tar -tvf - | sort > '$T/l2' &&
	 diff '$T/l1' '$T/l2'"

# --- mv within and across collections ----------------------------------
cp -a "$SRC" "$M/c1/work"
ino_before=$(stat -c %i "$M/c1/work/a")
check "mv within a collection" mv "$M/c1/work/a" "$M/c1/moved-a"
check "mv within is a rename (same inode)" test "$(stat -c %i "$M/c1/moved-a")" = "$ino_before"
check "moved tree intact" cmp_tree "$SRC/a" "$M/c1/moved-a" --no-links
check "os.rename across collections gives EXDEV" \
	test "$(errno_of rename "$M/c1/moved-a" "$M/c2/moved-a")" = EXDEV
check "os.rename of a file across collections gives EXDEV" \
	test "$(errno_of rename "$M/c1/work/sizes/s1" "$M/c2/s1")" = EXDEV
check "os.link across collections gives EXDEV" \
	test "$(errno_of link "$M/c1/work/sizes/s1" "$M/c2/s1")" = EXDEV
check "mv across collections still works (copy+delete)" mv "$M/c1/moved-a" "$M/c2/moved-a"
check "source of the cross-collection mv is gone" test ! -e "$M/c1/moved-a"
check "cross-collection mv kept data and metadata" cmp_tree "$SRC/a" "$M/c2/moved-a" --no-links
check "mv a hard-linked file across collections" mv "$M/c1/work/links/h2" "$M/c2/h2"
check "remaining link count dropped to 1" test "$(stat -c %h "$M/c1/work/e/h2b")" = 1
check "moved hard-linked file content" cmp "$SRC/links/h2" "$M/c2/h2"

# record every inode now (before deletions) for the reuse check
"$PY" "$LIB/treecmp.py" inodes "$M" "$T/ino.all0"

# --- rm -r, mkdir -p ---------------------------------------------------
check "rm -r a tree" rm -r "$M/c3/tree"
check "rm -r left the collection empty" test -z "$(ls -A "$M/c3")"
check "rm -r of the rest of a work tree" rm -r "$M/c1/work/e" "$M/c1/work/links"
deep=$M/c1/deep$(printf '/d%02d' $(seq 1 60))
check "mkdir -p 60 levels deep" mkdir -p "$deep"
check "a file at the bottom" sh -c "echo bottom > '$deep/f' && test \"\$(cat '$deep/f')\" = bottom"
check "mkdir -p on an existing path is a no-op" mkdir -p "$deep"
for i in $(seq 1 40); do echo "$i" > "$M/c3/new$i"; done
mkdir "$M/c3/newdir"; ln -s x "$M/c3/newlink"; mkfifo "$M/c3/newfifo"
check "new files after deletes never reuse an inode number" \
	"$PY" "$LIB/treecmp.py" inofresh "$M" "$T/ino.all0"

# --- dd conv=notrunc, truncate, mmap ------------------------------------
F=$M/c1/work/sizes/s1048579
R=$REF/s1048579
cp "$SRC/sizes/s1048579" "$R"
head -c 200000 /dev/urandom > "$T/patch"
check "dd conv=notrunc over the middle (crosses 64 KiB blocks)" \
	dd if="$T/patch" of="$F" bs=1000 seek=300 conv=notrunc status=none
dd if="$T/patch" of="$R" bs=1000 seek=300 conv=notrunc status=none
check "dd result equals the reference" cmp "$R" "$F"
check "size unchanged by conv=notrunc" test "$(stat -c %s "$F")" = 1048579
check "dd past EOF extends (seek beyond the end)" \
	dd if="$T/patch" of="$F" bs=1 count=10 seek=1100000 conv=notrunc status=none
dd if="$T/patch" of="$R" bs=1 count=10 seek=1100000 conv=notrunc status=none
check "extended file equals the reference (zero gap)" cmp "$R" "$F"

G=$M/c1/work/sizes/s65537
GR=$REF/s65537
cp "$SRC/sizes/s65537" "$GR"
check "truncate down" truncate -s 1000 "$G"
truncate -s 1000 "$GR"
check "truncate down content" cmp "$GR" "$G"
check "truncate up" truncate -s 200000 "$G"
truncate -s 200000 "$GR"
check "truncate up reads zeros past old end" cmp "$GR" "$G"
check "truncate to a block boundary then write past it" sh -c \
	"truncate -s 65536 '$G' && printf abc >> '$G'"
truncate -s 65536 "$GR"; printf abc >> "$GR"
check "content after truncate+append" cmp "$GR" "$G"
check "truncate to 0" truncate -s 0 "$G"
check "size 0" test "$(stat -c %s "$G")" = 0
truncate -s 0 "$GR"

H=$M/c1/work/sizes/s4097
HR=$REF/s4097
MM=$M/c1/work/sizes/mm
MR=$REF/mm
cp "$SRC/sizes/s4097" "$HR"
head -c 300001 /dev/urandom > "$MR"
cp "$MR" "$MM"
MMAP_PY='
import mmap, sys
def patch(path):
    with open(path, "r+b") as f:
        m = mmap.mmap(f.fileno(), 0)
        for off in (0, 4095, 65535, 65536, 200000, len(m) - 1):
            m[off:off + 1] = b"\xa5"
        m[100000:100010] = b"0123456789"
        m.flush()
        m.close()
if sys.argv[1] == "read":
    with open(sys.argv[2], "rb") as f:
        m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
        data = m[:]
        m.close()
    sys.exit(0 if data == open(sys.argv[3], "rb").read() else 1)
patch(sys.argv[2])
'
check "mmap read equals read()" "$PY" -c "$MMAP_PY" read "$H" "$HR"
check "mmap read of a multi-block file" "$PY" -c "$MMAP_PY" read "$MM" "$MR"
check "mmap write + msync" "$PY" -c "$MMAP_PY" write "$MM"
"$PY" -c "$MMAP_PY" write "$MR"
check "mmap writes visible through read()" cmp "$MR" "$MM"

# --- remount: everything again, inode numbers stable ---------------------
"$PY" "$LIB/treecmp.py" inodes "$M" "$T/ino.before"
sync
check "unmount" vv_umount "$M"
check "remount" vv_mount "$S" "$M"
check "inode numbers identical across the remount" \
	"$PY" "$LIB/treecmp.py" inocheck "$M" "$T/ino.before"
check "cp -a tree after remount" cmp_tree "$SRC" "$M/c1/tree"
check "rsync tree after remount" cmp_tree "$SRC" "$M/c2/tree"
check "rsync after remount transfers nothing" sh -c \
	"test -z \"\$(rsync -aAXH --itemize-changes '$SRC/' '$M/c2/tree/')\""
check "dd result after remount" cmp "$R" "$F"
check "mmap writes after remount" cmp "$MR" "$MM"
check "truncated file after remount" cmp "$GR" "$G"
check "deep file after remount" test "$(cat "$deep/f")" = bottom
check "deleted trees stay deleted" test ! -e "$M/c3/tree" -a ! -e "$M/c1/work/e"
for i in $(seq 1 20); do echo "$i" > "$M/c3/after$i"; done
mkdir "$M/c3/afterdir"
check "new files after remount never reuse an inode number" \
	"$PY" "$LIB/treecmp.py" inofresh "$M" "$T/ino.all0" "$T/ino.before"
check "final unmount" vv_umount "$M"
check "fsck is clean" "$VV_BIN" fsck "$S" --passfile "$PASSFILE"

test_done
