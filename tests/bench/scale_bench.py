#!/usr/bin/python3
"""scale_bench.py - the Python half of tests/bench/scale-bench.sh.

  scale_bench.py gen DIR ROWS DIM
        DIR/one (1 x ROWS), DIR/split (ROWS/1000 x 1000), DIR/one2 (1 x 2*ROWS),
        DIR/tiny (2*ROWS/100 x 100): the same clustered float32 rows;
        DIR/q1.npy, DIR/q100.npy
  scale_bench.py run VV REPS THREADS LABEL:DIR[:ENV=VAL,...] ...
        for each location (a plain directory, a directory on a mount, with
        environment settings such as VV_KNN_OFFLOAD=0), runs `VV query` on
        every layout with 1 and 100 queries, REPS rounds interleaved; prints
        the median wall time, ns per byte of segments, the split/unsplit
        ratios, and checks that every layout gives the same ids.  With
        DAEMON_PIDFILE set (scale-bench.sh sets it for its own mount), the
        CPU time the vecvault daemon spent per query is reported too: on a
        mount with many small segments that is where their cost goes.
        Every layout's ids are also checked against a float64 brute-force
        reference (distances of the returned rows equal the reference's k
        best, so ties may come back in either order).  With SCALE_FLOOR set
        to the scale_floor binary (scale-bench.sh builds it), the bare
        per-file system calls over DIR/tiny are timed in the same rounds and
        compared with the single-segment query, and the least any reader can
        do (openat, whole-file preads, close) over every layout, next to
        that layout's query (docs/design.md).
"""
import os, re, resource, shutil, statistics, subprocess, sys, tempfile, time
import numpy as np

LAYOUTS = (("one", "split"), ("one2", "tiny"))     # (unsplit, split) of the same rows


def gen(d, rows, dim):
    rng = np.random.default_rng(dim)
    os.makedirs(d, exist_ok=True)
    if os.path.exists(os.path.join(d, "q100.npy")):
        return
    c = rng.standard_normal((1000, dim)).astype(np.float32) * 4
    x = np.empty((2 * rows, dim), np.float32)
    for s in range(0, 2 * rows, 100000):
        e = min(2 * rows, s + 100000)
        x[s:e] = c[rng.integers(0, 1000, e - s)] + rng.standard_normal((e - s, dim), dtype=np.float32)
    for name, total, per in (("one", rows, rows), ("split", rows, 1000), ("one2", 2 * rows, 2 * rows),
                             ("tiny", 2 * rows, 100)):
        os.makedirs(os.path.join(d, name), exist_ok=True)
        for i in range(total // per):
            np.save(os.path.join(d, name, "%05d.npy" % i), x[i * per:(i + 1) * per])
    q = c[rng.integers(0, 1000, 100)] + rng.standard_normal((100, dim), dtype=np.float32)
    np.save(os.path.join(d, "q1.npy"), q[:1])
    np.save(os.path.join(d, "q100.npy"), q)


def seg_bytes(d):
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))


def cpu_children():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def cpu_daemon():
    """CPU seconds the daemon named by $DAEMON_PIDFILE used so far, or 0."""
    try:
        pid = open(os.environ["DAEMON_PIDFILE"]).read().split()[0]
        f = open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except (KeyError, OSError, IndexError, ValueError):
        return 0.0


def drops():
    """The kernel's count of global page-cache drops (echo N >
    /proc/sys/vm/drop_caches, by anyone), 0 where /proc/vmstat lacks it."""
    try:
        for line in open("/proc/vmstat"):
            if line.startswith("drop_pagecache "):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def warm(d):
    """Read every file of directory d (the page cache; through a mount,
    the daemon decrypts them)."""
    subprocess.run(["cat"] + [os.path.join(d, f) for f in os.listdir(d)], stdout=subprocess.DEVNULL)


def run_vv(vv, coll, qf, threads, out, env):
    """Wall time and CPU time (user + system) of one `vv query` process:
    on a shared machine CPU time is the steadier of the two."""
    c = cpu_children()
    dc = cpu_daemon()
    t = time.perf_counter()
    p = subprocess.run([vv, "query", coll, "-q", qf, "-k", "10", "--threads", str(threads),
                        "--format", "npy", "-o", out, "--stats"], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    run_vv.cpu = cpu_children() - c
    run_vv.dcpu = cpu_daemon() - dc
    if p.returncode != 0:
        sys.exit("vecvault query %s failed: %s" % (coll, p.stderr))
    o = re.search(r"offload: (\d+) of (\d+)", p.stderr)
    return wall, (int(o.group(1)), int(o.group(2))) if o else (0, 0)


def ref_topk(rows, q, k=10):
    """float64 distances of the k nearest of rows (n x d) to each of q."""
    q = q.astype(np.float64)
    best = np.full((len(q), k), np.inf)
    for s in range(0, len(rows), 65536):
        x = np.asarray(rows[s:s + 65536], dtype=np.float64)
        d = (x * x).sum(1)[None, :] - 2 * q @ x.T + (q * q).sum(1)[:, None]
        best = np.sort(np.concatenate([best, np.partition(d, k - 1, 1)[:, :k]], 1), 1)[:, :k]
    return best


def ref_check(qdir, ids):
    """Count (layout, nq) results whose rows are not at the float64 k-nearest
    distances: exact recomputation of each returned row's distance."""
    bad = 0
    for un, _ in LAYOUTS:
        seg = os.path.join(qdir, un)
        rows = np.load(os.path.join(seg, sorted(os.listdir(seg))[0]), mmap_mode="r")
        q = np.load(os.path.join(qdir, "q100.npy")).astype(np.float64)
        ref = ref_topk(rows, q)
        for (label, l, nq), got in ids.items():
            if l not in (un, dict(LAYOUTS)[un]):
                continue
            got = np.asarray(got, dtype=np.int64).reshape(nq, -1)
            for i in range(nq):
                x = np.asarray(rows[got[i]], dtype=np.float64)
                d = np.sort(((x - q[i]) ** 2).sum(1))
                if not np.allclose(d, ref[i, :len(d)], rtol=1e-9, atol=1e-9):
                    bad += 1
                    print("# %s %s nq %d query %d: not the float64 nearest rows" % (label, l, nq, i))
                    break
    return bad


def run(vv, reps, threads, locs, qdir):
    tmp = tempfile.mkdtemp()
    try:
        return run_in(vv, reps, threads, locs, qdir, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_in(vv, reps, threads, locs, qdir, tmp):
    """run()'s body; tmp holds the result files of the runs."""
    locations = []
    for spec in locs:
        label, d, *rest = spec.split(":")
        env = dict(os.environ)
        for kv in (rest[0].split(",") if rest and rest[0] else []):
            k, v = kv.split("=", 1)
            env[k] = v
        locations.append((label, d, env))
    layouts = [l for pair in LAYOUTS for l in pair]
    nbytes = {l: seg_bytes(os.path.join(locations[0][1], l)) for l in layouts}
    res, cpu, dcpu, offl, ids = {}, {}, {}, {}, {}
    floor = os.environ.get("SCALE_FLOOR")
    drops0 = drops()
    fl = {0: [], 1: [], 2: [], 3: []}
    lfl = {}                # layout -> [(wall, cpu)] of scale_floor mode 1 over it
    redo = [0]              # runs repeated: the page cache was dropped during them
    warmed = {}             # directory -> drops() when it was last read whole

    def warm_run(d, fn):
        """fn() once the page cache holds d (read again first if the page
        cache was dropped since d was last read), repeated (up to 4 times)
        when someone dropped it during fn: this benchmark measures warm
        reads, and on a shared machine another job's drop_caches turned
        single runs into cold ones."""
        for attempt in range(5):
            d0 = drops()
            if warmed.get(d) != d0:         # dropped since d was last read
                warm(d)
                warmed[d] = d0 = drops()
            v = fn()
            if drops() == d0:
                return v
            redo[0] += 1
        return v
    # warm-up: page cache, and the daemon's decrypted copies (first
    # queries on a mount start the fill and scan locally)
    for label, d, env in locations:
        for l in layouts:
            warm(os.path.join(d, l))
            warmed[os.path.join(d, l)] = drops()
            for i in range(40):
                _, o = run_vv(vv, os.path.join(d, l), os.path.join(qdir, "q1.npy"), threads,
                              os.path.join(tmp, "w.npy"), env)
                if i >= 2 and (env.get("VV_KNN_OFFLOAD") == "0" or o[0] == last[0]):
                    break
                last = o
                time.sleep(0.3)
    for r in range(reps):
        if floor:
            for mode in (0, 1, 2, 3):
                p = warm_run(os.path.join(qdir, "tiny"),
                             lambda: subprocess.run([floor, os.path.join(qdir, "tiny"), str(threads),
                                                     str(mode)], capture_output=True, text=True))
                if p.returncode == 0:
                    w = p.stdout.split()
                    fl[mode].append((float(w[0]) / 1e3, float(w[-1]) / 1e3))
            # the least any reader of each layout's files can do (mode 1:
            # openat, whole-file preads, close), next to the queries
            for l in layouts:
                p = warm_run(os.path.join(qdir, l),
                             lambda: subprocess.run([floor, os.path.join(qdir, l), str(threads), "1"],
                                                    capture_output=True, text=True))
                if p.returncode == 0:
                    w = p.stdout.split()
                    lfl.setdefault(l, []).append((float(w[0]) / 1e3, float(w[-1]) / 1e3))
        for nq in (1, 100):
            for label, d, env in locations:
                for l in layouts:
                    out = os.path.join(tmp, "%s.%s.%d.npy" % (label, l, nq))
                    w, o = warm_run(os.path.join(d, l),
                                    lambda: run_vv(vv, os.path.join(d, l), os.path.join(qdir, "q%d.npy" % nq),
                                                   threads, out, env))
                    res.setdefault((label, l, nq), []).append(w)
                    cpu.setdefault((label, l, nq), []).append(run_vv.cpu)
                    dcpu.setdefault((label, l, nq), []).append(run_vv.dcpu)
                    offl[(label, l, nq)] = o
                    ids[(label, l, nq)] = np.load(out)
    print("# vecvault %s, %d threads, medians of %d interleaved runs of the whole process:"
          % (vv, threads, reps))
    print("# wall ms, wall ns per byte of segments, split/unsplit wall ratio; the same for the")
    print("# tool's CPU time, and for the tool's plus the daemon's (mount, with DAEMON_PIDFILE)")
    print("%-13s %-4s %-24s %9s %8s %7s %9s %7s %9s %7s %10s" % (
        "location", "nq", "layout", "wall ms", "ns/B", "split/", "cpu ms", "split/", "+daemon", "split/",
        "offloaded"))
    for nq in (1, 100):
        for label, d, env in locations:
            for un, sp in LAYOUTS:
                def both(l):
                    return [a + b for a, b in zip(cpu[(label, l, nq)], dcpu[(label, l, nq)])]
                mu = statistics.median(res[(label, un, nq)])
                cu = statistics.median(cpu[(label, un, nq)])
                bu = statistics.median(both(un))
                for l in (un, sp):
                    m = statistics.median(res[(label, l, nq)])
                    mc = statistics.median(cpu[(label, l, nq)])
                    mb = statistics.median(both(l))
                    nseg = len(os.listdir(os.path.join(d, l)))
                    o = offl[(label, l, nq)]
                    print("%-13s %-4d %-24s %9.1f %8.3f %7s %9.1f %7s %9.1f %7s %10s" % (
                        label, nq, "%s (%d x %d MB)" % (l, nseg, nbytes[l] >> 20), m * 1e3,
                        m * 1e9 / nbytes[l], "%.2fx" % (m / mu) if l == sp else "", mc * 1e3,
                        "%.2fx" % (mc / cu) if l == sp else "", mb * 1e3,
                        "%.2fx" % (mb / bu) if l == sp and bu > 0 else "", "%d of %d" % o))
    if fl[0] and fl[1]:
        one = statistics.median(res[(locations[0][0], "one2", 1)])
        onec = statistics.median(cpu[(locations[0][0], "one2", 1)])
        for mode, what in ((0, "openat, statx, 2 preads, close (the query, VV_IO_URING=0)"),
                           (1, "openat, 1 pread, close (the least, one by one)"),
                           (2, "io_uring batches of openat, head read, close + statx, pread "
                               "(the query)"),
                           (3, "io_uring batches of openat, 1 read, close (the least)")):
            if not fl[mode]:
                continue
            m = statistics.median(x[0] for x in fl[mode])
            mc = statistics.median(x[1] for x in fl[mode])
            print("# floor over tiny, per file %s, no arithmetic: %.1f ms wall, %.1f ms CPU "
                  "= %.2fx wall, %.2fx CPU of the %s one2 single query"
                  % (what, m * 1e3, mc * 1e3, m / one, mc / onec, locations[0][0]))
    if len(lfl) == len(layouts):
        # Per layout: the bare reads' CPU, the split/unsplit ratio of those
        # floors, and what the plain-directory query adds on top of them.
        print("# floor per layout (scale_floor mode 1: openat, whole-file preads, close; no "
              "arithmetic), CPU ms, next to the %s single query:" % locations[0][0])
        for un, sp in LAYOUTS:
            fu = statistics.median(x[1] for x in lfl[un])
            for l in (un, sp):
                f = statistics.median(x[1] for x in lfl[l])
                q = statistics.median(cpu[(locations[0][0], l, 1)])
                print("#   %-6s floor %7.1f ms%s   query %7.1f ms = floor + %.1f ms" % (
                    l, f * 1e3, "" if l == un else " (%.2fx the %s floor)" % (f / fu, un),
                    q * 1e3, (q - f) * 1e3))
    if redo[0]:
        print("# %d runs were repeated: the page cache was dropped during them (drop_pagecache in "
              "/proc/vmstat, %d in all during this benchmark)" % (redo[0], drops() - drops0))
    refbad = ref_check(qdir, ids)
    print("# every layout and location at the float64 reference distances: %s"
          % ("yes" if not refbad else "NO"))
    bad = 0
    for nq in (1, 100):
        for un, sp in LAYOUTS:
            for label, _, _ in locations:
                if not np.array_equal(ids[(label, un, nq)], ids[(locations[0][0], un, nq)]) or \
                   not np.array_equal(ids[(label, sp, nq)], ids[(locations[0][0], un, nq)]):
                    bad += 1
                    print("# ids differ: %s %s/%s nq %d" % (label, un, sp, nq))
    print("# ids of every layout and location equal: %s" % ("yes" if not bad else "NO"))
    return 1 if bad or refbad else 0


if __name__ == "__main__":
    if sys.argv[1] == "gen":
        gen(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit(run(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[6:], sys.argv[5]))
