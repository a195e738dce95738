#!/bin/bash
# walk-ab.sh - the requests whose answers walk up the tree, two builds
# interleaved (docs/design.md "Walks up the tree"):
#
#   walk-ab.sh VV_A VV_B [ROUNDS]      (root; default 11 rounds)
#
# Each build mounts its own store (test KDF) under /tmp/walks-ab-$$; both
# get the same tree: a chain 200 deep under a 0750 directory (so no entry
# below it may be cached by the kernel: every stat walks every level
# through the daemon) with a file at its bottom, 20 directories of 100
# files under it, and two directories to rename between.  Per round, in
# alternating order: `deep` 300 stats and 100 open+read of the bottom file
# by its absolute path, `lsR` ls -lR of the 2000 files, `rename` 400
# renames across the two directories (a file and a directory each way).
# Prints each side's median wall time and daemon CPU (utime + stime)
# per workload, and B/A of the medians.
set -eu
[ $# -ge 2 ] || { sed -n '2,15p' "$0"; exit 2; }
A=$1 B=$2 ROUNDS=${3:-11}
export VECVAULT_TEST_KDF=1
PY=/usr/bin/python3
W=/tmp/walks-ab-$$
mkdir -p "$W"
echo "walk-ab pass" > "$W/pass"
chmod 600 "$W/pass"
cleanup() {
	for s in a b; do
		fusermount3 -u "$W/$s/mnt" 2>/dev/null || true
	done
	sleep 1
	rm -rf "$W"
}
trap cleanup EXIT
for s in a b; do
	bin=$A; [ $s = b ] && bin=$B
	mkdir -p "$W/$s/mnt" "$W/$s/state" "$W/$s/audit"
	export VECVAULT_STATE_DIR=$W/$s/state VECVAULT_AUDIT_DIR=$W/$s/audit
	"$bin" init "$W/$s/store" --passfile "$W/pass" --kdf test >/dev/null
	"$bin" mount "$W/$s/store" "$W/$s/mnt" --passfile "$W/pass" --log "$W/$s/daemon.log" \
		--pid-file "$W/$s/pid"
done
"$PY" - "$W" "$ROUNDS" <<'EOF'
import os, statistics, subprocess, sys, time
mnts, rounds = [sys.argv[1] + "/a/mnt", sys.argv[1] + "/b/mnt"], int(sys.argv[2])
pids = [open(sys.argv[1] + s + "/pid").read().strip() for s in ("/a", "/b")]
def cpu(s):
    """The daemon's utime + stime in ms (threads that ended included)."""
    f = open("/proc/%s/stat" % pids[s]).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) * 1e3 / os.sysconf("SC_CLK_TCK")
def setup(m):
    os.mkdir(m + "/c", 0o755)
    os.mkdir(m + "/c/p", 0o750)       # nothing below it is cacheable
    d = m + "/c/p"
    for i in range(200):
        d += "/d"
        os.mkdir(d)
    with open(d + "/bottom", "w") as f:
        f.write("x" * 100)
    for i in range(20):
        os.mkdir("%s/c/p/t%02d" % (m, i))
        for j in range(100):
            open("%s/c/p/t%02d/f%03d" % (m, i, j), "w").close()
    os.mkdir(m + "/c/p/r1"); os.mkdir(m + "/c/p/r2")
    open(m + "/c/p/r1/f", "w").close(); os.mkdir(m + "/c/p/r1/d")
    return d + "/bottom"
bottoms = [setup(m) for m in mnts]
def deep(m, b):
    for _ in range(300):
        os.stat(b)
    for _ in range(100):
        with open(b) as f:
            f.read()
def lsR(m, b):
    subprocess.run(["ls", "-lR", m + "/c/p"], stdout=subprocess.DEVNULL, check=True)
def rename(m, b):
    r1, r2 = m + "/c/p/r1", m + "/c/p/r2"
    for _ in range(100):
        os.rename(r1 + "/f", r2 + "/f"); os.rename(r2 + "/f", r1 + "/f")
        os.rename(r1 + "/d", r2 + "/d"); os.rename(r2 + "/d", r1 + "/d")
work = [("deep", deep), ("lsR", lsR), ("rename", rename)]
t = {(s, n): [] for s in (0, 1) for n, _ in work}
c = {(s, n): [] for s in (0, 1) for n, _ in work}
for r in range(rounds):
    for s in ((0, 1) if r % 2 == 0 else (1, 0)):
        for n, fn in work:
            c0, t0 = cpu(s), time.perf_counter()
            fn(mnts[s], bottoms[s])
            t[(s, n)].append(time.perf_counter() - t0)
            c[(s, n)].append(cpu(s) - c0)
print("# load %s, %d rounds" % (os.getloadavg(), rounds))
for n, _ in work:
    a, b = statistics.median(t[(0, n)]), statistics.median(t[(1, n)])
    ca, cb = statistics.median(c[(0, n)]), statistics.median(c[(1, n)])
    print("%-7s wall A %7.1f ms  B %7.1f ms  B/A %.2f   daemon CPU A %6.0f ms  B %6.0f ms  B/A %.2f"
          % (n, a * 1e3, b * 1e3, b / a, ca, cb, cb / max(ca, 1)))
EOF
