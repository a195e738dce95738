#!/bin/bash
# t7042-remote-unread-replies: an authenticated peer that stops reading
# its replies must not make the server hold its requests' bodies without
# bound (docs/remote.md "The session").  The peer sends 24 READs of 1 MiB
# (their replies fill the socket buffers, so the server's workers wait on
# it) and then 40 WRITEs of 1 MiB, reading nothing: the server used to
# read and queue every one of them, 40 MiB of its memory per connection
# (2.5 GiB over 64 connections) for the 30 s a reply may wait; it now
# stops reading once 8 MiB of bodies wait, and the peer's sends wait.
# When the peer reads again, every request is answered, in full.  The
# bound is checked on the daemon's resident memory (a generous margin:
# 24 MiB of growth where there were 40 MiB of bodies).
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse

vv_listen_mount
vv_alice_coll
head -c 1048576 /dev/urandom > "$M/coll/big"
chown 1000:1000 "$M/coll/big"
DPID=$(cat "$T/.pids/$(echo "$M" | tr / _)")

check "40 MiB of writes behind unread replies: bounded, then all answered" rkey "$(cat "$T/key")" "
import struct, threading
def rss():
    for l in open('/proc/$DPID/status'):
        if l.startswith('VmRSS'):
            return int(l.split()[1]) // 1024
ino = c.walk('/coll/big')
fh = c.call('open', ino, 2)[0]
# warm up: each worker's buffers once, as any peer's 1 MiB requests do
for rid in [c.send('read', fh, 0, 1 << 20) for i in range(8)]:
    pass
for i in range(8):
    c.recv()
for i in range(8):
    c.call('write', fh, 0, b'w' * (1 << 20))
time.sleep(1)
before = rss()
sent = []
def sender():
    for i in range(24):
        sent.append(('read', c.send('read', fh, 0, 1 << 20)))
    for i in range(40):
        sent.append(('write', c.send('write', fh, 0, bytes([65 + i % 26]) * (1 << 20))))
th = threading.Thread(target=sender, daemon=True)
th.start()
th.join(5)                     # blocked by the server's bound, or all sent
time.sleep(1)
grew = rss() - before
print('daemon memory grew by %d MiB with %d requests sent' % (grew, len(sent)))
got = {}
while len(got) < 64:
    h = R.recv_exact(c.t, 16)
    ln, rid, op, fl, st = struct.unpack('<IIHHi', h)
    got[rid] = (op, st, R.recv_exact(c.t, ln))
th.join(30)
assert len(sent) == 64, len(sent)
for kind, rid in sent:
    op, st, body = got[rid]
    assert st == 0, (kind, rid, st)
    if kind == 'read':
        assert len(body) == 4 + (1 << 20), (rid, len(body))
    else:
        assert body == (1 << 20).to_bytes(4, 'little'), (rid, body)
assert grew < 24, grew"
check "the file is whole after it" sh -c "[ \$(stat -c %s '$M/coll/big') = 1048576 ]"

test_done
