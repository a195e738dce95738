#!/usr/bin/python3
"""mount_ab.py - two vecvault builds, each tool against its own daemon, interleaved.

  mount_ab.py REPS LABEL:VV:MNT:PIDFILE LABEL:VV:MNT:PIDFILE [...]
  LAYOUTS="tiny one2" (default) picks the collections MNT/c/<layout>.
  Q=queries.npy (default q1.npy), ARGS="--no-offload" adds query arguments.

For changes on both sides of the directory request (the daemon's and the
tool's), which scale_ab.py (tools only) cannot compare.  Set up once
(several minutes): a store holding copies of scale-bench.sh's layouts
under one collection `c` (cp -r DATA/tiny DATA/one2 ... MNT/c/), unmounted,
copied whole with its state directory (cp -a STORE STORE2; cp -a STATE
STATE2), then STORE mounted by one build's daemon and STORE2 by the
other's (each with its own VECVAULT_STATE_DIR and --pid-file); query each
layout until `--stats` says nothing is still being decrypted.  `ls -l` of
a layout makes its files' nodes stay in the daemon (the kernel holds them
looked up); without, a build older than idle nodes (docs/design.md "Node
cache and kernel caches") builds them again for each query, as after a
remount: measure both states.

Each round runs every layout with a single query (q1.npy, k 10) through
every side in turn, so load changes hit all alike.  Prints per side and
layout the median wall time, the daemon's CPU (its utime + stime over the
query, threads that ended included; clock ticks) and the tool's (user +
system),
tiny/one2 of the wall medians and the median of each round's tiny/one2
(the two ran back to back, so load changes between rounds cancel), and
checks every side printed the same.  "busiest thread" is the mean CPU
per query of the daemon thread that used the most over it (the offload
pool's one scan thread when the offload serves: the critical path, since
the pool has one thread on up to 3 CPUs), and "daemon mean" the whole
daemon's; means, not medians, because clock ticks are 10 ms.
"""
import os, statistics, subprocess, sys, time

Q = os.environ.get("Q", "/var/tmp/vv-scale/r500000d128/q1.npy")
ARGS = os.environ.get("ARGS", "").split()


def daemon_cpu(pidfile):
    """The daemon's CPU in ms: utime + stime of /proc/PID/stat, which keep
    the time of threads that ended (libfuse's idle workers exit; summing
    the live threads' schedstat lost theirs), in clock ticks."""
    with open(pidfile) as f:
        pid = f.read().strip()
    with open("/proc/%s/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1e3 / os.sysconf("SC_CLK_TCK")


def thread_cpu(pidfile):
    """ms of CPU of each live thread of the daemon, by thread id."""
    with open(pidfile) as f:
        pid = f.read().strip()
    out = {}
    for tid in os.listdir("/proc/%s/task" % pid):
        try:
            with open("/proc/%s/task/%s/stat" % (pid, tid)) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[tid] = (int(fields[11]) + int(fields[12])) * 1e3 / os.sysconf("SC_CLK_TCK")
    return out


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    reps = int(sys.argv[1])
    sides = [a.split(":") for a in sys.argv[2:]]
    layouts = os.environ.get("LAYOUTS", "tiny one2").split()
    res, outs = {}, {}
    for _ in range(reps):
        for lay in layouts:
            for label, vv, mnt, pidf in sides:
                c0, r0, h0 = daemon_cpu(pidf), os.times(), thread_cpu(pidf)
                t0 = time.perf_counter()
                p = subprocess.run([vv, "query", mnt + "/c/" + lay, "--queries", Q, "-k", "10"] + ARGS,
                                   capture_output=True)
                t1 = time.perf_counter()
                r1, c1, h1 = os.times(), daemon_cpu(pidf), thread_cpu(pidf)
                hot = max([h1[t] - h0[t] for t in h1 if t in h0] or [0])
                if p.returncode != 0:
                    sys.exit("%s %s: %s" % (label, lay, p.stderr.decode(errors="replace")))
                outs.setdefault(lay, set()).add(p.stdout)
                tool = (r1.children_user + r1.children_system -
                        r0.children_user - r0.children_system) * 1e3
                res.setdefault((label, lay), []).append(((t1 - t0) * 1e3, c1 - c0, tool, hot))
    with open("/proc/loadavg") as f:
        print("load", " ".join(f.read().split()[:3]))
    med = statistics.median
    for label, *_ in sides:
        for lay in layouts:
            v = res[(label, lay)]
            print("%-8s %-6s wall %7.1f ms [%.1f-%.1f]  daemon CPU %6.1f ms  tool CPU %5.1f ms" %
                  (label, lay, med(x[0] for x in v), min(x[0] for x in v), max(x[0] for x in v),
                   med(x[1] for x in v), med(x[2] for x in v)))
            print("%-8s %-6s daemon mean %6.1f ms  busiest thread mean %6.1f ms" %
                  (label, lay, statistics.mean(x[1] for x in v), statistics.mean(x[3] for x in v)))
        for a, b in (("tiny", "one2"), ("split", "one")):
            if a in layouts and b in layouts:
                ra, rb = res[(label, a)], res[(label, b)]
                # and the median of each round's own ratio: a and b ran
                # back to back, so a load change between rounds cancels
                print("%-8s %s/%s wall %.2f  CPU (tool + daemon) %.2f  per round: wall %.2f" % (
                    label, a, b, med(x[0] for x in ra) / med(x[0] for x in rb),
                    med(x[1] + x[2] for x in ra) / med(x[1] + x[2] for x in rb),
                    med(x[0] / y[0] for x, y in zip(ra, rb))))
    bad = [lay for lay in layouts if len(outs[lay]) != 1]
    print("outputs equal" if not bad else "OUTPUTS DIFFER: " + " ".join(bad))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
