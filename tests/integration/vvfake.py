"""vvfake.py - the scaffolding of a lying vv:// server for the t70xx tests
of the client (t7009, t7029): TLS 1.3 on a free 127.0.0.1 port written to a
file, the frame header, a login that accepts anything, a thread per
connection.  The test supplies what each request is answered with."""
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
