#!/bin/bash
# t7049-remote-trashinfo-open: a .trashinfo file under .trash/info is a
# virtual file (its bytes are made at its open; no node behind it).  A
# remote OPEN of one, which any vault user can make after deleting a file
# of their own, read the data generation of the NULL node for its reply
# and killed the vault daemon (SIGSEGV): every local and remote user lost
# the vault.  Now it is opened, read and released as on the local mount,
# and its generation changes at every open, so a vv:// client never keeps
# a page cache of it (the local mount keeps none either).
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse

vv_listen_mount
vv_alice_coll

check "alice deletes a file of hers: it goes to the trash" rkey "$(cat "$T/key")" "
coll = c.walk('/coll')
a = c.call('create', coll, 'gone', 0o600, 1, 0o22)
c.call('write', a[-1], 0, b'bytes')
c.call('release', a[-1])
c.call('unlink', coll, 'gone')
assert 'gone.trashinfo' in c.listdir('/.trash/info'), c.listdir('/.trash/info')"
check "she opens and reads its .trashinfo remotely, twice" rkey "$(cat "$T/key")" "
ino = c.walk('/.trash/info/gone.trashinfo')
gens = []
for i in range(2):
    fh, keep, gen, attr = c.call('open', ino, 0)
    data = c.call('read', fh, 0, 4096)[0]
    assert b'Path=/coll/gone' in data, data
    c.call('release', fh)
    gens.append(gen)
# bytes made at each open: a client must never keep a page cache of them
assert gens[0] != gens[1], gens"
check "the daemon still serves the local mount" test -d "$M/coll"
check "and the next remote session" rkey "$(cat "$T/key")" "c.walk('/coll')"

# the same through a vv:// client mount of the whole vault
vv_rmount "vv://127.0.0.1:$P" "$R" --key-file "$T/key" --pin "$FP"
check "cat of the .trashinfo through vv://" sh -c "grep -q '^Path=/coll/gone' '$R/.trash/info/gone.trashinfo'"
"$PY" -c "open('$R/coll/gone', 'w').write('again')"
rm "$R/coll/gone"
check "a second item of that name shows its own info through vv://" \
	sh -c "ls '$R/.trash/info' | grep -c '^gone.*\\.trashinfo\$' | grep -qx 2"
check "the server's daemon is still up" test -d "$M/coll"
fusermount3 -u "$R"

test_done
