#!/bin/bash
# t7051-remote-knn-pool: the query offload is bounded per uid (docs/query.md
# "Limits": a scan pool fair between uids, 4 requests queued or running per
# uid, more refused EBUSY at once, the caller then scans itself).  A
# remote KNN request bypassed all of it: it ran in the session's worker
# threads, so each session scanned 4 at once and 64 sessions of one key
# 256, with no EBUSY ever, however busy the daemon.  Now it goes through
# the same pool as the local ioctl: 16 requests at once from 4 sessions of
# one user get EBUSY for those beyond the uid's slots, the rest are
# answered, and the daemon's local mount still answers meanwhile.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse

vv_listen_mount
vv_alice_coll

# 100k rows of dim 4, 100 queries a request (a fifth of the work budget):
# a scan takes a while on the pool's one thread at nice 10, far longer
# than sending 16 requests, on an idle machine too
"$PY" "$VV_SRC/tests/integration/lib/knn_ioc.py" ones "$M/coll/seg.npy" 100000
chown 1000:1000 "$M/coll/seg.npy"

cat > "$T/flood.py" <<PY
import struct, threading, time, vvremote as R
SIZE, NQ = 16320, 100
MAGIC_REPLY = 0x524e4b56                          # VV_KNN_MAGIC_REPLY
def req():
    b = bytearray(SIZE)
    struct.pack_into('<8I', b, 0, 0x4e4e4b56, 1, 1, 4, NQ, 1, 0, 4)   # npy, l2
    struct.pack_into('<%df' % (NQ * 4), b, 48, *([0.5] * (NQ * 4)))
    return bytes(b)
def session():
    c = R.Client('127.0.0.1', $P, timeout=120)
    c.auth_key(open('$T/key').read().strip())
    fh = c.call('open', c.walk('/coll/seg.npy'), 0)[0]
    return c, fh
# the copy is decrypted at the first request (EAGAIN meanwhile)
c, fh = session()
for i in range(600):
    st = c.err('knn', fh, req())
    if st == 0:
        break
    time.sleep(0.1)
assert st == 0, 'never served: %d' % st
# 4 sessions, 4 requests in flight each, all sent before any answer
ss = [session() for i in range(4)]
for c, fh in ss:
    for i in range(4):
        c.send('knn', fh, req())
EBUSY = -20                                       # VV_EBUSY
out = {}
for c, fh in ss:
    for i in range(4):
        rid, op, st, body = c.recv()
        if st == 0:                                   # a reply: its magic
            assert struct.unpack_from('<I', body, 4)[0] == MAGIC_REPLY, body[:16]
        out[st] = out.get(st, 0) + 1
print('# statuses:', out)
assert out.get(EBUSY), 'no request refused EBUSY: %r' % out
assert out.get(0), 'none answered: %r' % out
assert set(out) <= {0, EBUSY}, out
PY
check "16 remote requests at once from 4 sessions of one uid: EBUSY beyond its slots, the rest answered" \
	rpy "$(cat "$T/flood.py")"
check "the daemon is still up" test -s "$M/coll/seg.npy"

test_done
