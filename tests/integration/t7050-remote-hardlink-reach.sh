#!/bin/bash
# t7050-remote-hardlink-reach: a remote session names inodes, not paths, so
# before each request the server checks that the session's user may still
# search every directory above the node (vv_vault_reach): a chmod 700 or
# an ACL on a parent ends access at once (t7030).  A file with several
# names skipped that check ("never cached, so always looked up by the
# path used": true of the vv:// client, not of a peer that sends what it
# likes), so a session kept reading, and changing, a hard-linked file
# after every directory holding it was made private, where a local user
# of the same uid gets EACCES.  Now such a file is reached through any of
# its names, as a local walk would: one of its directories, and every one
# above it, must be searchable.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse

vv_listen_mount
vv_alice_coll

# bob's (uid 1001) directory with a file of two names and one of one
mkdir "$M/coll/bob" "$M/coll/pub"
echo "bob's secret" > "$M/coll/bob/two"
ln "$M/coll/bob/two" "$M/coll/bob/two-again"
echo "bob's other" > "$M/coll/bob/one"
chown -R 1001:1001 "$M/coll/bob" "$M/coll/pub"
chmod 755 "$M/coll/bob" "$M/coll/pub"
chmod 666 "$M/coll/bob/two"       # anyone who reaches it may write it
chmod 644 "$M/coll/bob/one"

TWO=$(stat -c %i "$M/coll/bob/two")

# alice's session is handed both while bob/ is open to all, then bob
# makes it private (from the server's own mount, between her requests)
cat > "$T/attack.py" <<PY
import subprocess, sys, vvremote as R
c = R.Client('127.0.0.1', $P)
c.auth_key(open('$T/key').read().strip())
err = c.err
two, one = c.walk('/coll/bob/two'), c.walk('/coll/bob/one')
assert err('access', two, 4) == 0
step = sys.argv[1]
def private(d):
    subprocess.run(['chmod', '700', '$M/coll/' + d], check=True)
if step == 'private':
    private('bob')
    bad = {}
    for name, ino in [('one', one), ('two', two)]:
        for what, st in [('open', err('open', ino, 0)), ('access', err('access', ino, 4)),
                         ('listxattr', err('listxattr', ino, 100)),
                         ('setattr', err('setattr', ino, 1, 0o666, 0, 0, 0, 0, 0, 0, 0, 0))]:
            if st != -5:
                bad[name + ' ' + what] = st
    st = err('open', two, 2)
    if st != -5:
        bad['two open O_RDWR'] = st
    if st == 0:                        # as a peer would: write through it
        fh = c.call('open', two, 2)[0]
        c.call('write', fh, 0, b'alice was here')
        c.call('release', fh)
    print('# not EACCES:', bad)
    sys.exit(1 if bad else 0)
if step == 'third':
    # a third name in a directory alice may search: reached through it
    subprocess.run(['ln', '$M/coll/bob/two', '$M/coll/pub/two-pub'], check=True)
    private('bob')
    fh = c.call('open', two, 0)[0]
    assert c.call('read', fh, 0, 100)[0] == b"bob's secret\n"
    c.call('release', fh)
    assert err('open', one, 0) == -5
    # and not once that directory is private too
    private('pub')
    assert err('open', two, 0) == -5, err('open', two, 0)
PY
check "bob/ made private: its file of two names is refused to alice's session, as the one of one name" \
	rpy "import runpy, sys; sys.argv = ['x', 'private']; runpy.run_path('$T/attack.py')"
check "the refusal is audited" vv_audit_has "$AUD" op=open uid=1000 result=EACCES ino="$TWO" "user~^alice/" \
	"detail~may not be searched"
check "locally alice (uid 1000) gets EACCES too" sh -c "! setpriv --reuid=1000 --regid=1000 \
	--clear-groups cat '$M/coll/bob/two' 2>/dev/null"
check "bob's file was not changed by alice" grep -q "^bob's secret" "$M/coll/bob/two"

chmod 755 "$M/coll/bob"
check "a third name in a directory alice may search: served through it, refused once that is private" \
	rpy "import runpy, sys; sys.argv = ['x', 'third']; runpy.run_path('$T/attack.py')"
chmod 755 "$M/coll/pub"
chmod 700 "$M/coll/bob"
check "locally too, through that name" as_u1000 grep -q "^bob's secret" "$M/coll/pub/two-pub"

test_done
