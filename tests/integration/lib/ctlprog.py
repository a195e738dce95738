#!/usr/bin/python3
"""ctlprog.py SOCK MODE DEST PASSFILE - a raw control-socket client for
backup.create with progress=1 (engine/admin_wire.c byte table), to test
the progress frames as a hostile or lazy peer would use them:
  read     read every frame: print "progress OD OT BD BT" per progress
           frame, then "reply STATUS MSG"
  lazy     send, sleep 3 s without reading, then read as above (the daemon
           must not wait on us: the backup completes, frames are dropped)
  hangup   send, read one frame, close (the backup must still complete)
Exit 0 when the frames are well formed."""
import socket
import struct
import sys
import time


def frame(typ, body):
    return b"VVCP" + bytes([1, typ, 0, 0]) + struct.pack("<I", len(body)) + body


def request(verb, args):
    b = bytes([len(verb)]) + verb.encode() + struct.pack("<H", len(args))
    for k, v in args:
        b += struct.pack("<H", len(k)) + k.encode() + struct.pack("<I", len(v)) + v.encode()
    return frame(1, b)


def read_n(s, n):
    d = b""
    while len(d) < n:
        c = s.recv(n - len(d))
        if not c:
            raise EOFError("closed after %d of %d bytes" % (len(d), n))
        d += c
    return d


def read_frame(s):
    h = read_n(s, 12)
    assert h[:4] == b"VVCP" and h[4] == 1 and h[6:8] == b"\0\0", h
    n = struct.unpack("<I", h[8:12])[0]
    return h[5], read_n(s, n)


sock, mode, dest, passfile = sys.argv[1:5]
pw = open(passfile).readline().rstrip("\n")
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sock)
s.sendall(request("backup.create", [("dest", dest), ("pass", pw), ("progress", "1")]))
if mode == "lazy":
    time.sleep(3)
last = None
while True:
    typ, body = read_frame(s)
    if typ == 3:
        assert len(body) == 32, len(body)
        od, ot, bd, bt = struct.unpack("<4Q", body)
        assert od <= ot and bd <= bt, (od, ot, bd, bt)
        if last:
            assert od >= last[0] and bd >= last[2], ("went back", last, (od, ot, bd, bt))
        last = (od, ot, bd, bt)
        print("progress %d %d %d %d" % last)
        if mode == "hangup":
            s.close()
            sys.exit(0)
        continue
    assert typ == 2, typ
    st, ml = struct.unpack("<iH", body[:6])
    print("reply %d %s" % (st, body[6:6 + ml].decode(errors="replace")))
    break
