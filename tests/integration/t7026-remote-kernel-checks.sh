#!/bin/bash
# t7026-remote-kernel-checks: what the kernel's VFS refuses before a local
# request reaches the daemon, a remote peer sends as it likes; the vault
# must refuse it itself, as the VFS would, and change nothing:
#   - a directory moved below itself (a loop cut off from the tree), a
#     directory unlinked, a file rmdir'ed, a directory renamed over a file
#     and a file over a directory, a hard link to a directory;
#   - names with '/' or NUL, and too long;
#   - OPEN of a directory (the kernel uses OPENDIR), a symlink (the kernel
#     follows it) or a FIFO, then READ: no bytes beyond what readdir and
#     readlink give anyone;
#   - trusted.* xattrs and security.capability by a non-root user, an ACL
#     set on a file one does not own.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse

vv_listen_mount
mkdir "$M/c"
chmod 777 "$M/c"
mkdir -p "$M/c/a/b/d"
echo data > "$M/c/a/b/d/f"
echo "root's" > "$M/c/rootfile"
chmod 666 "$M/c/rootfile"
chown -R 1000:1000 "$M/c/a"
"$VV_BIN" user add alice --uid 1000 --no-password "$M" >/dev/null
TA=$("$VV_BIN" key create alice "$M" 2>/dev/null)

check "namespace refusals" rkey "$TA" "
import struct
C = c.walk('/c'); A = c.walk('/c/a'); B = c.walk('/c/a/b'); D = c.walk('/c/a/b/d')
F = c.walk('/c/a/b/d/f')
bad = {}
def want(name, got, ok):
    if got not in ok:
        bad[name] = got
want('rename a into its own child', err('rename', C, 'a', B, 'loop', 0), (-10,))
want('rename a into its grandchild', err('rename', C, 'a', D, 'loop', 0), (-10,))
want('exchange a with its child', err('rename', C, 'a', A, 'b', 2), (-10,))
want('unlink a directory', err('unlink', B, 'd'), (-9, -1))
want('rmdir a file', err('rmdir', D, 'f'), (-8,))
c.call('mkdir', A, 'e', 0o755, 0)
want('directory over a file', err('rename', A, 'e', D, 'f', 0), (-8,))
want('file over a directory', err('rename', D, 'f', A, 'e', 0), (-9,))
want('hard link to a directory', err('link', D, A, 'dl'), (-1,))
print(bad if bad else 'ok')
assert not bad
"
check "the tree is whole" sh -c "test \"\$(cat '$M/c/a/b/d/f')\" = data && test -d '$M/c/a/e' && ! test -e '$M/c/a/b/loop'"
check "the daemon still answers" sh -c "'$VV_BIN' admin '$M' vault.ping >/dev/null"

check "names with '/', NUL, 256 bytes, '.' and '..' create nothing" rpy "
for name in ['x/y', 'x\\0y', 'n' * 256, '.', '..', '']:
    c = R.Client('127.0.0.1', $P)
    c.auth_key('$TA')
    try:
        c.call('mkdir', c.walk('/c'), name, 0o755, 0)
        sys.exit('mkdir %r worked' % name)
    except (R.Error, EOFError, ConnectionError):
        pass
    c.close()
print('ok')"
check "nothing new in /c" test "$(ls -A "$M/c" | tr '\n' ' ')" = "a rootfile "

check "OPEN of a directory, symlink or FIFO by inode" rkey "$TA" "
import stat
A = c.walk('/c/a')
c.call('symlink', A, 'ln', 'b/d/f')
c.call('mknod', A, 'fifo', stat.S_IFIFO | 0o644, 0, 0)
out = {}
for name in ['b', 'ln', 'fifo']:
    ino = c.walk('/c/a/' + name)
    try:
        fh = c.call('open', ino, 0)[0]
    except R.Error as e:
        out[name] = e.status
        continue
    try:
        out[name] = ('opened', c.call('read', fh, 0, 100))
    except R.Error as e:
        out[name] = ('opened', e.status)
print(out)
# nothing beyond what readdir and readlink tell anyone who may look
assert out['b'] in (-9, ('opened', -9), ('opened', [b''])), out
assert out['ln'] in (-14, -10, ('opened', -10), ('opened', [b'b/d/f'])), out
assert out['fifo'] in (-10, -5, -17, ('opened', -17), ('opened', [b''])), out
print('ok')"

check "xattrs the kernel keeps from non-root" rkey "$TA" "
F = c.walk('/c/a/b/d/f'); RF = c.walk('/c/rootfile')
bad = {}
for name, got, ok in [
    ('trusted.x on own file', err('setxattr', F, 'trusted.x', b'1', 0), (-1,)),
    ('security.capability on own file', err('setxattr', F, 'security.capability',
        bytes.fromhex('0000000200200000000000000000000000000000'), 0), (-1,)),
    ('ACL on a file of root', err('setxattr', RF, 'system.posix_acl_access',
        bytes.fromhex('02000000010006000000000002000700e8030000040006000000000010000700000000002000060000000000'), 0), (-1,)),
    ('chmod of a file of root', err('setattr', RF, 1, 0o777, 0, 0, 0, 0, 0, 0, 0, 0), (-1,)),
    ('chown of own file to root', err('setattr', F, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0), (-1,)),
]:
    if got not in ok:
        bad[name] = got
print(bad if bad else 'ok')
assert not bad"
check "no such xattr stored" sh -c "! getfattr -m - -d '$M/c/a/b/d/f' 2>/dev/null | grep -q trusted"
test_done
