"""knn_dir.py - the query offload's directory request (VV_IOC_KNN_DIR,
knn_ioctl.h "the directory request") from Python, without numpy: import it
(sys.path) from t4008, t1029 and tests/bench/knn-dir-bench.py.

  req(dim, nq, kk, q, names, ...)  the request's bytes (fields overridable)
  call(fd, buf)                    ("OK" or the errno name, the buffer)
  parse(buf)                       (header dict, stats [(err, rows)], cands
                                    [[(d, name, row)] per query])
  knn_dir(fd, q, names, dim, ...)  req + call + parse
  knn(fd, q, dim, kk, fmt)         the per-file request (VV_IOC_KNN),
                                    version 2 (exact): (err, [[(d, row)]])
"""
import errno, fcntl, struct
SIZE = 16320
DIR = (3 << 30) | (SIZE << 16) | (ord('v') << 8) | 0x4c
KNN = (3 << 30) | (SIZE << 16) | (ord('v') << 8) | 0x4b
HDR = "<12IQ"                  # struct vv_knn_dir_hdr, 56 bytes
HLEN = struct.calcsize(HDR)
FVECS, BVECS, IVECS, NPY = 1, 2, 3, 4
F32, U8, I32 = 1, 3, 5
L2, IP, COS = 1, 2, 3
NO_ROW = (1 << 64) - 1
NO_NAME = (1 << 32) - 1


def req(dim, nq, kk, q, names, fmt=FVECS, dtype=F32, metric=L2, **over):
    area = b"".join((n if isinstance(n, bytes) else n.encode()) + b"\0" for n in names)
    f = dict(magic=0x444e4b56, version=1, metric=metric, dim=dim, dtype=dtype, format=fmt,
             nq=nq, kk=kk, nnames=len(names), names_len=len(area), flags=0, served=0, rows=0)
    f.update(over)
    area = over.get("area", area)
    b = bytearray(SIZE)
    struct.pack_into(HDR, b, 0, f["magic"], f["version"], f["metric"], f["dim"], f["dtype"],
                     f["format"], f["nq"], f["kk"], f["nnames"], f["names_len"], f["flags"],
                     f["served"], f["rows"])
    qb = struct.pack("<%df" % len(q), *q)
    b[HLEN:HLEN + len(qb)] = qb
    b[HLEN + len(qb):HLEN + len(qb) + len(area)] = area[:SIZE - HLEN - len(qb)]
    return b


def call(fd, b, cmd=DIR):
    try:
        fcntl.ioctl(fd, cmd, b, True)
        return "OK", b
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno)), b


def parse(b):
    v = struct.unpack_from(HDR, b, 0)
    h = dict(zip(("magic", "version", "metric", "dim", "dtype", "format", "nq", "kk",
                  "nnames", "names_len", "flags", "served", "rows"), v))
    off = HLEN
    st = []
    for i in range(h["nnames"]):
        e, pad, rows = struct.unpack_from("<iIQ", b, off)
        st.append((e, rows))
        off += 16
    cands = []
    for qi in range(h["nq"]):
        row = []
        for j in range(h["kk"]):
            d, name, pad, r = struct.unpack_from("<dIIQ", b, off)
            row.append((d, name, r))
            off += 24
        cands.append(row)
    return h, st, cands


def knn_dir(fd, q, names, dim, kk=1, **kw):
    nq = len(q) // dim
    e, b = call(fd, req(dim, nq, kk, q, names, **kw))
    if e != "OK":
        return e, None, None, None
    h, st, c = parse(b)
    return e, h, st, c


def knn(fd, q, dim, kk=1, fmt=FVECS, metric=L2):
    nq = len(q) // dim
    b = bytearray(SIZE)
    struct.pack_into("<8IQII", b, 0, 0x4e4e4b56, 1, metric, dim, nq, kk, 0, fmt, 0, 1, 0)
    struct.pack_into("<%df" % len(q), b, 48, *q)
    e, b = call(fd, b, KNN)
    if e != "OK":
        return e, None
    out = []
    for qi in range(nq):
        out.append([struct.unpack_from("<dQ", b, 48 + 16 * (qi * kk + j)) for j in range(kk)])
    return e, out
