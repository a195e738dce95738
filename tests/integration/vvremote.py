"""vvremote.py - a small client of the remote protocol (engine/remote_wire.c,
docs/format.md "Remote protocol") for the t70xx tests: TLS 1.3 with an
optional source address, frames, AUTH, and the vault operations.  Test
code, not a product: the vv:// FUSE client is the product."""
import hashlib
import socket
import ssl
import struct

OPS = {'auth': 1, 'lookup': 2, 'forget': 3, 'getattr': 4, 'setattr': 5, 'readlink': 6,
       'mknod': 7, 'mkdir': 8, 'symlink': 9, 'link': 10, 'unlink': 11, 'rmdir': 12,
       'rename': 13, 'open': 14, 'create': 15, 'read': 16, 'write': 17, 'flush': 18,
       'fsync': 19, 'release': 20, 'opendir': 21, 'readdir': 22, 'releasedir': 23,
       'setxattr': 24, 'getxattr': 25, 'listxattr': 26, 'removexattr': 27, 'access': 28,
       'statfs': 29, 'fallocate': 30, 'lseek': 31, 'knn': 32}
ROWS = {1: ('IITT', 'IT'), 2: ('QN', 'A'), 3: ('QQ', ''), 4: ('Q', 'A'),
        5: ('QIIIIQQIQIQ', 'A'), 6: ('Q', 'T'), 7: ('QNIQI', 'A'), 8: ('QNII', 'A'),
        9: ('QNT', 'A'), 10: ('QQN', 'A'), 11: ('QN', ''), 12: ('QN', ''), 13: ('QNQNI', ''),
        14: ('QI', 'QIQA'), 15: ('QNIII', 'AQ'), 16: ('QQI', 'B'), 17: ('QQB', 'I'), 18: ('Q', ''),
        19: ('QI', ''), 20: ('Q', ''), 21: ('Q', 'Q'), 22: ('QQII', 'BI'), 23: ('Q', ''),
        24: ('QTBI', ''), 25: ('QTI', 'IB'), 26: ('QI', 'IB'), 27: ('QT', ''), 28: ('QI', ''),
        29: ('Q', 'QQQQQQI'), 30: ('QIQQ', ''), 31: ('QQI', 'Q'), 32: ('QB', 'B')}
ERRNO = {-1: 'EPERM', -2: 'ENOENT', -5: 'EACCES', -6: 'EEXIST', -9: 'EISDIR', -10: 'EINVAL',
         -13: 'ENOTEMPTY', -21: 'EBADF', -22: 'EROFS', -17: 'ENOTSUP', -24: 'E2BIG'}
ATTR = struct.Struct('<QQIIIIQQQqIqIqIB')
VERSION = 2                              # remote_wire.h VV_RW_VERSION


class Error(Exception):
    def __init__(self, status):
        Exception.__init__(self, ERRNO.get(status, str(status)))
        self.status = status


def frame(op, fields, rid=1, reply=False, status=0):
    row = ROWS[op][1 if reply else 0]
    body = b''
    fi = iter(fields)
    for k in (row if status == 0 else ''):
        v = next(fi)
        if k == 'Q':
            body += struct.pack('<Q', v)
        elif k == 'I':
            body += struct.pack('<I', v)
        elif k in 'NT':
            v = v.encode() if isinstance(v, str) else v
            body += struct.pack('<H', len(v)) + v
        elif k == 'B':
            body += struct.pack('<I', len(v)) + v
    return struct.pack('<IIHHi', len(body), rid, op, 1 if reply else 0, status) + body


def parse(op, body):
    out = []
    off = 0
    for k in ROWS[op][1]:
        if k == 'Q':
            out.append(struct.unpack_from('<Q', body, off)[0]); off += 8
        elif k == 'I':
            out.append(struct.unpack_from('<I', body, off)[0]); off += 4
        elif k in 'NT':
            n = struct.unpack_from('<H', body, off)[0]
            out.append(body[off + 2:off + 2 + n].decode()); off += 2 + n
        elif k == 'B':
            n = struct.unpack_from('<I', body, off)[0]
            out.append(body[off + 4:off + 4 + n]); off += 4 + n
        elif k == 'A':
            a = ATTR.unpack_from(body, off); off += ATTR.size
            out.append({'ino': a[0], 'gen': a[1], 'mode': a[2], 'nlink': a[3], 'uid': a[4],
                        'gid': a[5], 'size': a[6]})
    assert off == len(body), 'trailing bytes in a reply'
    return out


def dirents(blob, plus):
    """(name, ino, mode, next offset, the attribute record's ino: 0 when the
    entry came without attributes, no reference taken; None without plus)."""
    off, out = 0, []
    while off < len(blob):
        ino, mode, nxt, n = struct.unpack_from('<QIQH', blob, off)
        off += 22
        name = blob[off:off + n].decode(); off += n
        aino = None
        if plus:
            aino = ATTR.unpack_from(blob, off)[0]
            off += ATTR.size
        out.append((name, ino, mode, nxt, aino))
    return out


def tcp(host, port, bind=None, timeout=20):
    fam = socket.AF_INET6 if ':' in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    if bind:
        s.bind((bind, 0))
    s.connect((host, port))
    return s


def tls(sock, fingerprint=None, version=ssl.TLSVersion.TLSv1_3, cert=None, key=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cert:
        ctx.load_cert_chain(cert, key)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE      # checked below by the pinned fingerprint
    ctx.minimum_version = version
    ctx.maximum_version = version
    t = ctx.wrap_socket(sock)
    if fingerprint:
        got = hashlib.sha256(t.getpeercert(binary_form=True)).hexdigest()
        if got != fingerprint:
            raise Exception('certificate fingerprint %s is not the pinned %s' % (got, fingerprint))
    return t


def recv_exact(t, n):
    b = b''
    while len(b) < n:
        k = t.recv(n - len(b))
        if not k:
            raise EOFError('connection closed')
        b += k
    return b


class Client:
    def __init__(self, host, port, bind=None, fingerprint=None, timeout=20, cert=None, key=None):
        self.t = tls(tcp(host, port, bind, timeout), fingerprint, cert=cert, key=key)
        self.rid = 0

    def send(self, op, *fields):
        self.rid += 1
        self.t.sendall(frame(OPS[op], fields, self.rid))
        return self.rid

    def recv(self):
        h = recv_exact(self.t, 16)
        ln, rid, op, fl, st = struct.unpack('<IIHHi', h)
        body = recv_exact(self.t, ln)
        return rid, op, st, body

    def call(self, op, *fields):
        rid = self.send(op, *fields)
        r, o, st, body = self.recv()
        assert r == rid, 'reply for another request'
        if st:
            raise Error(st)
        return parse(o, body)

    def err(self, op, *fields):
        """The status of one request: 0 when it succeeded, else the VV_E* code."""
        try:
            self.call(op, *fields)
        except Error as e:
            return e.status
        return 0

    def auth_key(self, token):
        return self.call('auth', VERSION, 1, '', token)

    def auth_password(self, user, pw):
        return self.call('auth', VERSION, 2, user, pw)

    def auth_cert(self):
        """Log in as the client certificate's user (mutual TLS)."""
        return self.call('auth', VERSION, 3, '', '')

    def walk(self, path):
        ino = 1
        for part in [p for p in path.split('/') if p]:
            ino = self.call('lookup', ino, part)[0]['ino']
        return ino

    def read_file(self, path):
        ino = self.walk(path)
        fh = self.call('open', ino, 0)[0]
        data, off = b'', 0
        while True:
            b = self.call('read', fh, off, 1 << 20)[0]
            if not b:
                break
            data += b
            off += len(b)
        self.call('release', fh)
        return data

    def listdir(self, path, plus=False):
        dh = self.call('opendir', self.walk(path))[0]
        out, off = [], 0
        while True:
            ents = dirents(self.call('readdir', dh, off, 1 if plus else 0, 65536)[0], plus)
            if not ents:
                break
            out += ents
            off = ents[-1][3]
        self.call('releasedir', dh)
        return [e[0] for e in out]

    def close(self):
        try:
            self.t.close()
        except Exception:
            pass
