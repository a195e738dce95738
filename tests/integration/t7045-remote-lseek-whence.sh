#!/bin/bash
# t7045-remote-lseek-whence: the kernel sends LSEEK to a FUSE daemon only
# for SEEK_DATA and SEEK_HOLE (it answers SEEK_SET, SEEK_CUR and SEEK_END
# itself); a remote peer sends any whence.  Any other used to make the
# vault walk every 64 KiB block of the file under the node's lock: on a
# sparse file of 4 EiB (one fallocate by its owner) 2^46 steps, a worker
# and a CPU lost for good, writers of the file blocked, and the daemon's
# unmount waiting on that worker forever.  Now each is EINVAL at once;
# SEEK_DATA and SEEK_HOLE still answer, the session and the daemon go on.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse

vv_listen_mount
vv_alice_coll

check "other whence values on a sparse 4 EiB file: EINVAL, at once" rkey "$(cat "$T/key")" "
coll = c.walk('/coll')
a = c.call('create', coll, 'sparse', 0o600, 2, 0o22)
fh = a[-1]
c.call('write', fh, 0, b'data' * 25)
c.call('fallocate', fh, 0, 0, 1 << 62)
for whence in [0, 1, 2, 5, 0xffffffff]:
    for off in [0, 1 << 20, (1 << 62) - 1]:
        assert err('lseek', fh, off, whence) == -10, (whence, off)
# SEEK_DATA (3) and SEEK_HOLE (4) still answer, in whole blocks
assert c.call('lseek', fh, 0, 3) == [0]
assert c.call('lseek', fh, 0, 4) == [65536]
assert err('lseek', fh, 1 << 40, 3) != 0
assert c.call('lseek', fh, 1 << 40, 4) == [1 << 40]
c.call('release', fh)"
check "the session's file is still writable (no lock left held)" rkey "$(cat "$T/key")" "
fh = c.call('open', c.walk('/coll/sparse'), 2)[0]
c.call('write', fh, 0, b'more')
c.call('release', fh)"
check "the file on the server mount: 4 EiB, as written" sh -c "
	[ \$(stat -c %s '$M/coll/sparse') = 4611686018427387904 ] &&
	[ \"\$(head -c 8 '$M/coll/sparse')\" = moredata ]"

test_done
