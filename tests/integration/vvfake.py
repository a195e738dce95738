"""vvfake.py - the scaffolding of a lying vv:// server for the t70xx tests
of the client (t7009, t7029, t7032, t7037): TLS 1.3 on a free 127.0.0.1
port written to a file, the frame header, a login that accepts anything, a
thread per connection.  The test supplies what each request is answered
with, or (dir_server: t7032, t7037) only its KNN replies, the rest served
honestly from one directory of files."""
import socket
import ssl
import struct
import threading


def rd(c, n):
    b = b''
    while len(b) < n:
        x = c.recv(n - len(b))
        if not x:
            raise EOFError
        b += x
    return b


def hdr(n, rid, op, flags=1, status=0):
    return struct.pack('<IIHHi', n, rid, op, flags, status)


def request(c):
    """The next request: (rid, op, body)."""
    n, rid, op, fl, st = struct.unpack('<IIHHi', rd(c, 16))
    return rid, op, rd(c, n)


def login(c):
    """Read the AUTH frame and accept it as uid 1000, 'alice'."""
    rid, op, body = request(c)
    body = struct.pack('<I', 1000) + struct.pack('<H', 5) + b'alice'
    c.sendall(hdr(len(body), rid, 1) + body)


def serve_forever(cert, key, portfile, handle, admit=None):
    """Accept TLS 1.3 connections; handle(conn) runs in a thread of its
    own after the login; any exception ends that connection.  admit(n),
    if given, is asked about the n-th TCP connection (from 1): False closes
    it before the TLS handshake, as a server going down does; 'reset'
    waits for the client's first bytes and closes with them unread, which
    sends a reset (RST), as a whitelist refusal does when the ClientHello
    arrived first."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(cert, key)
    ls = socket.socket()
    ls.bind(('127.0.0.1', 0))
    ls.listen(8)
    open(portfile, 'w').write(str(ls.getsockname()[1]))

    def run(c):
        try:
            login(c)
            handle(c)
        except Exception:
            pass
        finally:
            c.close()
    n = 0
    while True:
        s, _ = ls.accept()
        n += 1
        a = admit(n) if admit else True
        if a == 'reset':
            try:
                s.recv(1, socket.MSG_PEEK)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
            except OSError:
                pass
            s.close()
            continue
        if not a:
            s.close()
            continue
        try:
            c = ctx.wrap_socket(s, server_side=True)
        except Exception:
            s.close()
            continue
        threading.Thread(target=run, args=(c,), daemon=True).start()


def enoent(c):
    """handle(conn) for serve_forever: every request after the login
    answered ENOENT (a server that logs anyone in and has nothing)."""
    while True:
        rid, op, body = request(c)
        c.sendall(hdr(0, rid, op, 1, -2))


def rest(op):
    """(status, reply body) of the requests a simple fake server answers
    alike: an empty root directory opened as handle 9, no xattrs, statfs,
    the ops without a reply body; EINVAL for the others."""
    if op == 21: return 0, struct.pack('<Q', 9)                   # opendir
    if op == 22: return 0, blob(b'') + struct.pack('<I', 1)       # readdir: empty, the end
    if op == 25: return -15, b''                                  # getxattr: ENODATA
    if op == 26: return 0, struct.pack('<I', 0) + blob(b'')       # listxattr: none
    if op == 29: return 0, struct.pack('<QQQQQQI', 4096, 1 << 20, 1 << 19, 1 << 19, 1000, 900, 255)
    if op in (3, 18, 19, 20, 23, 28): return 0, b''
    return -22, b''


def reply(c, rid, op, st, r):
    """Send the reply (status st, body r unless st is an error)."""
    c.sendall(hdr(len(r) if st == 0 else 0, rid, op, 1, st) + (r if st == 0 else b''))


def blob(b):
    """A length-prefixed byte string."""
    return struct.pack('<I', len(b)) + b


def attr(ino, size):
    """An attribute record: inode 1 a 0755 directory, any other a 0644 file
    of size bytes; cacheable."""
    m, size = (0o40755, 0) if ino == 1 else (0o100644, size)
    return struct.pack('<QQIIIIQQQ', ino, 1, m, 1, 0, 0, size, (size + 511) // 512, 0) + \
        struct.pack('<qI', 0, 0) * 3 + bytes([1])


def ent(ino, nxt, name, a):
    """A readdir entry of a regular file."""
    return struct.pack('<QIQH', ino, 0o100644, nxt, len(name)) + name + a


def dir_server(files, knn):
    """handle(conn) for serve_forever: an honest read-only root directory
    (inode 1, opendir handle 9) holding files {name (bytes): contents}, as
    inodes 10, 11, ... in name order, each open's handle its inode.
    knn(handle, request) -> (status, reply) answers a KNN frame (op 32)."""
    names = sorted(files)
    ino = {n: 10 + i for i, n in enumerate(names)}
    data = {10 + i: files[n] for i, n in enumerate(names)}

    def at(i):
        return attr(i, len(data.get(i, b'')))

    def serve(c):
        while True:
            rid, op, b = request(c)
            st, r = 0, b''
            if op == 2:                                    # lookup
                n = struct.unpack_from('<H', b, 8)[0]
                if b[10:10 + n] in ino: r = at(ino[b[10:10 + n]])
                else: st = -2
            elif op == 4: r = at(struct.unpack_from('<Q', b)[0])          # getattr
            elif op == 14:                                 # open: handle = inode
                i = struct.unpack_from('<Q', b)[0]
                r = struct.pack('<QIQ', i, 1, 1) + at(i)
            elif op == 16:                                 # read
                h, off, size = struct.unpack_from('<QQI', b)
                r = blob(data[h][off:off + size])
            elif op == 21: r = struct.pack('<Q', 9)        # opendir
            elif op == 22:                                 # readdir
                off, plus = struct.unpack_from('<QI', b, 8)
                e = b''.join(ent(ino[n], ino[n] - 9, n, at(ino[n]) if plus else b'')
                             for n in names if ino[n] - 10 >= off)
                r = blob(e) + struct.pack('<I', 1)
            elif op == 25: st = -15                        # getxattr: ENODATA
            elif op == 26: r = struct.pack('<I', 0) + blob(b'')
            elif op == 29: r = struct.pack('<QQQQQQI', 4096, 1 << 20, 1 << 19, 1 << 19, 1000, 900, 255)
            elif op == 32: st, r = knn(struct.unpack_from('<Q', b)[0], b[8 + 4:])  # Q handle, B request
            elif op in (3, 18, 19, 20, 23, 28): pass
            else: st = -22
            c.sendall(hdr(len(r) if st == 0 else 0, rid, op, 1, st) + (r if st == 0 else b''))
    return serve
