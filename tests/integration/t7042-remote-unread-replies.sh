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

# One thread drives the TLS connection through memory BIOs (Python's
# SSLSocket must not be read and written from two threads at once).
check "40 MiB of writes behind unread replies: bounded, then all answered" rpy "
import select, socket, ssl, struct
def rss():
    for l in open('/proc/$DPID/status'):
        if l.startswith('VmRSS'):
            return int(l.split()[1]) // 1024
sock = socket.create_connection(('127.0.0.1', $P))
sock.setblocking(False)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
so = ctx.wrap_bio(inc, out)
pend = bytearray()     # encrypted, to send
got = bytearray()      # decrypted, received
def pump(read, timeout):
    # send what the socket takes; with read, take what arrived; False: nothing moved
    pend.extend(out.read())
    r, w, _ = select.select([sock] if read else [], [sock] if pend else [], [], timeout)
    moved = False
    if w:
        n = sock.send(pend)
        del pend[:n]
        moved = n > 0
    if r:
        d = sock.recv(1 << 20)
        if not d:
            raise EOFError('the server closed the connection')
        inc.write(d)
        moved = True
    return moved
while True:
    try:
        so.do_handshake()
        break
    except ssl.SSLWantReadError:
        assert pump(True, 20), 'handshake timed out'
rid = 0
def send(op, *fields):
    global rid
    rid += 1
    so.write(R.frame(R.OPS[op], fields, rid))
    return rid
def recv():
    while True:
        try:
            while True:            # all that the BIO holds, a record at a time
                got.extend(so.read(1 << 20))
        except ssl.SSLWantReadError:
            pass
        if len(got) >= 16:
            ln, r, op, fl, st = struct.unpack_from('<IIHHi', got)
            if len(got) >= 16 + ln:
                body = bytes(got[16:16 + ln])
                del got[:16 + ln]
                return r, op, st, body
        assert pump(True, 30), 'no reply within 30 s'
def call(op, *fields):
    send(op, *fields)
    r, o, st, body = recv()
    assert st == 0, (op, st)
    return R.parse(o, body)
call('auth', R.VERSION, 1, '', '$(cat "$T/key")')
coll = call('lookup', 1, 'coll')[0]['ino']
ino = call('lookup', coll, 'big')[0]['ino']
fh = call('open', ino, 2)[0]
# warm up: each worker's buffers once, as any peer's 1 MiB requests do
for i in range(8):
    send('read', fh, 0, 1 << 20)
for i in range(8):
    recv()
for i in range(8):
    call('write', fh, 0, b'w' * (1 << 20))
time.sleep(1)
before = rss()
sent = [('read', send('read', fh, 0, 1 << 20)) for i in range(24)]
sent += [('write', send('write', fh, 0, bytes([65 + i % 26]) * (1 << 20))) for i in range(40)]
# send without reading, until the server stops taking bytes for 3 s
while pend or out.pending:
    if not pump(False, 3):
        break
time.sleep(1)
grew = rss() - before
print('daemon memory grew by %d MiB, %d MiB of requests not sent yet' %
      (grew, (len(pend) + out.pending) >> 20))
replies = {}
while len(replies) < 64:
    r, op, st, body = recv()
    replies[r] = (op, st, body)
for kind, r in sent:
    op, st, body = replies[r]
    assert st == 0, (kind, r, st)
    if kind == 'read':
        assert len(body) == 4 + (1 << 20), (r, len(body))
    else:
        assert body == (1 << 20).to_bytes(4, 'little'), (r, body)
assert grew < 24, grew"
check "the file is whole after it" sh -c "[ \$(stat -c %s '$M/coll/big') = 1048576 ]"

test_done
