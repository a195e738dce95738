"""knn_ioc.py - the query offload's ioctl (knn_ioctl.h) from Python, without
numpy, for t4006-offload-fairness.sh and tests/bench/offload-stall-bench.sh.

  knn_ioc.py sparse PATH BYTES      an .npy (rows, 4) f32 of holes, BYTES long
  knn_ioc.py attack SEG STOP OUT    flood SEG with the largest request the
                                    daemon's work budget allows (or KNN_NQ
                                    queries) until STOP
                                    exists; errno counts as JSON to OUT, OUT.hot
                                    once a scan was answered
  knn_ioc.py many DIR N             N one-row .fvecs, each cached by the
                                    daemon; a write to one must drop exactly it
  knn_ioc.py ones PATH ROWS         an .npy (ROWS, 4) f32 of 1.0 (real bytes:
                                    a hole would read as zeros)
"""
import errno, fcntl, json, os, struct, sys, time
SIZE = 16320
KNN = (3 << 30) | (SIZE << 16) | (ord('v') << 8) | 0x4b
NPY, FVECS = 4, 1
def knn(fd, nq, dim, kk=1, fmt=NPY, q=None):
    b = bytearray(SIZE)
    struct.pack_into("<8I", b, 0, 0x4e4e4b56, 1, 1, dim, nq, kk, 0, fmt)
    if q: struct.pack_into("<%df" % len(q), b, 48, *q)
    try:
        fcntl.ioctl(fd, KNN, b, True)
        return "OK", b
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno)), b
def npy_header(rows, dim):
    d = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % (rows, dim)
    d += " " * (128 - 10 - len(d) - 1) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(d)) + d.encode()
cmd = sys.argv[1]
if cmd == "sparse":                 # sparse PATH BYTES: npy (rows, 4) of holes
    path, size = sys.argv[2], int(sys.argv[3])
    with open(path, "wb") as f:
        f.write(npy_header((size - 128) // 16, 4))
        f.truncate(size)
elif cmd == "ones":                 # ones PATH ROWS: npy (rows, 4) of 1.0
    path, rows = sys.argv[2], int(sys.argv[3])
    with open(path, "wb") as f:
        f.write(npy_header(rows, 4) + struct.pack("<4f", 1, 1, 1, 1) * rows)
elif cmd == "attack":               # attack SEG STOP OUT: flood until STOP exists
    seg, stop, out = sys.argv[2:5]
    rows = (os.path.getsize(seg) - 128) // 16
    nq = max(1, min(1017, (1 << 31) // (rows * (4 + 32))))   # the most the budget allows
    nq = int(os.environ.get("KNN_NQ", nq))      # the bench: 1017 replays the report
    fd = os.open(seg, os.O_RDONLY)
    big = "EBUSY"
    while big == "EBUSY":           # the queue is full of the others' requests
        big = knn(fd, 1017, 4)[0]
        time.sleep(0.01)
    counts = {"big": big}
    while not os.path.exists(stop):
        e = knn(fd, nq, 4)[0]
        counts[e] = counts.get(e, 0) + 1
        if e == "OK" and not os.path.exists(out + ".hot"):
            open(out + ".hot", "w").close()
        if e in ("EAGAIN", "EBUSY"):
            time.sleep(0.01)
    with open(out, "w") as f:
        json.dump(counts, f)
elif cmd == "many":                 # many DIR N: N one-row fvecs, each cached
    d, n = sys.argv[2], int(sys.argv[3])
    row = lambda i: struct.pack("<i4f", 4, i, 1, 2, 3)
    fds = []
    for i in range(n):
        p = "%s/s%05d.fvecs" % (d, i)
        with open(p, "wb") as f: f.write(row(i))
        fds.append(os.open(p, os.O_RDONLY))
    q = [0.0, 1.0, 2.0, 3.0]
    for i, fd in enumerate(fds):
        for t in range(2000):
            e, b = knn(fd, 1, 4, 1, FVECS, q)
            if e == "OK": break
            time.sleep(0.005)
        if e != "OK": print("# s%05d: %s" % (i, e)); sys.exit(1)
    mid = n // 2
    with open("%s/s%05d.fvecs" % (d, mid), "r+b") as f: f.write(row(mid))   # same bytes: still a write
    bad = 0
    e, b = knn(fds[mid], 1, 4, 1, FVECS, q)
    if e != "EAGAIN": print("# written segment: %s, want EAGAIN (entry dropped)" % e); bad += 1
    for j in (0, mid - 1, mid + 1, n - 1):
        e, b = knn(fds[j], 1, 4, 1, FVECS, q)
        if e != "OK": print("# s%05d: %s, want OK (still cached)" % (j, e)); bad += 1
    sys.exit(1 if bad else 0)
