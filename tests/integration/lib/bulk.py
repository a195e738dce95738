"""bulk.py - the bulk read (VV_IOC_BULK_READ, knn_ioctl.h "the bulk read")
from Python: import it (sys.path) from t4014.

  Buf(nslots, slot, name, seal)      a memfd buffer (MFD_ALLOW_SEALING), mapped;
                                     sealed with F_SEAL_SHRINK (as the tool)
                                     unless seal=False (the daemon refuses it)
  req(buf, names, off=0, **over)     the request's bytes (fields overridable)
  call(fd, b)                        ("OK" or the errno name, the buffer)
  parse(b)                           (header dict, stats [(err, size)])
  read(fd, names, buf=None)          req + call + parse: (err, hdr, stats, buf)

Run as a program, `bulk.py loop DIR PREFIX [NAME [seal]]` reads DIR's files
PREFIX00 .. PREFIX63 in bulk into one buffer (memfd NAME) forever, after
printing "looping": a reader to kill in the middle of its requests.
"""
import fcntl, mmap, os, struct
import knn_dir                  # the ioctl buffer's size and its call
SIZE = knn_dir.SIZE
BULK = (3 << 30) | (SIZE << 16) | (ord('v') << 8) | 0x4d
HDR = "<IIiIQQQQIIIIQ"          # struct vv_bulk_hdr, 72 bytes
HLEN = struct.calcsize(HDR)
assert HLEN == 72


class Buf:
    def __init__(self, nslots, slot, flags=None, name="bulk", seal=True):
        self.slot = slot
        self.fd = os.memfd_create(name, os.MFD_ALLOW_SEALING if flags is None else flags)
        os.ftruncate(self.fd, nslots * slot)
        self.m = mmap.mmap(self.fd, nslots * slot)
        self.m.write(bytes(nslots * slot))      # populated: the daemon refuses holes
        self.m.seek(0)
        if seal:
            fcntl.fcntl(self.fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK)
        st = os.fstat(self.fd)
        self.dev, self.ino = st.st_dev, st.st_ino

    def get(self, i, n):
        return bytes(self.m[i * self.slot:i * self.slot + n])


def req(buf, names, off=0, **over):
    area = b"".join((n if isinstance(n, bytes) else n.encode()) + b"\0" for n in names)
    f = dict(magic=0x4b4c4256, version=1, memfd=buf.fd, flags=0, mem_dev=buf.dev,
             mem_ino=buf.ino, off=off, slot=buf.slot, nnames=len(names),
             names_len=len(area), served=0, pad=0, bytes=0)
    f.update(over)
    area = over.get("area", area)
    b = bytearray(SIZE)
    struct.pack_into(HDR, b, 0, f["magic"], f["version"], f["memfd"], f["flags"], f["mem_dev"],
                     f["mem_ino"], f["off"], f["slot"], f["nnames"], f["names_len"],
                     f["served"], f["pad"], f["bytes"])
    b[HLEN:HLEN + len(area)] = area[:SIZE - HLEN]
    return b


def call(fd, b):
    return knn_dir.call(fd, b, BULK)


def parse(b):
    v = struct.unpack_from(HDR, b, 0)
    h = dict(zip(("magic", "version", "memfd", "flags", "mem_dev", "mem_ino", "off", "slot",
                  "nnames", "names_len", "served", "pad", "bytes"), v))
    st = []
    for i in range(h["nnames"]):
        e, pad, size = struct.unpack_from("<iIQ", b, HLEN + 16 * i)
        st.append((e, size))
    return h, st


def read(fd, names, buf=None, slot=1 << 16, **over):
    buf = buf or Buf(len(names), slot)
    e, b = call(fd, req(buf, names, **over))
    if e != "OK":
        return e, None, None, buf
    h, st = parse(b)
    return e, h, st, buf


def loop(d, prefix, name="bulk", seal=False):
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    names = ["%s%02d" % (prefix, i) for i in range(64)]
    buf = Buf(64, 1 << 16, name=name, seal=seal)
    os.write(1, b"looping\n")
    while True:
        read(fd, names, buf=buf)


if __name__ == "__main__":
    import sys
    if sys.argv[1:2] == ["loop"] and len(sys.argv) >= 4:
        loop(sys.argv[2], sys.argv[3], *(sys.argv[4:5] or ["bulk"]), seal=sys.argv[5:6] == ["seal"])
