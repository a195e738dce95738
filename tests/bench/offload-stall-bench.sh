#!/bin/bash
# offload-stall-bench.sh - what one user flooding the query offload costs
# everyone else (docs/security.md "Offload limits").  Not part of ctest;
# run by hand as root:
#
#   VV_BIN=build/vecvault tests/bench/offload-stall-bench.sh
#
# On one mount: uid 65534 makes a 256 MiB sparse .npy (dim 4, no disk
# used) and FLOODERS processes of that uid send scan requests on it
# back to back (tests/integration/lib/knn_ioc.py attack: the largest batch
# the daemon's work budget allows, or KNN_NQ queries).  Root meanwhile
# times `cat` of a 9-byte file (REPS samples) and `tar x` of FILES small
# files (TAR_REPS samples).  Phases: idle, flood, idle again; the two idle
# phases are pooled.  Prints per line the median with the min-max spread
# and the 90th percentile, then flood/idle ratios of the medians (the goal:
# within 2x), and what the flooders got (answers, EBUSY, E2BIG ...).
#   env: VV_BIN (default: vecvault on PATH), REPS (101), TAR_REPS (5),
#        FILES (300), FLOODERS (6), KNN_NQ (queries per flood request;
#        default: the most the budget allows), KNN_CACHE (2G)
set -eu
VV=${VV_BIN:-$(command -v vecvault)}
VV=$(cd "$(dirname "$VV")" && pwd)/$(basename "$VV")
REPS=${REPS:-101}
TAR_REPS=${TAR_REPS:-5}
FILES=${FILES:-300}
FLOODERS=${FLOODERS:-6}
KNN_CACHE=${KNN_CACHE:-2G}
PY=/usr/bin/python3
HERE=$(cd "$(dirname "$0")" && pwd)
[ "$(id -u)" -eq 0 ] || { echo "run as root (uid 65534 floods)" >&2; exit 2; }

T=$(mktemp -d /tmp/vv-stall.XXXXXX)
chmod 755 "$T"
M=$T/mnt
export VECVAULT_STATE_DIR=$T/.state VECVAULT_AUDIT_DIR=$T/.audit VECVAULT_TEST_KDF=1
mkdir -m 700 "$T/.state" "$T/.audit"
printf 'bench\n' > "$T/.pass"
chmod 600 "$T/.pass"
FLOOD=
cleanup() {
	set +e
	[ -n "$FLOOD" ] && kill -KILL $FLOOD 2>/dev/null
	wait 2>/dev/null
	if mountpoint -q "$M"; then
		fusermount3 -u "$M" || fusermount3 -uz "$M"
	fi
	pid=$(cat "$T/pid" 2>/dev/null)
	for i in $(seq 100); do
		[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	rm -rf --one-file-system "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$VV" init "$T/store" --passfile "$T/.pass" --kdf test >/dev/null 2>&1
mkdir "$M"
"$VV" mount "$T/store" "$M" --passfile "$T/.pass" --pid-file "$T/pid" --log "$T/daemon.log" \
	--knn-cache "$KNN_CACHE"
mkdir -m 1777 "$M/pub" "$T/att"
cp "$HERE/../integration/lib/knn_ioc.py" "$T/knn_ioc.py"
SEG=$M/pub/big.npy
setpriv --reuid=65534 --regid=65534 --clear-groups -- "$PY" "$T/knn_ioc.py" sparse "$SEG" $((256 << 20))
printf 'nine byte' > "$M/small.txt"
"$PY" - "$T/src/tree" "$FILES" <<'PY'
import os, random, sys
r = random.Random(4004)
for i in range(int(sys.argv[2])):
    d = os.path.join(sys.argv[1], "d%02d" % (i // 30))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%04d" % i), "wb") as f:
        f.write(bytes(r.getrandbits(8) for _ in range(r.randint(1, 6000))))
PY
tar -C "$T/src" -cf "$T/tree.tar" tree

# phase NAME: REPS timed cats and TAR_REPS timed tar x, seconds to T/NAME.cat
# and T/NAME.tar (one per line)
phase() {
	"$PY" - "$M" "$T/tree.tar" "$REPS" "$TAR_REPS" "$T/$1" <<'PY'
import shutil, subprocess, sys, time
m, tar, reps, treps, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
cat, tx = [], []
for i in range(reps):
    t = time.monotonic()
    got = subprocess.run(["cat", m + "/small.txt"], stdout=subprocess.PIPE, check=True).stdout
    cat.append(time.monotonic() - t)
    assert got == b"nine byte", got
for i in range(treps):
    d = "%s/tx%d" % (m, i)
    subprocess.run(["mkdir", d], check=True)
    t = time.monotonic()
    subprocess.run(["tar", "-C", d, "-xf", tar], check=True)
    tx.append(time.monotonic() - t)
    shutil.rmtree(d)
open(out + ".cat", "w").write("\n".join(map(repr, cat)) + "\n")
open(out + ".tar", "w").write("\n".join(map(repr, tx)) + "\n")
PY
}

echo "# offload-stall-bench: $FLOODERS flooders of uid 65534 on a 256 MiB sparse segment;"
echo "# root: cat of a 9-byte file x $REPS, tar x of $FILES files x $TAR_REPS; $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
phase idle1
STOP=$T/att/stop
for i in $(seq "$FLOODERS"); do
	setpriv --reuid=65534 --regid=65534 --clear-groups -- \
		"$PY" "$T/knn_ioc.py" attack "$SEG" "$STOP" "$T/att/$i" &
	FLOOD="$FLOOD $!"
done
for i in $(seq 1200); do                 # until the daemon answers the flood
	ls "$T"/att/*.hot >/dev/null 2>&1 && break
	sleep 0.1
done
phase flood
touch "$STOP"
wait $FLOOD
FLOOD=
phase idle2
"$PY" - "$T" "$T/att" <<'PY'
import glob, json, statistics as st, sys
t = sys.argv[1]
def load(name, kind):
    return [float(x) for x in open("%s/%s.%s" % (t, name, kind)).read().split()]
def line(label, v):
    v = sorted(v)
    p90 = v[min(len(v) - 1, int(0.9 * len(v)))]
    print("%-22s median %9.3f ms  (min %8.3f - max %9.3f)  p90 %9.3f  n=%d"
          % (label, st.median(v) * 1e3, v[0] * 1e3, v[-1] * 1e3, p90 * 1e3, len(v)))
    return st.median(v)
res = {}
for kind, what in (("cat", "cat 9 B"), ("tar", "tar x")):
    idle = load("idle1", kind) + load("idle2", kind)
    res[kind] = (line("%s, idle" % what, idle), line("%s, flood" % what, load("flood", kind)))
for kind, what in (("cat", "cat"), ("tar", "tar x")):
    print("ratio flood/idle, %-6s %.2f" % (what, res[kind][1] / res[kind][0]))
tot = {}
for f in glob.glob(sys.argv[2] + "/[0-9]*"):
    if f.endswith(".hot"):
        continue
    for k, v in json.load(open(f)).items():
        key = "1017-query request: " + v if k == "big" else k
        tot[key] = tot.get(key, 0) + (v if isinstance(v, int) else 1)
print("# flooders got: " + ", ".join("%s %d" % kv for kv in sorted(tot.items())))
PY
