#!/usr/bin/python3
"""mktree.py ROOT - build a deterministic source tree exercising what cp -a,
rsync -aAXH and tar have to preserve: nested directories, ~300 small files
of varied sizes (incl. 0, 1, 4095..65537, 1 MiB+3), a sparse file, hard
links, symlinks (relative, absolute, dangling, to a directory), a fifo,
user xattrs, POSIX ACLs (access and default), modes incl. setuid file,
setgid and sticky directories, other owners, and nanosecond mtimes set
(for directories last, so copying tools must restore them).  Must run as
root (chown)."""
import os
import random
import subprocess
import sys

root = sys.argv[1]
rng = random.Random(1002)
os.makedirs(root)
os.chmod(root, 0o755)


def P(*a):
    return os.path.join(root, *a)


def write(rel, data, mode=0o644):
    with open(P(rel), "wb") as f:
        f.write(data)
    os.chmod(P(rel), mode)


dirs = ["a", "a/b", "a/b/c", "a/b/c/d", "e", "e/f", "g", "sizes", "links",
        "attrs", "modes", "empty", "sgid", "sticky"]
for d in dirs:
    os.makedirs(P(d), exist_ok=True)
    os.chmod(P(d), 0o755)

# a few hundred small files of varied sizes across the nested dirs
small = ["a", "a/b", "a/b/c", "a/b/c/d", "e", "e/f", "g"]
for i in range(280):
    d = small[i % len(small)]
    n = rng.choice([0, 1, 2, 7, 100, 511, 512, 513, 1000, 3000, 4095, 4096,
                    5000, 9000, 20000])
    write("%s/f%03d.dat" % (d, i), rng.randbytes(n))

# the block-boundary sizes
for n in [0, 1, 4095, 4096, 4097, 65535, 65536, 65537, (1 << 20) + 3]:
    write("sizes/s%d" % n, rng.randbytes(n))

# a sparse file: 8 MiB with data at 0, 3 MiB+5 and the last byte
with open(P("sizes/sparse"), "wb") as f:
    f.write(b"head")
    f.seek(3 * 1048576 + 5)
    f.write(rng.randbytes(70000))
    f.truncate(8 * 1048576 - 1)
    f.seek(8 * 1048576 - 1)
    f.write(b"Z")

# hard links: a 3-link group across dirs, a 2-link group
write("links/h1", rng.randbytes(3333))
os.link(P("links/h1"), P("links/h1b"))
os.link(P("links/h1"), P("a/b/h1c"))
write("links/h2", rng.randbytes(70000))
os.link(P("links/h2"), P("e/h2b"))

# symlinks
os.symlink("h1", P("links/rel"))
os.symlink("../a/b/c", P("links/todir"))
os.symlink("/nonexistent/dangling/target", P("links/dangling"))
os.symlink("x" * 300 + "/y" * 100, P("links/longtarget"))
os.symlink(P("sizes/s1"), P("links/abs"))

# a fifo
os.mkfifo(P("links/fifo"), 0o640)

# xattrs on files, a dir, an empty value, a binary value
write("attrs/x1", b"with xattrs\n")
os.setxattr(P("attrs/x1"), "user.color", b"blue")
os.setxattr(P("attrs/x1"), "user.empty", b"")
os.setxattr(P("attrs/x1"), "user.bin", bytes(range(256)))
os.setxattr(P("attrs"), "user.dirattr", b"on a directory")
write("attrs/x2", b"")
os.setxattr(P("attrs/x2"), "user.big", rng.randbytes(3000))

# ACLs: access ACL on a file, access+default ACL on a dir
write("attrs/acl", b"acl file\n", 0o640)
subprocess.run(["setfacl", "-m", "u:65534:r--,g:100:rw-", P("attrs/acl")], check=True)
os.makedirs(P("attrs/acldir"))
subprocess.run(["setfacl", "-m", "u:65534:rwx,d:u:65534:r-x,d:g:100:rwx",
                P("attrs/acldir")], check=True)
write("attrs/acldir/inner", b"inner\n", 0o644)

# modes and owners
for m in [0o600, 0o400, 0o755, 0o700, 0o4755, 0o2755, 0o666, 0o000]:
    write("modes/m%04o" % m, b"mode %o\n" % m, m)
os.chown(P("modes/m0666"), 65534, 65534)
os.chown(P("modes/m0600"), 1000, 100)
os.chmod(P("modes/m0600"), 0o600)
os.chmod(P("sgid"), 0o2775)
os.chown(P("sgid"), 0, 100)
write("sgid/in", b"in setgid dir\n")
os.chown(P("sgid/in"), 0, 100)
os.chmod(P("sticky"), 0o1777)
os.chmod(P("empty"), 0o700)
os.chown(P("e/f"), 65534, 65534)

# nanosecond mtimes/atimes on everything, bottom-up so dirs keep theirs
ts = 978490000 * 10**9  # 2001-01-03
i = 0
for dirpath, dirnames, filenames in os.walk(root, topdown=False):
    for n in filenames + dirnames:
        i += 1
        t = ts + i * 1000003 * 10**9 + rng.randrange(10**9)
        os.utime(os.path.join(dirpath, n), ns=(t + 7, t), follow_symlinks=False)
# a couple through touch -d, with nanoseconds
subprocess.run(["touch", "-h", "-d", "2019-07-04 12:34:56.123456789 UTC",
                P("sizes/s1"), P("links/rel")], check=True)
subprocess.run(["touch", "-d", "1970-01-01 00:00:01.000000001 UTC", P("sizes/s0")],
               check=True)
subprocess.run(["touch", "-d", "2100-01-01 00:00:00.999999999 UTC", P("empty")],
               check=True)
