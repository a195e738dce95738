#!/bin/bash
# t7003-remote-ops: every vault operation over the remote protocol, as a
# vault user (uid 1000) in a directory it owns, and the result seen
# through the local mount; then what an authenticated but unprivileged
# remote user tries: inodes it never looked up (ENOENT), handles it does
# not hold or of the wrong kind (EBADF), forgetting more than it holds
# (no effect on others), "." and ".." names (EINVAL), other users' files
# (EACCES, as locally), and a readonly role: read-only remotely too.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse
command -v groupadd >/dev/null && command -v setfacl >/dev/null ||
	{ echo "1..0 # SKIP needs groupadd and setfacl"; vv_done=1; exit 77; }

G=vvt7003ro$$
# (exit $rc) as an if condition: errexit must not stop the trap before
# vv_cleanup, which reads the status from $?
trap 'rc=$?; groupdel "$G" 2>/dev/null
	if (exit $rc); then vv_cleanup; else vv_cleanup; fi' EXIT
groupadd "$G"
GID=$(getent group "$G" | cut -d: -f3)
vv_listen_mount
mkdir "$M/home" "$M/shared" "$M/private"
chown 1000:1000 "$M/home"
echo "shared data" > "$M/shared/a.txt"
echo "root only" > "$M/private/secret"
chmod 700 "$M/private"
setfacl -m "g:$GID:r-x" "$M/shared" "$M/shared/a.txt"
chmod o-rwx "$M/shared" "$M/shared/a.txt"
"$VV_BIN" role create "$G" "$M" >/dev/null
"$VV_BIN" user add alice --uid 1000 --no-password "$M" >/dev/null
"$VV_BIN" user add reader --uid 3000 --role "$G" --no-password "$M" >/dev/null
TA=$("$VV_BIN" key create alice "$M" 2>/dev/null)
TR=$("$VV_BIN" key create reader "$M" 2>/dev/null)

check "every op as alice in /home" rpy "
import errno
c = R.Client('127.0.0.1', $P)
c.auth_key('$TA')
home = c.walk('/home')
a, fh = c.call('create', home, 'f.txt', 0o644, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o022)
assert a['uid'] == 1000 and a['mode'] & 0o777 == 0o644
assert c.call('write', fh, 0, b'hello remote world\n') == [19]
assert c.call('read', fh, 6, 6) == [b'remote']
c.call('flush', fh); c.call('fsync', fh, 0)
c.call('fallocate', fh, 0, 0, 8192)
assert c.call('lseek', fh, 0, 3)[0] == 0             # SEEK_DATA
c.call('release', fh)
try:
    c.call('read', fh, 0, 10); sys.exit('read after release')
except R.Error as e:
    assert e.status == -21
# setattr: chmod, truncate, utimes
a = c.call('setattr', a['ino'], 0x1 | 0x8, 0o600, 0, 0, 5, 0, 0, 0, 0, 0)[0]
assert a['mode'] & 0o777 == 0o600 and a['size'] == 5, a
d = c.call('mkdir', home, 'sub', 0o755, 0o022)[0]
s = c.call('symlink', home, 'ln', 'f.txt')[0]
assert c.call('readlink', s['ino']) == ['f.txt']
c.call('link', a['ino'], d['ino'], 'hard')
c.call('rename', home, 'f.txt', home, 'g.txt', 0)
try:
    c.call('rename', home, 'g.txt', home, 'ln', 1)      # NOREPLACE
    sys.exit('noreplace replaced')
except R.Error as e:
    assert e.status == -6
c.call('rename', home, 'g.txt', home, 'ln', 2)          # EXCHANGE
c.call('setxattr', a['ino'], 'user.color', b'blue', 0)
assert c.call('getxattr', a['ino'], 'user.color', 100) == [4, b'blue']
assert c.call('getxattr', a['ino'], 'user.color', 0)[0] == 4
assert b'user.color' in c.call('listxattr', a['ino'], 1000)[1]
c.call('removexattr', a['ino'], 'user.color')
c.call('access', a['ino'], 4)
assert c.call('statfs', home)[6] == 255
names = c.listdir('/home', plus=True)
assert sorted(names) == ['.', '..', 'g.txt', 'ln', 'sub'], names
c.call('unlink', d['ino'], 'hard')
c.call('mkdir', d['ino'], 'gone', 0o700, 0)
c.call('rmdir', d['ino'], 'gone')
c.call('forget', d['ino'], 1)
print('ok')"
check "seen locally: the exchanged names" sh -c "test \"\$(cat '$M/home/g.txt' 2>/dev/null || readlink '$M/home/g.txt')\" = f.txt && test \"\$(cat '$M/home/ln')\" = hello"
check "seen locally: owner 1000, mode 600" test "$(stat -c '%u %a' "$M/home/ln")" = "1000 600"
check "audited as alice/key from 127.0.0.1" vv_audit_has "$AUD" op=create result=ok uid=1000 "user~^alice/" "client~^127\.0\.0\.1:"

# an unprivileged remote user's attacks
INO_SECRET=$(stat -c %i "$M/private/secret")
check "attacks of an authenticated user" rpy "
c = R.Client('127.0.0.1', $P)
c.auth_key('$TA')
def err(op, *a):
    try:
        c.call(op, *a)
    except R.Error as e:
        return e.status
    return 0
# inodes never looked up: as if they did not exist
assert err('getattr', $INO_SECRET) == -2
assert err('open', $INO_SECRET, 0) == -2
assert err('lookup', $INO_SECRET, 'x') == -2
for ino in range(2, 200):
    assert err('getattr', ino) == -2, ino
# through the directory: denied as locally
assert err('lookup', c.walk('/private'), 'secret') == -5
# handles: guessed, of the wrong kind, after release
for h in [0, 1, 2, (1 << 32) | 1, (2 << 32) | 1, 2**64 - 1]:
    assert err('read', h, 0, 10) == -21 and err('readdir', h, 0, 0, 4096) == -21
dh = c.call('opendir', 1)[0]
assert err('read', dh, 0, 10) == -21 and err('write', dh, 0, b'x') == -21
c.call('releasedir', dh)
assert err('releasedir', dh) == -21
# names
assert err('lookup', 1, '..') == -10 and err('lookup', 1, '.') == -10
assert err('mkdir', c.walk('/home'), '..', 0o755, 0) == -10
# forgetting more than held: only our own references go
h = c.walk('/home')
c.call('forget', h, 10**9)
assert err('getattr', h) == -2
assert err('read', 0, 0, 1 << 21) == -21
print('ok')"
check "the local view is intact after the forget abuse" test "$(cat "$M/shared/a.txt")" = "shared data"
check "a second session cannot use the first's handles" rpy "
a = R.Client('127.0.0.1', $P); a.auth_key('$TA')
fh = a.call('open', a.walk('/shared/a.txt'), 0)[0] if False else a.call('open', a.walk('/home/ln'), 0)[0]
b = R.Client('127.0.0.1', $P); b.auth_key('$TA')
try:
    b.call('read', fh, 0, 10); sys.exit('read through another session')
except R.Error as e:
    assert e.status == -21
assert a.call('read', fh, 0, 5) == [b'hello']"

check "readonly role: reads, cannot write" rpy "
c = R.Client('127.0.0.1', $P)
c.auth_key('$TR')
assert c.read_file('/shared/a.txt') == b'shared data\n'
sh = c.walk('/shared')
def err(op, *a):
    try:
        c.call(op, *a)
    except R.Error as e:
        return e.status
    return 0
assert err('create', sh, 'new', 0o644, os.O_WRONLY | os.O_CREAT, 0) == -5
assert err('open', c.walk('/shared/a.txt'), os.O_WRONLY) == -5
assert err('unlink', sh, 'a.txt') == -5
assert err('setattr', c.walk('/shared/a.txt'), 1, 0o666, 0, 0, 0, 0, 0, 0, 0, 0) in (-1, -5)
assert err('lookup', c.walk('/private'), 'secret') == -5
print('ok')"
check "nothing changed locally" sh -c "test \"\$(ls '$M/shared')\" = a.txt && test \"\$(cat '$M/shared/a.txt')\" = 'shared data'"
test_done
