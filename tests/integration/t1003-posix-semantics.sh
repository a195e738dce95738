#!/bin/bash
# t1003-posix-semantics: POSIX corner cases on a real mount, mostly through
# os calls (lib/posixsem.py) and expect_errno: 255/256-byte names, 4095/4096
# byte symlink targets, renameat2 NOREPLACE/EXCHANGE, rename/rmdir/unlink
# rules, unlinked-but-open files, link counts, EXDEV across collections,
# fifos, device nodes on a nodev mount, sticky directories, setuid/setgid
# clearing (compared op by op with the same ops on the host /tmp), ns
# timestamps and UTIME_NOW/OMIT, a 1 PB sparse truncate, SEEK_DATA/HOLE,
# statfs, fallocate, ownership of files made by uid 65534, setgid directory
# inheritance, O_APPEND/O_TRUNC, a write at 2^40, and a 64 MiB file's
# sha256 through a remount.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

LIB=$(cd "$(dirname "$0")" && pwd)/lib
S=$T/store
M=$T/mnt
sem() { "$PY" "$LIB/posixsem.py" "$@"; }

check "init" vv_init "$S"
check "mount" vv_mount "$S" "$M"
mkdir "$M/c1" "$M/c2"
C=$M/c1
mkdir "$C/names" "$C/sym" "$C/ren" "$C/rules" "$C/misc"

# --- names, symlinks, renames --------------------------------------------
check "255-byte names work, 256 give ENAMETOOLONG" sem names "$C/names"
expect_errno ENAMETOOLONG create "$C/names/$(printf 'x%.0s' $(seq 256))"
check "255-byte names survive in ls" test "$(ls "$C/names" | awk '{ print length($0) }' | sort -u)" = 255
check "4095-byte symlink target round-trips, 4096 is ENAMETOOLONG" sem symlink-len "$C/sym"
check "renameat2 NOREPLACE/EXCHANGE (files, dir<->file, across dirs, EXDEV)" \
	sem renameat2 "$C/ren" "$M/c2"
check "rename/rmdir/unlink rules (EINVAL, EISDIR, ENOTDIR, ENOTEMPTY, hard-link no-op)" \
	sem rename-rules "$C/rules"
check "unlinked open file stays readable and writable until close" sem unlink-open "$C/misc"
check "hard link counts (files and directories)" sem links "$C/misc"

# --- across collections --------------------------------------------------
echo x > "$C/misc/xc"
mkdir "$C/misc/xcd"
expect_errno EXDEV rename "$C/misc/xc" "$M/c2/xc"
expect_errno EXDEV rename "$C/misc/xcd" "$M/c2/xcd"
expect_errno EXDEV link "$C/misc/xc" "$M/c2/xc"
echo y > "$M/c2/victim"
expect_errno EXDEV rename "$C/misc/xc" "$M/c2/victim"
check "failed EXDEV rename kept both files" test "$(cat "$C/misc/xc")$(cat "$M/c2/victim")" = xy
expect_errno EXDEV rename "$M/c2" "$C/misc/c2moved"
expect_errno OK rename "$M/c2" "$M/c2renamed"
expect_errno OK rename "$M/c2renamed" "$M/c2"
check "renamed collection keeps its content" test "$(cat "$M/c2/victim")" = y
expect_errno EXDEV rename "$C/misc/xc" "$M/rootfile"
expect_errno EXDEV link "$C/misc/xc" "$M/rootlink"

# --- special files ---------------------------------------------------------
check "fifo: writer and reader through the mount" sem fifo "$C/misc"
check "mknod a char device as root" mknod "$C/misc/null" c 1 3
check "device node has its type and rdev" test "$(stat -c '%F %t:%T' "$C/misc/null")" = "character special file 1:3"
check "nodev mount: the device cannot be opened" sh -c \
	"! (echo x > '$C/misc/null') 2>/dev/null && ! cat '$C/misc/null' 2>/dev/null"
check "mknod a block device as root" mknod "$C/misc/blk" b 7 0
check "nodev mount: block device cannot be opened" sh -c "! head -c1 '$C/misc/blk' >/dev/null 2>&1"
check "mknod a socket-type node via python" "$PY" -c "
import os, stat; os.mknod('$C/misc/sock', 0o600 | stat.S_IFSOCK)
assert stat.S_ISSOCK(os.lstat('$C/misc/sock').st_mode)"
chmod 777 "$C/misc"
got=$(as_nobody "$PY" -c 'import os, stat, errno, sys
try:
    os.mknod(sys.argv[1], 0o600 | stat.S_IFCHR, os.makedev(1, 3)); print("OK")
except OSError as e:
    print(errno.errorcode[e.errno])' "$C/misc/nd")
check "nobody cannot mknod a device (EPERM)" test "$got" = EPERM

# --- sticky directory ------------------------------------------------------
mkdir -m 1777 "$M/c1/tmp"
echo root > "$M/c1/tmp/rootfile"
chmod 666 "$M/c1/tmp/rootfile"
mkdir "$M/c1/tmp/rootdir"
expect_errno --as-nobody EPERM unlink "$M/c1/tmp/rootfile"
expect_errno --as-nobody EPERM rename "$M/c1/tmp/rootfile" "$M/c1/tmp/stolen"
expect_errno --as-nobody EPERM rmdir "$M/c1/tmp/rootdir"
expect_errno --as-nobody OK write "$M/c1/tmp/rootfile" "writable by mode"
expect_errno --as-nobody OK create "$M/c1/tmp/nobodyfile"
expect_errno --as-nobody OK rename "$M/c1/tmp/nobodyfile" "$M/c1/tmp/nobodyfile2"
echo r > "$M/c1/tmp/rootvictim"
expect_errno --as-nobody EPERM rename "$M/c1/tmp/nobodyfile2" "$M/c1/tmp/rootvictim"
expect_errno --as-nobody OK unlink "$M/c1/tmp/nobodyfile2"
as_nobody touch "$M/c1/tmp/byn"
expect_errno OK unlink "$M/c1/tmp/byn"
check "root's file survived the sticky refusals" test "$(cat "$M/c1/tmp/rootfile")" = "writable by mode"

# --- setuid/setgid clearing: same ops on the mount and on the host /tmp -----
# Each line "op mode-after"; the host's fs (ext4 or tmpfs) is the reference.
REFD=$T/ref
mkdir -m 755 "$REFD"
echo "# reference fs: $(stat -f -c %T "$REFD")"
kill_scenarios() {
	local d=$1 f
	w() { as_nobody "$PY" -c "$1" "$2" 2>&1 | tail -1 || true; }
	f=$d/k1; echo x > "$f"; chmod 6777 "$f"
	w 'import sys; open(sys.argv[1], "ab").write(b"y")' "$f"
	echo "nobody-write $(stat -c %a "$f")"
	f=$d/k2; echo x > "$f"; chmod 6777 "$f"
	w 'import os, sys; os.truncate(sys.argv[1], 1)' "$f"
	echo "nobody-truncate $(stat -c %a "$f")"
	f=$d/k3; echo x > "$f"; chmod 6777 "$f"
	w 'import os, sys; os.close(os.open(sys.argv[1], os.O_WRONLY | os.O_TRUNC))' "$f"
	echo "nobody-open-trunc $(stat -c %a "$f")"
	f=$d/k4; echo x > "$f"; chmod 6777 "$f"
	echo more >> "$f"
	echo "root-write $(stat -c %a "$f")"
	f=$d/k5; echo x > "$f"; chmod 6755 "$f"
	chown 65534:65534 "$f"
	echo "root-chown $(stat -c %a "$f")"
	f=$d/k6; echo x > "$f"; chmod 6755 "$f"
	"$PY" -c 'import os, sys; os.chown(sys.argv[1], -1, -1)' "$f"
	echo "root-chown-noop $(stat -c %a "$f")"
	f=$d/k7; echo x > "$f"; chmod 2767 "$f"
	w 'import sys; open(sys.argv[1], "ab").write(b"y")' "$f"
	echo "nobody-write-sgid-noexec $(stat -c %a "$f")"
	f=$d/k8; mkdir "$f"; chmod 6777 "$f"
	chown 65534:65534 "$f"
	echo "root-chown-dir $(stat -c %a "$f")"
	f=$d/k9; echo x > "$f"; chown 65534:0 "$f"; chmod 0777 "$f"
	w 'import os, sys; os.chmod(sys.argv[1], 0o2777)' "$f"
	echo "owner-chmod-sgid-not-in-group $(stat -c %a "$f")"
	f=$d/k10; echo x > "$f"; chown 65534:65534 "$f"; chmod 0777 "$f"
	w 'import os, sys; os.chmod(sys.argv[1], 0o6777)' "$f"
	echo "owner-chmod-sgid-in-group $(stat -c %a "$f")"
	f=$d/k11; echo x > "$f"; chmod 6777 "$f"
	"$PY" -c 'import os, sys; os.truncate(sys.argv[1], 0)' "$f"
	echo "root-truncate $(stat -c %a "$f")"
	f=$d/k12; echo x > "$f"; chmod 4777 "$f"
	w 'import os, sys; fd = os.open(sys.argv[1], os.O_WRONLY); os.pwrite(fd, b"", 0); os.close(fd)' "$f"
	echo "nobody-empty-write $(stat -c %a "$f")"
	f=$d/k13; echo x > "$f"; chmod 6777 "$f"
	w 'import os, sys; os.posix_fallocate(os.open(sys.argv[1], os.O_WRONLY), 0, 100)' "$f"
	echo "nobody-fallocate $(stat -c %a "$f")"
}
mkdir -m 777 "$C/kill"
(set +e; kill_scenarios "$REFD") > "$T/kill.ref" 2>&1
(set +e; kill_scenarios "$C/kill") > "$T/kill.vv" 2>&1
check "setuid/setgid kill on write/truncate/chown/chmod matches the host fs" \
	diff "$T/kill.ref" "$T/kill.vv"
diff "$T/kill.ref" "$T/kill.vv" | sed 's/^/# /'
echo x > "$C/kill/w1"; chmod 6777 "$C/kill/w1"
expect_errno --as-nobody OK append "$C/kill/w1" "data"
check "the write by nobody landed" test "$(cat "$C/kill/w1")" = "$(printf 'x\ndata')"
check "and cleared setuid and setgid" test "$(stat -c %a "$C/kill/w1")" = 777
echo x > "$C/kill/t1"; chmod 6777 "$C/kill/t1"
expect_errno --as-nobody OK truncate "$C/kill/t1" 1
check "a non-root write clears setuid (explicitly)" \
	test "$(awk '$1 == "nobody-write" { print $2 }' "$T/kill.vv")" = 777

# --- times ---------------------------------------------------------------
echo t > "$C/misc/times"
check "utimensat ns round-trip, UTIME_NOW, UTIME_OMIT" sem utimes "$C/misc/times"
check "write/truncate/create/unlink update mtimes" sem mtime-updates "$C/misc"
echo t > "$C/misc/rootonly"; chmod 644 "$C/misc/rootonly"
fails_as_nobody() { ! as_nobody "$@" 2>/dev/null; }
check "nobody cannot set explicit times on root's file" \
	fails_as_nobody touch -d 2000-01-01 "$C/misc/rootonly"
check "nobody cannot touch (UTIME_NOW) a file it cannot write" \
	fails_as_nobody touch "$C/misc/rootonly"
chmod 666 "$C/misc/rootonly"
check "nobody can touch (UTIME_NOW) a world-writable file" \
	as_nobody touch "$C/misc/rootonly"

# --- sparse, huge, seek, statfs, fallocate -----------------------------------
check "1 PB truncate is sparse: size, st_blocks, zero read, store growth" \
	sem huge-truncate "$C/misc/petabyte" "$S"
check "du of the 1 PB file is small" test "$(du -k "$C/misc/petabyte" | cut -f1)" -lt 65536
check "SEEK_DATA/SEEK_HOLE on a sparse file" sem seek "$C/misc/sparse"
check "statvfs values are sane, f_namemax 255" sem statfs "$M" "$S"
check "df -i works" df -i "$M"
check "fallocate mode 0 and KEEP_SIZE; PUNCH_HOLE is EOPNOTSUPP" sem fallocate "$C/misc"
check "a write of 1 MiB at 2^40 reads back" sem far-write "$C/misc/far"

# --- ownership, setgid directories -----------------------------------------
mkdir -m 777 "$C/own"
check "files made by uid 65534 belong to 65534:65534" as_nobody "$PY" "$LIB/posixsem.py" owner "$C/own"
mkdir "$C/sgid"; chown 0:100 "$C/sgid"; chmod 2777 "$C/sgid"
as_nobody sh -c "echo x > '$C/sgid/f' && mkdir '$C/sgid/sub' && mkfifo '$C/sgid/p'"
check "a file in a setgid dir inherits its gid" test "$(stat -c %u:%g "$C/sgid/f")" = 65534:100
check "a fifo in a setgid dir inherits its gid" test "$(stat -c %g "$C/sgid/p")" = 100
check "a subdir inherits gid and the setgid bit" test "$(stat -c %g "$C/sgid/sub")" = 100 -a -g "$C/sgid/sub"
check "a file without group exec keeps no setgid" test ! -g "$C/sgid/f"
as_nobody sh -c "echo y > '$C/sgid/sub/g'"
check "a grandchild file inherits the gid too" test "$(stat -c %g "$C/sgid/sub/g")" = 100

# --- O_APPEND, O_TRUNC --------------------------------------------------------
check "O_APPEND from two fds appends; O_TRUNC empties" sem append "$C/misc"

# --- a 64 MiB random file through a remount --------------------------------------
head -c $((64 << 20)) /dev/urandom > "$T/big"
want=$(sha256sum < "$T/big" | cut -d' ' -f1)
check "copy 64 MiB in" cp "$T/big" "$C/big"
rm -f "$T/big"
check "64 MiB sha256 before remount" sem sha "$C/big" "$want"
ino_big=$(stat -c %i "$C/big")
sync
check "unmount" vv_umount "$M"
check "remount" vv_mount "$S" "$M"
check "64 MiB sha256 after remount" sem sha "$C/big" "$want"
check "inode of the big file unchanged" test "$(stat -c %i "$C/big")" = "$ino_big"
check "1 PB file still 3 bytes after remount (truncated)" test "$(cat "$C/misc/petabyte")" = sta
check "file at 2^40 keeps its size after remount" \
	test "$(stat -c %s "$C/misc/far")" = $(((1 << 40) + (1 << 20)))
check "4095-byte symlink target after remount" \
	test "$(readlink "$C/sym/long4095" | wc -c)" = 4096
check "device node after remount" test "$(stat -c '%F %t:%T' "$C/misc/null")" = "character special file 1:3"
check "setgid subdir after remount" test "$(stat -c %g "$C/sgid/sub")" = 100 -a -g "$C/sgid/sub"
check "ns times after remount" test "$(stat -c %Y "$C/misc/times")" -gt 0
check "final unmount" vv_umount "$M"
check "fsck is clean" "$VV_BIN" fsck "$S" --passfile "$PASSFILE"

test_done
