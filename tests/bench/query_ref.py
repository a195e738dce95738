#!/usr/bin/python3
"""query_ref.py - the Python half of tests/bench/query-bench.sh.

  query_ref.py gen DIR N D            clustered float32 data DIR/c<D>/base.npy + DIR/q<D>.npy
  query_ref.py cmp VV DIR1 DIR2 D THREADS REPS
        the same `VV query` runs on DIR1/c<D> and DIR2/c<D>, interleaved;
        medians and the DIR2/DIR1 time ratio (mount vs plain directory)
  query_ref.py bench VV DIR D THREADS REPS [STREAM_GBS]
        interleaves, REPS times: `VV query` single query, faiss single query,
        `VV query` 1000-query batch, faiss batch; prints medians and ratios,
        the BLAS faiss uses, and checks vecvault's ids against faiss's.

Not a ctest test: it needs ~2 GB of RAM and minutes.
"""
import os, subprocess, sys, tempfile, time, re
import numpy as np


def gen(d, n, dim):
    rng = np.random.default_rng(dim)
    cdir = os.path.join(d, "c%d" % dim)
    os.makedirs(cdir, exist_ok=True)
    base = os.path.join(cdir, "base.npy")
    if not os.path.exists(base):
        centers = rng.standard_normal((1000, dim)).astype(np.float32) * 4
        out = np.lib.format.open_memmap(base + ".tmp", mode="w+", dtype="<f4", shape=(n, dim))
        for s in range(0, n, 100000):
            e = min(n, s + 100000)
            out[s:e] = centers[rng.integers(0, 1000, e - s)] + rng.standard_normal((e - s, dim), dtype=np.float32)
        out.flush()
        del out
        os.rename(base + ".tmp", base)
    qf = os.path.join(d, "q%d.npy" % dim)
    if not os.path.exists(qf):
        centers = rng.standard_normal((1000, dim)).astype(np.float32) * 4
        q = centers[rng.integers(0, 1000, 1000)] + rng.standard_normal((1000, dim), dtype=np.float32)
        np.save(qf, q.astype("<f4"))
        np.save(os.path.join(d, "q%d_1.npy" % dim), q[:1].astype("<f4"))


def blas_in_use():
    libs = set()
    for line in open("/proc/self/maps"):
        m = re.search(r"(/\S*(blas|lapack|mkl)\S*\.so[.\d]*)", line)
        if m:
            libs.add(os.path.realpath(m.group(1)))
    return ", ".join(sorted(libs)) or "unknown"


def run_vv(vv, coll, qf, threads, out):
    t = time.perf_counter()
    p = subprocess.run([vv, "query", coll, "-q", qf, "-k", "10", "--threads", str(threads),
                        "--format", "npy", "-o", out, "--stats"], capture_output=True, text=True)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit("vecvault query failed: " + p.stderr)
    m = re.search(r"search ([\d.]+) s, ([\d.]+) GB/s", p.stderr)
    o = re.search(r"offload: (\d+) of", p.stderr)
    return wall, float(m.group(1)), float(m.group(2)), int(o.group(1)) if o else 0


def bench(vv, d, dim, threads, reps, stream):
    import faiss
    faiss.omp_set_num_threads(threads)
    coll = os.path.join(d, "c%d" % dim)
    x = np.load(os.path.join(coll, "base.npy"), mmap_mode="r")
    q = np.load(os.path.join(d, "q%d.npy" % dim))
    index = faiss.IndexFlatL2(dim)
    index.add(np.ascontiguousarray(x))
    print("# faiss %s, BLAS: %s, threads %d, %d x %d" % (faiss.__version__, blas_in_use(), threads, x.shape[0], dim))
    tmp = tempfile.mkdtemp()
    o1, ob = os.path.join(tmp, "1.npy"), os.path.join(tmp, "b.npy")
    r = {k: [] for k in ("vv1", "vv1s", "gbs", "f1", "vvb", "vvbs", "fb")}
    for i in range(reps):
        w, s, g, _ = run_vv(vv, coll, os.path.join(d, "q%d_1.npy" % dim), threads, o1)
        r["vv1"].append(w); r["vv1s"].append(s); r["gbs"].append(g)
        t = time.perf_counter(); _, I1 = index.search(q[:1], 10); r["f1"].append(time.perf_counter() - t)
        if i < max(1, reps // 3):   # batches are long: fewer repetitions
            w, s, g, _ = run_vv(vv, coll, os.path.join(d, "q%d.npy" % dim), threads, ob)
            r["vvb"].append(w); r["vvbs"].append(s)
            t = time.perf_counter(); _, IB = index.search(q, 10); r["fb"].append(time.perf_counter() - t)
    med = {k: float(np.median(v)) for k, v in r.items()}
    agree = (np.load(ob) == IB).mean()
    print("single query : vecvault %.1f ms wall (scan %.1f ms, %.1f GB/s)  faiss %.1f ms  faiss/vecvault %.2fx (wall) %.2fx (scan)"
          % (med["vv1"] * 1e3, med["vv1s"] * 1e3, med["gbs"], med["f1"] * 1e3, med["f1"] / med["vv1"], med["f1"] / med["vv1s"]))
    if stream:
        print("scan rate    : %.1f GB/s = %.0f%% of STREAM-style read bandwidth %.1f GB/s" % (med["gbs"], 100 * med["gbs"] / stream, stream))
    print("1000 queries : vecvault %.2f s wall (search %.2f s)  faiss %.2f s  faiss/vecvault %.2fx"
          % (med["vvb"], med["vvbs"], med["fb"], med["fb"] / med["vvb"]))
    print("ids equal to faiss's: %.4f of 10000 (differences only at distance ties)" % agree)


def cmp_dirs(vv, d1, d2, dim, threads, reps):
    """The same searches on DIR1 (e.g. a plain directory) and DIR2 (e.g. a
    vecvault mount holding the same files), interleaved; medians, ratio."""
    r = {k: [] for k in ("s1", "s2", "b1", "b2")}
    off = []                      # segments offloaded per single query on DIR2
    tmp = tempfile.mkdtemp()
    o = os.path.join(tmp, "o.npy")
    q1, qb = os.path.join(d1, "q%d_1.npy" % dim), os.path.join(d1, "q%d.npy" % dim)
    for i in range(reps):
        for key, d in (("1", d1), ("2", d2)):
            res = run_vv(vv, os.path.join(d, "c%d" % dim), q1, threads, o)
            r["s" + key].append(res[0])
            if key == "2":
                off.append(res[3])
        if i < max(1, reps // 3):
            for key, d in (("1", d1), ("2", d2)):
                r["b" + key].append(run_vv(vv, os.path.join(d, "c%d" % dim), qb, threads, o)[0])
    med = {k: float(np.median(v)) for k, v in r.items()}
    print("dir vs dir   : %s vs %s, %d x %d, threads %d" % (d1, d2, dim, threads, threads))
    print("single query : %.1f ms vs %.1f ms  second/first %.3f" % (med["s1"] * 1e3, med["s2"] * 1e3, med["s2"] / med["s1"]))
    print("1000 queries : %.2f s vs %.2f s  second/first %.3f" % (med["b1"], med["b2"], med["b2"] / med["b1"]))
    # on a vecvault mount the first query starts the daemon's decryption
    # (query offload, docs/query.md) and scans locally
    print("second dir   : first single query %.1f ms; %d of %d single queries offloaded to the daemon"
          % (r["s2"][0] * 1e3, sum(1 for x in off if x > 0), len(off)))


if __name__ == "__main__":
    if sys.argv[1] == "cmp":
        cmp_dirs(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]))
    elif sys.argv[1] == "gen":
        gen(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        bench(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]),
              float(sys.argv[7]) if len(sys.argv) > 7 else 0)
