# ctlstorm.py SOCK VAULT_ID [HOLD RELEASE]: throw hostile traffic at a daemon's control
# socket (as whoever runs it) and check after each kind that a good
# vault.ping on a fresh connection still gets its answer.  Prints
# "ok - ..." / "not ok - ..." lines (TAP fragments for the caller), exit 1
# if anything failed.  Waits have generous caps; nothing is timed.
import os, random, socket, struct, sys, time

sock_path, vault_id = sys.argv[1], sys.argv[2]
CAP = 60.0                      # a generous cap on any single wait
failed = 0
rng = random.Random(5003)

def frame(typ, body, ver=1, length=None):
    n = len(body) if length is None else length
    return b"VVCP" + bytes([ver, typ, 0, 0]) + struct.pack("<I", n) + body

def req(verb, args=()):
    b = bytes([len(verb)]) + verb.encode() + struct.pack("<H", len(args))
    for k, v in args:
        b += struct.pack("<H", len(k)) + k.encode() + struct.pack("<I", len(v)) + v.encode()
    return frame(1, b)

def conn():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(CAP)
    s.connect(sock_path)
    return s

def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        k = s.recv(n - len(buf))
        if not k:
            return None
        buf += k
    return buf

def read_reply(s):
    h = recv_exact(s, 12)
    if h is None or h[:4] != b"VVCP" or h[5] != 2:
        return None
    body = recv_exact(s, struct.unpack("<I", h[8:12])[0])
    if body is None:
        return None
    status = struct.unpack("<i", body[:4])[0]
    ml = struct.unpack("<H", body[4:6])[0]
    msg = body[6:6 + ml].decode(errors="replace")
    bl = struct.unpack("<I", body[6 + ml:10 + ml])[0]
    return status, msg, body[10 + ml:10 + ml + bl].decode(errors="replace")

def report(ok, name):
    global failed
    print(("ok - " if ok else "not ok - ") + name, flush=True)
    if not ok:
        failed += 1

def good_ping(what):
    try:
        s = conn()
        s.sendall(req("vault.ping", [("json", "1")]))
        r = read_reply(s)
        s.close()
        report(r is not None and r[0] == 0 and ('"vault":"%s"' % vault_id) in r[2],
               "a good ping is answered after " + what)
    except OSError as e:
        report(False, "a good ping is answered after %s (%s)" % (what, e))

def closed_soon(s):
    """Has the daemon closed s (EOF or reset), maybe after an error reply?"""
    try:
        while True:
            k = s.recv(65536)
            if not k:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False

# 1. random bytes, many times
for i in range(50):
    s = conn()
    try:
        s.sendall(bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 2048))))
        s.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    s.close()
good_ping("50 connections of random bytes")

# 2. huge lengths: an error reply that says so, then the connection ends
for n in (0xFFFFFFFF, (1 << 20) + 1, 1 << 31):
    s = conn()
    s.sendall(frame(1, b"", length=n))
    r = read_reply(s)
    report(r is not None and r[0] < 0 and "exceeds the limit" in r[1],
           "length %d: refused with a message (%s)" % (n, r and r[1]))
    report(closed_soon(s), "length %d: connection closed" % n)
    s.close()
good_ping("huge lengths")

# 3. another protocol version: named in the reply
s = conn()
s.sendall(frame(1, b"\x01x\x00\x00", ver=9))
r = read_reply(s)
report(r is not None and "version 9" in r[1], "version 9: the reply names it (%s)" % (r and r[1]))
s.close()

# 4. garbage inside a well-framed request: malformed, closed
for body in (b"\x00", b"\x05ab", b"\x01v\xff\xff", b"\x01v\x01\x00\x01\x00k\xff\xff\xff\xff",
             b"\x01v\x00\x00trailing", b"\x04a\x00bc\x00\x00"):
    s = conn()
    s.sendall(frame(1, body))
    r = read_reply(s)
    report(r is not None and r[0] < 0 and "malformed request" in r[1],
           "malformed body %r refused" % body[:12])
    s.close()
s = conn()
s.sendall(frame(2, b"\x00" * 10))
r = read_reply(s)
report(r is not None and r[0] < 0, "a reply frame sent to the daemon is refused")
s.close()
good_ping("malformed requests")

# 5. half frames, then stall: those connections hang, others are served
stalled = []
for part in (b"VV", frame(1, b"")[:7], frame(1, b"\x01", length=100)):
    s = conn()
    s.sendall(part)
    stalled.append(s)
good_ping("three connections stalled mid-frame")

# 6. disconnect mid-frame
for cut in (3, 12, 20):
    s = conn()
    s.sendall(req("vault.ping", [("k" * 30, "v" * 30)])[:cut])
    s.close()
good_ping("disconnects mid-frame")

# 7. a peer that sends a request and never reads its reply
s = conn()
s.sendall(req("vault.verbs") * 50)
stalled.append(s)
good_ping("a peer that does not read its replies")

# 8. a hundred connections at once: those past the cap are closed at
# once (EOF instead of a reply), the others answered; none blocks the
# daemon.  With HOLD and RELEASE files given, the connections stay open
# until RELEASE exists, so the caller can check that other users still
# get in meanwhile.
many = []
unconnected = 0                 # the listen backlog was full: refused too
for i in range(100):
    try:
        many.append(conn())
    except OSError:
        unconnected += 1
answered = closed = 0
for s in many:
    try:
        s.sendall(req("vault.ping"))
        r = read_reply(s)
    except OSError:
        r = None
    if r is not None and r[0] == 0:
        answered += 1
    else:
        closed += 1
report(answered >= 1 and closed + unconnected >= 1 and answered + closed + unconnected == 100,
       "100 connections at once: %d answered, %d closed at the cap, %d not accepted"
       % (answered, closed, unconnected))
if len(sys.argv) > 4:
    open(sys.argv[3], "w").close()
    t0 = time.monotonic()
    while not os.path.exists(sys.argv[4]) and time.monotonic() - t0 < CAP:
        time.sleep(0.05)
for s in many:
    s.close()
for s in stalled:
    s.close()
good_ping("100 connections at once, all closed")

# 9. many requests on one connection keep working
s = conn()
okn = 0
for i in range(200):
    s.sendall(req("vault.ping"))
    r = read_reply(s)
    okn += r is not None and r[0] == 0
s.close()
report(okn == 200, "200 requests on one connection (%d answered)" % okn)
sys.exit(1 if failed else 0)
