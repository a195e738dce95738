#!/bin/bash
# t7004-remote-random-frames: 10k random frames against a live server
# while a well-behaved client keeps being served.  The attacker is an
# authenticated vault user (uid 1000, owner of /play): most frames are
# well-formed requests of random ops with random fields (inodes it may or
# may not hold, random handles, flags, offsets, sizes, names), some are
# garbage (the server closes that connection; the attacker reconnects),
# some come before authentication.  The good client reads the same file
# and lists the root throughout; afterwards the daemon is alive, the
# local mount still reads, and files outside /play are unchanged.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse

vv_listen_mount
mkdir "$M/play"
chown 1000:1000 "$M/play"
head -c 100000 /dev/urandom > "$M/keep.bin"
SUM=$(sha256sum < "$M/keep.bin")
"$VV_BIN" user add alice --uid 1000 --no-password "$M" >/dev/null
TA=$("$VV_BIN" key create alice "$M" 2>/dev/null)

rpy "
import hashlib
c = R.Client('127.0.0.1', $P)
c.auth_key('$TA')
n = 0
while not os.path.exists('$T/done'):
    assert hashlib.sha256(c.read_file('/keep.bin')).hexdigest() == '${SUM%% *}'
    assert 'play' in c.listdir('/')
    n += 1
print('good client: %d rounds' % n)
open('$T/good-ok', 'w').write(str(n))
" > "$T/good.out" 2>&1 &
GOOD=$!

check "10k random frames" rpy "
import random, struct
rnd = random.Random(7004)
def conn():
    c = R.Client('127.0.0.1', $P)
    c.auth_key('$TA')
    c.play = c.walk('/play')
    return c
def field(k, c):
    if k == 'Q':
        return rnd.choice([0, 1, c.play, rnd.getrandbits(64), rnd.getrandbits(33), rnd.randrange(1, 50)])
    if k == 'I':
        return rnd.choice([0, 1, 0o777, 0o100644, 0o40755, rnd.getrandbits(32), os.O_RDWR | os.O_CREAT])
    if k in 'NT':
        return rnd.choice(['a', 'b', 'x' * rnd.randrange(1, 255), 'n%d' % rnd.randrange(20), 'user.x'])
    if k == 'B':
        return os.urandom(rnd.choice([0, 1, 100, 4096, 16320]))
c = conn()
sent = closed = errors = 0
while sent < 10000:
    sent += 1
    kind = rnd.random()
    try:
        if kind < 0.02:
            raw = R.Client('127.0.0.1', $P)           # before AUTH
            raw.t.sendall(os.urandom(rnd.randrange(16, 200)))
            raw.close()
            continue
        if kind < 0.06:
            c.t.sendall(os.urandom(rnd.randrange(1, 64)))   # garbage: closes
            raise EOFError
        op = rnd.randrange(2, 33)
        row = R.ROWS[op][0]
        fields = [field(k, c) for k in row]
        try:
            c.call([k for k, v in R.OPS.items() if v == op][0], *fields)
        except R.Error:
            errors += 1
    except (EOFError, OSError, AssertionError, struct.error):
        closed += 1
        c.close()
        c = conn()
print('sent %d, %d refused by the vault, %d connections closed' % (sent, errors, closed))
"
touch "$T/done"
wait $GOOD
check "the good client was served throughout" test -s "$T/good-ok"
cat "$T/good.out"
check "the daemon still serves remotely" rpy "
c = R.Client('127.0.0.1', $P); c.auth_key('$TA'); assert 'keep.bin' in c.listdir('/')"
check "the local mount reads" test "$(sha256sum < "$M/keep.bin")" = "$SUM"
check "outside /play nothing changed" test "$(ls "$M")" = "$(printf 'keep.bin\nplay')"
test_done
