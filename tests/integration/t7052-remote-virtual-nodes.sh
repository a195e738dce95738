#!/bin/bash
# t7052-remote-virtual-nodes: every op of the protocol, with the flags and
# offsets a peer may send, on each kind of node the vault makes up or keeps
# read-only: .trash and its info/ and files/ views, a .trashinfo (no node
# behind it), a trashed directory, .snapshots, a snapshot, its directories,
# files and symlinks; a live file and directory for comparison.  The
# daemon must answer each (t7049: a remote OPEN of a .trashinfo killed it)
# and nothing of a snapshot may change.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse

vv_listen_mount
vv_alice_coll
mkdir -p "$M/coll/sub" "$M/coll/gone"
echo data > "$M/coll/sub/f1"
ln -s f1 "$M/coll/sub/ln"
echo x > "$M/coll/gone/g"
chown -R 1000:1000 "$M/coll"
"$VV_BIN" snapshot create "$M" s1 >/dev/null
rm -r "$M/coll/gone"
DPID=$(pgrep -f "vecvault mount $S $M " | head -n 1)

cat > "$T/sweep.py" <<PY
import os, struct, sys, vvremote as R
def alive():
    try:
        os.kill($DPID, 0)
        return True
    except OSError:
        return False
def conn():
    c = R.Client('127.0.0.1', $P)
    c.auth_key(open('$T/key').read().strip())
    return c
c = conn()
knn = struct.pack('<I', 0x4e4e4b56) + bytes(16320 - 4)
knnd = struct.pack('<I', 0x444e4b56) + bytes(16320 - 4)
changed = []
def run(path, op, *a):
    global c
    try:
        c.call(op, *a)
        st = 0
    except R.Error as e:
        st = e.status
    except Exception:
        st = None                      # the connection ended: a new one
        if alive():
            c = conn()
    if not alive():
        print('# the daemon died at', op, 'on', path)
        sys.exit(1)
    if st == 0 and path.startswith('/.snapshots') and op in (
            'setattr', 'mknod', 'mkdir', 'symlink', 'link', 'unlink', 'rmdir', 'rename',
            'create', 'setxattr', 'removexattr', 'write', 'fallocate'):
        changed.append((op, path))
    return st
targets = ['/.trash', '/.trash/info', '/.trash/files', '/.trash/info/gone.trashinfo',
           '/.trash/files/gone', '/.snapshots', '/.snapshots/s1', '/.snapshots/s1/coll',
           '/.snapshots/s1/coll/sub', '/.snapshots/s1/coll/sub/f1',
           '/.snapshots/s1/coll/sub/ln', '/coll/sub/f1', '/coll/sub']
# every inode named before any op (the ops below move and remove things)
coll, f1 = c.walk('/coll'), c.walk('/coll/sub/f1')
inos = [(p, c.walk(p), c.walk(os.path.dirname(p))) for p in targets]
for path, ino, pino in inos:
    name = os.path.basename(path)
    run(path, 'getattr', ino); run(path, 'readlink', ino); run(path, 'access', ino, 7)
    run(path, 'statfs', ino)
    for valid in [1, 2, 4, 8, 16, 32, 64, 128, 256, 0xffffffff]:
        run(path, 'setattr', ino, valid, 0o7777, 0, 0, 0, 0, 0, 0, 0, 0)
    run(path, 'mknod', ino, 'x', 0o100644, 0, 0o22); run(path, 'mkdir', ino, 'x', 0o755, 0o22)
    run(path, 'symlink', ino, 'x', 't'); run(path, 'link', ino, coll, 'lnk')
    run(path, 'link', f1, ino, 'x')
    for fl in [0, 1, 2, 3, 0o1000, 0o2001, 0o40000, 0o200000]:
        try:
            fh = c.call('open', ino, fl)[0]
        except R.Error:
            fh = None
        if not alive():
            print('# the daemon died at open', oct(fl), 'on', path)
            sys.exit(1)
        if fh is None:
            continue
        run(path, 'read', fh, 0, 100); run(path, 'read', fh, 1 << 62, 100)
        run(path, 'write', fh, 0, b'x'); run(path, 'flush', fh); run(path, 'fsync', fh, 1)
        run(path, 'fallocate', fh, 0, 0, 10); run(path, 'lseek', fh, 0, 3)
        run(path, 'lseek', fh, 0, 4); run(path, 'knn', fh, knn)
        run(path, 'setattr', ino, 8, 0, 0, 0, 0, 0, 0, 0, 0, fh)
        run(path, 'release', fh); run(path, 'release', fh)
    try:
        fh = c.call('create', ino, 'x', 0o644, 2, 0o22)[-1]
        run(path, 'release', fh)
        changed.append(('create', path)) if path.startswith('/.snapshots') else None
    except R.Error:
        pass
    try:
        dh = c.call('opendir', ino)[0]
    except R.Error:
        dh = None
    if dh is not None:
        for off in [0, 1, 2, 3, 1 << 40, (1 << 64) - 1]:
            for plus in [0, 1]:
                run(path, 'readdir', dh, off, plus, 65536)
        run(path, 'knn', dh, knnd); run(path, 'knn', dh, knn)
        run(path, 'releasedir', dh); run(path, 'releasedir', dh)
    run(path, 'setxattr', ino, 'user.x', b'v', 0); run(path, 'getxattr', ino, 'user.x', 0)
    run(path, 'getxattr', ino, 'user.x', 100); run(path, 'listxattr', ino, 0)
    run(path, 'listxattr', ino, 100); run(path, 'removexattr', ino, 'user.x')
    run(path, 'unlink', ino, 'x'); run(path, 'rmdir', ino, 'x')
    run(path, 'rename', pino, name, coll, 'moved', 0)
    run(path, 'rename', coll, 'sub', ino, 'x', 2)
    run(path, 'unlink', pino, name); run(path, 'rmdir', pino, name)
    run(path, 'forget', ino, 1 << 40)
assert not changed, changed
print('# swept', len(targets), 'nodes')
PY
check "every op on every kind of virtual or read-only node: answered, the daemon alive" \
	rpy "$(cat "$T/sweep.py")"
check "the snapshot is as it was" sh -c "[ \"\$(cat '$M/.snapshots/s1/coll/sub/f1')\" = data ] &&
	[ \"\$(readlink '$M/.snapshots/s1/coll/sub/ln')\" = f1 ] &&
	[ \"\$(ls '$M/.snapshots/s1/coll/sub')\" = \"\$(printf 'f1\nln')\" ]"
check "the local mount still serves" test -d "$M/coll"

test_done
