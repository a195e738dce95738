#!/usr/bin/python3
"""posixsem.py CHECK ARGS... - one POSIX-semantics check on a path, for
t1003.  Exit 0 when it holds; otherwise print "# why" lines and exit 1.
Checks use only os calls and ctypes (renameat2, utimensat, fallocate)."""
import ctypes
import errno
import hashlib
import os
import stat
import sys
import threading
import time

libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
UTIME_NOW, UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2
FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE = 1, 2
SEEK_DATA, SEEK_HOLE = 3, 4

fails = []


def want(cond, msg):
    if not cond:
        fails.append(msg)
    return cond


def eno(fn, *a, **kw):
    """run fn, return 'OK' or the errno name (ENOTSUP is EOPNOTSUPP)."""
    try:
        fn(*a, **kw)
        return "OK"
    except OSError as e:
        if e.errno == errno.EOPNOTSUPP:
            return "EOPNOTSUPP"
        return errno.errorcode.get(e.errno, str(e.errno))


def want_eno(expect, what, fn, *a):
    got = eno(fn, *a)
    want(got == expect, "%s: expected %s, got %s" % (what, expect, got))


def renameat2(old, new, flags):
    r = libc.renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new),
                       ctypes.c_uint(flags))
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


class timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def utimensat(path, a, m):
    ts = (timespec * 2)(timespec(*a), timespec(*m))
    if libc.utimensat(AT_FDCWD, os.fsencode(path), ts, 0) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def fallocate(fd, mode, off, ln):
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
    if libc.fallocate(fd, mode, off, ln) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def put(path, data, mode=0o644):
    fd = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, mode)
    os.write(fd, data)
    os.close(fd)


def get(path):
    with open(path, "rb") as f:
        return f.read()


# ---------------------------------------------------------------- checks

def c_names(d):
    n255 = "n" * 255
    want_eno("OK", "create 255-byte name", put, os.path.join(d, n255), b"x")
    want(n255 in os.listdir(d), "255-byte name not listed")
    want(get(os.path.join(d, n255)) == b"x", "255-byte name content")
    u = "é" * 127 + "z"  # 255 bytes of UTF-8
    assert len(u.encode()) == 255
    want_eno("OK", "mkdir 255-byte UTF-8 name", os.mkdir, os.path.join(d, u))
    want(u in os.listdir(d), "255-byte UTF-8 dir not listed")
    m255 = "m" * 255
    want_eno("OK", "rename to a 255-byte name", os.rename,
             os.path.join(d, n255), os.path.join(d, m255))
    want_eno("OK", "link with a 255-byte name", os.link,
             os.path.join(d, m255), os.path.join(d, "l" * 255))
    want_eno("OK", "symlink with a 255-byte name", os.symlink,
             "t", os.path.join(d, "s" * 255))
    n256 = os.path.join(d, "n" * 256)
    want_eno("ENAMETOOLONG", "create 256", put, n256, b"x")
    want_eno("ENAMETOOLONG", "mkdir 256", os.mkdir, n256)
    want_eno("ENAMETOOLONG", "stat 256", os.stat, n256)
    want_eno("ENAMETOOLONG", "rename to 256", os.rename, os.path.join(d, m255), n256)
    want_eno("ENAMETOOLONG", "link to 256", os.link, os.path.join(d, m255), n256)
    want_eno("ENAMETOOLONG", "symlink named 256", os.symlink, "t", n256)
    want(os.path.exists(os.path.join(d, m255)), "file gone after failed rename")


def c_symlink_len(d):
    t = ("abcdefg/" * 512)[:4095]
    p = os.path.join(d, "long4095")
    want_eno("OK", "symlink with a 4095-byte target", os.symlink, t, p)
    if want(os.path.lexists(p), "4095 symlink missing"):
        r = os.readlink(p)
        want(r == t, "readlink returned %d bytes, not the 4095-byte target" % len(r))
        want(os.lstat(p).st_size == 4095, "lstat size %d" % os.lstat(p).st_size)
    want_eno("ENAMETOOLONG", "symlink with a 4096-byte target", os.symlink,
             "a" * 4096, os.path.join(d, "long4096"))
    want(not os.path.lexists(os.path.join(d, "long4096")), "4096 symlink exists")


def c_renameat2(d, other):
    a, b, x = (os.path.join(d, n) for n in ("ra", "rb", "rx"))
    put(a, b"AAA")
    put(b, b"BBBB")
    ia, ib = os.stat(a).st_ino, os.stat(b).st_ino
    want_eno("EEXIST", "RENAME_NOREPLACE onto an existing file", renameat2, a, b,
             RENAME_NOREPLACE)
    want(get(a) == b"AAA" and get(b) == b"BBBB", "NOREPLACE failure changed files")
    want_eno("OK", "RENAME_NOREPLACE to a new name", renameat2, a, x, RENAME_NOREPLACE)
    want(not os.path.exists(a) and get(x) == b"AAA", "NOREPLACE rename result")
    os.rename(x, a)
    want_eno("OK", "RENAME_EXCHANGE of two files", renameat2, a, b, RENAME_EXCHANGE)
    want(get(a) == b"BBBB" and get(b) == b"AAA", "EXCHANGE did not swap contents")
    want(os.stat(a).st_ino == ib and os.stat(b).st_ino == ia, "EXCHANGE did not swap inodes")
    dd = os.path.join(d, "rdir")
    os.mkdir(dd)
    put(os.path.join(dd, "inside"), b"in")
    want_eno("OK", "RENAME_EXCHANGE of a dir and a file", renameat2, dd, a, RENAME_EXCHANGE)
    want(os.path.isdir(a) and get(os.path.join(a, "inside")) == b"in", "dir not at file's name")
    want(os.path.isfile(dd) and get(dd) == b"BBBB", "file not at dir's name")
    # across directories: the moved dir's '..' must follow
    sub = os.path.join(d, "rsub")
    os.mkdir(sub)
    put(os.path.join(sub, "f"), b"sub")
    want_eno("OK", "RENAME_EXCHANGE across directories", renameat2,
             os.path.join(sub, "f"), a, RENAME_EXCHANGE)
    want(os.path.isdir(os.path.join(sub, "f")) and get(a) == b"sub", "cross-dir exchange")
    want(os.stat(os.path.join(sub, "f", "..")).st_ino == os.stat(sub).st_ino,
         "'..' of the exchanged dir is not its new parent")
    want_eno("ENOENT", "RENAME_EXCHANGE with a missing target", renameat2, b,
             os.path.join(d, "missing"), RENAME_EXCHANGE)
    want_eno("EINVAL", "NOREPLACE|EXCHANGE", renameat2, a, b,
             RENAME_NOREPLACE | RENAME_EXCHANGE)
    if other:
        o = os.path.join(other, "xchg")
        put(o, b"other")
        want_eno("EXDEV", "RENAME_EXCHANGE across collections", renameat2, b, o,
                 RENAME_EXCHANGE)
        want_eno("EXDEV", "RENAME_NOREPLACE across collections", renameat2, b,
                 os.path.join(other, "new"), RENAME_NOREPLACE)
        want(get(b) == b"AAA" and get(o) == b"other", "failed EXDEV changed files")


def c_rename_rules(d):
    top = os.path.join(d, "top")
    os.makedirs(os.path.join(top, "sub", "deeper"))
    want_eno("EINVAL", "rename a dir into its own subdir", os.rename, top,
             os.path.join(top, "sub", "x"))
    want_eno("EINVAL", "rename a dir into its own grandchild", os.rename, top,
             os.path.join(top, "sub", "deeper", "x"))
    f = os.path.join(d, "file")
    put(f, b"f")
    want_eno("EISDIR", "rename a file over a dir", os.rename, f, top)
    want_eno("ENOTDIR", "rename a dir over a file", os.rename, top, f)
    e = os.path.join(d, "emptydir")
    os.mkdir(e)
    want_eno("ENOTEMPTY", "rename a dir over a non-empty dir", os.rename, e, top)
    want_eno("OK", "rename a dir over an empty dir", os.rename,
             os.path.join(top, "sub"), e)
    want(os.path.isdir(os.path.join(e, "deeper")), "contents after dir-over-dir rename")
    want_eno("ENOTEMPTY", "rmdir a non-empty dir", os.rmdir, e)
    want_eno("ENOTDIR", "rmdir a file", os.rmdir, f)
    want_eno("EISDIR", "unlink a dir", os.unlink, top)
    want_eno("OK", "rename a file onto itself", os.rename, f, f)
    want(get(f) == b"f", "self-rename lost the file")
    h = os.path.join(d, "hl")
    os.link(f, h)
    want_eno("OK", "rename a hard link onto its other name", os.rename, f, h)
    want(os.path.exists(f) and os.path.exists(h), "rename between hard links must be a no-op")
    want_eno("OK", "rename over an existing file", os.rename, h, os.path.join(d, "hl2"))
    put(os.path.join(d, "victim"), b"victim")
    os.rename(os.path.join(d, "hl2"), os.path.join(d, "victim"))
    want(get(os.path.join(d, "victim")) == b"f", "rename over a file did not replace it")
    want(os.stat(f).st_nlink == 2, "nlink after renames %d" % os.stat(f).st_nlink)


def c_unlink_open(d):
    p = os.path.join(d, "openfile")
    put(p, b"still here" * 10000)
    fd = os.open(p, os.O_RDWR)
    os.unlink(p)
    want(not os.path.exists(p), "name still exists after unlink")
    want(os.fstat(fd).st_nlink == 0, "fstat nlink after unlink %d" % os.fstat(fd).st_nlink)
    put(p, b"new file")
    want(os.pread(fd, 100010, 0) == b"still here" * 10000, "open fd no longer reads old data")
    os.pwrite(fd, b"WRITE", 5)
    want(os.pread(fd, 12, 0) == b"stillWRITEst", "write to an unlinked open file")
    want(get(p) == b"new file", "new file with the same name got mixed up")
    os.fsync(fd)
    os.close(fd)
    want(get(p) == b"new file", "new file after close of the unlinked one")


def c_links(d):
    p = os.path.join(d, "lk")
    put(p, b"links")
    want(os.stat(p).st_nlink == 1, "new file nlink != 1")
    for i in range(3):
        os.link(p, "%s.%d" % (p, i))
    want(os.stat(p).st_nlink == 4, "nlink after 3 links: %d" % os.stat(p).st_nlink)
    want(len({os.stat("%s.%d" % (p, i)).st_ino for i in range(3)} |
             {os.stat(p).st_ino}) == 1, "links have different inodes")
    with open("%s.1" % p, "ab") as f:
        f.write(b"+more")
    want(get(p) == b"links+more", "write through one link not seen through another")
    os.unlink("%s.0" % p)
    want(os.stat(p).st_nlink == 3, "nlink after an unlink: %d" % os.stat(p).st_nlink)
    before = os.stat(p).st_ctime_ns
    time.sleep(0.01)
    os.link(p, "%s.x" % p)
    want(os.stat(p).st_ctime_ns >= before, "link must not move ctime backwards")
    want_eno("EEXIST", "link onto an existing name", os.link, p, "%s.1" % p)
    dd = os.path.join(d, "ldir")
    os.mkdir(dd)
    want_eno("EPERM", "link to a directory", os.link, dd, os.path.join(d, "ldir2"))
    want(os.stat(dd).st_nlink == 2, "empty dir nlink %d (want 2)" % os.stat(dd).st_nlink)
    for i in range(3):
        os.mkdir(os.path.join(dd, "s%d" % i))
    put(os.path.join(dd, "file"), b"")
    want(os.stat(dd).st_nlink == 5, "dir with 3 subdirs nlink %d (want 5)" % os.stat(dd).st_nlink)
    os.rename(os.path.join(dd, "s0"), os.path.join(d, "s0moved"))
    want(os.stat(dd).st_nlink == 4, "nlink after moving a subdir out %d (want 4)" % os.stat(dd).st_nlink)
    os.rmdir(os.path.join(dd, "s1"))
    want(os.stat(dd).st_nlink == 3, "nlink after rmdir of a subdir %d (want 3)" % os.stat(dd).st_nlink)


def c_fifo(d):
    p = os.path.join(d, "fifo")
    os.mkfifo(p, 0o600)
    want(stat.S_ISFIFO(os.stat(p).st_mode), "not a fifo")
    payload = os.urandom(200000)
    got = []

    def reader():
        with open(p, "rb") as f:
            got.append(f.read())
    t = threading.Thread(target=reader)
    t.start()
    with open(p, "wb") as f:
        f.write(payload)
    t.join(60)
    want(got and got[0] == payload, "data through the fifo differs")
    want(os.stat(p).st_size == 0, "fifo has a size")


def c_utimes(p):
    cases = [(1234567890123456789, 987654321987654321), (1, 999999999),
             (-1500000000123456789 + 0, 4102444800999999999), (0, 0)]
    for a, m in cases:
        r = eno(os.utime, p, ns=(a, m))
        if not want(r == "OK", "utime ns=%d,%d: %s" % (a, m, r)):
            continue
        s = os.stat(p)
        want((s.st_atime_ns, s.st_mtime_ns) == (a, m),
             "times %d,%d read back as %d,%d" % (a, m, s.st_atime_ns, s.st_mtime_ns))
    os.utime(p, ns=(111111111222222222, 333333333444444444))
    t0 = time.time_ns()
    utimensat(p, (0, UTIME_OMIT), (0, UTIME_NOW))
    t1 = time.time_ns()
    s = os.stat(p)
    want(s.st_atime_ns == 111111111222222222, "UTIME_OMIT changed atime to %d" % s.st_atime_ns)
    want(t0 - 2 * 10**9 <= s.st_mtime_ns <= t1 + 2 * 10**9,
         "UTIME_NOW mtime %d not near now %d" % (s.st_mtime_ns, t0))
    utimensat(p, (0, UTIME_NOW), (0, UTIME_OMIT))
    s2 = os.stat(p)
    want(s2.st_mtime_ns == s.st_mtime_ns, "UTIME_OMIT changed mtime")
    want(s2.st_atime_ns >= t0 - 2 * 10**9, "UTIME_NOW atime %d" % s2.st_atime_ns)
    want(s2.st_ctime_ns >= t0 - 2 * 10**9, "ctime not updated by utimes")


def c_mtime_updates(d):
    p = os.path.join(d, "mt")
    put(p, b"x")
    os.utime(p, ns=(10**18, 10**18))
    os.utime(d, ns=(10**18, 10**18))
    with open(p, "ab") as f:
        f.write(b"y")
    want(os.stat(p).st_mtime_ns != 10**18, "write did not update mtime")
    os.utime(p, ns=(10**18, 10**18))
    os.truncate(p, 0)
    want(os.stat(p).st_mtime_ns != 10**18, "truncate did not update mtime")
    put(os.path.join(d, "mt2"), b"")
    want(os.stat(d).st_mtime_ns != 10**18, "create did not update the dir mtime")
    os.utime(d, ns=(10**18, 10**18))
    os.unlink(os.path.join(d, "mt2"))
    want(os.stat(d).st_mtime_ns != 10**18, "unlink did not update the dir mtime")


def c_huge_truncate(p, store):
    def du(x):
        tot = 0
        for dp, dn, fn in os.walk(x):
            for n in fn:
                try:
                    tot += os.lstat(os.path.join(dp, n)).st_blocks * 512
                except OSError:
                    pass
        return tot
    before = du(store)
    put(p, b"start")
    PB = 1 << 50
    os.truncate(p, PB)
    s = os.stat(p)
    want(s.st_size == PB, "size after 1 PB truncate: %d" % s.st_size)
    want(s.st_blocks < 2048, "st_blocks after 1 PB truncate: %d" % s.st_blocks)
    with open(p, "rb") as f:
        want(f.read(5) == b"start", "head lost")
        f.seek(PB - 1)
        want(f.read(10) == b"\0", "read at 1 PB-1 is not one zero byte")
        f.seek(PB // 2 + 12345)
        want(f.read(70000) == bytes(70000), "middle of 1 PB file not zeros")
    with open(p, "r+b") as f:
        f.seek(PB - 3)
        f.write(b"END")
    with open(p, "rb") as f:
        f.seek(PB - 4)
        want(f.read() == b"\0END", "write at the end of a 1 PB file")
    want(os.stat(p).st_size == PB, "size changed by the write at its end")
    os.sync()
    grown = du(store) - before
    want(grown < 8 << 20, "store grew by %d bytes for a sparse 1 PB file" % grown)
    os.truncate(p, 3)
    want(get(p) == b"sta", "truncate down from 1 PB")


def c_seek(p):
    MB = 1 << 20
    with open(p, "wb") as f:
        f.write(b"\1" * 4096)
        f.seek(MB)
        f.write(b"\2" * 10)
        f.seek(3 * MB)
        f.write(b"\3" * 70000)
        f.truncate(5 * MB)
    fd = os.open(p, os.O_RDONLY)
    size = 5 * MB
    want(os.lseek(fd, 0, SEEK_DATA) == 0, "SEEK_DATA(0) != 0")
    h = os.lseek(fd, 0, SEEK_HOLE)
    want(4096 <= h <= size, "SEEK_HOLE(0) = %d" % h)
    r = os.lseek(fd, size - 1, SEEK_HOLE)
    want(r in (size - 1, size), "SEEK_HOLE(size-1) = %d (size %d)" % (r, size))
    want_eno("ENXIO", "SEEK_DATA at EOF", os.lseek, fd, size, SEEK_DATA)
    want_eno("ENXIO", "SEEK_HOLE past EOF", os.lseek, fd, size + 1, SEEK_HOLE)
    # walk the map: holes read as zeros, every nonzero byte lies in data
    off, nz_in_data = 0, 0
    while off < size:
        try:
            dstart = os.lseek(fd, off, SEEK_DATA)
        except OSError as e:
            want(e.errno == errno.ENXIO, "SEEK_DATA(%d): %s" % (off, e))
            dstart = size
        want(dstart >= off, "SEEK_DATA went backwards")
        if dstart > off:
            hole = os.pread(fd, dstart - off, off)
            want(hole == bytes(dstart - off), "hole [%d,%d) has data" % (off, dstart))
        if dstart >= size:
            break
        dend = os.lseek(fd, dstart, SEEK_HOLE)
        want(dend > dstart, "SEEK_HOLE(%d) = %d" % (dstart, dend))
        nz_in_data += sum(1 for b in os.pread(fd, dend - dstart, dstart) if b)
        off = dend
    want(nz_in_data == 4096 + 10 + 70000, "data regions hold %d nonzero bytes" % nz_in_data)
    os.close(fd)


def c_statfs(m, store):
    v = os.statvfs(m)
    h = os.statvfs(store)
    want(v.f_namemax == 255, "f_namemax %d" % v.f_namemax)
    want(v.f_bsize > 0 and v.f_frsize > 0, "block sizes %d %d" % (v.f_bsize, v.f_frsize))
    want(v.f_blocks >= v.f_bfree >= v.f_bavail > 0, "blocks %d bfree %d bavail %d" %
         (v.f_blocks, v.f_bfree, v.f_bavail))
    want(v.f_files >= v.f_ffree, "files %d ffree %d" % (v.f_files, v.f_ffree))
    free, hfree = v.f_bavail * v.f_frsize, h.f_bavail * h.f_frsize
    want(free <= hfree * 1.1 + (64 << 20), "reports %d free, host has %d" % (free, hfree))
    want(free >= hfree // 4 - (64 << 20), "reports %d free, host has %d" % (free, hfree))
    want(v.f_blocks * v.f_frsize <= h.f_blocks * h.f_frsize * 1.1 + (64 << 20),
         "total %d larger than the host fs" % (v.f_blocks * v.f_frsize))


def c_fallocate(d):
    p = os.path.join(d, "fa")
    put(p, b"abc")
    fd = os.open(p, os.O_RDWR)
    want_eno("OK", "fallocate mode 0", fallocate, fd, 0, 0, 100000)
    want(os.fstat(fd).st_size == 100000, "size after fallocate 0: %d" % os.fstat(fd).st_size)
    want(os.pread(fd, 100000, 0) == b"abc" + bytes(99997), "content after fallocate 0")
    want_eno("OK", "fallocate mode 0 inside the file", fallocate, fd, 0, 10, 50)
    want(os.fstat(fd).st_size == 100000, "fallocate inside changed the size")
    want(os.pread(fd, 3, 0) == b"abc", "fallocate inside changed data")
    want_eno("OK", "fallocate KEEP_SIZE", fallocate, fd, FALLOC_FL_KEEP_SIZE, 0, 1 << 22)
    want(os.fstat(fd).st_size == 100000, "KEEP_SIZE changed the size: %d" % os.fstat(fd).st_size)
    want_eno("EOPNOTSUPP", "fallocate PUNCH_HOLE", fallocate, fd,
             FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096)
    want(os.pread(fd, 3, 0) == b"abc", "refused PUNCH_HOLE changed data")
    os.close(fd)
    want_eno("OK", "posix_fallocate", lambda: os.posix_fallocate(os.open(p, os.O_RDWR), 0, 200001))
    want(os.stat(p).st_size == 200001, "size after posix_fallocate %d" % os.stat(p).st_size)
    fd = os.open(p, os.O_RDONLY)
    want_eno("EBADF", "fallocate on a read-only fd", fallocate, fd, 0, 0, 300000)
    os.close(fd)


def c_owner(d, uid, gid):
    """run as uid/gid: everything created belongs to uid:gid."""
    made = []
    put(os.path.join(d, "f"), b"x")
    made.append("f")
    os.mkdir(os.path.join(d, "d"))
    made.append("d")
    os.symlink("f", os.path.join(d, "l"))
    made.append("l")
    os.mkfifo(os.path.join(d, "p"))
    made.append("p")
    os.link(os.path.join(d, "f"), os.path.join(d, "h"))
    for n in made:
        s = os.lstat(os.path.join(d, n))
        want((s.st_uid, s.st_gid) == (uid, gid), "%s owned by %d:%d" % (n, s.st_uid, s.st_gid))


def c_append(d):
    p = os.path.join(d, "ap")
    put(p, b"0")
    a = os.open(p, os.O_WRONLY | os.O_APPEND)
    b = os.open(p, os.O_WRONLY | os.O_APPEND)
    exp = b"0"
    for i in range(50):
        chunk = (b"a%d;" % i) * (i + 1)
        os.write(a if i % 2 else b, chunk)
        exp += chunk
    big = os.urandom(300000)
    os.write(a, big)
    exp += big
    os.write(b, b"tail")
    exp += b"tail"
    os.close(a)
    os.close(b)
    want(get(p) == exp, "O_APPEND from two fds: got %d bytes, want %d" % (len(get(p)), len(exp)))
    fd = os.open(p, os.O_WRONLY | os.O_APPEND)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, b"!")
    os.close(fd)
    want(get(p) == exp + b"!", "O_APPEND after lseek(0) did not append")
    fd = os.open(p, os.O_WRONLY | os.O_TRUNC)
    want(os.fstat(fd).st_size == 0, "O_TRUNC left size %d" % os.fstat(fd).st_size)
    os.write(fd, b"new")
    os.close(fd)
    want(get(p) == b"new", "content after O_TRUNC + write")
    q = os.path.join(d, "big-trunc")
    put(q, os.urandom(5 << 20))
    fd = os.open(q, os.O_RDWR | os.O_TRUNC)
    os.close(fd)
    want(os.stat(q).st_size == 0 and get(q) == b"", "O_TRUNC of a 5 MiB file")


def c_far_write(p):
    off = 1 << 40
    data = os.urandom(1 << 20)
    fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o644)
    want(os.pwrite(fd, data, off) == len(data), "short pwrite at 2^40")
    os.close(fd)
    s = os.stat(p)
    want(s.st_size == off + len(data), "size %d" % s.st_size)
    want(s.st_blocks * 512 < 64 << 20, "st_blocks %d for 1 MiB of data" % s.st_blocks)
    fd = os.open(p, os.O_RDONLY)
    want(os.pread(fd, len(data), off) == data, "1 MiB at 2^40 reads back wrong")
    want(os.pread(fd, 4096, off - 4096) == bytes(4096), "bytes before 2^40 not zero")
    want(os.pread(fd, 4096, 0) == bytes(4096), "bytes at 0 not zero")
    want(os.pread(fd, 10, off + len(data)) == b"", "read at EOF not empty")
    os.close(fd)


def c_sha(p, expect=None):
    h = hashlib.sha256(get(p)).hexdigest()
    if expect is None:
        print(h)
    else:
        want(h == expect, "sha256 %s != %s" % (h, expect))


CHECKS = {
    "names": c_names, "symlink-len": c_symlink_len, "renameat2": c_renameat2,
    "rename-rules": c_rename_rules, "unlink-open": c_unlink_open,
    "links": c_links, "fifo": c_fifo, "utimes": c_utimes,
    "mtime-updates": c_mtime_updates, "huge-truncate": c_huge_truncate,
    "seek": c_seek, "statfs": c_statfs, "fallocate": c_fallocate,
    "append": c_append, "far-write": c_far_write, "sha": c_sha,
    "owner": lambda d: c_owner(d, os.getuid(), os.getgid()),
}

if __name__ == "__main__":
    fn = CHECKS[sys.argv[1]]
    try:
        fn(*sys.argv[2:])
    except Exception as e:  # an unexpected error is a failure, with its reason
        import traceback
        fails.append("unexpected %s: %s" % (type(e).__name__, e))
        for line in traceback.format_exc().splitlines():
            print("#   " + line)
    for f in fails:
        print("# " + f)
    sys.exit(1 if fails else 0)
