#!/bin/bash
# t7025-remote-handle-attacks: an authenticated remote user (uid 1000)
# names objects it may not reach through what the protocol lets it name:
#   - readdirplus of a directory it may read but not search (mode 744)
#     hands back inode numbers: GETATTR/OPEN/SETATTR/xattrs by those inodes
#     must fail as a local lookup would (the kernel walk needs search);
#   - SETATTR (truncate) of a file it may not write, carrying the handle of
#     another file it opened for writing (ftruncate's "handle opened for
#     writing" must be a handle of that very file);
#   - readdirplus over a FIFO (no attributes from the vault) must keep the
#     entries framed, and take no reference the session would later forget;
#   - MKNOD of character and block devices (the kernel's CAP_MKNOD, which
#     only local callers meet): EPERM, audited; FIFOs still allowed;
#   - RENAME and LINK across collections (EXDEV), setgid of a group one is
#     not in dropped as locally;
#   - SETATTR with only "kill setuid/setgid" (which the kernel sends after
#     a writer's write or truncate) on a file one may not write;
#   - every refusal is in the audit log, also those the session itself
#     makes before any vault call (a guessed inode, a handle it does not
#     hold, "." and ".."), as the session's uid.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse

vv_listen_mount
mkdir "$M/c" "$M/c/home" "$M/c/listonly" "$M/other"
chmod 777 "$M/other"
chown 1000:1000 "$M/c/home"
echo "mine" > "$M/c/home/mine"
chown 1000:4242 "$M/c/home/mine"
echo "hidden behind a search bit" > "$M/c/listonly/secret"
chmod 644 "$M/c/listonly/secret"
chmod 744 "$M/c/listonly"
mkfifo "$M/c/home/fifo"
echo "after the fifo" > "$M/c/home/zz"
echo "root's precious data" > "$M/c/victim"
printf '#!/bin/sh\n' > "$M/c/suid"
chmod 4755 "$M/c/suid"
chmod 644 "$M/c/victim"
"$VV_BIN" user add alice --uid 1000 --no-password "$M" >/dev/null
TA=$("$VV_BIN" key create alice "$M" 2>/dev/null)

# locally, uid 1000 can list the directory but reach nothing in it
want u1000 OK listdir "$M/c/listonly"
want u1000 EACCES stat "$M/c/listonly/secret"
want u1000 EACCES read "$M/c/listonly/secret"

check "readdirplus of a list-only directory gives no inode to use" rkey "$TA" "
d = c.walk('/c/listonly')
assert err('lookup', d, 'secret') == -5
dh = c.call('opendir', d)[0]
ents = R.dirents(c.call('readdir', dh, 0, 1, 65536)[0], True)
c.call('releasedir', dh)
inos = [e[1] for e in ents if e[0] == 'secret']
assert inos, ents
ino = inos[0]
bad = []
for op, args in [('getattr', (ino,)), ('open', (ino, 0)), ('access', (ino, 4)),
                 ('getxattr', (ino, 'user.x', 10)), ('listxattr', (ino, 100)),
                 ('setattr', (ino, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0))]:
    if err(op, *args) == 0:
        bad.append(op)
assert not bad, 'served by a guessed-through-readdirplus inode: %s' % bad
print('ok')"
check "the secret is untouched" test "$(cat "$M/c/listonly/secret")" = "hidden behind a search bit"

check "readdirplus over a FIFO keeps the reply parseable" rkey "$TA" "
names = c.listdir('/c/home', plus=True)
assert sorted(names) == ['.', '..', 'fifo', 'mine', 'zz'], names
c.call('getattr', c.walk('/c/home/zz'))
print('ok')"

check "truncate another file with the handle of one's own" rkey "$TA" "
mine = c.walk('/c/home/mine')
victim = c.walk('/c/victim')
fh = c.call('open', mine, os.O_WRONLY)[0]
try:
    c.call('setattr', victim, 0x8, 0, 0, 0, 0, 0, 0, 0, 0, fh)
    sys.exit('truncated a file it may not write')
except R.Error as e:
    assert e.status in (-5, -21), e.status
c.call('release', fh)
print('ok')"
check "no device nodes, other collections, foreign setgid" rkey "$TA" "
import stat
h = c.walk('/c/home')
assert err('mknod', h, 'mem', stat.S_IFCHR | 0o666, os.makedev(1, 1), 0) == -1
assert err('mknod', h, 'sda', stat.S_IFBLK | 0o666, os.makedev(8, 0), 0) == -1
assert err('mknod', h, 'p2', stat.S_IFIFO | 0o600, 0, 0) == 0
o = c.walk('/other')
assert err('rename', h, 'mine', o, 'mine', 0) == -7
assert err('link', c.walk('/c/home/mine'), o, 'hard') == -7
m = c.walk('/c/home/mine')
a = c.call('setattr', m, 0x1, 0o2755, 0, 0, 0, 0, 0, 0, 0, 0)[0]
assert not a['mode'] & 0o2000, oct(a['mode'])
print('ok')"
check "no device node exists" sh -c "! ls '$M/c/home/mem' '$M/c/home/sda' 2>/dev/null"
check "the refused mknod is audited" vv_audit_has "$AUD" op=mknod uid=1000 result=EPERM "user~^alice/"
INO_VICTIM=$(stat -c %i "$M/c/victim")
check "guesses and foreign handles refused" rkey "$TA" "
for op, a, st in [('getattr', ($INO_VICTIM,), -2), ('read', ((7 << 32) | 3, 0, 10), -21),
                  ('readdir', (12345, 0, 0, 100), -21), ('lookup', (1, '..'), -10)]:
    try:
        c.call(op, *a); sys.exit(op + ' served')
    except R.Error as e:
        assert e.status == st, (op, e.status)
print('ok')"
check "a guessed inode is audited" vv_audit_has "$AUD" op=getattr uid=1000 result=ENOENT ino=$INO_VICTIM "user~^alice/" "detail~not handed"
check "a foreign handle is audited" vv_audit_has "$AUD" op=read uid=1000 result=EBADF "user~^alice/"
check "a dot name is audited" vv_audit_has "$AUD" op=lookup uid=1000 result=EINVAL "user~^alice/"
check "KILL_SUIDGID alone on a file one may not write" rkey "$TA" "
try:
    c.call('setattr', c.walk('/c/suid'), 0x200, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    sys.exit('stripped the setuid bit of root\'s file')
except R.Error as e:
    assert e.status == -5, e.status
print('ok')"
check "the setuid bit is still there" rkey "$TA" "
assert c.call('getattr', c.walk('/c/suid'))[0]['mode'] & 0o7777 == 0o4755
print('ok')"
check "the victim is untouched" test "$(cat "$M/c/victim")" = "root's precious data"
check "the refused truncate is audited" vv_audit_has "$AUD" op=truncate uid=1000 result=EACCES "user~^alice/"
test_done
