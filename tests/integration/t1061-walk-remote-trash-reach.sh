#!/bin/bash
# t1061-walk-remote-trash-reach: a vv:// session names inodes, so the
# server walks up from each one it is sent (vv_vault_reach).  That walk
# let through whatever ended at .trash/files without asking the trash who
# may see it there, so a session that was handed bob's file while bob's
# directory was open kept it once bob made the directory private and then
# removed the file's directory to the trash: the trash hid the item from
# alice (its gate: bob's 0700 directory), the walk did not.  Now a walk
# that ends in the trash passes only to whom the trash shows the item
# (vault_trash_item_visible: search on its gate, read on it), as its
# lookup there would; alice's own removed directory stays hers.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse

vv_listen_mount
vv_alice_coll
mkdir -p "$M/coll/bob/x" "$M/coll/mine/y"
echo "bob's secret" > "$M/coll/bob/x/f"
echo "alice's own" > "$M/coll/mine/y/g"
chown -R 1001:1001 "$M/coll/bob"
chown -R 1000:1000 "$M/coll/mine"
chmod 755 "$M/coll/bob" "$M/coll/bob/x" "$M/coll/mine" "$M/coll/mine/y"
chmod 644 "$M/coll/bob/x/f" "$M/coll/mine/y/g"

cat > "$T/session.py" <<PY
import subprocess, vvremote as R
c = R.Client('127.0.0.1', $P)
c.auth_key(open('$T/key').read().strip())
err = c.err
f, x = c.walk('/coll/bob/x/f'), c.walk('/coll/bob/x')
g, y = c.walk('/coll/mine/y/g'), c.walk('/coll/mine/y')
def sh(cmd):
    subprocess.run(['sh', '-c', cmd], check=True)
out = []
out.append(('open f while bob/ is open', err('open', f, 0)))
sh('chmod 700 $M/coll/bob')
out.append(('open f once bob/ is private', err('open', f, 0)))
sh('rm -rf $M/coll/bob/x')
out.append(('open f once x is in the trash', err('open', f, 0)))
out.append(('opendir x, the trashed item', err('opendir', x)))
out.append(('listxattr f', err('listxattr', f, 100)))
st = err('open', f, 0)
if st == 0:                                   # as a peer would: read it
    fh = c.call('open', f, 0)[0]
    out.append(('read f: ' + repr(c.call('read', fh, 0, 100)[0]), 0))
sh('setpriv --reuid=1000 --regid=1000 --clear-groups rm -rf $M/coll/mine/y')
out.append(('open g, alice removed y herself', err('open', g, 0)))
out.append(('opendir y, her own item', err('opendir', y)))
for what, st in out:
    print('%s: %d' % (what, st))
PY
out=$(rpy "import runpy; runpy.run_path('$T/session.py')" 2>&1) || true
printf '%s\n' "$out" | sed 's/^/# /'
has() { printf '%s\n' "$out" | grep -qxF "$1"; }
check "alice's session opens f while bob/ is open" has "open f while bob/ is open: 0"
check "not once bob/ is private (EACCES)" has "open f once bob/ is private: -5"
check "nor once bob removed x to the trash, hidden from alice" has "open f once x is in the trash: -5"
check "nor the trashed directory itself" has "opendir x, the trashed item: -5"
check "nor its xattrs" has "listxattr f: -5"
check "no byte of f was read" sh -c "! printf '%s' \"\$1\" | grep -q 'read f'" _ "$out"
check "locally alice does not see x in the trash either" \
	sh -c "! setpriv --reuid=1000 --regid=1000 --clear-groups ls '$M/.trash/files' | grep -qx x"
check "what alice removed herself stays hers: g opens" has "open g, alice removed y herself: 0"
check "and y opens" has "opendir y, her own item: 0"
check "the refusal is audited" vv_audit_has "$AUD" op=open uid=1000 result=EACCES "user~^alice/"

test_done
