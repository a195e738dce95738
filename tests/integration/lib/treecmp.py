#!/usr/bin/python3
"""treecmp.py - compare two directory trees the way cp -a / rsync -aAXH /
tar x should reproduce them, and record/check inode numbers.

  treecmp.py compare SRC DST [--no-links] [--no-symlink-times] [--no-acl]
      Walks both trees (without following symlinks) and compares, per
      relative path: file type, permission bits (incl. setuid/setgid/sticky),
      uid, gid, size, mtime in nanoseconds (the root is skipped), content
      (sha256), symlink target, rdev of devices, xattrs (all names except
      system.posix_acl_* and computed user.vecvault.* ones that only the
      destination has), POSIX ACLs (getfacl -n output), and hard-link
      structure (same partition of paths into inode groups, same st_nlink).
      Prints one line per difference; exit status 1 if there is any.

  treecmp.py inodes ROOT OUT       record "ino<TAB>relpath" for every entry
  treecmp.py inocheck ROOT FILE    every recorded path still has its inode
  treecmp.py inofresh ROOT FILE... no entry under ROOT has an inode number
                                   listed in any FILE unless it is the same
                                   path (catches reuse of freed numbers)
"""
import hashlib
import os
import stat
import subprocess
import sys

VEC_PREFIX = "user.vecvault."


def walk(root):
    """relpath -> lstat result for every entry below root (root is '.')."""
    out = {".": os.lstat(root)}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            out[os.path.relpath(p, root)] = os.lstat(p)
    return out


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def xattrs(path):
    d = {}
    for n in os.listxattr(path, follow_symlinks=False):
        if n.startswith("system.posix_acl_"):
            continue
        try:
            d[n] = os.getxattr(path, n, follow_symlinks=False)
        except OSError as e:
            d[n] = "<%s>" % e.strerror
    return d


def acls(root):
    """relpath -> getfacl text (numeric, no header) for every non-symlink."""
    r = subprocess.run(["getfacl", "-R", "-P", "-n", "."], cwd=root,
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit("getfacl failed in %s: %s" % (root, r.stderr))
    out, cur, lines = {}, None, []
    for line in r.stdout.splitlines() + [""]:
        if line.startswith("# file: "):
            cur, lines = os.path.normpath(line[8:]), []
        elif line.startswith("#"):
            continue
        elif line == "":
            if cur is not None:
                out[cur] = "\n".join(sorted(lines))
            cur = None
        else:
            lines.append(line)
    return out


def compare(src, dst, links=True, symlink_times=True, acl=True):
    errs = []
    a, b = walk(src), walk(dst)
    for p in sorted(set(a) - set(b)):
        errs.append("missing in dst: %s" % p)
    for p in sorted(set(b) - set(a)):
        errs.append("extra in dst: %s" % p)
    for p in sorted(set(a) & set(b)):
        sa, sb = a[p], b[p]
        sp, dp = os.path.join(src, p), os.path.join(dst, p)
        if stat.S_IFMT(sa.st_mode) != stat.S_IFMT(sb.st_mode):
            errs.append("%s: type %o != %o" % (p, stat.S_IFMT(sa.st_mode),
                                               stat.S_IFMT(sb.st_mode)))
            continue
        lnk = stat.S_ISLNK(sa.st_mode)
        if not lnk and stat.S_IMODE(sa.st_mode) != stat.S_IMODE(sb.st_mode):
            errs.append("%s: mode %o != %o" % (p, stat.S_IMODE(sa.st_mode),
                                               stat.S_IMODE(sb.st_mode)))
        if (sa.st_uid, sa.st_gid) != (sb.st_uid, sb.st_gid):
            errs.append("%s: owner %d:%d != %d:%d" % (p, sa.st_uid, sa.st_gid,
                                                      sb.st_uid, sb.st_gid))
        if not stat.S_ISDIR(sa.st_mode) and sa.st_size != sb.st_size:
            errs.append("%s: size %d != %d" % (p, sa.st_size, sb.st_size))
        if p != "." and (symlink_times or not lnk) and sa.st_mtime_ns != sb.st_mtime_ns:
            errs.append("%s: mtime_ns %d != %d" % (p, sa.st_mtime_ns, sb.st_mtime_ns))
        if stat.S_ISREG(sa.st_mode) and sa.st_size == sb.st_size:
            if sha(sp) != sha(dp):
                errs.append("%s: content differs" % p)
        if lnk and os.readlink(sp) != os.readlink(dp):
            errs.append("%s: symlink target %r != %r" % (p, os.readlink(sp), os.readlink(dp)))
        if stat.S_ISCHR(sa.st_mode) or stat.S_ISBLK(sa.st_mode):
            if sa.st_rdev != sb.st_rdev:
                errs.append("%s: rdev %x != %x" % (p, sa.st_rdev, sb.st_rdev))
        if not lnk:
            xa, xb = xattrs(sp), xattrs(dp)
            for n in set(xb) - set(xa):
                if n.startswith(VEC_PREFIX):
                    del xb[n]
            if xa != xb:
                errs.append("%s: xattrs %r != %r" % (p, xa, xb))
        if links and not stat.S_ISDIR(sa.st_mode) and sa.st_nlink != sb.st_nlink:
            errs.append("%s: nlink %d != %d" % (p, sa.st_nlink, sb.st_nlink))
    if links:
        def groups(m):
            g = {}
            for p, s in m.items():
                if not stat.S_ISDIR(s.st_mode):
                    g.setdefault(s.st_ino, set()).add(p)
            return sorted(sorted(v) for v in g.values() if len(v) > 1)
        ga, gb = groups(a), groups(b)
        if ga != gb:
            errs.append("hard-link groups differ: %r != %r" % (ga, gb))
    if acl:
        fa, fb = acls(src), acls(dst)
        for p in sorted(set(fa) | set(fb)):
            if fa.get(p) != fb.get(p):
                errs.append("%s: acl %r != %r" % (p, fa.get(p), fb.get(p)))
    return errs


def main():
    args = sys.argv[1:]
    if not args:
        raise SystemExit(__doc__)
    cmd = args.pop(0)
    if cmd == "compare":
        opts = [x for x in args if x.startswith("--")]
        pos = [x for x in args if not x.startswith("--")]
        errs = compare(pos[0], pos[1], links="--no-links" not in opts,
                       symlink_times="--no-symlink-times" not in opts,
                       acl="--no-acl" not in opts)
        for e in errs[:50]:
            print("# " + e)
        if len(errs) > 50:
            print("# ... %d more" % (len(errs) - 50))
        sys.exit(1 if errs else 0)
    elif cmd == "inodes":
        m = walk(args[0])
        with open(args[1], "w") as f:
            for p in sorted(m):
                f.write("%d\t%s\n" % (m[p].st_ino, p))
    elif cmd == "inocheck":
        bad = 0
        with open(args[1]) as f:
            for line in f:
                ino, p = line.rstrip("\n").split("\t", 1)
                try:
                    now = os.lstat(os.path.join(args[0], p)).st_ino
                except OSError as e:
                    print("# %s: %s" % (p, e.strerror))
                    bad += 1
                    continue
                if now != int(ino):
                    print("# %s: inode %s became %d" % (p, ino, now))
                    bad += 1
        sys.exit(1 if bad else 0)
    elif cmd == "inofresh":
        old = {}
        for fn in args[1:]:
            with open(fn) as f:
                for line in f:
                    ino, p = line.rstrip("\n").split("\t", 1)
                    old.setdefault(int(ino), set()).add(p)
        bad = 0
        for p, s in walk(args[0]).items():
            if s.st_ino in old and p not in old[s.st_ino]:
                print("# %s reuses inode %d (was %s)" % (p, s.st_ino, sorted(old[s.st_ino])))
                bad += 1
        sys.exit(1 if bad else 0)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
