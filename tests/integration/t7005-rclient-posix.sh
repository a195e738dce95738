#!/bin/bash
# t7005-rclient-posix: `vecvault mount vv://USER@HOST:PORT/COLLECTION MNT`
# end to end over loopback against a listening mount of the same test:
# every op the foundation's POSIX tests use (create, write, read, truncate,
# mkdir, rmdir, rename with NOREPLACE and EXCHANGE, link, symlink, readlink,
# chmod, chown refused to a non-root vault user, xattrs, ACLs through
# setfacl/getfacl, statfs, fsync, fallocate, lseek SEEK_DATA/SEEK_HOLE,
# a directory larger than one readdir reply), each result checked through
# the server's local mount; rsync -aAXH into and out of the remote mount;
# `vecvault query` on the remote mount is scanned by the server and gives
# the same bytes as on the local mount; the mount is private to its user
# (nobody: EACCES) unless -o allow_other (then nobody acts as the vault
# user); audit records carry the client address and the vault user/key.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse
vv_need_numpy

vv_listen_mount "server: mount --listen"
vv_alice_coll
mkdir "$M/other"
echo "not alice's" > "$M/other/x"
# soon CMD...: CMD succeeds within a few seconds (the server's own mount
# caches attributes and entries for a moment; no timing asserted)
soon() {
	local i
	for i in $(seq 1 100); do "$@" && return 0; sleep 0.1; done
	return 1
}

check "mount vv://alice@127.0.0.1:P/coll --pin" vv_rmount "vv://alice@127.0.0.1:$P/coll" "$R" \
	--key-file "$T/key" --pin "$FP"
check "mounted as fuse.vecvault with the URL as its source" \
	grep -q "^vv://alice@127.0.0.1:$P/coll $R fuse.vecvault" /proc/mounts
check "the root is the collection" test "$(stat -c %u "$R")" = 1000

# --- data ---
head -c 3145728 /dev/urandom > "$T/rand"
cp "$T/rand" "$R/big"
check "write 3 MiB: the server has the same bytes" cmp "$T/rand" "$M/coll/big"
check "read it back through vv://" cmp "$T/rand" "$R/big"
check "owned by the vault user" test "$(stat -c %u "$M/coll/big")" = 1000
truncate -s 1000 "$R/big"
check "truncate: size on the server" soon test "$(stat -c %s "$M/coll/big")" = 1000
check "truncate: contents kept" cmp -n 1000 "$T/rand" "$R/big"
echo appended >> "$R/big"
check "append" test "$(tail -c 9 "$M/coll/big")" = appended

# --- namespace ---
mkdir "$R/d"
echo one > "$R/d/a"
echo two > "$R/d/b"
check "mkdir + create seen locally" test "$(cat "$M/coll/d/a")" = one
mv "$R/d/a" "$R/d/c"
check "rename" soon test "$(cat "$M/coll/d/c")" = one -a ! -e "$M/coll/d/a"
check "rename NOREPLACE onto an existing name: EEXIST; EXCHANGE swaps" "$PY" - "$R/d" <<'PY'
import ctypes, errno, os, sys
d = sys.argv[1]
libc = ctypes.CDLL(None, use_errno=True)
AT = -100
def ren(a, b, fl):
    r = libc.renameat2(AT, os.path.join(d, a).encode(), AT, os.path.join(d, b).encode(), fl)
    return 0 if r == 0 else ctypes.get_errno()
assert ren('c', 'b', 1) == errno.EEXIST
assert open(d + '/b').read() == 'two\n'
assert ren('c', 'b', 2) == 0
assert open(d + '/b').read() == 'one\n' and open(d + '/c').read() == 'two\n'
PY
ln "$R/d/b" "$R/d/hard"
check "link: nlink 2 on both sides" test "$(stat -c %h "$R/d/b")" = 2 -a "$(stat -c %h "$M/coll/d/b")" = 2
ln -s d/b "$R/sym"
check "symlink + readlink" test "$(readlink "$R/sym")" = d/b -a "$(readlink "$M/coll/sym")" = d/b
check "read through the symlink" test "$(cat "$R/sym")" = one
rm "$R/d/hard"
check "unlink" test ! -e "$M/coll/d/hard"
mkdir "$R/d/empty"
rmdir "$R/d/empty"
check "rmdir" test ! -e "$M/coll/d/empty"
want root ENOTEMPTY rmdir "$R/d"
want root ENOENT stat "$R/nothing"

# --- attributes ---
chmod 640 "$R/d/b"
check "chmod" test "$(stat -c %a "$M/coll/d/b")" = 640
check "chown to another uid: EPERM (alice is not root on the server)" \
	sh -c "! chown 1001 '$R/d/b' 2>/dev/null && test \$(stat -c %u '$M/coll/d/b') = 1000"
touch -d '2020-01-02 03:04:05' "$R/d/b"
check "utimes" soon test "$(stat -c %Y "$M/coll/d/b")" = "$(date -d '2020-01-02 03:04:05' +%s)"
setfattr -n user.color -v blue "$R/d/b"
check "setxattr / getxattr" test "$(getfattr --only-values -n user.color "$M/coll/d/b")" = blue
check "listxattr" sh -c "getfattr -d '$R/d/b' | grep -q 'user.color=\"blue\"'"
setfattr -x user.color "$R/d/b"
want root ENODATA getxattr "$R/d/b" user.color
setfacl -m u:1001:r "$R/d/b"
check "setfacl: the ACL is on the server" sh -c "getfacl -pn '$M/coll/d/b' | grep -q '^user:1001:r--'"
check "getfacl through vv://" sh -c "getfacl -pn '$R/d/b' | grep -q '^user:1001:r--'"
check "statfs" sh -c "stat -f -c '%b %S' '$R' | awk '\$1 > 0 && \$2 > 0 { ok = 1 } END { exit !ok }'"
want root ENOENT stat "$R/../other"                # the collection is the root

# --- fsync, fallocate, lseek ---
check "fsync, fallocate, SEEK_DATA/SEEK_HOLE" "$PY" - "$R/sparse" "$M/coll/sparse" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
os.pwrite(fd, b'x' * 4096, 0)
os.fsync(fd)
os.fdatasync(fd)
os.posix_fallocate(fd, 0, 1 << 20)
assert os.fstat(fd).st_size == 1 << 20
os.pwrite(fd, b'y' * 4096, 8 << 20)
assert os.lseek(fd, 0, os.SEEK_DATA) == 0
h = os.lseek(fd, 0, os.SEEK_HOLE)
assert 4096 <= h < 8 << 20, h
assert os.lseek(fd, h, os.SEEK_DATA) <= 8 << 20
os.close(fd)
assert os.stat(sys.argv[2]).st_size == (8 << 20) + 4096
PY

# --- a directory larger than one readdir reply ---
mkdir "$R/many"
"$PY" -c "
import os, sys
for i in range(600): open('$R/many/file-with-a-longish-name-%05d' % i, 'w').close()"
check "ls of 600 entries: the same names as the server's mount" \
	bash -c "diff <(ls '$R/many') <(ls '$M/coll/many') >/dev/null && test \$(ls '$R/many' | wc -l) = 600"
check "ls -l (readdirplus) of 600 entries" sh -c "test \$(ls -l '$R/many' | grep -c '^-') = 600"
rm -r "$R/many"
# the server's own mount drops its cached entry asynchronously (its
# notifier thread, docs/design.md "Remote access"): give it a moment
check "rm -r" sh -c "for i in \$(seq 1 50); do test ! -e '$M/coll/many' && exit 0; sleep 0.1; done; exit 1"

# --- rsync -aAXH in and out ---
SRC=$T/src
mkdir -p "$SRC/a/b"
head -c 200000 /dev/urandom > "$SRC/a/b/data"
echo small > "$SRC/a/s"
ln "$SRC/a/s" "$SRC/a/s2"
ln -s b/data "$SRC/a/l"
setfattr -n user.k -v v "$SRC/a/s"
setfacl -m u:1001:rw "$SRC/a/b/data"
chmod 750 "$SRC/a/b"
check "rsync -aAXH into vv://" rsync -aAXH --no-owner --no-group "$SRC/" "$R/rs/"
check "rsync -aAXH out of vv://" rsync -aAXH --no-owner --no-group "$R/rs/" "$T/back/"
check "round trip: same tree and bytes" diff -r "$SRC" "$T/back"
check "round trip: hard link kept" test "$(stat -c %i "$T/back/a/s")" = "$(stat -c %i "$T/back/a/s2")"
check "round trip: xattr kept" test "$(getfattr --only-values -n user.k "$T/back/a/s")" = v
check "round trip: ACL kept" sh -c "getfacl -pn '$T/back/a/b/data' | grep -q '^user:1001:rw-'"
check "round trip: modes kept" test "$(stat -c %a "$T/back/a/b")" = 750
check "rsync -a again: nothing to send" sh -c "test -z \"\$(rsync -aAXH --no-owner --no-group -i '$SRC/' '$R/rs/')\""

# --- query: scanned on the server, same bytes as locally ---
"$PY" - "$T" <<'PY'
import numpy as np, sys
rng = np.random.default_rng(7005)
np.save(sys.argv[1] + "/seg.npy", rng.standard_normal((20000, 32)).astype('<f4'))
np.save(sys.argv[1] + "/q.npy", rng.standard_normal((7, 32)).astype('<f4'))
PY
check "collection create on vv://" "$VV_BIN" collection create "$R/vec" --dim 32 --metric l2
cp "$T/seg.npy" "$R/vec/"
"$VV_BIN" query "$M/coll/vec" -q "$T/q.npy" -k 5 > "$T/q.local"
"$VV_BIN" query "$R/vec" -q "$T/q.npy" -k 5 > "$T/q.remote"
check "query on vv:// = query on the local mount (same bytes)" cmp "$T/q.local" "$T/q.remote"
# the server decrypts the segment into its cache first (the tool reads
# the file itself meanwhile): poll until the scan ran on the server
offloaded() {
	"$VV_BIN" query "$R/vec" -q "$T/q.npy" -k 5 --stats > "$T/q.remote2" 2> "$T/q.stats" &&
		grep -q "offload: 1 of 1 segments scanned by the daemon" "$T/q.stats"
}
check "query on vv:// is scanned by the server (the k-NN request)" soon offloaded
check "the server's scan gives the same bytes" cmp "$T/q.local" "$T/q.remote2"

# --- private unless allow_other ---
want nobody EACCES stat "$R/d"
want nobody EACCES listdir "$R"
check "mount vv:// -o allow_other" vv_rmount "vv://127.0.0.1:$P/coll" "$T/r2" \
	--key-file "$T/key" --pin "$FP" -o allow_other
want nobody OK create "$T/r2/by-nobody"
check "with allow_other nobody acts as the vault user" test "$(stat -c %u "$M/coll/by-nobody")" = 1000
check "unmount the allow_other mount" fusermount3 -u "$T/r2"

# --- -o ro ---
check "mount vv:// -o ro" vv_rmount "vv://127.0.0.1:$P/coll" "$T/r3" --key-file "$T/key" \
	--pin "$FP" -o ro
want root EROFS write "$T/r3/ro-file"
check "reads work on the ro mount" cmp -n 1000 "$T/rand" "$T/r3/big"
fusermount3 -u "$T/r3"

# --- audit ---
check "audit: a remote create carries the client address and alice/key id" \
	vv_audit_has "$AUD" op=create "client~^127\\.0\\.0\\.1:" "user=alice/$KID"
check "audit: the remote query" vv_audit_has "$AUD" "client~^127\\.0\\.0\\.1:" "user=alice/$KID" op=scan result=ok

check "unmount vv://" fusermount3 -u "$R"
check "the server's mount is intact" cmp -n 1000 "$T/rand" "$M/coll/big"
test_done
