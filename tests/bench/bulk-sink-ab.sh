#!/bin/bash
# bulk-sink-ab.sh - the bulk read's copy into the caller's memfd, two
# builds' daemons side by side (A and B), interleaved rounds, medians.
#
#   VV_A=/tmp/rel-main/vecvault VV_B=/tmp/rel-new/vecvault tests/bench/bulk-sink-ab.sh
#   ROUNDS=11 REQS=100 (the by-hand requests), QROUNDS=9 N=2000 (the query)
#
# 1. By hand (tests/integration/lib/bulk.py): REQS bulk reads per round of
#    the same 64 files of 51,200 B into 64 KiB slots of one memfd; wall
#    and daemon CPU per request (utime+stime of /proc/PID/stat: every
#    thread, exited ones too).
# 2. `vecvault query --no-offload` (1 query, k 10) over N segments of 100
#    x 128 float32, each tool against its own daemon, and B's tool with
#    VV_BULK=0 (each file opened) as C; the outputs must be equal.
# Daemon CPU in clock ticks (10 ms) for 2: read its wall first.  Uses
# test-lib.sh for the stores and mounts (removed at exit).
export TMPDIR=${TMPDIR:-/tmp}
. "$(dirname "$0")/../integration/test-lib.sh"
vv_need_fuse
vv_need_numpy
LIB=$VV_SRC/tests/integration/lib
export LIB
N=${N:-2000}
"$PY" - "$T" "$N" <<'PY'
import numpy as np, os, sys
T, n = sys.argv[1], int(sys.argv[2])
os.mkdir(T + "/src")
rng = np.random.default_rng(1)
for i in range(n):
    np.save(T + "/src/s%05d.npy" % i, rng.standard_normal((100, 128)).astype('<f4'))
np.save(T + "/q.npy", rng.standard_normal((1, 128)).astype('<f4'))
d = rng.bytes(64 * 51200)
os.mkdir(T + "/by")
for i in range(64):
    open(T + "/by/f%03d" % i, "wb").write(d[i * 51200:(i + 1) * 51200])
PY
for x in A B; do
	bin=VV_$x
	VV_BIN=${!bin}
	vv_init "$T/s$x" >/dev/null 2>&1
	vv_mount "$T/s$x" "$T/m$x"
	cp -r "$T/src" "$T/m$x/c"
	cp -r "$T/by" "$T/m$x/by"
	vv_sync "$T/m$x"
done
PA=$(cat "$T/.pids/$(echo "$T/mA" | tr / _)")
PB=$(cat "$T/.pids/$(echo "$T/mB" | tr / _)")
uptime
"$PY" - "${ROUNDS:-11}" "${REQS:-100}" "$T/mA/by" "$PA" "$T/mB/by" "$PB" <<'PY'
import os, statistics, sys, time
sys.path.insert(0, os.environ["LIB"])
import bulk as B
rounds, reqs = int(sys.argv[1]), int(sys.argv[2])
mnts = [(sys.argv[3], int(sys.argv[4])), (sys.argv[5], int(sys.argv[6]))]
tick = os.sysconf("SC_CLK_TCK")
def cpu(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / tick
names = ["f%03d" % i for i in range(64)]
res = [([], []), ([], [])]
for r in range(rounds):
    for k in ((0, 1) if r % 2 == 0 else (1, 0)):
        d, pid = mnts[k]
        buf = B.Buf(64, 1 << 16)
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        b = B.req(buf, names)
        assert B.call(fd, bytearray(b))[0] == "OK"          # warm
        c0, t0 = cpu(pid), time.perf_counter()
        for i in range(reqs):
            assert B.call(fd, bytearray(b))[0] == "OK"
        t1, c1 = time.perf_counter(), cpu(pid)
        res[k][0].append((t1 - t0) / reqs * 1e3)
        res[k][1].append((c1 - c0) / reqs * 1e3)
        os.close(fd)
m = [[statistics.median(x) for x in res[k]] for k in (0, 1)]
for k in (0, 1):
    print("by hand %s: wall %.3f ms/request, daemon CPU %.3f ms/request" % ("AB"[k], *m[k]))
print("by hand B/A: wall %.2fx, CPU %.2fx" % (m[1][0] / m[0][0], m[1][1] / m[0][1]))
PY
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for r in $(seq 1 "${QROUNDS:-9}"); do
	for x in A B C; do
		m=$x bulk=1
		[ "$x" = C ] && m=B bulk=0
		bin=VV_$m pv=P$m
		c0=$(cpu "${!pv}")
		t0=$(date +%s%N)
		VV_BULK=$bulk "${!bin}" query "$T/m$m/c" -q "$T/q.npy" -k 10 --no-offload \
			> "$T/out$x" 2>/dev/null
		t1=$(date +%s%N)
		echo "$x $(((t1 - t0) / 1000000)) $((($(cpu "${!pv}") - c0) * 10))"
	done
	cmp -s "$T/outA" "$T/outB" && cmp -s "$T/outA" "$T/outC" || echo "OUTPUTS DIFFER"
done > "$T/res"
grep DIFFER "$T/res" || true
"$PY" - "$T/res" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l[0] in "ABC"]
for x in "ABC":
    w = [int(r[1]) for r in rows if r[0] == x]
    c = [int(r[2]) for r in rows if r[0] == x]
    print("query %s: wall %d ms, daemon CPU %d ms (medians)" % (x, statistics.median(w),
          statistics.median(c)))
PY
uptime
test_done
