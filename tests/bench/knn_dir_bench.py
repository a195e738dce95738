"""knn_dir_bench.py - the query offload's directory request against the
per-file request, on a mount (tests/bench/knn-dir-bench.sh runs it).

  knn_dir_bench.py DIR DAEMON_PID REPS [ONE]

DIR holds N segments of 100 rows (.npy, float32); ONE (optional) one
segment of the same bytes.  Each rep, interleaved: "dir" sends one
VV_IOC_KNN_DIR per 256 names on a directory handle; "file" opens each
segment, sends VV_IOC_KNN (exact), closes it (the tool's way today);
"one" sends VV_IOC_KNN on ONE.  1 query, k 10.  Warm: every segment is in
the daemon's cache first.  Prints, per mode, the median and spread of
wall ms and daemon CPU ms (all its threads' schedstat run time, until it
is idle again: a pass's asynchronous RELEASEs and audit flushes count for
that pass, not the next) and the
daemon's CPU per name in us; then the daemon's VmRSS and map count.
"""
import os, statistics, struct, sys, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../integration/lib"))
import knn_dir as K

D, pid, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
one = sys.argv[4] if len(sys.argv) > 4 else None
names = sorted(n for n in os.listdir(D) if n.endswith(".npy"))
DIM = 128
q = [0.01 * i for i in range(DIM)]

def cpu_ns():
    t = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                t += int(f.read().split()[0])
        except OSError:
            pass
    return t

def run_dir():
    fd = os.open(D, os.O_RDONLY | os.O_DIRECTORY)
    served = 0
    for i in range(0, len(names), 256):
        e, h, st, c = K.knn_dir(fd, q, names[i:i + 256], DIM, 10, fmt=K.NPY)
        if e != "OK":
            raise SystemExit("dir request: %s" % e)
        served += h["served"]
    os.close(fd)
    return served

def run_file():
    served = 0
    for n in names:
        fd = os.open(os.path.join(D, n), os.O_RDONLY)
        e, r = K.knn(fd, q, DIM, 10, fmt=K.NPY)
        os.close(fd)
        served += e == "OK"
    return served

def run_one():
    fd = os.open(one, os.O_RDONLY)
    e, r = K.knn(fd, q, DIM, 10, fmt=K.NPY)
    os.close(fd)
    return 1 if e == "OK" else 0

def idle():
    """wait (<= 3 s) until the daemon used < 0.5 ms of CPU in 50 ms; its CPU then"""
    c = cpu_ns()
    for i in range(60):
        time.sleep(0.05)
        n = cpu_ns()
        if n - c < 500000:
            return n
        c = n
    return c

modes = {"dir": run_dir, "file": run_file}
if one:
    modes["one"] = run_one
# warm: until every name is served by both kinds (fills of the large file too)
for t in range(600):
    got = {m: f() for m, f in modes.items()}
    if got["dir"] == len(names) and got["file"] == len(names) and got.get("one", 1) == 1:
        break
    time.sleep(0.1)
else:
    raise SystemExit("never warm: %s" % got)
res = {m: ([], []) for m in modes}
for r in range(reps):
    for m, f in modes.items():
        idle()
        c0, t0 = cpu_ns(), time.perf_counter()
        f()
        t1 = time.perf_counter()
        c1 = idle()            # the pass's trailing work (RELEASEs, audit flushes) is its own
        res[m][0].append((t1 - t0) * 1e3)
        res[m][1].append((c1 - c0) / 1e6)
def med(x): return "%.1f [%.1f-%.1f]" % (statistics.median(x), min(x), max(x))
print("segments %d, reps %d, load %s" % (len(names), reps, open("/proc/loadavg").read().split()[0]))
for m in modes:
    w, c = res[m]
    per = len(names) if m != "one" else 1
    print("%-5s wall ms %s  daemon cpu ms %s  daemon us/name %.2f" %
          (m, med(w), med(c), statistics.median(c) * 1e3 / per))
st = open("/proc/%d/status" % pid).read()
rss = [l for l in st.splitlines() if l.startswith("VmRSS")][0]
maps = sum(1 for _ in open("/proc/%d/maps" % pid))
print("daemon %s, maps %d" % (rss, maps))
