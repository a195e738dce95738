#!/usr/bin/python3
"""scale_ab.py - two `vecvault` binaries on scale-bench.sh's layouts, interleaved.

  scale_ab.py DATA REPS VV_A VV_B [ENV=VAL ...]

DATA is scale-bench.sh's data directory (DIR/r500000d128: one, split, one2,
tiny, q1.npy, q100.npy; `scale_bench.py gen` makes it).  Each round runs
both binaries on every layout with 1 and 100 queries, A and B back to back
(their order alternating by round), so load changes hit both alike.  A run
during which the page cache was dropped (drop_pagecache in /proc/vmstat)
is repeated, and a layout is read again before a run whenever the cache
was dropped since it was last read.  Prints per binary the median
wall and CPU (user + system of the child) milliseconds, the split/unsplit
ratios (split against one, tiny against one2) and B/A, and checks both give
the same output byte for byte.  ENV=VAL settings apply to both.
"""
import os, resource, statistics, subprocess, sys, time

LAYOUTS = ("one", "split", "one2", "tiny")


def drops():
    with open("/proc/vmstat") as f:
        for line in f:
            if line.startswith("drop_pagecache"):
                return int(line.split()[1])
    return 0


def warm(d):
    for f in sorted(os.listdir(d)):
        with open(os.path.join(d, f), "rb") as fh:
            while fh.read(1 << 20):
                pass


last_warm = {}


def run1(vv, coll, qf, env):
    for _ in range(5):
        if last_warm.get(coll) != drops():      # dropped since this layout was read
            warm(coll)
            last_warm[coll] = drops()
        before = drops()
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        p = subprocess.run([vv, "query", coll, "-q", qf, "-k", "10"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        t1 = time.monotonic()
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if p.returncode != 0:
            sys.exit("%s query %s: %s" % (vv, coll, p.stderr.decode()))
        if drops() == before:
            cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
            return (t1 - t0) * 1e3, cpu * 1e3, p.stdout
    sys.exit("the page cache kept being dropped: no warm run of %s" % coll)


def main():
    data, reps, bins = sys.argv[1], int(sys.argv[2]), sys.argv[3:5]
    env = dict(os.environ)
    for kv in sys.argv[5:]:
        k, v = kv.split("=", 1)
        env[k] = v
    res = {}
    for rnd in range(reps):
        order = bins if rnd % 2 == 0 else bins[::-1]
        for l in LAYOUTS:
            for nq in (1, 100):
                outs = {}
                for b in order:
                    w, c, out = run1(b, os.path.join(data, l), os.path.join(data, "q%d.npy" % nq), env)
                    res.setdefault((b, l, nq), []).append((w, c))
                    outs[b] = out
                if outs[bins[0]] != outs[bins[1]]:
                    sys.exit("outputs differ: %s, %d queries" % (l, nq))
    med = {k: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v))
           for k, v in res.items()}
    print("# medians of %d interleaved rounds; load %s" % (reps, os.getloadavg()))
    print("%-4s %-6s %10s %10s %8s %8s   %s" % ("nq", "layout", "A wall", "B wall", "A cpu", "B cpu",
                                                 "split/unsplit wall A -> B, cpu A -> B; B/A cpu"))
    for nq in (1, 100):
        for l in LAYOUTS:
            a, b = med[(bins[0], l, nq)], med[(bins[1], l, nq)]
            extra = ""
            if l in ("split", "tiny"):
                u = "one" if l == "split" else "one2"
                ua, ub = med[(bins[0], u, nq)], med[(bins[1], u, nq)]
                extra = "%.2fx -> %.2fx, %.2fx -> %.2fx" % (a[0] / ua[0], b[0] / ub[0],
                                                              a[1] / ua[1], b[1] / ub[1])
            print("%-4d %-6s %10.1f %10.1f %8.1f %8.1f   %s; %.2f" % (nq, l, a[0], b[0], a[1], b[1],
                                                                   extra, b[1] / a[1]))
    print("# outputs of A and B equal byte for byte: yes")


if __name__ == "__main__":
    main()
